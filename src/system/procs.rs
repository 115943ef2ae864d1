//! Reading processes from /proc (root injectable, as in below): stat,
//! status, exe, cgroup, namespaces, ancestors. A process that vanishes
//! mid-scan is skipped, not an error. Which of them listen on the ssh ports
//! is `listeners`' job.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::identity::{unit_of_cgroup, CgroupUnit, Namespaces};
use crate::stamp::ProcessStamp;
use procfs::FromRead;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file name of an executable as /proc/PID/exe shows it, without the
/// " (deleted)" the kernel appends once the file is replaced.
pub(super) fn exe_name(exe: &Path) -> String {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.strip_suffix(" (deleted)").unwrap_or(&name).to_string()
}

/// Facts about one process, read once.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    /// Which process.
    pub process: ProcessStamp,
    /// Its parent's pid (0 outside our PID namespace).
    pub ppid: u32,
    /// Its name (/proc/PID/comm).
    pub comm: String,
}

pub struct Procfs {
    pub(super) root: PathBuf,
}

/// A process that holds listening sockets on ssh ports.
#[derive(Debug, Clone)]
pub struct RawListener {
    pub process: ProcessStamp,
    pub uid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: String,
    pub cgroup: String,
    /// The unit whose cgroup it is in (identity::unit_of_cgroup).
    pub unit: CgroupUnit,
    /// Its PID and mount namespaces (compared by identity::judge).
    pub ns: Namespaces,
    /// Parent first, a bounded walk.
    pub ancestors: Vec<u32>,
    pub addresses: Vec<SocketAddr>,
}

impl Procfs {
    pub fn new(root: &Path) -> Self {
        Procfs {
            root: root.to_path_buf(),
        }
    }

    pub(super) fn pid_dir(&self, pid: u32) -> PathBuf {
        self.root.join(pid.to_string())
    }

    /// /proc/PID/stat, parsed by procfs (which splits after the last ')' so a
    /// hostile comm cannot shift the fields).
    pub fn info(&self, pid: u32) -> Option<ProcInfo> {
        let bytes = std::fs::read(self.pid_dir(pid).join("stat")).ok()?;
        if !stat_shape_ok(&bytes) {
            return None;
        }
        let st = procfs::process::Stat::from_read(bytes.as_slice()).ok()?;
        Some(ProcInfo {
            process: ProcessStamp {
                pid,
                start_time: st.starttime,
            },
            ppid: u32::try_from(st.ppid).unwrap_or(0),
            comm: st.comm,
        })
    }

    /// The effective uid of `pid`, from the Uid line of /proc/PID/status
    /// (real, effective, saved, fs). Not the owner of /proc/PID, which the
    /// kernel makes root for any process that is not dumpable.
    pub fn uid(&self, pid: u32) -> Option<u32> {
        let f = std::fs::File::open(self.pid_dir(pid).join("status")).ok()?;
        let mut buf = Vec::new();
        f.take(64 * 1024).read_to_end(&mut buf).ok()?;
        String::from_utf8_lossy(&buf)
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// The identity of the process that has `pid` now, if any.
    pub fn stamp(&self, pid: u32) -> Option<ProcessStamp> {
        self.info(pid).map(|i| i.process)
    }

    /// Whether `process` still runs (same pid, same start time) with the
    /// executable `exe`: the re-check right before a signal.
    pub fn still_is(&self, process: ProcessStamp, exe: &str) -> bool {
        self.stamp(process.pid) == Some(process) && self.exe(process.pid).as_deref() == Some(exe)
    }

    pub fn exe(&self, pid: u32) -> Option<String> {
        std::fs::read_link(self.pid_dir(pid).join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    pub fn boot_id(&self) -> std::io::Result<String> {
        Ok(
            std::fs::read_to_string(self.root.join("sys/kernel/random/boot_id"))?
                .trim()
                .to_string(),
        )
    }

    /// Walks up from `pid` (at most 32 steps) to the first process whose name
    /// is one of `names`.
    pub fn ancestor_named(&self, mut pid: u32, names: &[&str]) -> Option<ProcInfo> {
        for _ in 0..32 {
            if pid <= 1 {
                return None;
            }
            let info = self.info(pid)?;
            if names.contains(&info.comm.as_str()) {
                return Some(info);
            }
            pid = info.ppid;
        }
        None
    }

    pub(super) fn net_ns(&self, pid: &str) -> Option<PathBuf> {
        self.ns(pid, "net")
    }

    fn ns(&self, pid: &str, kind: &str) -> Option<PathBuf> {
        std::fs::read_link(self.root.join(pid).join("ns").join(kind)).ok()
    }

    /// The PID and mount namespaces of `pid` ("self": the guard's), as
    /// their /proc/PID/ns links read; None where a link cannot be read.
    pub fn namespaces(&self, pid: &str) -> Namespaces {
        let read = |kind| self.ns(pid, kind).map(|p| p.to_string_lossy().into_owned());
        Namespaces {
            pid: read("pid"),
            mnt: read("mnt"),
        }
    }

    /// /proc/PID/cgroup as text (a few hundred bytes at most in practice;
    /// read up to 64 KiB).
    pub fn cgroup_text(&self, pid: u32) -> Option<String> {
        let f = std::fs::File::open(self.pid_dir(pid).join("cgroup")).ok()?;
        let mut buf = Vec::new();
        f.take(64 * 1024).read_to_end(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    }

    /// The unit whose cgroup `pid` is in.
    pub fn unit(&self, pid: u32) -> CgroupUnit {
        match self.cgroup_text(pid) {
            Some(t) => unit_of_cgroup(&t),
            None => CgroupUnit::Unknown(format!(
                "cannot read {}",
                self.pid_dir(pid).join("cgroup").display()
            )),
        }
    }

    /// `pid`'s ancestors through the ppid field of /proc/PID/stat, parent
    /// first, at most 64 (a cycle or a deep tree cannot make it loop), pid 1
    /// and 0 excluded.
    pub fn ancestors(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = pid;
        for _ in 0..64 {
            match self.info(cur) {
                Some(i) if i.ppid > 1 && !out.contains(&i.ppid) && i.ppid != pid => {
                    out.push(i.ppid);
                    cur = i.ppid;
                }
                _ => break,
            }
        }
        out
    }
}

/// procfs-core 0.18's Stat parser slices around the parentheses without
/// checking them (found by this crate's proptest: a stat file starting with
/// '(', a ')' before the '(', or a multi-byte character next to either
/// panics). The kernel never writes such a line, but a parser of /proc must
/// not panic, so the shape procfs relies on is checked first.
fn stat_shape_ok(bytes: &[u8]) -> bool {
    let line = String::from_utf8_lossy(bytes);
    let b = line.trim();
    let (Some(open), Some(close)) = (b.find('('), b.rfind(')')) else {
        return false;
    };
    let by = b.as_bytes();
    open >= 1
        && by[open - 1].is_ascii()
        && close > open
        && close + 2 <= b.len()
        && by[close + 1].is_ascii()
}

/// Package-manager process names, as in /proc/PID/comm (15 characters at most).
pub const PACKAGE_MANAGERS: &[&str] = &[
    "apt",
    "apt-get",
    "aptitude",
    "unattended-upgr",
    "unattended-upgrade",
    "packagekitd",
    "synaptic",
    "cron-apt",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake_proc::{listening_proc as fake_proc, stat_line};
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn namespaces_cgroup_unit_and_ancestors_are_read() {
        let d = fake_proc();
        let r = d.path();
        fs::create_dir_all(r.join("self/ns")).unwrap();
        symlink("pid:[1]", r.join("self/ns/pid")).unwrap();
        symlink("mnt:[2]", r.join("self/ns/mnt")).unwrap();
        fs::create_dir_all(r.join("200/ns")).unwrap();
        symlink("pid:[1]", r.join("200/ns/pid")).unwrap();
        symlink("mnt:[2]", r.join("200/ns/mnt")).unwrap();
        fs::create_dir_all(r.join("300/ns")).unwrap();
        symlink("pid:[1]", r.join("300/ns/pid")).unwrap();
        symlink("mnt:[7]", r.join("300/ns/mnt")).unwrap();
        let p = Procfs::new(r);
        let ns = |pid: &str, mnt: &str| Namespaces {
            pid: Some(pid.into()),
            mnt: Some(mnt.into()),
        };
        assert_eq!(p.namespaces("self"), ns("pid:[1]", "mnt:[2]"));
        assert_eq!(p.namespaces("200"), ns("pid:[1]", "mnt:[2]"));
        assert_eq!(p.namespaces("300"), ns("pid:[1]", "mnt:[7]"));
        assert_eq!(p.namespaces("400"), Namespaces::default(), "unreadable");
        assert_eq!(p.unit(200), CgroupUnit::Unit("cron.service".into()));
        assert!(matches!(p.unit(999), CgroupUnit::Unknown(_)));
        assert_eq!(p.uid(200), Some(0));
        // 300 -> 200 -> 400 -> 1; and a cycle ends.
        fs::write(r.join("300/stat"), stat_line(300, "sshd", 200, 1)).unwrap();
        fs::write(r.join("200/stat"), stat_line(200, "sshd", 400, 1)).unwrap();
        assert_eq!(p.ancestors(300), vec![200, 400]);
        fs::write(r.join("400/stat"), stat_line(400, "bash", 300, 1)).unwrap();
        assert_eq!(p.ancestors(300), vec![200, 400]);
    }

    #[test]
    fn exe_names() {
        assert_eq!(exe_name(Path::new("/usr/sbin/sshd (deleted)")), "sshd");
        assert_eq!(exe_name(Path::new("/usr/sbin/sshd")), "sshd");
        assert_eq!(
            exe_name(Path::new("/tmp/x (deleted) (deleted)")),
            "x (deleted)"
        );
        assert_eq!(exe_name(Path::new("/")), "");
    }

    #[test]
    fn hostile_comm_cannot_shift_stat_fields() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("7")).unwrap();
        fs::write(
            d.path().join("7/stat"),
            stat_line(7, "a) (b c) 9 9", 5, 4242),
        )
        .unwrap();
        let i = Procfs::new(d.path()).info(7).unwrap();
        assert_eq!(i.comm, "a) (b c) 9 9");
        assert_eq!(i.ppid, 5);
        assert_eq!(i.process.start_time, 4242);
    }

    #[test]
    fn regression_procfs_stat_slicing_panics_on_hostile_shapes() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("8")).unwrap();
        let p = Procfs::new(d.path());
        for bad in [
            "(x) S 1",
            ") 1 (x",
            "1 (x)",
            "\u{e9}(x) S 1",
            "1 (x)\u{e9}S 1",
            "1 (x))",
            "(",
        ] {
            fs::write(d.path().join("8/stat"), bad).unwrap();
            assert!(p.info(8).is_none(), "{bad:?}");
        }
    }
}
