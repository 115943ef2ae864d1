//! What Debian's packaging records about a unit: deb-systemd-helper's
//! `was-enabled`, which openssh-server's postinst asks before it restarts
//! ssh.socket or ssh.service. Read the way init-system-helpers reads it
//! (deb-systemd-helper, sub was_enabled): the unit's state file lists the
//! enable symlinks; the unit "was enabled" when every one of them is still
//! a symlink. `systemctl mask` leaves those links in place, which is why a
//! masked ssh.socket is still restarted by the postinst.

// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::Roots;
use std::path::{Path, PathBuf};

/// deb-systemd-helper's state directory for system units.
pub const ENABLED_STATE_DIR: &str = "/var/lib/systemd/deb-systemd-helper-enabled";

/// Bounded: the state file lists a handful of paths.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// `deb-systemd-helper was-enabled UNIT`, without running Perl: Some(true)
/// when every link the state file lists is a symlink, Some(false) when one
/// is missing; a missing state file lists nothing, which deb-systemd-helper
/// also counts as enabled. None when the state file cannot be read.
pub fn was_enabled(roots: &Roots, unit: &str) -> Option<bool> {
    if unit.contains('/') || unit.starts_with('.') {
        return None;
    }
    let state = roots
        .under(Path::new(ENABLED_STATE_DIR))
        .join(format!("{unit}.dsh-also"));
    let text = match read_bounded(&state) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            log::info!("{}: {e}", state.display());
            return None;
        }
    };
    Some(crate::roads::was_enabled_from(&text, |link| {
        let p: PathBuf = roots.under(Path::new(link));
        std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
    }))
}

/// Never blocks: opened non-blocking (a FIFO planted there cannot stall a
/// hook) and read only when it is a regular file.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut s = String::new();
    f.take(MAX_STATE_BYTES).read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn roots(dir: &Path) -> Roots {
        Roots::for_test(dir)
    }

    #[test]
    fn masking_keeps_the_links_so_the_unit_still_was_enabled() {
        let d = tempfile::tempdir().unwrap();
        let r = roots(d.path());
        let state = d.path().join("var/lib/systemd/deb-systemd-helper-enabled");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("ssh.socket.dsh-also"),
            "/etc/systemd/system/sockets.target.wants/ssh.socket\n/etc/systemd/system/ssh.service.requires/ssh.socket\n",
        )
        .unwrap();
        let etc = d.path().join("etc/systemd/system");
        for dir in ["sockets.target.wants", "ssh.service.requires"] {
            std::fs::create_dir_all(etc.join(dir)).unwrap();
            symlink(
                "/lib/systemd/system/ssh.socket",
                etc.join(dir).join("ssh.socket"),
            )
            .unwrap();
        }
        // `systemctl mask` writes /etc/systemd/system/ssh.socket -> /dev/null
        // and leaves the links: still was-enabled.
        symlink("/dev/null", etc.join("ssh.socket")).unwrap();
        assert_eq!(was_enabled(&r, "ssh.socket"), Some(true));
        // `systemctl disable` removes them.
        std::fs::remove_file(etc.join("ssh.service.requires/ssh.socket")).unwrap();
        assert_eq!(was_enabled(&r, "ssh.socket"), Some(false));
        // No state file: nothing listed, enabled (as deb-systemd-helper).
        assert_eq!(was_enabled(&r, "ssh.service"), Some(true));
        // A FIFO in its place is not read (and does not block).
        nix::unistd::mkfifo(
            &state.join("x.service.dsh-also"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        assert_eq!(was_enabled(&r, "x.service"), None);
        assert_eq!(was_enabled(&r, "../x"), None);
    }
}
