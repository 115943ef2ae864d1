//! dpkg's locks. apt and dpkg hold /var/lib/dpkg/lock-frontend and
//! /var/lib/dpkg/lock with POSIX record locks (fcntl F_SETLK), so F_GETLK
//! tells whether one is held and by which PID, without taking it.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use super::fsx::RunDir;
use super::Roots;
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

pub const LOCK: &str = "lock";
pub const LOCK_FRONTEND: &str = "lock-frontend";

fn write_lock_request() -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero bytes is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Who holds a write lock on `path`: Ok(None) when free or when the file
/// does not exist; Ok(Some(None)) when held by a process whose PID the kernel
/// does not report (an OFD lock).
pub fn holder(path: &Path) -> Result<Option<Option<u32>>> {
    let fd = match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => bail!("cannot open {}: {e}", path.display()),
    };
    let mut fl = write_lock_request();
    fcntl(fd.as_fd(), FcntlArg::F_GETLK(&mut fl))
        .with_context(|| format!("F_GETLK on {}", path.display()))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some(u32::try_from(fl.l_pid).ok().filter(|p| *p > 0)))
}

/// The frontend lock, held by us while we run dpkg outside apt.
pub struct FrontendLock {
    _fd: OwnedFd,
}

/// Takes dpkg's frontend lock without waiting, as apt does before running
/// dpkg. Err names the holder when another package manager has it.
pub fn take_frontend(admin: &Path) -> Result<FrontendLock> {
    let path = admin.join(LOCK_FRONTEND);
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o640),
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    let fl = write_lock_request();
    match fcntl(fd.as_fd(), FcntlArg::F_SETLK(&fl)) {
        Ok(_) => Ok(FrontendLock { _fd: fd }),
        Err(Errno::EAGAIN) | Err(Errno::EACCES) => {
            let who = holder(&path).ok().flatten().flatten();
            match who {
                Some(pid) => bail!(
                    "{} is held by pid {pid} (another package manager is running)",
                    path.display()
                ),
                None => bail!("{} is held by another process", path.display()),
            }
        }
        Err(e) => bail!("cannot lock {}: {e}", path.display()),
    }
}

/// Serializes repairs: an flock on repair.lock under the run directory,
/// held for as long as the value lives. Waited for (a repair takes
/// seconds, five minutes at most), so a second run finds the first one's
/// result.
pub struct RepairLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

const REPAIR_LOCK: &str = "repair.lock";

impl RepairLock {
    /// Takes the repair lock, waiting up to five minutes for another repair.
    pub fn acquire(roots: &Roots) -> Result<RepairLock> {
        Self::acquire_within(roots, Duration::from_secs(300))
    }

    fn acquire_within(roots: &Roots, wait: Duration) -> Result<RepairLock> {
        let dir = RunDir::open(roots, true)?
            .ok_or_else(|| anyhow!("{} missing", roots.run_dir.display()))?;
        let mut file = dir.lock_file(REPAIR_LOCK)?;
        let deadline = crate::deadline::after(wait);
        let mut said = false;
        // Named in the hook's line if its deadline passes while waiting.
        let _doing = crate::deadline::doing("waiting for another repair to finish");
        loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(RepairLock { _lock: lock }),
                Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    if !said {
                        log::info!("another repair is running; waiting for it to finish");
                        said = true;
                    }
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, e)) => {
                    return Err(anyhow!(
                        "cannot lock {}: {e}",
                        dir.file_path(REPAIR_LOCK).display()
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Roots {
        Roots::for_test(dir)
    }

    #[test]
    fn the_repair_lock_is_held_until_dropped() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("run")).unwrap();
        let r = roots(t.path());
        let held = RepairLock::acquire_within(&r, Duration::ZERO).unwrap();
        let Err(e) = RepairLock::acquire_within(&r, Duration::from_millis(120)) else {
            panic!("a second repair lock while the first is held");
        };
        assert!(format!("{e:#}").contains("repair.lock"), "{e:#}");
        drop(held);
        RepairLock::acquire_within(&r, Duration::ZERO).expect("free again once dropped");
    }
}
