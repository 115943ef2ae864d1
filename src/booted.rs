//! Where the guard acts at all: only on the booted system whose dpkg this
//! apt run changes. In a chroot or a container-image build (no systemd as
//! PID 1 for this root, or `/` is not PID 1's root), under `dpkg --root`
//! or `DPKG_ROOT`, and in apt runs where dpkg does nothing (apt's
//! `Debug::pkgDPkgPM` prints dpkg's calls instead of running them) the
//! hooks would diagnose, and might repair, a host that this run never
//! touched: there they say so in one line and do nothing.
//!
//! Pure: `system::host` reads the facts.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

/// What is known about where the guard runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Host {
    /// `/run/systemd/system` exists (sd_booted(3): systemd is PID 1).
    pub systemd_booted: bool,
    /// Whether `/` is PID 1's root: None when it cannot be told (then the
    /// guard acts as it always did).
    pub same_root_as_pid1: Option<bool>,
    /// `DPKG_ROOT` from the environment.
    pub dpkg_root: Option<String>,
    /// The package manager's command line (arguments), when known.
    pub apt_args: Vec<String>,
}

/// Why the guard does not act here, or None when it may.
pub fn not_here(h: &Host) -> Option<String> {
    if !h.systemd_booted {
        return Some("systemd is not running as PID 1 here (a chroot, an image build or a container without systemd)".into());
    }
    if h.same_root_as_pid1 == Some(false) {
        return Some("/ is not the root of PID 1 (a chroot)".into());
    }
    if let Some(r) = h
        .dpkg_root
        .as_deref()
        .filter(|r| !r.is_empty() && *r != "/")
    {
        return Some(format!("DPKG_ROOT is {r}: dpkg works on another root"));
    }
    apt_args_elsewhere(&h.apt_args)
}

/// apt's options that send dpkg elsewhere or nowhere: `-o Dir=`,
/// `-o RootDir=`, `-o DPkg::Options::=--root=...` (also `--instdir`,
/// `--admindir`), and `-o Debug::pkgDPkgPM=1` (dpkg's calls printed, not run).
pub fn apt_args_elsewhere(args: &[String]) -> Option<String> {
    let mut options: Vec<&str> = Vec::new();
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        if a == "-o" || a == "--option" {
            if let Some(v) = it.next() {
                options.push(v);
            }
        } else if let Some(v) = a.strip_prefix("--option=") {
            options.push(v);
        } else if let Some(v) = a.strip_prefix("-o").filter(|v| !v.is_empty()) {
            options.push(v);
        }
    }
    for o in options {
        let Some((key, value)) = o.split_once('=') else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        let value = value.trim();
        match key.as_str() {
            "debug::pkgdpkgpm" if is_true(value) => {
                return Some(format!(
                    "apt runs with {o}: it prints dpkg's calls instead of running them"
                ))
            }
            "dir" | "rootdir" if !value.trim_end_matches('/').is_empty() => {
                return Some(format!("apt runs with {o}: it works on another root"))
            }
            "dpkg::options::" | "dpkg::options" => {
                for flag in ["--root", "--instdir", "--admindir"] {
                    if value == flag || value.starts_with(&format!("{flag}=")) {
                        return Some(format!(
                            "apt passes {value} to dpkg: it works on another root"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// apt's boolean spellings.
fn is_true(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on" | "with" | "enable"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn booted() -> Host {
        Host {
            systemd_booted: true,
            same_root_as_pid1: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn the_booted_system_is_where_the_guard_acts() {
        assert_eq!(not_here(&booted()), None);
        // Cannot tell the root: act as before.
        let h = Host {
            same_root_as_pid1: None,
            ..booted()
        };
        assert_eq!(not_here(&h), None);
    }

    #[test]
    fn a_chroot_or_image_build_is_not() {
        let h = Host::default();
        assert!(not_here(&h).unwrap().contains("not running as PID 1"));
        let h = Host {
            same_root_as_pid1: Some(false),
            ..booted()
        };
        assert!(not_here(&h).unwrap().contains("chroot"));
    }

    #[test]
    fn dpkg_root_elsewhere_is_not() {
        let h = Host {
            dpkg_root: Some("/srv/image".into()),
            ..booted()
        };
        assert!(not_here(&h).unwrap().contains("/srv/image"));
        for same in ["", "/"] {
            let h = Host {
                dpkg_root: Some(same.into()),
                ..booted()
            };
            assert_eq!(not_here(&h), None, "{same:?}");
        }
    }

    #[test]
    fn apt_runs_where_dpkg_does_nothing_or_works_elsewhere_are_not() {
        for a in [
            &["apt-get", "-o", "Debug::pkgDPkgPM=1", "install", "x"][..],
            &["apt-get", "-oDebug::pkgDPkgPM=true", "upgrade"],
            &["apt", "--option=debug::pkgdpkgpm=yes", "upgrade"],
            &["apt-get", "-o", "Dir=/srv/img", "install", "x"],
            &["apt-get", "-o", "RootDir=/mnt", "install", "x"],
            &[
                "apt-get",
                "-o",
                "DPkg::Options::=--root=/mnt",
                "install",
                "x",
            ],
            &[
                "apt-get",
                "-o",
                "Dpkg::Options::=--admindir=/x",
                "install",
                "x",
            ],
        ] {
            assert!(apt_args_elsewhere(&args(a)).is_some(), "{a:?}");
        }
        for a in [
            &["apt-get", "install", "-o", "Debug::pkgDPkgPM=0", "x"][..],
            &[
                "apt-get",
                "-o",
                "Dpkg::Options::=--force-confold",
                "upgrade",
            ],
            &["apt-get", "-o", "Dir=/", "upgrade"],
            &["apt-get", "-o"],
            &["unattended-upgrade", "-d"],
        ] {
            assert_eq!(apt_args_elsewhere(&args(a)), None, "{a:?}");
        }
    }
}
