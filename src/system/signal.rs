//! Stopping a stale listener without ever hitting the wrong process: a pidfd
//! is opened first, the process behind it is re-checked (start time and
//! binary unchanged), and signals go through the pidfd, so a PID reused in
//! between can never receive them.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use anyhow::{bail, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the syscall succeeded, so r is a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid pidfd, a signal number, a null siginfo (the kernel then
    // fills it as for kill()), flags 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The pid the pidfd refers to, from /proc/self/fdinfo ("Pid:" line; -1
/// once the process has exited).
fn pidfd_pid(fd: &OwnedFd) -> Option<i64> {
    use std::os::fd::AsRawFd;
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the process behind the pidfd has exited.
fn wait_exit(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = crate::deadline::after(timeout);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

/// How a process ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    AlreadyGone,
    Term,
    Kill,
}

/// SIGTERM, then SIGKILL after `timeout`, to `pid` only if `still_same`
/// confirms (after the pidfd is open) that it is the process we decided on.
pub fn terminate(
    pid: u32,
    timeout: Duration,
    still_same: impl Fn() -> Result<bool>,
) -> Result<Stopped> {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::AlreadyGone),
        Err(e) => bail!("pidfd_open({pid}): {e}"),
    };
    let _doing = crate::deadline::doing(format!("stopping stale listener pid {pid}"));
    if !still_same()? {
        bail!("pid {pid} is no longer the stale listener that was found (start time or binary changed); not signalled");
    }
    // And the pidfd still names that pid: the process it was opened on has
    // not exited (so the pid cannot have been reused) since the checks.
    match pidfd_pid(&fd) {
        Some(p) if p == i64::from(pid) => {}
        Some(-1) => return Ok(Stopped::AlreadyGone),
        Some(other) => bail!("pid {pid}: the pidfd names pid {other}; not signalled"),
        // Kernels before 5.6 show no Pid line; the start time check stands.
        None => {}
    }
    match pidfd_send_signal(&fd, libc::SIGTERM) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::AlreadyGone),
        Err(e) => bail!("SIGTERM to pid {pid}: {e}"),
    }
    if wait_exit(&fd, timeout) {
        return Ok(Stopped::Term);
    }
    match pidfd_send_signal(&fd, libc::SIGKILL) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::Term),
        Err(e) => bail!("SIGKILL to pid {pid}: {e}"),
    }
    if wait_exit(&fd, Duration::from_secs(5)) {
        Ok(Stopped::Kill)
    } else {
        bail!("pid {pid} did not exit after SIGKILL")
    }
}
