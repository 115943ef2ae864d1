//! Files under /run/ssh-upgrade-guard, handled the sudo-rs way: the
//! directory is opened once (never through a symlink) and checked through
//! the open handle (owner root, not group/world writable); every file in it
//! is reached with openat and O_NOFOLLOW, and written by temp file + rename,
//! so a planted symlink is never followed and readers never see half a file.

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
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

/// What sits at a path inside the run directory.
pub enum Entry {
    Missing,
    File(String),
    /// Something that is not a regular file we may read; the text says what.
    Refused(String),
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
        if create {
            match mkdirat(pfd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
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
        let p = self.file_path(name);
        let fd = match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Entry::Missing,
            Err(Errno::ELOOP) => {
                return Entry::Refused(format!("{} is a symlink (not followed)", p.display()))
            }
            Err(e) => return Entry::Refused(format!("cannot open {}: {e}", p.display())),
        };
        let st = match fstat(fd.as_fd()) {
            Ok(st) => st,
            Err(e) => return Entry::Refused(format!("cannot stat {}: {e}", p.display())),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        if kind != SFlag::S_IFREG {
            return Entry::Refused(format!("{} is not a regular file", p.display()));
        }
        if !self.roots.owner_ok(st.st_uid) || st.st_mode & 0o022 != 0 {
            return Entry::Refused(format!(
                "{} is owned by uid {} with mode {:o}: not trusted",
                p.display(),
                st.st_uid,
                st.st_mode & 0o7777
            ));
        }
        let mut buf = Vec::new();
        let mut f = std::fs::File::from(fd);
        if let Err(e) = Read::by_ref(&mut f)
            .take(max as u64 + 1)
            .read_to_end(&mut buf)
        {
            return Entry::Refused(format!("cannot read {}: {e}", p.display()));
        }
        if buf.len() > max {
            return Entry::Refused(format!("{} is larger than {max} bytes", p.display()));
        }
        match String::from_utf8(buf) {
            Ok(s) => Entry::File(s),
            Err(_) => Entry::Refused(format!("{} is not text", p.display())),
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
        let res = f
            .write_all(content.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(anyhow::Error::from)
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
