//! Finding the processes that listen on the ssh ports, cheaply: the LISTEN
//! sockets on ssh ports come from sock_diag (/proc/net/tcp{,6} as the
//! fallback; this network namespace only, so a container's sshd on its own
//! port 22 is never ours); then only pid 1 and sshd-family processes (by
//! executable, one readlink each) have their fd tables read. Every other
//! process is looked at only when a listening socket is still unaccounted
//! for. A process that vanishes mid-scan is skipped, not an error.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::procs::{exe_name, Procfs, RawListener};
use crate::identity::systemd_cgroup_line;
use crate::model::{is_sshd_exe, is_sshd_session_name};
use procfs::FromReadSI;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

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
        let cgroup = text
            .as_deref()
            // The line the unit was read from (hybrid hierarchies have two).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake_proc::{listening_proc as fake_proc, TCP_HEADER};
    use std::fs;
    use std::os::unix::fs::symlink;

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
