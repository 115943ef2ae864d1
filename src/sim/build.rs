//! Machines built the way the e2e fixtures build them: a healthy noble-style
//! (socket-activated) or classic machine, then what admins, watchdogs and
//! packages do to it, one [`Op`] at a time. Ops that cannot apply (no free
//! address for a stale sshd) do nothing, so any sequence is a machine.
#![forbid(unsafe_code)]

use super::world::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topo {
    /// noble: ssh.socket enabled (RequiredBy=ssh.service), ssh.service disabled.
    Socket,
    /// ssh.service enabled, ssh.socket disabled.
    Classic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A connection through ssh.socket: ssh.service runs on its fds.
    Connect,
    /// `systemctl stop ssh.socket ssh.service`.
    StopUnits,
    /// A cron watchdog's sshd (make_stale_listener): the units stopped,
    /// sshd started from a transient unit with KillMode=process that has
    /// ended. `split`: two sshds, one per family.
    Stale {
        dies: Dies,
        works: bool,
        split: bool,
    },
    /// The newest stale listener forks a pre-auth child that holds its
    /// sockets; it exits by itself this many seconds after its parent.
    ForkChild { lingers: u64 },
    /// ssh.service's own listener left over in its cgroup (KillMode=process,
    /// a readiness timeout): the seed's `systemctl status`.
    Leftover,
    /// A local ssh.socket without RequiredBy=ssh.service, and ssh.service
    /// started by hand binding the port itself (road f).
    ServiceHoldsPort,
    /// A restart storm: ssh.service start-limit-hit (road a).
    Storm,
    /// ssh.socket's ExecStartPre fails (the e2e drop-in).
    BreakSocket,
    /// ssh.service's start job fails, and Restart= brings it up.
    FlakyService,
    /// A failed start of ssh.socket (it cannot listen).
    TrySocket,
    /// A login (a session process under the newest listener).
    Session,
    /// A second sshd under its own unit on :2222 (EXTRA_PORTS=2222).
    SecondSshd,
    /// An sshd on an extra ssh port in an active unit with no main process
    /// (rc-local.service, an init script's generated unit): systemd owns
    /// it through its cgroup (scenarios 80 and 81; not generated).
    SshdInUnit { unit: &'static str, port: u16 },
    /// A container's sshd on the host network, another PID namespace.
    Foreign,
    /// The guard's rescue sshd, started by an earlier repair.
    Rescue,
    /// dpkg unpacked openssh-server: every sshd runs a deleted binary.
    Unpack,
    /// openssh-server half-configured (the incident's postinst failed).
    HalfConfigured,
    /// The host keys removed.
    NoHostKeys,
    /// A configuration error.
    BadConfig,
    /// OpenSSH >= 9.8 listeners on a replaced binary serve nobody.
    SplitBinary,
    /// `systemctl disable [--now] ssh.socket ssh.service`: the enable
    /// links go, so deb-systemd-helper's was-enabled says no for both.
    Disable { now: bool },
    /// `systemctl mask [--now] UNIT` (the enable links stay: road b).
    Mask { socket: bool, now: bool },
    /// `touch /etc/ssh/sshd_not_to_be_run` (snapd's way): running units
    /// keep running; no start of either runs sshd.
    NotToBeRun,
    /// Classic topology: SSHD_OPTS="-f /etc/ssh/other_config", Port 2222
    /// there; ssh.service restarted on it (e2e sshd_opts).
    OtherConfig2222,
    /// `AddressFamily inet6`, ssh.service restarted on it.
    Inet6Only,
    /// `sshd -T` never returns (an Include of a FIFO, a hung mount).
    HungConfig,
    /// The admin removes BreakSocket's drop-in.
    MendSocket,
}

pub fn healthy(t: Topo) -> World {
    let mut w = World {
        clock: 100,
        procs: Vec::new(),
        next_pid: 100,
        socket: Unit::new(SOCKET, "enabled", Active::Inactive),
        service: Unit::new(SERVICE, "disabled", Active::Inactive),
        rescue: Unit::new(RESCUE, "static", Active::Inactive),
        others: Vec::new(),
        socket_required: true,
        sshd: Sshd {
            state: ConfigState::Valid,
            ports: vec![22],
            listen: Vec::new(),
            family: None,
            opts: Vec::new(),
        },
        not_to_be_run: false,
        pkg: "installed",
        was_enabled: (true, false),
        extra_ports: Vec::new(),
        served_units: None,
    };
    w.procs.push(Proc {
        pid: 1,
        start_time: 1,
        uid: 0,
        comm: "systemd".into(),
        exe: "/usr/lib/systemd/systemd".into(),
        deleted: false,
        unit: Some("init.scope".into()),
        parent: 0,
        other_ns: false,
        kind: Kind::Systemd,
        holds: Vec::new(),
        works: true,
        dies: Dies::Never,
        alive: true,
        child_lingers: None,
        exit_at: None,
    });
    w.socket.listen = vec!["0.0.0.0:22".into(), "[::]:22".into()];
    match t {
        Topo::Socket => {
            let _ = w.start(SOCKET);
        }
        Topo::Classic => {
            // Without the socket's enable links there is no requires link.
            w.socket_required = false;
            w.socket.file = "disabled";
            w.service.file = "enabled";
            w.was_enabled = (false, true);
            let _ = w.start(SERVICE);
        }
    }
    w.socket.starts.clear();
    w.service.starts.clear();
    w
}

fn sshd(unit: Option<&str>, parent: u32, holds: Vec<String>) -> Proc {
    Proc {
        pid: 0,
        start_time: 0,
        uid: 0,
        comm: "sshd".into(),
        exe: SSHD.into(),
        deleted: false,
        unit: unit.map(str::to_string),
        parent,
        other_ns: false,
        kind: Kind::Listener,
        holds,
        works: true,
        dies: Dies::OnTerm,
        alive: true,
        child_lingers: None,
        exit_at: None,
    }
}

/// The cron job's transient unit, ended (its daemon left behind).
const CRON: &str = "e2e-cron-watchdog.service";

fn newest_listener(w: &World) -> Option<u32> {
    w.procs
        .iter()
        .rev()
        .find(|p| p.alive && p.kind == Kind::Listener)
        .map(|p| p.pid)
}

impl World {
    pub fn apply(&mut self, op: Op) {
        self.clock += 1;
        match op {
            Op::Connect => {
                for t in self.targets() {
                    self.connect(&t);
                }
            }
            Op::StopUnits => {
                let _ = self.stop(SOCKET);
                let _ = self.stop(SERVICE);
            }
            Op::Stale { dies, works, split } => {
                let _ = self.stop(SOCKET);
                let _ = self.stop(SERVICE);
                if !self.others.iter().any(|u| u.name == CRON) {
                    self.others
                        .push(Unit::new(CRON, "static", Active::Inactive));
                }
                let free: Vec<String> = self
                    .sshd_binds()
                    .into_iter()
                    .filter(|a| self.holder_of(a).is_none())
                    .collect();
                let groups: Vec<Vec<String>> = if split {
                    free.into_iter().map(|a| vec![a]).collect()
                } else if free.is_empty() {
                    vec![]
                } else {
                    vec![free]
                };
                for holds in groups {
                    let mut p = sshd(Some(CRON), 1, holds);
                    p.dies = dies;
                    p.works = works;
                    self.spawn(p);
                }
            }
            Op::ForkChild { lingers } => {
                if let Some(parent) = newest_listener(self)
                    .filter(|pid| self.proc(*pid).is_some_and(|p| self.truly_stale(p)))
                {
                    let par = self
                        .proc(parent)
                        .cloned()
                        .unwrap_or_else(|| sshd(None, 1, vec![]));
                    let mut child = par.clone();
                    child.parent = parent;
                    child.child_lingers = Some(lingers);
                    self.spawn(child);
                }
            }
            Op::Leftover => {
                let _ = self.stop(SOCKET);
                let _ = self.stop(SERVICE);
                let free: Vec<String> = self
                    .sshd_binds()
                    .into_iter()
                    .filter(|a| self.holder_of(a).is_none())
                    .collect();
                if !free.is_empty() {
                    let main = self.spawn(sshd(Some(SERVICE), 1, free.clone()));
                    self.spawn(sshd(Some(SERVICE), main, free));
                    self.kill(main);
                    self.service.active = Active::Failed;
                    self.service.result = "timeout";
                }
            }
            Op::ServiceHoldsPort => {
                if self.socket_activated() {
                    self.socket_required = false;
                    let _ = self.stop(SOCKET);
                    let _ = self.start(SERVICE);
                }
            }
            Op::Storm => {
                let _ = self.stop(SERVICE);
                let t = self.clock;
                self.service.starts = vec![t; START_BURST];
                self.service.active = Active::Failed;
                self.service.result = "start-limit-hit";
                self.service.main_pid = None;
                if self.socket_activated() {
                    let _ = self.stop(SOCKET);
                    self.socket.active = Active::Failed;
                    self.socket.result = "service-start-limit-hit";
                }
            }
            Op::BreakSocket => self.socket.broken = true,
            Op::FlakyService => self.service.flaky = true,
            Op::TrySocket => {
                let _ = self.start(SOCKET);
            }
            Op::Session => {
                if let Some(parent) = newest_listener(self) {
                    let mut s = sshd(
                        self.proc(parent).and_then(|p| p.unit.clone()).as_deref(),
                        parent,
                        vec![],
                    );
                    s.kind = Kind::Session;
                    self.spawn(s);
                }
            }
            Op::SecondSshd => {
                if !self.others.iter().any(|u| u.name == "sshd-mgmt.service")
                    && self.holder_of("0.0.0.0:2222").is_none()
                {
                    let holds = vec!["0.0.0.0:2222".into(), "[::]:2222".into()];
                    let pid = self.spawn(sshd(Some("sshd-mgmt.service"), 1, holds));
                    let mut u = Unit::new("sshd-mgmt.service", "static", Active::Active);
                    u.main_pid = Some(pid);
                    self.others.push(u);
                    self.extra_ports = vec![2222];
                }
            }
            Op::SshdInUnit { unit, port } => {
                let v4 = format!("0.0.0.0:{port}");
                if !self.others.iter().any(|u| u.name == unit) && self.holder_of(&v4).is_none() {
                    self.spawn(sshd(Some(unit), 1, vec![v4, format!("[::]:{port}")]));
                    // Active, MainPID 0 (Type=forking without PIDFile=,
                    // Type=oneshot RemainAfterExit=yes).
                    self.others
                        .push(Unit::new(unit, "generated", Active::Active));
                    self.extra_ports = vec![port];
                }
            }
            Op::Foreign => {
                if self.holder_of("127.0.0.3:22").is_none() {
                    let mut p = sshd(Some("docker-0123.scope"), 1, vec!["127.0.0.3:22".into()]);
                    p.other_ns = true;
                    self.spawn(p);
                }
            }
            Op::Rescue => {
                let _ = self.start_rescue();
            }
            Op::Unpack => self.unpack(),
            Op::HalfConfigured => self.pkg = "half-configured",
            Op::NoHostKeys => self.sshd.state = ConfigState::NoHostKeys,
            Op::BadConfig => self.sshd.state = ConfigState::Invalid,
            Op::Disable { now } => {
                for u in [&mut self.socket, &mut self.service] {
                    if !u.masked() {
                        u.file = "disabled";
                    }
                }
                self.was_enabled = (false, false);
                if now {
                    let _ = self.stop(SOCKET);
                    let _ = self.stop(SERVICE);
                }
            }
            Op::Mask { socket, now } => {
                let name = if socket { SOCKET } else { SERVICE };
                if let Some(u) = self.unit_mut(name) {
                    u.file = "masked";
                }
                if now {
                    let _ = self.stop(name);
                }
            }
            Op::NotToBeRun => self.not_to_be_run = true,
            Op::OtherConfig2222 => {
                self.sshd.ports = vec![2222];
                self.sshd.opts = vec!["-f".into(), "/etc/ssh/other_config".into()];
                let _ = self.restart(SERVICE);
            }
            Op::Inet6Only => {
                self.sshd.family = Some("inet6");
                let _ = self.restart(SERVICE);
            }
            Op::HungConfig => self.sshd.state = ConfigState::Hung,
            Op::MendSocket => self.socket.broken = false,
            Op::SplitBinary => {
                for p in self.procs.iter_mut().filter(|p| p.alive && p.deleted) {
                    p.works = false;
                }
            }
        }
    }

    pub fn built(t: Topo, ops: &[Op]) -> World {
        let mut w = healthy(t);
        for op in ops {
            w.apply(*op);
        }
        w
    }
}
