//! The simulated machine: what the repairs rely on, and nothing more.
//! systemd's units (ssh.socket, ssh.service, the guard's rescue, any other
//! service a listener may sit in) with Requires/RequiredBy, KillMode=process,
//! masks and enablement, the `sshd_not_to_be_run` start condition, start
//! limits and socket activation; processes (listeners, sessions, pid 1's
//! socket) that hold addresses, which bind or fail with EADDRINUSE; dpkg's
//! state of openssh-server and what its postinst does.
//!
//! [`World::snapshot`] builds a `model::Snapshot` from it the way
//! `system::snapshot::gather` does (the listeners judged by the real
//! `identity::judge`), so the real `plan::decide` runs on it; the rules of
//! this model (who is stale, who serves) are written here independently of
//! the guard's, so that the properties can compare the two.
#![forbid(unsafe_code)]

use crate::dpkg::PackageState;
use crate::identity::{self, CgroupUnit};
use crate::model::{
    ssh_addresses, ConfigCheck, Listener, ProcessStamp, Snapshot, UnitState, Units,
};
use crate::roads::PackagingRecords;
use crate::sshd::{parse_listen, SshdListen};

pub const SOCKET: &str = "ssh.socket";
pub const SERVICE: &str = "ssh.service";
pub const RESCUE: &str = crate::system::systemd::RESCUE_UNIT;
/// systemd's default StartLimitBurst in StartLimitIntervalSec=10s.
pub const START_BURST: usize = 5;
pub const START_INTERVAL: u64 = 10;
/// The binary every sshd runs.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A unit's ActiveState (named as systemd names them).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Active {
    Inactive,
    Active,
    Failed,
}

/// One systemd unit as far as the repairs see it.
#[derive(Clone, Debug)]
pub struct Unit {
    pub name: String,
    /// UnitFileState: enabled, disabled, static, masked.
    pub file: &'static str,
    pub active: Active,
    pub result: &'static str,
    pub main_pid: Option<u32>,
    pub n_restarts: u32,
    /// Times of the starts within systemd's start-limit interval.
    pub starts: Vec<u64>,
    /// A socket's ListenStream.
    pub listen: Vec<String>,
    /// Starting it fails (an ExecStartPre that fails, as the e2e drop-in).
    pub broken: bool,
    /// A service whose start job fails while systemd's Restart= brings it
    /// up a moment later (issue 18, item 4).
    pub flaky: bool,
    /// Unit.ConditionResult: what the start condition said when systemd
    /// last checked it (at a start); None before any.
    pub condition: Option<bool>,
}

impl Unit {
    pub fn new(name: &str, file: &'static str, active: Active) -> Unit {
        Unit {
            name: name.into(),
            file,
            active,
            result: if active == Active::Failed {
                "exit-code"
            } else {
                "success"
            },
            main_pid: None,
            n_restarts: 0,
            starts: Vec::new(),
            listen: Vec::new(),
            broken: false,
            flaky: false,
            condition: None,
        }
    }
    pub fn masked(&self) -> bool {
        self.file == "masked"
    }
    pub fn is_active(&self) -> bool {
        self.active == Active::Active
    }
    /// systemd's view, as `system::systemd` reads it.
    pub fn state(&self, socket_required: bool) -> UnitState {
        let socket = self.name.ends_with(".socket");
        UnitState {
            name: self.name.clone(),
            load_state: if self.masked() { "masked" } else { "loaded" }.into(),
            active_state: match self.active {
                Active::Inactive => "inactive",
                Active::Active => "active",
                Active::Failed => "failed",
            }
            .into(),
            sub_state: match (self.active, socket) {
                (Active::Active, true) => "listening",
                (Active::Active, false) => "running",
                (Active::Failed, _) => "failed",
                (Active::Inactive, _) => "dead",
            }
            .into(),
            result: self.result.into(),
            unit_file_state: self.file.into(),
            main_pid: self.main_pid.filter(|_| self.is_active()),
            listen: self.listen.clone(),
            bind_ipv6_only: if socket {
                "ipv6-only".into()
            } else {
                String::new()
            },
            n_restarts: (!socket).then_some(self.n_restarts),
            condition_result: self.condition,
            requires: (self.name == SERVICE).then(|| {
                if socket_required {
                    vec![SOCKET.to_string()]
                } else {
                    Vec::new()
                }
            }),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// pid 1 holding a socket unit's addresses.
    Systemd,
    /// An sshd holding listening sockets.
    Listener,
    /// A login in progress: never to be signalled.
    Session,
}

/// How a process takes SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dies {
    OnTerm,
    /// Only SIGKILL ends it (after STOP_TIMEOUT).
    OnKill,
    /// Not reaped even after SIGKILL (stuck in the kernel).
    Never,
}

#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: u32,
    pub start_time: u64,
    pub uid: u32,
    pub comm: String,
    /// The binary, without " (deleted)".
    pub exe: String,
    /// dpkg replaced the binary since it started.
    pub deleted: bool,
    /// The unit whose cgroup it is in; None: no unit (a slice, the root).
    pub unit: Option<String>,
    pub parent: u32,
    /// In another PID or mount namespace (a container's sshd).
    pub other_ns: bool,
    pub kind: Kind,
    /// Listening addresses it holds ("0.0.0.0:22", "[::]:22").
    pub holds: Vec<String>,
    /// Completes a key exchange when connected to.
    pub works: bool,
    pub dies: Dies,
    pub alive: bool,
    /// A pre-auth child: it exits by itself this long after its parent
    /// (and holds the parent's sockets until then).
    pub child_lingers: Option<u64>,
    /// When it exits by itself.
    pub exit_at: Option<u64>,
}

impl Proc {
    pub fn exe_shown(&self) -> String {
        if self.deleted {
            format!("{} (deleted)", self.exe)
        } else {
            self.exe.clone()
        }
    }
    pub fn stamp(&self) -> ProcessStamp {
        ProcessStamp {
            pid: self.pid,
            start_time: self.start_time,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigState {
    Valid,
    /// Another error: the guard must refuse.
    Invalid,
    /// Only the host keys are missing (ssh-keygen -A fixes it).
    NoHostKeys,
    /// `sshd -T` does not answer within its bound: unchecked. sshd itself
    /// would hang the same way at its start.
    Hung,
}

/// sshd_config as `sshd -T` prints it, and the options ssh.service passes.
#[derive(Clone, Debug)]
pub struct Sshd {
    pub state: ConfigState,
    pub ports: Vec<u16>,
    /// ListenAddress entries; empty: every address of each port.
    pub listen: Vec<String>,
    /// AddressFamily (None: any).
    pub family: Option<&'static str>,
    pub opts: Vec<String>,
}

/// The whole machine.
#[derive(Clone, Debug)]
pub struct World {
    pub clock: u64,
    pub procs: Vec<Proc>,
    pub next_pid: u32,
    pub socket: Unit,
    pub service: Unit,
    pub rescue: Unit,
    /// Other service units a listener may sit in (a cron job's, a second
    /// sshd's, rc-local).
    pub others: Vec<Unit>,
    /// ssh.socket has RequiredBy=ssh.service (noble's unit): ssh.service
    /// Requires the socket, so stopping or restarting the socket stops the
    /// service, and a socket that cannot start fails the service's start.
    pub socket_required: bool,
    pub sshd: Sshd,
    /// /etc/ssh/sshd_not_to_be_run: both units' ConditionPathExists=!.
    pub not_to_be_run: bool,
    /// openssh-server's dpkg status.
    pub pkg: &'static str,
    /// deb-systemd-helper was-enabled for (ssh.socket, ssh.service).
    pub was_enabled: (bool, bool),
    pub extra_ports: Vec<u16>,
    /// The ssh units pre-invoke found active (its marker's served_units),
    /// inside an apt run; None outside one.
    pub served_units: Option<Vec<String>>,
}

/// Which family an address is of, and its port.
fn family_port(a: &str) -> Option<(bool, u16)> {
    let e = parse_listen(a)?;
    Some((e.addr.is_ipv6(), e.addr.port()))
}

fn is_wildcard(a: &str) -> bool {
    parse_listen(a).is_some_and(|e| e.addr.ip().is_unspecified())
}

/// Whether binding `a` collides with a socket bound to `b` (no SO_REUSEPORT,
/// IPv6 sockets v6-only as sshd and noble's ssh.socket bind them).
pub fn collides(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (family_port(a), family_port(b)) {
        (Some(x), Some(y)) if x == y => is_wildcard(a) || is_wildcard(b),
        _ => false,
    }
}

/// The listening address a client connecting to `target` reaches when
/// something holds `held`.
fn reaches(target: &str, held: &str) -> bool {
    target == held
        || match (family_port(target), family_port(held)) {
            (Some(x), Some(y)) => x == y && is_wildcard(held),
            _ => false,
        }
}

impl World {
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        match name {
            SOCKET => Some(&self.socket),
            SERVICE => Some(&self.service),
            RESCUE => Some(&self.rescue),
            _ => self.others.iter().find(|u| u.name == name),
        }
    }
    pub fn unit_mut(&mut self, name: &str) -> Option<&mut Unit> {
        match name {
            SOCKET => Some(&mut self.socket),
            SERVICE => Some(&mut self.service),
            RESCUE => Some(&mut self.rescue),
            _ => self.others.iter_mut().find(|u| u.name == name),
        }
    }
    pub fn proc(&self, pid: u32) -> Option<&Proc> {
        self.procs.iter().find(|p| p.pid == pid && p.alive)
    }
    pub fn socket_activated(&self) -> bool {
        !self.socket.masked() && self.socket.file == "enabled"
    }

    /// The addresses an sshd started with this configuration binds.
    pub fn sshd_binds(&self) -> Vec<String> {
        if !self.sshd.listen.is_empty() {
            return self.sshd.listen.clone();
        }
        let mut out = Vec::new();
        for p in &self.sshd.ports {
            if self.sshd.family != Some("inet6") {
                out.push(format!("0.0.0.0:{p}"));
            }
            if self.sshd.family != Some("inet") {
                out.push(format!("[::]:{p}"));
            }
        }
        out
    }

    /// Who holds a listening socket colliding with `a`.
    pub fn holder_of(&self, a: &str) -> Option<&Proc> {
        self.procs
            .iter()
            .find(|p| p.alive && p.holds.iter().any(|h| collides(a, h)))
    }

    /// Who a client connecting to `target` reaches: the process that
    /// accepts on the listening socket, before a pre-auth child that only
    /// inherited it (it never accepts).
    pub fn reached(&self, target: &str) -> Option<&Proc> {
        let find = |exact: bool, child: bool| {
            self.procs.iter().find(|p| {
                p.alive
                    && p.child_lingers.is_some() == child
                    && p.holds.iter().any(|h| {
                        if exact {
                            h == target
                        } else {
                            reaches(target, h)
                        }
                    })
            })
        };
        find(true, false)
            .or_else(|| find(false, false))
            .or_else(|| find(true, true))
            .or_else(|| find(false, true))
    }

    pub fn spawn(&mut self, mut p: Proc) -> u32 {
        self.next_pid += 1;
        p.pid = self.next_pid;
        p.start_time = 1000 + self.clock * 100 + u64::from(p.pid);
        p.alive = true;
        let pid = p.pid;
        self.procs.push(p);
        pid
    }

    pub fn kill(&mut self, pid: u32) {
        for p in self.procs.iter_mut().filter(|p| p.pid == pid) {
            p.alive = false;
        }
        let clock = self.clock;
        for c in self.procs.iter_mut().filter(|p| p.alive && p.parent == pid) {
            if let Some(after) = c.child_lingers {
                c.exit_at = Some(clock + after);
            }
        }
        for u in [&mut self.socket, &mut self.service, &mut self.rescue]
            .into_iter()
            .chain(self.others.iter_mut())
        {
            if u.main_pid == Some(pid) {
                u.main_pid = None;
                // The main process died on its own: systemd sees a failed
                // service (a SIGTERM from outside counts as a clean exit for
                // sshd, but nothing in the model kills a main process so).
                if u.active == Active::Active {
                    u.active = Active::Failed;
                    u.result = "signal";
                }
            }
        }
    }

    /// Processes whose time has come exit by themselves.
    /// A child due at once when its parent exits goes in the same tick.
    pub fn tick(&mut self) {
        let clock = self.clock;
        loop {
            let due: Vec<u32> = self
                .procs
                .iter()
                .filter(|p| p.alive && p.exit_at.is_some_and(|t| t <= clock))
                .map(|p| p.pid)
                .collect();
            if due.is_empty() {
                return;
            }
            for pid in due {
                self.kill(pid);
            }
        }
    }

    /// Ancestors of `pid`, parent first.
    pub fn ancestors(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = pid;
        for _ in 0..16 {
            let Some(p) = self.procs.iter().find(|p| p.pid == cur) else {
                break;
            };
            if p.parent == 0 || out.contains(&p.parent) {
                break;
            }
            out.push(p.parent);
            cur = p.parent;
        }
        out
    }

    /// The model's own rule, after systemd's (issue 16, item 3): a root
    /// sshd listener in the host's namespaces is stale when no running unit
    /// owns it: in no unit, in a unit that is not active (or unknown), or
    /// in an active service with a main process that is neither it nor an
    /// ancestor. An active unit without a main process (rc-local, an init
    /// script's, a scope) owns everything in its cgroup.
    pub fn truly_stale(&self, p: &Proc) -> bool {
        if !p.alive || p.kind != Kind::Listener || p.uid != 0 || p.other_ns {
            return false;
        }
        let Some(name) = &p.unit else {
            return true;
        };
        let Some(u) = self.unit(name) else {
            return true;
        };
        if !u.is_active() {
            return true;
        }
        match u.main_pid {
            Some(m) => m != p.pid && !self.ancestors(p.pid).contains(&m),
            None => false,
        }
    }

    /// Whether a connection to `target` completes a key exchange now, and
    /// whether it got a banner at all. Socket activation: pid 1 hands the
    /// connection to ssh.service, which must be able to start; when it
    /// cannot, systemd closes the connection before any banner (as
    /// refused, for the probe: `Serving::down`). A listener that serves
    /// nobody answers the banner (the key_exchange scenario's sshd).
    pub fn answers(&self, target: &str) -> (bool, bool) {
        match self.reached(target) {
            None => (false, false),
            Some(p) if p.kind == Kind::Systemd => {
                let ok = self.activation_works();
                (ok, ok)
            }
            // A pre-auth child holds the socket but never accepts: the
            // connection waits in the backlog, no banner (silent).
            Some(p) if p.child_lingers.is_some() => (false, false),
            Some(p) => (p.works, true),
        }
    }

    /// ssh.socket's connection would start (or reach) a working sshd.
    pub fn activation_works(&self) -> bool {
        if let Some(m) = self.service.main_pid.filter(|_| self.service.is_active()) {
            return self.proc(m).is_some_and(|p| p.works);
        }
        self.service_can_start()
    }

    /// What a start of ssh.service would meet, the socket aside. A failed
    /// ssh.service is started again by the next connection (systemd puts
    /// the socket back to listening); only the start limit stops that.
    pub fn service_can_start(&self) -> bool {
        !self.service.masked()
            && !self.not_to_be_run
            && !self.service.broken
            && self.sshd.state == ConfigState::Valid
            && self.recent_starts(&self.service) < START_BURST
    }

    pub fn recent_starts(&self, u: &Unit) -> usize {
        u.starts
            .iter()
            .filter(|t| self.clock.saturating_sub(**t) < START_INTERVAL)
            .count()
    }

    pub fn sessions(&self) -> usize {
        self.procs
            .iter()
            .filter(|p| p.alive && p.kind == Kind::Session)
            .count()
    }

    /// ssh.service and ssh.socket as systemd reports them.
    pub fn units(&self) -> Units {
        Units {
            service: self.service.state(self.socket_required),
            socket: self.socket.state(self.socket_required),
        }
    }

    /// sshd -T on this configuration: it prints a `listenaddress` line for
    /// every address sshd binds, ListenAddress or not (e2e sshd_opts's
    /// status: "ssh ports 22 2222 ([::]:2222 0.0.0.0:2222)").
    pub fn sshd_listen(&self) -> SshdListen {
        SshdListen {
            ports: self.sshd.ports.clone(),
            addresses: self
                .sshd_binds()
                .iter()
                .filter_map(|a| parse_listen(a))
                .collect(),
            address_family: self.sshd.family.map(str::to_string),
        }
    }

    pub fn config_check(&self) -> ConfigCheck {
        match self.sshd.state {
            ConfigState::Valid => ConfigCheck {
                valid: Some(true),
                error: None,
            },
            ConfigState::Invalid => ConfigCheck {
                valid: Some(false),
                error: Some("/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()),
            },
            ConfigState::Hung => ConfigCheck {
                valid: None,
                error: Some("sshd -T did not answer within 10 s".into()),
            },
            ConfigState::NoHostKeys => ConfigCheck {
                valid: Some(false),
                error: Some("sshd: no hostkeys available -- exiting.".into()),
            },
        }
    }

    /// The judgement `identity::judge` makes of a process, from the facts
    /// `system::claims` would read.
    pub fn judge(&self, p: &Proc) -> identity::Judgement {
        let unit = match &p.unit {
            Some(u) => CgroupUnit::Unit(u.clone()),
            None => CgroupUnit::NoUnit,
        };
        let exe = p.exe_shown();
        let ancestors = self.ancestors(p.pid);
        // A container's sshd: another PID and mount namespace.
        let ns_of = |other: bool| identity::Namespaces {
            pid: Some(if other { "pid:[2]" } else { "pid:[1]" }.into()),
            mnt: Some(if other { "mnt:[2]" } else { "mnt:[1]" }.into()),
        };
        let ns = ns_of(p.other_ns);
        let guard_ns = ns_of(false);
        let main_mnt = p
            .unit
            .as_deref()
            .and_then(|u| self.unit(u))
            .and_then(|u| u.main_pid)
            .and_then(|m| self.proc(m))
            .map(|m| if m.other_ns { "mnt:[2]" } else { "mnt:[1]" });
        let f = identity::Facts {
            pid: p.pid,
            uid: p.uid,
            exe: &exe,
            ns: &ns,
            guard_ns: &guard_ns,
            main_mnt,
            unit: &unit,
            ancestors: &ancestors,
        };
        let st = identity::unit_to_ask(&f).map(|name| match self.unit(name) {
            Some(u) => u.state(self.socket_required),
            None => UnitState {
                name: name.to_string(),
                load_state: "not-found".into(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                ..Default::default()
            },
        });
        identity::judge(&f, st.as_ref().map(Ok))
    }

    /// The snapshot `system::snapshot::gather` would take of this machine.
    pub fn snapshot(&self) -> Snapshot {
        let units = self.units();
        let listen = self.sshd_listen();
        let (ports, addresses) = ssh_addresses(Some(&units), Some(&listen), &self.extra_ports);
        let on_port = |a: &String| family_port(a).is_some_and(|(_, p)| ports.contains(&p));
        let listeners: Vec<Listener> = self
            .procs
            .iter()
            .filter(|p| p.alive && p.holds.iter().any(on_port))
            .map(|p| {
                let j = self.judge(p);
                Listener {
                    process: p.stamp(),
                    uid: p.uid,
                    comm: p.comm.clone(),
                    exe: p.exe_shown(),
                    exe_deleted: p.deleted,
                    cmdline: String::new(),
                    cgroup: match &p.unit {
                        Some(u) => format!("0::/system.slice/{u}"),
                        None => "0::/".into(),
                    },
                    addresses: p.holds.iter().filter(|a| on_port(a)).cloned().collect(),
                    class: j.class,
                    unit: p.unit.clone(),
                    unit_state: p
                        .unit
                        .as_deref()
                        .and_then(|u| self.unit(u))
                        .map(|u| u.state(self.socket_required).active_state),
                    why: j.why,
                }
            })
            .collect();
        let mut listening: Vec<String> = listeners
            .iter()
            .flat_map(|l| l.addresses.iter().cloned())
            .collect();
        listening.sort();
        listening.dedup();
        Snapshot {
            package: Some(PackageState {
                name: "openssh-server".into(),
                want: "install".into(),
                eflag: "ok".into(),
                status: self.pkg.into(),
                version: Some("1:9.6p1-3ubuntu13.13".into()),
                architecture: None,
                other_instances: vec![],
                depends: vec![],
            }),
            ports,
            addresses,
            sshd_config: self.config_check(),
            sshd_options: self.sshd.opts.clone(),
            topology: Some(units.topology()),
            units: Some(units),
            listeners,
            as_root: true,
            sessions: self.sessions(),
            packaging_records: PackagingRecords {
                socket_was_enabled: Some(self.was_enabled.0),
                service_was_enabled: Some(self.was_enabled.1),
            },
            sshd_listen: listen.addresses.iter().map(|a| a.to_string()).collect(),
            listening,
            rescue_pid: self.rescue.main_pid.filter(|_| self.rescue.is_active()),
            intent: crate::intent::Intent {
                not_to_be_run: self
                    .not_to_be_run
                    .then(|| crate::intent::NOT_TO_BE_RUN.to_string()),
                policy_rc_d: None,
                served_before: self.served_units.clone(),
            },
            ..Default::default()
        }
    }

    /// The targets a repair proves (`system::snapshot::probe_targets`), as
    /// strings.
    pub fn targets(&self) -> Vec<String> {
        crate::system::snapshot::probe_targets(&self.snapshot())
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    /// Targets that complete a key exchange now.
    pub fn serving(&self) -> Vec<String> {
        self.targets()
            .into_iter()
            .filter(|t| self.answers(t).0)
            .collect()
    }

    /// The ssh units active now (what pre-invoke records in its marker).
    pub fn active_units(&self) -> Vec<String> {
        [&self.service, &self.socket]
            .into_iter()
            .filter(|u| u.is_active())
            .map(|u| u.name.clone())
            .collect()
    }

    /// The model's own intent rule, written from issue 16's text and not
    /// from `intent::should_serve`, so that the two can disagree: a unit
    /// that runs serves, whatever a mask or a condition says about starting
    /// it again (ssh.socket only while sshd may start behind it: with
    /// the not_to_be_run file or ssh.service masked every connection
    /// fails, and that is the admin's "off"); otherwise ssh should serve when a unit is enabled or
    /// served before this apt run, unless the not_to_be_run file exists or
    /// ssh.service (which sshd runs as in both topologies) is masked. A
    /// masked unit counts for nothing itself.
    pub fn should_serve(&self) -> bool {
        let behind = !self.not_to_be_run && !self.service.masked();
        if self.service.is_active() || (self.socket.is_active() && behind) {
            return true;
        }
        if self.not_to_be_run || self.service.masked() {
            return false;
        }
        let before = self.served_units.as_deref().unwrap_or(&[]);
        [&self.socket, &self.service]
            .into_iter()
            .any(|u| !u.masked() && (u.file == "enabled" || before.contains(&u.name)))
    }

    /// ssh serves on every target.
    pub fn serves_everywhere(&self) -> bool {
        let t = self.targets();
        !t.is_empty() && t.iter().all(|t| self.answers(t).0)
    }
}
