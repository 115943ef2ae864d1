//! Stopping a stale listener without ever hitting the wrong process: a pidfd
//! is opened first, the process behind it is re-checked (start time and
//! binary unchanged), and signals go through the pidfd, so a PID reused in
//! between can never receive them.
//!
//! And the signals the guard itself receives: SIGINT, SIGHUP and SIGTERM
//! (Ctrl-C in an `apt upgrade` over ssh, a dropped link, a stop) are held
//! off while a repair's critical stretch is under way (deadline::critical:
//! from stopping anything that serves until ssh is proven or the rescue was
//! tried), since dying there leaves nobody able to log in. Outside a
//! stretch they act at once, as they always did. nix's sigaction, not a
//! crate: the handler is three async-signal-safe calls.
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

/// The first termination signal held off in a critical stretch (0: none).
static HELD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// What the guard holds off in a critical stretch.
const HOLD: [nix::sys::signal::Signal; 3] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGTERM,
];

/// Acts as the default disposition would (the process ends by the
/// signal): the disposition is reset and the signal raised again.
fn die_by(sig: libc::c_int) {
    // SAFETY: signal() with SIG_DFL installs no handler of ours; raise()
    // sends a signal. Both are async-signal-safe (signal-safety(7)).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

extern "C" fn on_termination(sig: libc::c_int) {
    // Only atomics and async-signal-safe calls here.
    if crate::deadline::in_critical() {
        let _ = HELD.compare_exchange(
            0,
            sig,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
    } else {
        die_by(sig);
    }
}

/// Installs the handler for SIGINT, SIGHUP and SIGTERM, once per process
/// (repair::Machine does, before a repair's first step). A signal the
/// process ignores (nohup, a parent's SIG_IGN) stays ignored.
pub fn hold_in_critical_stretches() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
        let act = SigAction::new(
            SigHandler::Handler(on_termination),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in HOLD {
            // SAFETY: the handler only reads and writes atomics and calls
            // signal() and raise(), all async-signal-safe.
            match unsafe { sigaction(sig, &act) } {
                // Put back an ignored disposition as it was.
                Ok(old) if matches!(old.handler(), SigHandler::SigIgn) => {
                    // SAFETY: SIG_IGN installs no code.
                    let _ = unsafe {
                        sigaction(
                            sig,
                            &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
                        )
                    };
                }
                Ok(_) => {}
                Err(e) => log::debug!("sigaction({sig}): {e}"),
            }
        }
    });
}

/// The signal held off during a critical stretch, if one came ("SIGINT").
pub fn held() -> Option<String> {
    let sig = HELD.load(std::sync::atomic::Ordering::SeqCst);
    (sig != 0).then(|| {
        nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"))
    })
}

/// Called once the command has said what it did: a signal held off during
/// a repair now ends the process, as it would have without the stretch.
pub fn honour_held() {
    let sig = HELD.swap(0, std::sync::atomic::Ordering::SeqCst);
    if sig != 0 {
        die_by(sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_termination_signal_inside_a_critical_stretch_is_held_not_acted_on() {
        hold_in_critical_stretches();
        let c = crate::deadline::critical();
        // SAFETY: raise() sends a signal to this thread; the handler is
        // installed (critical() does it) and the stretch is held.
        unsafe { libc::raise(libc::SIGHUP) };
        assert_eq!(held().as_deref(), Some("SIGHUP"));
        drop(c);
        // Cleared without acting (honour_held would end the test process).
        HELD.store(0, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(held(), None);
    }
}
