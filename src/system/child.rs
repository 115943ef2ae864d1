//! Running a child process with a bound on its time: its output is read
//! until the deadline, then it is killed (SIGKILL) and reaped. `sshd -T`
//! can block forever on an `Include` of a FIFO or a hung mount, or on a
//! resolver for a host name in ListenAddress; a hook must not.
//!
//! Every child ([`spawn`]) runs in a process group of its own, for two
//! reasons: a terminal's Ctrl-C (SIGINT to the foreground group) reaches
//! the guard, which holds it inside a repair's critical stretch, and not
//! `dpkg --configure` halfway through a postinst that restarts ssh; and a
//! child killed at its deadline (or when a hook gives up, [`kill_all`])
//! takes its own children with it (dpkg's maintainer scripts), so nothing
//! the guard started outlives it holding dpkg's lock.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The process groups of the children not yet reaped (their pids: each
/// leads its own group). Only [`output_until`] reaps a child, and it
/// forgets the group when it does: until then the pid cannot be reused
/// (an unreaped child stays a zombie), so a group named here is always
/// ours.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Starts `cmd` as the leader of a new process group, remembered until
/// [`output_until`] has reaped it (see the module's comment).
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let child = cmd.process_group(0).spawn()?;
    if let (Ok(mut g), Ok(pid)) = (GROUPS.lock(), i32::try_from(child.id())) {
        g.push(pid);
    }
    Ok(child)
}

/// Forgets a reaped child's group.
fn forget(child: &Child) {
    if let (Ok(mut g), Ok(pid)) = (GROUPS.lock(), i32::try_from(child.id())) {
        g.retain(|p| *p != pid);
    }
}

/// How long a child's group has after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// `sig` to a child's whole process group (it and whatever it started
/// that stayed in its group).
fn signal_group(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
}

/// Ends every child still running, with its process group (SIGTERM, then
/// SIGKILL for what is left after up to TERM_GRACE): a hook that gives up
/// at its deadline leaves nothing behind (deadline::run_hook).
pub fn kill_all() {
    let groups: Vec<i32> = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    if groups.is_empty() {
        return;
    }
    for pid in &groups {
        log::debug!("stopping process group {pid}");
        signal_group(*pid, nix::sys::signal::SIGTERM);
    }
    let alive =
        |pid: &i32| nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pid), None).is_ok();
    let deadline = Instant::now() + TERM_GRACE;
    while groups.iter().any(alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in groups.iter().filter(|p| alive(p)) {
        signal_group(*pid, nix::sys::signal::SIGKILL);
    }
}

/// More than any `sshd -T` prints (about 5 KiB); the rest is discarded.
const MAX_OUTPUT: usize = 1024 * 1024;

pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug)]
pub enum Error {
    /// The deadline passed; the child was killed.
    TimedOut,
    Io(std::io::Error),
}

fn poll_ms(left: Duration) -> PollTimeout {
    PollTimeout::from(u16::try_from(left.as_millis()).unwrap_or(u16::MAX))
}

/// Collects the child's stdout and stderr (those piped; an inherited one
/// stays empty) and its exit status, or kills it (its process group, when
/// it was started by [`spawn`]) once `deadline` passes.
pub fn output_until(mut child: Child, deadline: Instant) -> Result<Output, Error> {
    let mut pipes = [
        child.stdout.take().map(Pipe::from),
        child.stderr.take().map(Pipe::from),
    ];
    let result = collect(&mut pipes, deadline).and_then(|()| wait_until(&mut child, deadline));
    let grouped = GROUPS
        .lock()
        .is_ok_and(|g| i32::try_from(child.id()).is_ok_and(|p| g.contains(&p)));
    if let (Err(_), true, Ok(pid)) = (&result, grouped, i32::try_from(child.id())) {
        // The group, and SIGTERM first: a maintainer script (and dpkg,
        // which then records how it ended) gets TERM_GRACE to stop; then
        // SIGKILL for whatever is left of the group.
        signal_group(pid, nix::sys::signal::SIGTERM);
        let _ = wait_until(&mut child, Instant::now() + TERM_GRACE);
        signal_group(pid, nix::sys::signal::SIGKILL);
    }
    let reaped = match result {
        Ok(status) => {
            let [out, err] = pipes;
            Ok(Output {
                status,
                stdout: out.map(|p| p.buf).unwrap_or_default(),
                stderr: err.map(|p| p.buf).unwrap_or_default(),
            })
        }
        Err(e) => {
            let _ = child.kill();
            // Reaped if it dies promptly; a child stuck in the kernel (a hung
            // NFS mount) may not, and is then left for init once we exit.
            let _ = wait_until(&mut child, Instant::now() + Duration::from_secs(1));
            Err(e)
        }
    };
    forget(&child);
    reaped
}

enum Src {
    Out(std::process::ChildStdout),
    Err(std::process::ChildStderr),
}

struct Pipe {
    src: Src,
    buf: Vec<u8>,
    open: bool,
}

impl From<std::process::ChildStdout> for Pipe {
    fn from(s: std::process::ChildStdout) -> Pipe {
        Pipe {
            src: Src::Out(s),
            buf: Vec::new(),
            open: true,
        }
    }
}

impl From<std::process::ChildStderr> for Pipe {
    fn from(s: std::process::ChildStderr) -> Pipe {
        Pipe {
            src: Src::Err(s),
            buf: Vec::new(),
            open: true,
        }
    }
}

impl Pipe {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.src {
            Src::Out(s) => s.as_fd(),
            Src::Err(s) => s.as_fd(),
        }
    }

    /// One read after poll said it would not block; false at end of file.
    fn read_some(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 8192];
        let n = match &mut self.src {
            Src::Out(s) => s.read(&mut chunk)?,
            Src::Err(s) => s.read(&mut chunk)?,
        };
        let room = MAX_OUTPUT.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&chunk[..n.min(room)]);
        Ok(n > 0)
    }
}

fn collect(pipes: &mut [Option<Pipe>; 2], deadline: Instant) -> Result<(), Error> {
    loop {
        let open: Vec<usize> = (0..2)
            .filter(|i| pipes[*i].as_ref().is_some_and(|p| p.open))
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::TimedOut);
        }
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = open
                .iter()
                .filter_map(|i| pipes[*i].as_ref())
                .map(|p| PollFd::new(p.fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, poll_ms(left)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::Io(e.into())),
            }
        };
        for (i, r) in open.iter().zip(ready) {
            if let (Some(p), true) = (pipes[*i].as_mut(), r) {
                match p.read_some() {
                    Ok(more) => p.open = more,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::Io(e)),
                }
            }
        }
    }
}

fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, Error> {
    // 1 ms at first (sshd -T exits about when it closes its output), up
    // to 50 ms for a long child (dpkg) that has no output piped.
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(st) = child.try_wait().map_err(Error::Io)? {
            return Ok(st);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::TimedOut);
        }
        std::thread::sleep(nap.min(left));
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sh(script: &str) -> Child {
        spawn(
            Command::new("/bin/sh")
                .args(["-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .unwrap()
    }

    /// Whether any process of group `pgid` is left.
    fn group_alive(pgid: i32) -> bool {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
    }

    #[test]
    fn a_child_runs_in_its_own_process_group_and_dies_with_it_at_the_deadline() {
        // The grandchild (a maintainer script's sleep) is in the group
        // too, and one of them ignores SIGTERM: SIGKILL ends it.
        let child = sh("(trap '' TERM; sleep 60) & sleep 60; wait");
        let pid = child.id() as i32;
        assert_eq!(
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))),
            Ok(nix::unistd::Pid::from_raw(pid))
        );
        let r = output_until(child, Instant::now() + Duration::from_millis(300));
        assert!(matches!(r, Err(Error::TimedOut)));
        let t = Instant::now();
        while group_alive(pid) && t.elapsed() < TERM_GRACE + Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !group_alive(pid),
            "a process of group {pid} outlived the deadline"
        );
        assert!(!GROUPS.lock().unwrap().contains(&pid));
    }

    #[test]
    fn output_and_status_of_a_quick_child() {
        let o = output_until(
            sh("echo out; echo err >&2; exit 3"),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.stdout, b"out\n");
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(o.status.code(), Some(3));
    }

    #[test]
    fn a_hung_child_is_killed_at_the_deadline() {
        let t = Instant::now();
        let child = sh("echo started; exec sleep 60");
        let pid = child.id();
        let r = output_until(child, Instant::now() + Duration::from_millis(300));
        assert!(matches!(r, Err(Error::TimedOut)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // Killed and reaped: no such process any more.
        assert_eq!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        );
    }

    #[test]
    fn a_child_that_closes_its_output_but_keeps_running_is_bounded() {
        let t = Instant::now();
        let r = output_until(
            sh("exec >/dev/null 2>&1; sleep 60"),
            Instant::now() + Duration::from_millis(300),
        );
        assert!(matches!(r, Err(Error::TimedOut)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
