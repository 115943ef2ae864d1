//! Every contact with the operating system lives here: /proc, the dpkg
//! database and locks, systemd over D-Bus, sshd, signals and the files under
//! /run/ssh-upgrade-guard. Everything else in the crate is pure.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod child;
pub mod claims;
pub mod dpkg;
pub mod dsh;
pub mod fast;
pub mod fsx;
pub mod host;
pub mod intent;
pub mod kex;
pub mod listeners;
pub mod locks;
pub mod procs;
pub mod prompt;
pub mod publish;
pub mod settings;
pub mod signal;
pub mod snapshot;
pub mod sshd;
pub mod sshd_cache;
pub mod systemd;

#[cfg(test)]
#[path = "../../tests/support/fake_proc.rs"]
mod fake_proc;

use std::path::PathBuf;

/// Test builds only (cargo feature `fake-root`, which the integration tests
/// turn on): when set, every system path is taken under this directory
/// (proc, var/lib/dpkg, run/ssh-upgrade-guard, usr/sbin/sshd) and systemd is
/// not consulted, so integration tests run the real binary without root.
/// The shipped binary is built without the feature and never reads it: a
/// value reaching a root run (sudo -E, a unit's Environment=) would
/// otherwise run $ROOT/usr/sbin/sshd as root and turn the hooks into no-ops.
#[cfg(feature = "fake-root")]
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
    /// Set under TEST_ROOT_ENV (test builds only): no D-Bus, and files
    /// owned by the current user are accepted where root ownership is
    /// otherwise required.
    pub test_root: Option<PathBuf>,
}

impl Roots {
    /// The real system's roots.
    pub fn system() -> Roots {
        Roots {
            proc: "/proc".into(),
            dpkg_admin: "/var/lib/dpkg".into(),
            run_dir: "/run/ssh-upgrade-guard".into(),
            sshd: "/usr/sbin/sshd".into(),
            state_dir: "/var/lib/ssh-upgrade-guard".into(),
            test_root: None,
        }
    }

    /// The system's roots; in a test build (feature `fake-root`) those under
    /// TEST_ROOT_ENV when it is set.
    #[cfg(feature = "fake-root")]
    pub fn from_env() -> Roots {
        match std::env::var_os(TEST_ROOT_ENV).filter(|v| !v.is_empty()) {
            Some(root) => Roots::for_test(std::path::Path::new(&root)),
            None => Roots::system(),
        }
    }

    /// The system's roots: the shipped binary has no fake-root mode.
    #[cfg(not(feature = "fake-root"))]
    pub fn from_env() -> Roots {
        Roots::system()
    }

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

    /// Owners accepted for our directory and files: root, and under a test
    /// root also the current user.
    pub fn owner_ok(&self, uid: u32) -> bool {
        uid == 0 || (self.test_root.is_some() && uid == nix::unistd::geteuid().as_raw())
    }
}

/// The fake root: test builds only (unit tests, and the binary the
/// integration tests run, built with the feature `fake-root`).
#[cfg(any(test, feature = "fake-root"))]
impl Roots {
    /// Every root under `dir`: the test-root variable's mode, and the unit
    /// tests' roots.
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

/// Test builds only (feature `fake-root`): panics when
/// SSH_UPGRADE_GUARD_TEST_PANIC names this point, so the integration tests
/// can show what a bug looks like to apt (one line, exit 0 from a hook).
#[cfg(feature = "fake-root")]
#[track_caller]
pub fn fail_point(name: &str) {
    if std::env::var_os("SSH_UPGRADE_GUARD_TEST_PANIC").is_some_and(|v| v == name) {
        panic!("fail point {name} reached");
    }
}

/// The shipped binary has no fail points.
#[cfg(not(feature = "fake-root"))]
#[inline(always)]
pub fn fail_point(_name: &str) {}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
