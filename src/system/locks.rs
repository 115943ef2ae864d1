//! dpkg's locks. apt and dpkg hold /var/lib/dpkg/lock-frontend and
//! /var/lib/dpkg/lock with POSIX record locks (fcntl F_SETLK), so F_GETLK
//! tells whether one is held and by which PID, without taking it.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

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
