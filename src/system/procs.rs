//! Reading processes and sockets from /proc (root injectable, as in below).
//! A process that vanishes mid-scan is skipped, not an error.
//!
//! Finding listeners cheaply: the LISTEN sockets on ssh ports come from
//! sock_diag (/proc/net/tcp{,6} as the fallback; this network namespace
//! only, so a container's sshd on its own port 22 is never ours); then only
//! pid 1 and sshd-family processes (by executable, one readlink each) have
//! their fd tables read. Every other process is looked at only when a
//! listening socket is still unaccounted for.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::identity::{systemd_cgroup_line, unit_of_cgroup, CgroupUnit, Namespaces};
use crate::model::{is_sshd_exe, is_sshd_session_name, ProcessStamp};
use procfs::{FromRead, FromReadSI};

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file name of an executable as /proc/PID/exe shows it, without the
/// " (deleted)" the kernel appends once the file is replaced.
fn exe_name(exe: &Path) -> String {
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
    root: PathBuf,
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

/// Processes sorted by name, from one pass over /proc.
#[derive(Debug, Default)]
pub struct Survey {
    pub candidates: Vec<u32>,
    pub others: Vec<u32>,
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

    fn net_ns(&self, pid: &str) -> Option<PathBuf> {
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

    /// Listening TCP sockets on `ports` in this network namespace: inode ->
    /// address. On the real /proc, asked of the kernel through sock_diag;
    /// /proc/net/tcp{,6} when that fails, and under a test root.
    pub fn listening(
        &self,
        ports: &[u16],
        warnings: &mut Vec<String>,
    ) -> BTreeMap<u64, SocketAddr> {
        if self.root == Path::new("/proc") {
            match sock_diag_listening(ports) {
                Ok(l) => return l,
                Err(e) => log::debug!("sock_diag: {e}; reading /proc/net/tcp instead"),
            }
        }
        self.listening_from_proc(ports, warnings)
    }

    fn listening_from_proc(
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

    /// The socket inodes among `pid`'s open files. One readlink per fd:
    /// procfs's fd() also stats every link for its mode, which doubled the
    /// cost of reading pid 1's few hundred fds on every diagnosis.
    pub fn socket_inodes(&self, pid: u32) -> Option<HashSet<u64>> {
        let rd = std::fs::read_dir(self.pid_dir(pid).join("fd")).ok()?;
        Some(
            rd.flatten()
                .filter_map(|e| {
                    let target = std::fs::read_link(e.path()).ok()?;
                    let t = target.to_str()?;
                    t.strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse::<u64>()
                        .ok()
                })
                .collect(),
        )
    }

    fn describe(&self, pid: u32, addresses: Vec<SocketAddr>) -> Option<RawListener> {
        let dir = self.pid_dir(pid);
        let info = self.info(pid)?;
        let uid = self.uid(pid)?;
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
        let text = self.cgroup_text(pid);
        // The line the unit was read from (hybrid hierarchies have two).
        let cgroup = text
            .as_deref()
            .and_then(|c| systemd_cgroup_line(c).or_else(|| c.lines().last()))
            .map(str::to_string)
            .unwrap_or_default();
        Some(RawListener {
            process: info.process,
            uid,
            comm: info.comm,
            exe,
            cmdline,
            cgroup,
            unit: self.unit(pid),
            ns: self.namespaces(&pid.to_string()),
            ancestors: self.ancestors(pid),
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

    /// Lists processes by name: the sshd family and pid 1 are candidates
    /// whose fd tables are read; the others only if a listening socket is
    /// left unaccounted for. Independent of the ports, so it runs while
    /// sshd -T does.
    pub fn survey(&self, warnings: &mut Vec<String>) -> Survey {
        let mut sv = Survey::default();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) => {
                warnings.push(format!("cannot list {}: {e}", self.root.display()));
                return sv;
            }
        };
        let mut buf = [0u8; 64];
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            // The executable's name: one readlink, cheaper than open + read
            // + close of comm, which this runs once per process. comm when
            // exe cannot be read (kernel threads, zombies, other users'
            // processes when not root).
            let comm = match std::fs::read_link(ent.path().join("exe")) {
                Ok(exe) => exe_name(&exe),
                Err(_) => {
                    let Ok(n) = std::fs::File::open(ent.path().join("comm"))
                        .and_then(|mut f| f.read(&mut buf))
                    else {
                        continue; // gone
                    };
                    String::from_utf8_lossy(&buf[..n])
                        .trim_end_matches('\n')
                        .to_string()
                }
            };
            if is_sshd_exe(&comm) || is_sshd_session_name(&comm) || pid == 1 {
                sv.candidates.push(pid);
            } else {
                sv.others.push(pid);
            }
        }
        sv
    }

    /// Finds the processes holding `listening`, and counts sshd sessions.
    /// Reads fd tables only of the survey's candidates, unless a listening
    /// socket is left unaccounted for.
    pub fn scan(&self, listening: &BTreeMap<u64, SocketAddr>, survey: Survey) -> Scan {
        let mut scan = Scan::default();
        let my_ns = self.net_ns("self");
        let Survey { candidates, others } = survey;
        let mut found: HashSet<u64> = HashSet::new();
        for pid in &candidates {
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
        scan.listeners.sort_by_key(|l| l.process.pid);
        scan
    }
}

impl Procfs {
    /// Every other process holding one of `listening`, not only the first
    /// found per socket: a socket is shared by every process that has it
    /// open (a fork that kept it, an fd passed over a unix socket), and
    /// stopping one holder does not free the port while another keeps it.
    /// Reads the fd table of each of `pids` (what `ss -p` does), so it runs
    /// only when the guard may act on a listener.
    pub fn other_holders(
        &self,
        listening: &BTreeMap<u64, SocketAddr>,
        pids: &[u32],
        known: &HashSet<u32>,
    ) -> Vec<RawListener> {
        let mut scan = Scan::default();
        let mut found = HashSet::new();
        for pid in pids.iter().filter(|p| !known.contains(p)) {
            self.check(*pid, listening, &mut found, &mut scan);
        }
        scan.listeners
    }
}

/// One LISTEN-only sock_diag dump per address family.
fn sock_diag_listening(ports: &[u16]) -> Result<BTreeMap<u64, SocketAddr>, String> {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
    };
    use netlink_packet_sock_diag::{
        constants::{AF_INET, AF_INET6, IPPROTO_TCP},
        inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
        SockDiagMessage,
    };
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};

    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| e.to_string())?;
    socket.bind_auto().map_err(|e| e.to_string())?;
    socket
        .connect(&NlAddr::new(0, 0))
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (family, id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut packet = NetlinkMessage::new(
            hdr,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::LISTEN,
                socket_id: id,
            })
            .into(),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        socket.send(&buf[..], 0).map_err(|e| e.to_string())?;
        let mut rx = vec![0u8; 64 * 1024];
        'dump: loop {
            let size = socket
                .recv(&mut &mut rx[..], 0)
                .map_err(|e| e.to_string())?;
            let mut offset = 0;
            while offset < size {
                let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&rx[offset..size])
                    .map_err(|e| format!("sock_diag reply: {e}"))?;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let id = &r.header.socket_id;
                        if ports.contains(&id.source_port) {
                            out.insert(
                                u64::from(r.header.inode),
                                SocketAddr::new(id.source_address, id.source_port),
                            );
                        }
                    }
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(e) => return Err(format!("sock_diag: {e:?}")),
                    _ => {}
                }
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
    Ok(out)
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
#[path = "../../tests/support/fake_proc.rs"]
pub(super) mod fake_proc;

#[cfg(test)]
mod tests {
    use super::fake_proc::{add_root_process, stat_line, TCP_HEADER};
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A fake /proc: pid 1 (systemd) and a stale sshd both holding the
    /// listening socket 1001 on :22, a session, and an unrelated process.
    fn fake_proc() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("net")).unwrap();
        fs::write(
            r.join("net/tcp"),
            format!(
                "{TCP_HEADER}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n   \
                 1: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n"
            ),
        )
        .unwrap();
        fs::write(
            r.join("net/tcp6"),
            format!("{TCP_HEADER}   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0\n"),
        )
        .unwrap();
        for (pid, comm, exe, sockets) in [
            (
                1u32,
                "systemd",
                "/usr/lib/systemd/systemd",
                vec![1001u64, 1003],
            ),
            (200, "sshd", "/usr/sbin/sshd (deleted)", vec![1001, 1003]),
            (300, "sshd", "/usr/sbin/sshd (deleted)", vec![1002]),
            (400, "bash", "/usr/bin/bash", vec![]),
        ] {
            add_root_process(r, pid, comm, 1000 + u64::from(pid), exe, &sockets);
        }
        d
    }

    #[test]
    fn finds_listeners_by_socket_inode_and_counts_sessions() {
        let d = fake_proc();
        let p = Procfs::new(d.path());
        let mut w = Vec::new();
        let l = p.listening(&[22], &mut w);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(l.len(), 2, "LISTEN only, both families: {l:?}");
        let scan = p.scan(&l, p.survey(&mut Vec::new()));
        let pids: Vec<u32> = scan.listeners.iter().map(|l| l.process.pid).collect();
        assert_eq!(pids, vec![1, 200]);
        let stale = &scan.listeners[1];
        assert_eq!(stale.exe, "/usr/sbin/sshd (deleted)");
        assert_eq!(stale.process.start_time, 1200);
        assert_eq!(stale.addresses.len(), 2);
        assert_eq!(stale.cgroup, "0::/system.slice/cron.service");
        assert_eq!(
            scan.sessions, 1,
            "pid 300 holds a connection, not a listener"
        );
        assert!(scan.unowned.is_empty());
        assert!(p.listening(&[2222], &mut w).is_empty());
    }

    #[test]
    fn every_holder_of_a_listening_socket_is_found_not_only_the_sshd() {
        let d = fake_proc();
        let r = d.path();
        // bash (pid 400) holds the stale sshd's socket too.
        symlink("socket:[1001]", r.join("400/fd/3")).unwrap();
        let p = Procfs::new(r);
        let l = p.listening(&[22], &mut Vec::new());
        let sv = p.survey(&mut Vec::new());
        let others = sv.others.clone();
        let scan = p.scan(&l, sv);
        let pids: Vec<u32> = scan.listeners.iter().map(|l| l.process.pid).collect();
        assert_eq!(pids, vec![1, 200], "the cheap scan stops at the sshd");
        let known = pids.iter().copied().collect();
        let more = p.other_holders(&l, &others, &known);
        let more: Vec<(u32, &str)> = more
            .iter()
            .map(|l| (l.process.pid, l.comm.as_str()))
            .collect();
        assert_eq!(more, vec![(400, "bash")]);
    }

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
    fn survey_picks_the_sshd_family_by_executable_then_by_comm() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        // (pid, exe link or None, comm)
        for (pid, exe, comm) in [
            (1u32, Some("/usr/lib/systemd/systemd"), "systemd"),
            (10, Some("/usr/sbin/sshd (deleted)"), "sshd"),
            (11, Some("/usr/lib/openssh/sshd-session"), "sshd-session"),
            (12, Some("/usr/bin/python3.11"), "sshd"),
            (13, None, "sshd"),
            (14, None, "kworker/0:1"),
            (15, Some("/usr/bin/sleep"), "sleep"),
        ] {
            let p = r.join(pid.to_string());
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
            if let Some(exe) = exe {
                symlink(exe, p.join("exe")).unwrap();
            }
        }
        fs::create_dir_all(r.join("99")).unwrap(); // gone: neither exe nor comm
        fs::create_dir_all(r.join("net")).unwrap();
        let mut sv = Procfs::new(r).survey(&mut Vec::new());
        sv.candidates.sort_unstable();
        sv.others.sort_unstable();
        // The executable decides when it can be read (a deleted sshd is
        // still sshd; a python that calls itself sshd is not); comm only
        // when it cannot.
        assert_eq!(sv.candidates, vec![1, 10, 11, 13]);
        assert_eq!(sv.others, vec![12, 14, 15]);
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
    fn sock_diag_finds_a_real_listener_with_its_inode() {
        use std::os::fd::AsRawFd;
        let l4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l4.local_addr().unwrap().port();
        let link = fs::read_link(format!("/proc/self/fd/{}", l4.as_raw_fd())).unwrap();
        let inode: u64 = link
            .to_str()
            .unwrap()
            .trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap();
        let found = sock_diag_listening(&[port])
            .expect("sock_diag works without privileges in our own netns");
        assert_eq!(
            found.get(&inode),
            Some(&l4.local_addr().unwrap()),
            "{found:?}"
        );
        // The same through the /proc/net/tcp reader: both agree.
        let mut w = Vec::new();
        let via_proc = Procfs::new(Path::new("/proc")).listening_from_proc(&[port], &mut w);
        assert_eq!(via_proc, found);
        // A connected (non-listening) socket on that port is not listed.
        let _c = std::net::TcpStream::connect(l4.local_addr().unwrap()).unwrap();
        assert_eq!(sock_diag_listening(&[port]).unwrap().len(), 1);
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

    #[test]
    fn vanished_and_garbage_processes_are_skipped() {
        let d = fake_proc();
        fs::write(d.path().join("400/stat"), "garbage").unwrap();
        let p = Procfs::new(d.path());
        assert!(p.info(400).is_none());
        assert!(p.info(99999).is_none());
        fs::remove_dir_all(d.path().join("300")).unwrap();
        let mut w = Vec::new();
        let l = p.listening(&[22], &mut w);
        assert_eq!(p.scan(&l, p.survey(&mut Vec::new())).listeners.len(), 2);
    }

    #[test]
    fn hostile_tcp_table_is_a_warning_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("net")).unwrap();
        fs::write(
            d.path().join("net/tcp"),
            format!("{TCP_HEADER}   0: zz:0016 nonsense\n"),
        )
        .unwrap();
        let mut w = Vec::new();
        assert!(Procfs::new(d.path()).listening(&[22], &mut w).is_empty());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("net/tcp"), "{w:?}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_stat_and_tcp_bytes_never_panic(
            stat in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            tcp in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        ) {
            let d = tempfile::tempdir().unwrap();
            fs::create_dir_all(d.path().join("9")).unwrap();
            fs::create_dir_all(d.path().join("net")).unwrap();
            fs::write(d.path().join("9/stat"), &stat).unwrap();
            fs::write(d.path().join("net/tcp"), &tcp).unwrap();
            fs::write(d.path().join("net/tcp6"), &tcp).unwrap();
            let p = Procfs::new(d.path());
            let _ = p.info(9);
            let mut w = Vec::new();
            let l = p.listening(&[22], &mut w);
            let _ = p.scan(&l, p.survey(&mut Vec::new()));
        }

        #[test]
        fn arbitrary_tcp_lines_never_panic(line in "[ 0-9A-Fa-f:]{0,160}") {
            let d = tempfile::tempdir().unwrap();
            fs::create_dir_all(d.path().join("net")).unwrap();
            fs::write(d.path().join("net/tcp"), format!("{TCP_HEADER}{line}\n")).unwrap();
            let mut w = Vec::new();
            let _ = Procfs::new(d.path()).listening(&[22], &mut w);
        }
    }
}
