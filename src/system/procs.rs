//! Reading processes and sockets from /proc (root injectable, as in below).
//! A process that vanishes mid-scan is skipped, not an error.
//!
//! Finding listeners cheaply: the LISTEN sockets on ssh ports come from
//! /proc/net/tcp{,6} (this network namespace only, so a container's sshd on
//! its own port 22 is never ours); then only pid 1 and sshd-family processes
//! have their fd tables read. Every other process is looked at only when a
//! listening socket is still unaccounted for.

use crate::model::{is_sshd_name, is_sshd_session_name};
use procfs::process::{FDTarget, Process};
use procfs::{FromRead, FromReadSI};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Facts about one process, read once.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub start_time: u64,
}

pub struct Procfs {
    root: PathBuf,
}

/// A process that holds listening sockets on ssh ports.
#[derive(Debug, Clone)]
pub struct RawListener {
    pub pid: u32,
    pub start_time: u64,
    pub uid: u32,
    pub comm: String,
    pub exe: String,
    pub cmdline: String,
    pub cgroup: String,
    pub addresses: Vec<SocketAddr>,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub listeners: Vec<RawListener>,
    pub sessions: usize,
    /// Listening addresses whose process was not found.
    pub unowned: Vec<SocketAddr>,
    pub warnings: Vec<String>,
}

impl Procfs {
    pub fn new(root: &Path) -> Self {
        Procfs {
            root: root.to_path_buf(),
        }
    }

    fn pid_dir(&self, pid: u32) -> PathBuf {
        self.root.join(pid.to_string())
    }

    /// /proc/PID/stat, parsed by procfs (which splits after the last ')' so a
    /// hostile comm cannot shift the fields).
    pub fn info(&self, pid: u32) -> Option<ProcInfo> {
        let f = std::fs::File::open(self.pid_dir(pid).join("stat")).ok()?;
        let st = procfs::process::Stat::from_read(f).ok()?;
        Some(ProcInfo {
            pid,
            ppid: u32::try_from(st.ppid).unwrap_or(0),
            comm: st.comm,
            start_time: st.starttime,
        })
    }

    pub fn start_time(&self, pid: u32) -> Option<u64> {
        self.info(pid).map(|i| i.start_time)
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

    fn net_ns(&self, pid: &str) -> Option<PathBuf> {
        std::fs::read_link(self.root.join(pid).join("ns/net")).ok()
    }

    /// Listening TCP sockets on `ports` in this network namespace: inode -> address.
    pub fn listening(
        &self,
        ports: &[u16],
        warnings: &mut Vec<String>,
    ) -> BTreeMap<u64, SocketAddr> {
        let mut out = BTreeMap::new();
        for name in ["net/tcp", "net/tcp6"] {
            let path = self.root.join(name);
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                // No IPv6 in this kernel: no tcp6 file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    warnings.push(format!("cannot read {}: {e}", path.display()));
                    continue;
                }
            };
            match procfs::net::TcpNetEntries::from_read(f, procfs::current_system_info()) {
                Ok(entries) => {
                    for e in entries.0 {
                        if e.state == procfs::net::TcpState::Listen
                            && ports.contains(&e.local_address.port())
                        {
                            out.insert(e.inode, e.local_address);
                        }
                    }
                }
                Err(e) => warnings.push(format!("cannot parse {}: {e}", path.display())),
            }
        }
        out
    }

    fn socket_inodes(&self, pid: u32) -> Option<HashSet<u64>> {
        let p = Process::new_with_root(self.pid_dir(pid)).ok()?;
        let fds = p.fd().ok()?;
        Some(
            fds.filter_map(|fd| match fd.ok()?.target {
                FDTarget::Socket(inode) => Some(inode),
                _ => None,
            })
            .collect(),
        )
    }

    fn describe(&self, pid: u32, addresses: Vec<SocketAddr>) -> Option<RawListener> {
        let dir = self.pid_dir(pid);
        let p = Process::new_with_root(dir.clone()).ok()?;
        let info = self.info(pid)?;
        let uid = p.uid().ok()?;
        let exe = self.exe(pid).unwrap_or_else(|| "?".into());
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .split('\0')
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|c| c.lines().last().map(|l| l.to_string()))
            .unwrap_or_default();
        Some(RawListener {
            pid,
            start_time: info.start_time,
            uid,
            comm: info.comm,
            exe,
            cmdline,
            cgroup,
            addresses,
        })
    }

    /// Records `pid` as a listener when it holds any of `listening`.
    fn check(
        &self,
        pid: u32,
        listening: &BTreeMap<u64, SocketAddr>,
        found: &mut HashSet<u64>,
        scan: &mut Scan,
    ) -> bool {
        let Some(inodes) = self.socket_inodes(pid) else {
            return false;
        };
        let addrs: Vec<SocketAddr> = listening
            .iter()
            .filter(|(ino, _)| inodes.contains(ino))
            .map(|(ino, a)| {
                found.insert(*ino);
                *a
            })
            .collect();
        if addrs.is_empty() {
            return false;
        }
        if let Some(l) = self.describe(pid, addrs) {
            scan.listeners.push(l);
        }
        true
    }

    /// Finds the processes holding `listening`, and counts sshd sessions.
    /// Reads each process's name once; fd tables only of candidates.
    pub fn scan(&self, listening: &BTreeMap<u64, SocketAddr>) -> Scan {
        let mut scan = Scan::default();
        let my_ns = self.net_ns("self");
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) => {
                scan.warnings
                    .push(format!("cannot list {}: {e}", self.root.display()));
                return scan;
            }
        };
        let mut sshd_family = Vec::new();
        let mut others = Vec::new();
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = match std::fs::read_to_string(ent.path().join("comm")) {
                Ok(c) => c.trim_end_matches('\n').to_string(),
                Err(_) => continue, // gone
            };
            if comm == "sshd" || is_sshd_session_name(&comm) || pid == 1 {
                sshd_family.push((pid, comm));
            } else {
                others.push(pid);
            }
        }
        let mut found: HashSet<u64> = HashSet::new();
        for (pid, _comm) in &sshd_family {
            let is_listener =
                !listening.is_empty() && self.check(*pid, listening, &mut found, &mut scan);
            if !is_listener && *pid != 1 {
                // A session: the sshd family minus listeners, in our network
                // namespace (a container's sshd is not ours to count).
                if self.net_ns(&pid.to_string()) == my_ns {
                    scan.sessions += 1;
                }
            }
        }
        if listening.keys().any(|i| !found.contains(i)) {
            for pid in others {
                self.check(pid, listening, &mut found, &mut scan);
                if listening.keys().all(|i| found.contains(i)) {
                    break;
                }
            }
        }
        scan.unowned = listening
            .iter()
            .filter(|(i, _)| !found.contains(i))
            .map(|(_, a)| *a)
            .collect();
        scan.listeners.sort_by_key(|l| l.pid);
        scan
    }
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

pub fn sshd_name(comm: &str, exe: &str) -> bool {
    is_sshd_name(comm, exe)
}
