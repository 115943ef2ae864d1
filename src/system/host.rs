//! The facts `booted::not_here` judges: whether systemd is PID 1, whether
//! `/` is PID 1's root, DPKG_ROOT, and the package manager's arguments.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::Roots;
use crate::booted::Host;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A command line, NUL-separated, at most 64 KiB.
fn cmdline(proc: &Path, pid: u32) -> Vec<String> {
    let Ok(f) = std::fs::File::open(proc.join(pid.to_string()).join("cmdline")) else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    if f.take(64 * 1024).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    buf.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Where the guard runs; `holder`: the package manager's pid, when known.
pub fn host(roots: &Roots, holder: Option<u32>) -> Host {
    // sd_booted(3): systemd creates this directory early at boot.
    let systemd_booted = std::fs::symlink_metadata(roots.under(Path::new("/run/systemd/system")))
        .is_ok_and(|m| m.is_dir());
    // /proc/1/root is PID 1's root directory (readable as root); a chroot
    // has another. When it cannot be read, nothing is concluded.
    let same_root_as_pid1 = match (
        std::fs::metadata(roots.under(Path::new("/"))),
        std::fs::metadata(roots.proc.join("1/root")),
    ) {
        (Ok(ours), Ok(theirs)) => Some(ours.dev() == theirs.dev() && ours.ino() == theirs.ino()),
        _ => None,
    };
    Host {
        systemd_booted,
        same_root_as_pid1,
        dpkg_root: std::env::var("DPKG_ROOT").ok(),
        apt_args: holder.map(|p| cmdline(&roots.proc, p)).unwrap_or_default(),
    }
}
