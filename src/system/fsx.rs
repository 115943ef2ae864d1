//! Files under /run/ssh-upgrade-guard, handled the sudo-rs way: the
//! directory is opened once (never through a symlink) and checked through
//! the open handle (owner root, not group/world writable); every file in it
//! is reached with openat and O_NOFOLLOW, and written by temp file + rename,
//! so a planted symlink is never followed and readers never see half a file.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::Roots;

pub struct RunDir {
    fd: OwnedFd,
    pub path: PathBuf,
    roots: Roots,
}

/// Which file a name pointed to when it was read (device and inode, from
/// the open handle), so that a later removal can make sure it removes that
/// file and not one written in its place since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(st: &nix::sys::stat::FileStat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// Serializes writing and removing the files a lock guards (the marker):
/// held only for the rename or unlink itself.
pub struct NameLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// What sits at a path inside the run directory.
pub enum Entry {
    /// Nothing.
    Missing,
    /// A regular file we may read, and its text.
    File(String),
    /// Something that is not a regular file we may read.
    Refused(Refused),
}

/// Why a file in the run directory was not read. Code branches on the
/// variant; `Display` is the line the admin reads (it names the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A symlink, never followed.
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// Opening it failed.
    CannotOpen {
        /// The path.
        path: PathBuf,
        /// The error.
        errno: Errno,
    },
    /// fstat on the open handle failed.
    CannotStat {
        /// The path.
        path: PathBuf,
        /// The error.
        errno: Errno,
    },
    /// A directory, fifo, socket or device.
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// Owned by someone else, or writable by group or others.
    Untrusted {
        /// The path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading it failed.
    CannotRead {
        /// The path.
        path: PathBuf,
        /// The error's kind.
        kind: std::io::ErrorKind,
        /// The error, as the OS words it.
        error: String,
    },
    /// Larger than the caller's limit.
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit in bytes.
        max: usize,
    },
    /// Not UTF-8.
    NotText {
        /// The path.
        path: PathBuf,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Symlink { path } => {
                write!(f, "{} is a symlink (not followed)", path.display())
            }
            Refused::CannotOpen { path, errno } => {
                write!(f, "cannot open {}: {errno}", path.display())
            }
            Refused::CannotStat { path, errno } => {
                write!(f, "cannot stat {}: {errno}", path.display())
            }
            Refused::NotRegular { path } => write!(f, "{} is not a regular file", path.display()),
            Refused::Untrusted { path, uid, mode } => write!(
                f,
                "{} is owned by uid {uid} with mode {mode:o}: not trusted",
                path.display()
            ),
            Refused::CannotRead { path, error, .. } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            Refused::TooLarge { path, max } => {
                write!(f, "{} is larger than {max} bytes", path.display())
            }
            Refused::NotText { path } => write!(f, "{} is not text", path.display()),
        }
    }
}

fn open_dir_nofollow(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )?;
    Ok(fd)
}

impl RunDir {
    /// Opens the run directory, creating it (0755) when `create` is set.
    /// Refuses a symlink, a non-directory, a directory not owned by root or
    /// writable by group or others; the error names the path.
    pub fn open(roots: &Roots, create: bool) -> Result<Option<RunDir>> {
        super::fail_point("run-dir");
        Self::open_path(roots, roots.run_dir.clone(), create, true)
    }

    /// Opens another program's directory that the guard writes into (node
    /// exporter's textfile directory): never through a symlink, but its
    /// owner is not ours to judge. Writes then go through the handle with
    /// O_EXCL|O_NOFOLLOW and renameat, so whoever owns it cannot redirect
    /// them elsewhere.
    pub fn open_foreign(roots: &Roots, path: PathBuf) -> Result<Option<RunDir>> {
        Self::open_path(roots, path, false, false)
    }

    fn open_path(roots: &Roots, path: PathBuf, create: bool, ours: bool) -> Result<Option<RunDir>> {
        let parent = path
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent", path.display()))?;
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("{} has no name", path.display()))?;
        let pfd = match open_dir_nofollow(parent) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(e) => bail!("cannot open {}: {e}", parent.display()),
        };
        let mut created = false;
        if create {
            match mkdirat(pfd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) => created = true,
                Err(Errno::EEXIST) => {}
                Err(e) => bail!("cannot create {}: {e}", path.display()),
            }
        }
        let fd = match openat(
            pfd.as_fd(),
            name,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            // O_DIRECTORY|O_NOFOLLOW on a symlink gives ELOOP or ENOTDIR.
            Err(Errno::ELOOP) => bail!("refusing {}: it is a symlink", path.display()),
            Err(Errno::ENOTDIR)
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                bail!("refusing {}: it is a symlink", path.display())
            }
            Err(Errno::ENOTDIR) => bail!("refusing {}: it is not a directory", path.display()),
            Err(e) => bail!("cannot open {}: {e}", path.display()),
        };
        if created {
            // mkdirat's mode goes through the caller's umask (0750 under
            // umask 027); the documented 0755 is set through the handle.
            fchmod(fd.as_fd(), Mode::from_bits_truncate(0o755))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
        let st = fstat(fd.as_fd()).with_context(|| format!("cannot stat {}", path.display()))?;
        if !ours {
            return Ok(Some(RunDir {
                fd,
                path,
                roots: roots.clone(),
            }));
        }
        if !roots.owner_ok(st.st_uid) {
            bail!(
                "refusing {}: owned by uid {}, not root",
                path.display(),
                st.st_uid
            );
        }
        if st.st_mode & 0o022 != 0 {
            bail!(
                "refusing {}: writable by group or others (mode {:o})",
                path.display(),
                st.st_mode & 0o7777
            );
        }
        Ok(Some(RunDir {
            fd,
            path,
            roots: roots.clone(),
        }))
    }

    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads a small regular file without following a symlink.
    pub fn read(&self, name: &str, max: usize) -> Entry {
        self.read_with_id(name, max).0
    }

    /// What is at `name` now, without following a symlink.
    pub fn id_of(&self, name: &str) -> Option<FileId> {
        fstatat(
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()
        .map(|st| FileId::of(&st))
    }

    /// As [`RunDir::read`], with the identity of what was read (None when
    /// nothing could be opened or stat'ed).
    pub fn read_with_id(&self, name: &str, max: usize) -> (Entry, Option<FileId>) {
        let p = self.file_path(name);
        let fd = match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return (Entry::Missing, None),
            Err(Errno::ELOOP) => {
                return (
                    Entry::Refused(Refused::Symlink { path: p }),
                    self.id_of(name),
                )
            }
            Err(errno) => return (Entry::Refused(Refused::CannotOpen { path: p, errno }), None),
        };
        let st = match fstat(fd.as_fd()) {
            Ok(st) => st,
            Err(errno) => return (Entry::Refused(Refused::CannotStat { path: p, errno }), None),
        };
        let id = Some(FileId::of(&st));
        (self.read_open(p, fd, &st, max), id)
    }

    fn read_open(
        &self,
        p: PathBuf,
        fd: OwnedFd,
        st: &nix::sys::stat::FileStat,
        max: usize,
    ) -> Entry {
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind != SFlag::S_IFREG {
            return Entry::Refused(Refused::NotRegular { path: p });
        }
        if !self.roots.owner_ok(st.st_uid) || st.st_mode & 0o022 != 0 {
            return Entry::Refused(Refused::Untrusted {
                path: p,
                uid: st.st_uid,
                mode: st.st_mode & 0o7777,
            });
        }
        let mut buf = Vec::new();
        let mut f = std::fs::File::from(fd);
        if let Err(e) = Read::by_ref(&mut f)
            .take(max as u64 + 1)
            .read_to_end(&mut buf)
        {
            return Entry::Refused(Refused::CannotRead {
                path: p,
                kind: e.kind(),
                error: e.to_string(),
            });
        }
        if buf.len() > max {
            return Entry::Refused(Refused::TooLarge { path: p, max });
        }
        match String::from_utf8(buf) {
            Ok(s) => Entry::File(s),
            Err(_) => Entry::Refused(Refused::NotText { path: p }),
        }
    }

    /// Writes a file atomically: temporary file, fsync, rename over the name
    /// (which replaces a symlink rather than following it).
    pub fn write_atomic(&self, name: &str, content: &str, mode: u32) -> Result<()> {
        let tmp = format!(".{name}.tmp.{}", std::process::id());
        let p = self.file_path(name);
        let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let fd = openat(
            self.fd.as_fd(),
            tmp.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .with_context(|| format!("cannot create a temporary file in {}", self.path.display()))?;
        let mut f = std::fs::File::from(fd);
        // The mode given to openat is masked by the caller's umask; readers
        // (other watchdogs, node_exporter) rely on the documented mode.
        let res = fchmod(f.as_fd(), Mode::from_bits_truncate(mode))
            .map_err(|e| anyhow!("cannot set the mode of {}: {e}", p.display()))
            .and_then(|_| f.write_all(content.as_bytes()).map_err(anyhow::Error::from))
            .and_then(|_| f.sync_all().map_err(anyhow::Error::from))
            .and_then(|_| {
                renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name).map_err(
                    |e| match e {
                        Errno::EISDIR | Errno::ENOTEMPTY | Errno::EEXIST => {
                            anyhow!("{} is a directory; not replaced", p.display())
                        }
                        e => anyhow!("cannot rename into {}: {e}", p.display()),
                    },
                )
            });
        if res.is_err() {
            let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        res
    }

    /// Takes the lock `lock_name` guards names with, waiting at most
    /// `timeout` (its holders keep it for one rename or unlink).
    pub fn lock_names(&self, lock_name: &str, timeout: std::time::Duration) -> Result<NameLock> {
        let mut file = self.lock_file(lock_name)?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(NameLock { _lock: lock }),
                Err((f, Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err((_, e)) => bail!("cannot lock {}: {e}", self.file_path(lock_name).display()),
            }
        }
    }

    /// Removes `name` only if it still is the file `id` that was read and
    /// judged: a file written in its place since (a fresh marker) stays.
    /// The caller holds the lock the writers of `name` take (see
    /// [`RunDir::lock_names`]), so nothing can be renamed over it between the
    /// check and the unlink. Ok(false): something else is there now.
    pub fn remove_if_same(&self, name: &str, id: FileId, _held: &NameLock) -> Result<bool> {
        match self.id_of(name) {
            None => Ok(false),
            Some(now) if now != id => Ok(false),
            Some(_) => self.remove(name).map(|()| true),
        }
    }

    /// Removes a file or symlink (never a directory). Missing is fine.
    pub fn remove(&self, name: &str) -> Result<()> {
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => bail!(
                "{} is a directory; left alone",
                self.file_path(name).display()
            ),
            Err(e) => bail!("cannot remove {}: {e}", self.file_path(name).display()),
        }
    }

    /// Opens (creating) a lock file inside the directory.
    pub fn lock_file(&self, name: &str) -> Result<std::fs::File> {
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("cannot open {}", self.file_path(name).display()))?;
        Ok(std::fs::File::from(fd))
    }
}
