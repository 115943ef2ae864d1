//! Reading the settings file without trusting what sits at its path: a
//! FIFO would block the open (and a hook with it) forever, /dev/zero would
//! be read until memory runs out. The file is opened without blocking,
//! checked through the open handle (a regular file, at most
//! [`MAX_SETTINGS_BYTES`]), then read, never more than that.
//!
//! A symlink is followed: /etc is root's, and configuration management
//! often links files into place; the checks apply to what it points to.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode, SFlag};
use std::io::Read;
use std::path::Path;

/// Far above the shipped file (about 2 KiB with its comments).
pub const MAX_SETTINGS_BYTES: u64 = 64 * 1024;

/// The file's bytes; Ok(None) when there is no file (the defaults apply).
/// The error names the path and says why it was not read.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let fd = match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {}", path.display(), e.desc())),
    };
    let st = fstat(&fd).map_err(|e| format!("cannot read {}: {}", path.display(), e.desc()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(format!(
            "not reading {}: not a regular file",
            path.display()
        ));
    }
    if st.st_size as u64 > MAX_SETTINGS_BYTES {
        return Err(format!(
            "not reading {}: larger than {} KiB",
            path.display(),
            MAX_SETTINGS_BYTES / 1024
        ));
    }
    let mut bytes = Vec::new();
    // take(): the file may grow between fstat and read.
    std::fs::File::from(fd)
        .take(MAX_SETTINGS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SETTINGS_BYTES {
        return Err(format!(
            "not reading {}: larger than {} KiB",
            path.display(),
            MAX_SETTINGS_BYTES / 1024
        ));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_means_defaults() {
        assert_eq!(read(Path::new("/nonexistent/settings")), Ok(None));
    }

    #[test]
    fn a_regular_file_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        std::fs::write(&p, "A=1\n").unwrap();
        assert_eq!(read(&p), Ok(Some(b"A=1\n".to_vec())));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        nix::unistd::mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn dev_zero_is_refused_not_read() {
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn an_oversized_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![b'#'; MAX_SETTINGS_BYTES as usize + 1]).unwrap();
        let e = read(&p).unwrap_err();
        assert!(e.contains("larger than 64 KiB"), "{e}");
    }

    #[test]
    fn a_directory_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path()).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
