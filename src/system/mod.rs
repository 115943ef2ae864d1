//! Every contact with the operating system lives here: /proc, the dpkg
//! database and locks, systemd over D-Bus, sshd, signals and the files under
//! /run/ssh-upgrade-guard. Everything else in the crate is pure.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod claims;
pub mod dpkg;
pub mod dsh;
pub mod fsx;
pub mod kex;
pub mod locks;
pub mod procs;
pub mod prompt;
pub mod publish;
pub mod signal;
pub mod snapshot;
pub mod sshd;
pub mod systemd;

use std::path::PathBuf;

/// Test-only: when set, every system path is taken under this directory
/// (proc, var/lib/dpkg, run/ssh-upgrade-guard, usr/sbin/sshd) and systemd is
/// not consulted, so integration tests run the real binary without root.
pub const TEST_ROOT_ENV: &str = "SSH_UPGRADE_GUARD_TEST_ROOT";

/// The roots of everything the guard reads or writes.
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: PathBuf,
    pub dpkg_admin: PathBuf,
    pub run_dir: PathBuf,
    pub sshd: PathBuf,
    /// Counters kept across runs (repairs by outcome).
    pub state_dir: PathBuf,
    /// Set under TEST_ROOT_ENV: no D-Bus, and files owned by the current
    /// user are accepted where root ownership is otherwise required.
    pub test_root: Option<PathBuf>,
}

impl Roots {
    pub fn from_env() -> Roots {
        match std::env::var_os(TEST_ROOT_ENV).filter(|v| !v.is_empty()) {
            Some(root) => {
                let root = PathBuf::from(root);
                Roots {
                    proc: root.join("proc"),
                    dpkg_admin: root.join("var/lib/dpkg"),
                    run_dir: root.join("run/ssh-upgrade-guard"),
                    sshd: root.join("usr/sbin/sshd"),
                    state_dir: root.join("var/lib/ssh-upgrade-guard"),
                    test_root: Some(root),
                }
            }
            None => Roots {
                proc: "/proc".into(),
                dpkg_admin: "/var/lib/dpkg".into(),
                run_dir: "/run/ssh-upgrade-guard".into(),
                sshd: "/usr/sbin/sshd".into(),
                state_dir: "/var/lib/ssh-upgrade-guard".into(),
                test_root: None,
            },
        }
    }

    /// Owners accepted for our directory and files: root, and under a test
    /// root also the current user.
    /// A configured absolute path, under the test root when there is one.
    pub fn under(&self, p: &std::path::Path) -> PathBuf {
        match &self.test_root {
            Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
            None => p.to_path_buf(),
        }
    }

    /// Where systemd keeps transient units' files (/run/systemd/transient).
    pub fn systemd_transient(&self) -> PathBuf {
        self.under(std::path::Path::new("/run/systemd/transient"))
    }

    pub fn owner_ok(&self, uid: u32) -> bool {
        uid == 0 || (self.test_root.is_some() && uid == nix::unistd::geteuid().as_raw())
    }
}

#[cfg(test)]
impl Roots {
    /// Every root under `dir`, as under the test-root variable.
    pub fn for_test(dir: &std::path::Path) -> Roots {
        Roots {
            proc: dir.join("proc"),
            dpkg_admin: dir.join("var/lib/dpkg"),
            run_dir: dir.join("run/ssh-upgrade-guard"),
            sshd: dir.join("usr/sbin/sshd"),
            state_dir: dir.join("var/lib/ssh-upgrade-guard"),
            test_root: Some(dir.to_path_buf()),
        }
    }
}

/// Whether we run as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Our parent's pid; 0 when the parent is outside our PID namespace.
pub fn parent_pid() -> u32 {
    nix::unistd::getppid().as_raw() as u32
}

/// Our own pid.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
