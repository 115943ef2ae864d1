//! The decision: a snapshot goes in, a printable plan comes out. Pure, so
//! every invariant (never touch a session, never stop a listener when sshd
//! rejects its configuration, only stale listeners are signalled) is tested
//! here on fixtures without a machine.
//!
//! A decision is made in three steps, each a function of its own:
//! [`findings`] (what is wrong, what is left alone), [`gate`] (whether the
//! guard may act at all: the no-lockout rules) and [`steps`] (what to do,
//! in which order). Findings, refusals and steps are types: code branches on
//! variants, and their `Display` is the wording the admin reads.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::config::Config;
use crate::intent::{should_serve, ShouldServe};
use crate::model::{Listener, ListenerClass, ProcessStamp, Snapshot, Topology, UnitState, Units};
use serde::Serialize;
use std::fmt;

/// When the plan is made: the pre-invoke preflight fixes only what would
/// make the coming dpkg run fail (a stale listener, failed units) and leaves
/// the package to dpkg; everything else completes the package too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pre-invoke, before dpkg runs.
    Preflight,
    /// post-invoke, repair, watchdog, status.
    Full,
}

/// Serializes a value as its `Display` text: findings, refusals and
/// left-alone notes are strings in `status --json` (schema 1).
macro_rules! serialize_as_display {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

/// What is wrong, one line each in every report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A root sshd on an ssh port that systemd does not manage: the incident.
    StaleListener {
        /// Its process id.
        pid: u32,
        /// Its /proc/PID/exe.
        exe: String,
        /// The addresses it listens on.
        addresses: Vec<String>,
    },
    /// The package is not fully installed (dpkg --audit's sense).
    PackageIncomplete {
        /// The package name.
        package: String,
        /// want, eflag and status as dpkg records them.
        summary: String,
    },
    /// A unit is in the failed state.
    UnitFailed {
        /// The unit's name.
        unit: String,
        /// systemd's Result property (empty when unknown).
        result: String,
    },
    /// The unit that should hold the port is neither active nor failed.
    NotRunning {
        /// The unit's name.
        unit: String,
        /// Its active and sub state, as [`UnitState::describe`] words them.
        state: String,
    },
    /// A unit failed with systemd's start or trigger limit (road a); its
    /// text starts as UnitFailed's does.
    StartLimit(crate::roads::StartLimit),
    /// The unit openssh-server's postinst restarts is masked and running
    /// (road b).
    PostinstRestartBlocked(crate::roads::BlockedRestart),
    /// ssh.service holds the port ssh.socket should (road f).
    ServiceHoldsPort(crate::roads::ServiceHoldsPort),
    /// The rescue sshd runs a replaced binary (road g).
    StaleRescue(crate::roads::StaleRescue),
    /// The managed sshd still runs a binary the package replaced.
    OutdatedBinary {
        /// The service unit.
        service: String,
        /// Its main process.
        pid: u32,
        /// Its /proc/PID/exe, " (deleted)" included.
        exe: String,
    },
    /// sshd rejects its configuration only because it has no host keys.
    NoHostKeys {
        /// The service unit that cannot start.
        service: String,
    },
    /// ssh served before this apt run and nothing serves now: the package's
    /// scripts stopped it and did not start it again (intent item 2).
    StoppedByPackage {
        /// The units that were active before dpkg ran.
        before: Vec<String>,
        /// A policy-rc.d that forbids starting ssh, when one does.
        policy: Option<String>,
    },
    /// `status --probe`/`check --probe`: ssh does not serve on every
    /// address (no banner, no key exchange, or a key that is none of this
    /// host's), as system::kex words it.
    NotServing {
        /// What fails, per address.
        why: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::StaleListener {
                pid,
                exe,
                addresses,
            } => write!(
                f,
                "stale sshd listener pid {pid} ({exe}) holds {}; systemd does not manage it",
                addresses.join(", ")
            ),
            Finding::PackageIncomplete { package, summary } => {
                write!(f, "{package} is not fully installed ({summary})")
            }
            Finding::UnitFailed { unit, result } => {
                let result = if result.is_empty() { "unknown" } else { result };
                write!(f, "{unit} failed (result {result})")
            }
            Finding::NotRunning { unit, state } => write!(f, "{unit} is not running ({state})"),
            Finding::StartLimit(x) => x.fmt(f),
            Finding::PostinstRestartBlocked(x) => x.fmt(f),
            Finding::ServiceHoldsPort(x) => x.fmt(f),
            Finding::StaleRescue(x) => x.fmt(f),
            Finding::OutdatedBinary { service, pid, exe } => write!(
                f,
                "{service} (pid {pid}) still runs the replaced binary {exe}"
            ),
            Finding::NoHostKeys { service } => write!(
                f,
                "sshd has no host keys (sshd: no hostkeys available -- exiting), so {service} cannot start"
            ),
            Finding::StoppedByPackage { before, policy } => {
                write!(
                    f,
                    "ssh served before this apt run ({}) and nothing serves now: the package's maintainer scripts stopped it and did not start it again",
                    before.join(", ")
                )?;
                match policy {
                    Some(p) => write!(f, " ({p})"),
                    None => Ok(()),
                }
            }
            Finding::NotServing { why } => f.write_str(why),
        }
    }
}

/// Why the guard will not act. Each is a no-lockout rule: acting could only
/// fail, or could cut off the logins that still work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// systemd did not answer: nothing can be restored safely.
    NoSystemd {
        /// Why (the connection error), when known.
        error: Option<String>,
    },
    /// `sshd -t` rejects the configuration: stopping the running listener
    /// could lock everyone out.
    ConfigRejected {
        /// sshd's own words.
        sshd_says: Option<String>,
    },
    /// The configuration could not be checked.
    ConfigUnchecked {
        /// Why sshd -t did not run.
        why: Option<String>,
    },
    /// Something that is not a stale root sshd, and not managed, holds an
    /// ssh port (not a root sshd, another namespace, a unit that could not
    /// be told, another holder of a stale listener's socket).
    ForeignHolder {
        /// Its process id.
        pid: u32,
        /// Its name.
        comm: String,
        /// The addresses it holds.
        addresses: Vec<String>,
        /// Why it is foreign (the listener's `why`).
        why: String,
    },
    /// Road b: starting units around a masked unit the postinst restarts
    /// only fails; unmasking is the admin's decision.
    PostinstRestartBlocked(crate::roads::BlockedRestart),
    /// A socket on an ssh port whose process cannot be seen.
    UnseenHolder {
        /// The sockets' addresses.
        addresses: Vec<String>,
        /// Whether the snapshot was taken as root.
        as_root: bool,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoSystemd { error } => write!(
                f,
                "cannot reach systemd ({}); nothing was changed",
                error.as_deref().unwrap_or("unknown error")
            ),
            Refusal::ConfigRejected { sshd_says } => write!(
                f,
                "sshd rejects its configuration, so the running listener is left alone (stopping it could lock you out). sshd -t says: {}",
                sshd_says.as_deref().unwrap_or("(no message)")
            ),
            Refusal::ConfigUnchecked { why } => write!(
                f,
                "could not check the sshd configuration ({}), so nothing was stopped",
                why.as_deref().unwrap_or("sshd -t did not run")
            ),
            Refusal::ForeignHolder {
                pid,
                comm,
                addresses,
                why,
            } => write!(
                f,
                "pid {pid} ({comm}) holds {} and is {why}; the guard does not stop it and cannot restore ssh while it is there",
                addresses.join(", ")
            ),
            Refusal::PostinstRestartBlocked(b) => f.write_str(&b.advice()),
            Refusal::UnseenHolder { addresses, as_root } => write!(
                f,
                "{} {} held by a process the guard cannot see{}; it cannot restore ssh while that is so",
                addresses.join(", "),
                if addresses.len() == 1 { "is" } else { "are" },
                if *as_root {
                    ""
                } else {
                    " (not run as root: run it as root to see every process)"
                }
            ),
        }
    }
}

/// What is seen and deliberately left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftAlone {
    /// Another process on an ssh port (not a root sshd, another namespace,
    /// a unit that could not be told).
    Foreign {
        /// Its process id.
        pid: u32,
        /// Its name.
        comm: String,
        /// Its user id.
        uid: u32,
        /// The addresses it listens on.
        addresses: Vec<String>,
        /// Why it is foreign (the listener's `why`).
        why: String,
    },
    /// An sshd another unit manages (a second sshd) runs a replaced
    /// binary: that unit's to restart, not ssh.service's.
    OtherUnitOutdated {
        /// Its process id.
        pid: u32,
        /// The unit that manages it.
        unit: String,
        /// Its binary.
        exe: String,
    },
    /// ssh is off by the admin's choice: nothing is started, and a stale
    /// listener that still serves is not stopped (nothing would replace it).
    StaleWhileOff {
        /// Its process id.
        pid: u32,
        /// The addresses it listens on.
        addresses: Vec<String>,
    },
    /// sshd session processes: logins in progress.
    Sessions {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for LeftAlone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftAlone::Foreign {
                pid,
                comm,
                uid,
                addresses,
                why,
            } => write!(
                f,
                "pid {pid} ({comm}, uid {uid}) also listens on {}: {why}, never touched",
                addresses.join(", ")
            ),
            LeftAlone::OtherUnitOutdated { pid, unit, exe } => write!(
                f,
                "pid {pid} ({unit}) runs the replaced binary {exe}; restart {unit} when convenient"
            ),
            LeftAlone::StaleWhileOff { pid, addresses } => write!(
                f,
                "stale sshd listener pid {pid} still serves on {}; ssh is off by the admin's choice, so the guard starts nothing to replace it and does not stop it (stop it yourself if it should not serve: kill {pid})",
                addresses.join(", ")
            ),
            LeftAlone::Sessions { count } => {
                write!(f, "{count} sshd session process(es): never touched")
            }
        }
    }
}

serialize_as_display!(Finding, Refusal, LeftAlone);

/// One action of a repair, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// SIGTERM (then SIGKILL) to a stale listener, after re-checking that the
    /// pid still is this process (start time and binary).
    StopStale {
        /// Which process (`pid` and `start_time` in status --json).
        #[serde(flatten)]
        process: ProcessStamp,
        /// Its /proc/PID/exe.
        exe: String,
    },
    /// systemctl reset-failed UNIT.
    ResetFailed {
        /// The unit.
        unit: String,
    },
    /// systemctl start UNIT.
    StartUnit {
        /// The unit.
        unit: String,
    },
    /// systemctl restart UNIT.
    RestartUnit {
        /// The unit.
        unit: String,
    },
    /// systemctl stop UNIT: ssh.service handing the port back to
    /// ssh.socket (road f). Its KillMode=process keeps the sessions.
    StopUnit {
        /// The unit.
        unit: String,
    },
    /// An SSH-2.0 banner must answer on every address ssh listens on, and a
    /// key exchange complete with this host's key (system::kex).
    VerifyBanner,
    /// `ssh-keygen -A` (creates the missing default host keys, never replaces
    /// one), then `sshd -T` must accept the configuration before anything
    /// else is done.
    GenerateHostKeys,
    /// dpkg --configure PACKAGE, then the packages left unconfigured because of it.
    ConfigurePackage {
        /// The package.
        package: String,
    },
    /// systemctl stop UNIT: the guard's running rescue sshd gives its
    /// addresses back so that ssh.socket or ssh.service serve again (while
    /// it holds them the postinst's restart fails); started again by the
    /// proof if they do not serve. KillMode=process keeps its sessions.
    RetireRescue {
        /// The rescue's unit.
        unit: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::StopStale { process, exe } => write!(
                f,
                "stop stale sshd listener pid {} ({exe}): SIGTERM, SIGKILL if it lingers",
                process.pid
            ),
            Step::ResetFailed { unit } => write!(f, "systemctl reset-failed {unit}"),
            Step::StartUnit { unit } => write!(f, "systemctl start {unit}"),
            Step::RestartUnit { unit } => write!(f, "systemctl restart {unit}"),
            Step::StopUnit { unit } => write!(
                f,
                "systemctl stop {unit} (its listener only: sessions stay)"
            ),
            Step::VerifyBanner => write!(
                f,
                "check that ssh serves on every ssh address: an SSH-2.0 banner, then a key exchange with this host's key"
            ),
            Step::GenerateHostKeys => write!(
                f,
                "ssh-keygen -A: create the missing host keys, then check the configuration again (sshd -T)"
            ),
            Step::ConfigurePackage { package } => write!(
                f,
                "dpkg --configure {package} (and packages waiting for it)"
            ),
            Step::RetireRescue { unit } => write!(
                f,
                "systemctl stop {unit} (the rescue sshd; sessions stay) so that the ssh units serve again; it comes back if they do not"
            ),
        }
    }
}

/// The decision about one snapshot. Field names are part of `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Plan {
    /// What is wrong, one line each.
    pub findings: Vec<Finding>,
    /// What to do, in order; empty when there is nothing to do or the guard
    /// refuses.
    pub steps: Vec<Step>,
    /// Set when the guard will not act, with the reason.
    pub refused: Option<Refusal>,
    /// What is seen and deliberately left alone.
    pub left_alone: Vec<LeftAlone>,
    /// Whether ssh should serve (intent.rs): the guard starts units, and
    /// the rescue, only when it should.
    pub intent: ShouldServe,
}

impl Plan {
    /// Whether the package was found not fully installed.
    pub fn found_package_incomplete(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f, Finding::PackageIncomplete { .. }))
    }
}

/// The snapshot's facts the decision rests on, sorted once.
pub struct Facts<'a> {
    /// Stale listeners: the only processes ever signalled.
    stale: Vec<&'a Listener>,
    /// Anything on an ssh port that is not a root sshd.
    foreign: Vec<&'a Listener>,
    /// Listeners ssh.service manages that run a replaced binary.
    outdated: Vec<&'a Listener>,
    /// Listeners another unit manages that run a replaced binary.
    other_outdated: Vec<&'a Listener>,
    /// The package is not fully installed.
    pkg_incomplete: bool,
    /// sshd rejects its configuration only because it has no host keys
    /// (cloud images, first-boot scripts): ssh-keygen -A creates them. Any
    /// other configuration error is still refused by [`gate`].
    keys_missing: bool,
    /// Road f: ssh.service holds the port ssh.socket should.
    service_holds: Option<crate::roads::ServiceHoldsPort>,
    /// Road g: the rescue sshd runs a replaced binary.
    stale_rescue: Option<crate::roads::StaleRescue>,
    /// Road b: the unit the postinst restarts is masked and running.
    blocked: Option<crate::roads::BlockedRestart>,
    /// Whether ssh should serve (intent.rs).
    serve: ShouldServe,
}

impl<'a> Facts<'a> {
    /// Sorts the snapshot's listeners and reads the package state.
    pub fn of(s: &'a Snapshot) -> Facts<'a> {
        let of = |class: ListenerClass| -> Vec<&'a Listener> {
            s.listeners.iter().filter(|l| l.class == class).collect()
        };
        // ssh.service's own listener: in its cgroup, or its main process. A
        // second sshd under another unit is that unit's business.
        let service = s.units.as_ref().map(|u| &u.service);
        let is_ssh_service = |l: &&'a Listener| {
            service.is_some_and(|u| {
                l.unit.as_deref() == Some(u.name.as_str())
                    || (u.is_active() && u.main_pid == Some(l.process.pid))
            })
        };
        // The rescue sshd on a replaced binary is restarted as itself
        // (road g): neither ssh.service's nor left alone.
        let (outdated, other_outdated) = of(ListenerClass::Managed)
            .into_iter()
            .filter(|l| l.exe_deleted && Some(l.process.pid) != s.rescue_pid)
            .partition(is_ssh_service);
        Facts {
            stale: of(ListenerClass::Stale),
            foreign: of(ListenerClass::Foreign),
            outdated,
            other_outdated,
            pkg_incomplete: s.package.as_ref().is_some_and(|p| p.is_incomplete()),
            keys_missing: s.sshd_config.valid == Some(false)
                && s.sshd_config
                    .error
                    .as_deref()
                    .is_some_and(crate::hostkeys::only_missing_host_keys),
            service_holds: s
                .units
                .as_ref()
                .and_then(|u| crate::roads::service_holds_port(u, &s.listeners)),
            stale_rescue: crate::roads::stale_rescue(s),
            blocked: s
                .units
                .as_ref()
                .and_then(|u| crate::roads::blocked_restart(u, &s.packaging_records)),
            serve: s
                .units
                .as_ref()
                .map(|u| should_serve(u, &s.intent))
                .unwrap_or_default(),
        }
    }
}

/// The unit that should hold the ssh port in this topology.
fn holder(units: &Units) -> &UnitState {
    match units.topology() {
        Topology::SocketActivated => &units.socket,
        Topology::Service => &units.service,
    }
}

/// The units that served before this apt run when none of them (nor any
/// ssh unit) is active now: the package run stopped ssh.
fn stopped_by_package(s: &Snapshot, units: &Units) -> Option<Vec<String>> {
    let before = s.intent.served_before.as_ref().filter(|b| !b.is_empty())?;
    let active = [&units.service, &units.socket]
        .iter()
        .any(|u| u.is_active() || u.in_transition());
    (!active
        && s.listeners
            .iter()
            .all(|l| l.class == ListenerClass::Foreign))
    .then(|| before.clone())
}

/// What is wrong and what is left alone. `service`: the ssh service unit's
/// name, for the outdated-binary finding.
pub fn findings(s: &Snapshot, facts: &Facts, service: &str) -> (Vec<Finding>, Vec<LeftAlone>) {
    let mut found = Vec::new();
    let mut left = Vec::new();
    let off = !facts.serve.serves();
    for l in &facts.stale {
        if off {
            left.push(LeftAlone::StaleWhileOff {
                pid: l.process.pid,
                addresses: l.addresses.clone(),
            });
            continue;
        }
        found.push(Finding::StaleListener {
            pid: l.process.pid,
            exe: l.exe.clone(),
            addresses: l.addresses.clone(),
        });
    }
    for l in &facts.foreign {
        left.push(LeftAlone::Foreign {
            pid: l.process.pid,
            comm: l.comm.clone(),
            uid: l.uid,
            addresses: l.addresses.clone(),
            why: l.why.clone(),
        });
    }
    for l in &facts.other_outdated {
        left.push(LeftAlone::OtherUnitOutdated {
            pid: l.process.pid,
            unit: l.unit.clone().unwrap_or_else(|| "its unit".into()),
            exe: l.exe.clone(),
        });
    }
    if s.sessions > 0 {
        left.push(LeftAlone::Sessions { count: s.sessions });
    }
    if let Some(pk) = s.package.as_ref().filter(|_| facts.pkg_incomplete) {
        found.push(Finding::PackageIncomplete {
            // Arch-qualified when the package has several stanzas.
            package: pk.qualified_name(),
            summary: pk.summary(),
        });
    }
    let Some(units) = &s.units else {
        return (found, left);
    };
    // ssh the admin turned off: a unit that is down or failed is what the
    // admin chose, not a problem; the package is still the guard's concern.
    if off {
        return (found, left);
    }
    if let Some(before) = stopped_by_package(s, units) {
        found.push(Finding::StoppedByPackage {
            before,
            policy: s
                .intent
                .policy_rc_d
                .as_ref()
                .filter(|p| p.forbids())
                .map(|p| p.to_string()),
        });
    }
    let limits = crate::roads::start_limits(units);
    for u in [&units.socket, &units.service] {
        if let Some(l) = limits.iter().find(|l| l.unit == u.name) {
            found.push(Finding::StartLimit(l.clone()));
        } else if u.is_failed() {
            found.push(Finding::UnitFailed {
                unit: u.name.clone(),
                result: u.result.clone(),
            });
        }
    }
    let holder = holder(units);
    if !holder.is_active() && !holder.is_failed() {
        found.push(Finding::NotRunning {
            unit: holder.name.clone(),
            state: holder.describe(),
        });
    }
    for l in &facts.outdated {
        found.push(Finding::OutdatedBinary {
            service: service.to_string(),
            pid: l.process.pid,
            exe: l.exe.clone(),
        });
    }
    if facts.keys_missing {
        found.push(Finding::NoHostKeys {
            service: service.to_string(),
        });
    }
    if let Some(b) = &facts.blocked {
        found.push(Finding::PostinstRestartBlocked(b.clone()));
    }
    if let Some(f) = &facts.service_holds {
        found.push(Finding::ServiceHoldsPort(f.clone()));
    }
    if let Some(g) = &facts.stale_rescue {
        found.push(Finding::StaleRescue(g.clone()));
    }
    (found, left)
}

/// What a run is there to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// Listeners and units: stop stale listeners, (re)start units.
    pub listeners: bool,
    /// Complete the package's configuration.
    pub package: bool,
    /// Restart the rescue sshd on the unpacked binaries (road g; after
    /// dpkg only: before it, dpkg would replace them again).
    pub rescue: bool,
}

impl Work {
    /// Whether there is anything to do.
    pub fn any(self) -> bool {
        self.listeners || self.package || self.rescue
    }
}

/// What this mode has to fix. Without systemd there is nothing it could.
pub fn work(s: &Snapshot, facts: &Facts, mode: Mode) -> Work {
    let Some(units) = &s.units else {
        return Work::default();
    };
    // ssh the admin turned off stays off: no unit is started, no rescue;
    // the package is completed all the same (its scripts start nothing
    // that is disabled or masked).
    if !facts.serve.serves() {
        return Work {
            package: mode == Mode::Full && facts.pkg_incomplete,
            ..Work::default()
        };
    }
    let any_failed = units.socket.is_failed() || units.service.is_failed();
    let stale = !facts.stale.is_empty();
    let listeners = facts.keys_missing
        || match mode {
            // Before dpkg: only what makes the postinst's restart fail. An
            // inactive ssh.socket is started by the postinst itself.
            Mode::Preflight => stale || any_failed || facts.service_holds.is_some(),
            Mode::Full => {
                stale
                    || any_failed
                    || !holder(units).is_active()
                    || !facts.outdated.is_empty()
                    || facts.service_holds.is_some()
            }
        };
    Work {
        listeners,
        package: mode == Mode::Full && facts.pkg_incomplete,
        rescue: mode == Mode::Full && facts.stale_rescue.is_some(),
    }
}

/// The no-lockout rules: Some(reason) when the guard must not act on this
/// snapshot although there is work (or, without systemd, a problem).
pub fn gate(s: &Snapshot, facts: &Facts, work: Work) -> Option<Refusal> {
    let Some(units) = &s.units else {
        // Without systemd we cannot restore anything safely; only report.
        return (!facts.stale.is_empty() || facts.pkg_incomplete).then(|| Refusal::NoSystemd {
            error: s.systemd_error.clone(),
        });
    };
    if !work.any() {
        return None;
    }
    // No lockout: nothing that stops or restarts sshd unless the installed
    // sshd accepts its configuration.
    match s.sshd_config.valid {
        Some(true) => {}
        // Created as the first step (ssh-keygen -A), once nothing below refuses.
        Some(false) if facts.keys_missing => {}
        Some(false) => {
            return Some(Refusal::ConfigRejected {
                sshd_says: s.sshd_config.error.clone(),
            })
        }
        None => {
            return Some(Refusal::ConfigUnchecked {
                why: s.sshd_config.error.clone(),
            })
        }
    }
    // Road b: starting units around a masked unit the postinst restarts
    // fails ("Unit ssh.socket is masked."), and so would dpkg: the admin
    // decides whether to unmask; the guard says how.
    if let Some(b) = &facts.blocked {
        return Some(Refusal::PostinstRestartBlocked(b.clone()));
    }
    // A foreign holder blocks only what would need its addresses: starting
    // a unit (or the rescue) that binds where it listens, or signalling a
    // stale listener whose socket it shares. Elsewhere the repair goes on
    // around it, and findings name it as left alone.
    let binds = work.listeners || work.package;
    let needs = |held: &[String]| binds && crate::sshd::any_bind_conflict(&s.addresses, held);
    let shares_stale = |f: &&Listener| {
        facts
            .stale
            .iter()
            .any(|st| st.addresses.iter().any(|a| f.addresses.contains(a)))
    };
    if let Some(f) = facts
        .foreign
        .iter()
        .find(|f| needs(&f.addresses) || shares_stale(f))
    {
        return Some(Refusal::ForeignHolder {
            pid: f.process.pid,
            comm: f.comm.clone(),
            addresses: f.addresses.clone(),
            why: f.why.clone(),
        });
    }
    // A socket on an ssh port whose holder cannot be seen: starting the
    // unit could only fail to bind, and the holder is nobody the guard may
    // stop. Without root this is every root process's socket.
    let will_bind = work.listeners && (!holder(units).is_active() || !facts.stale.is_empty());
    if will_bind && needs(&s.unowned_sockets) {
        return Some(Refusal::UnseenHolder {
            addresses: s.unowned_sockets.clone(),
            as_root: s.as_root,
        });
    }
    None
}

/// The steps for `work`, in order; only called when [`gate`] let it pass.
pub fn steps(s: &Snapshot, facts: &Facts, work: Work, cfg: &Config) -> Vec<Step> {
    let mut steps = Vec::new();
    let Some(units) = &s.units else {
        return steps;
    };
    // Without host keys sshd can start nowhere: create them before anything
    // else, and check the configuration again (repair::execute).
    if facts.keys_missing {
        steps.push(Step::GenerateHostKeys);
    }
    // reset-failed first: it is harmless while the stale listener still
    // runs, and every round trip left between its exit and systemd
    // listening again is a window of refused connections.
    if work.listeners {
        for u in [&units.service, &units.socket] {
            if u.is_failed() {
                steps.push(Step::ResetFailed {
                    unit: u.name.clone(),
                });
            }
        }
    }
    // Only as part of restoring ssh: where ssh is off by the admin's
    // choice nothing would replace a stale listener, which still serves.
    for l in facts.stale.iter().filter(|_| work.listeners) {
        steps.push(Step::StopStale {
            process: l.process,
            exe: l.exe.clone(),
        });
    }
    let stale = !facts.stale.is_empty();
    let outdated = !facts.outdated.is_empty();
    // Issue 18: a running rescue gives way whenever the units are to be
    // brought back (it holds their addresses); the proof brings it back,
    // from the installed binary, if they do not serve. Else road g.
    let retire = s.rescue_pid.is_some() && work.listeners;
    if retire {
        steps.push(Step::RetireRescue {
            unit: crate::system::systemd::RESCUE_UNIT.to_string(),
        });
    } else if work.rescue {
        // First: a failed unit start below skips to the banner check.
        steps.push(Step::RestartUnit {
            unit: crate::system::systemd::RESCUE_UNIT.to_string(),
        });
    }
    let holds = facts.service_holds.is_some();
    if work.listeners {
        match units.topology() {
            Topology::SocketActivated => {
                if holds {
                    steps.push(Step::StopUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                }
                if stale || !units.socket.is_active() {
                    steps.push(Step::StartUnit {
                        unit: cfg.ssh_socket.clone(),
                    });
                }
                // A service just stopped is started again by the socket.
                if outdated && !holds {
                    steps.push(Step::RestartUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                }
            }
            Topology::Service => {
                if !units.service.is_active() {
                    steps.push(Step::StartUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                } else if stale || outdated {
                    steps.push(Step::RestartUnit {
                        unit: cfg.ssh_service.clone(),
                    });
                }
            }
        }
        // Road f with the package to complete: a banner check now would
        // make the socket start ssh.service again, and the postinst's
        // restart of a socket whose service runs is refused ("Socket
        // service ssh.service already active, refusing.") when the socket
        // does not stop it first. dpkg goes first; the check after it
        // proves ssh answers (and brings the rescue if it does not).
        if !(holds && work.package) {
            steps.push(Step::VerifyBanner);
        }
    } else if work.rescue {
        steps.push(Step::VerifyBanner);
    }
    if work.package {
        // The stanza that is not fully installed, arch-qualified when the
        // package has several (multi-arch): dpkg refuses an ambiguous name.
        let package = s
            .package
            .as_ref()
            .map(|pk| pk.qualified_name())
            .unwrap_or_else(|| cfg.package.clone());
        steps.push(Step::ConfigurePackage { package });
        // Where ssh is off by the admin's choice there is nothing to prove
        // (and no rescue to start when nothing answers).
        if facts.serve.serves() {
            steps.push(Step::VerifyBanner);
        }
    }
    steps
}

/// Decides what to do about the snapshot: [`findings`], then [`gate`],
/// then [`steps`]. The settings that matter here are the unit names and
/// the package name.
pub fn decide(s: &Snapshot, cfg: &Config, mode: Mode) -> Plan {
    let facts = Facts::of(s);
    let (findings, left_alone) = findings(s, &facts, &cfg.ssh_service);
    let work = work(s, &facts, mode);
    let refused = gate(s, &facts, work);
    let steps = if refused.is_none() {
        steps(s, &facts, work, cfg)
    } else {
        Vec::new()
    };
    Plan {
        findings,
        steps,
        refused,
        left_alone,
        intent: facts.serve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpkg::PackageState;
    use crate::model::*;

    impl Plan {
        fn is_noop_for_test(&self) -> bool {
            self.steps.is_empty() && self.refused.is_none()
        }
    }

    fn unit(name: &str, active: &str, file: &str, result: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: if active == "active" {
                "listening".into()
            } else {
                "dead".into()
            },
            result: result.into(),
            unit_file_state: file.into(),
            main_pid: None,
            listen: vec![],
            ..Default::default()
        }
    }

    /// A listener as system::claims classifies it: in ssh.service's cgroup,
    /// whose active main process is `main`.
    fn listener(pid: u32, comm: &str, exe: &str, uid: u32, main: Option<u32>) -> Listener {
        let unit = crate::identity::CgroupUnit::Unit("ssh.service".into());
        let st = UnitState {
            name: "ssh.service".into(),
            active_state: if main.is_some() { "active" } else { "inactive" }.into(),
            main_pid: main,
            ..Default::default()
        };
        let f = crate::identity::Facts {
            pid,
            uid,
            comm,
            exe,
            other_ns: None,
            unit: &unit,
            ancestors: &[],
        };
        let j = crate::identity::judge(&f, Some(Ok(&st)));
        Listener {
            process: ProcessStamp {
                pid,
                start_time: 777,
            },
            uid,
            comm: comm.into(),
            exe: exe.into(),
            exe_deleted: exe.ends_with("(deleted)"),
            cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups".into(),
            cgroup: "0::/system.slice/ssh.service".into(),
            addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
            class: j.class,
            unit: Some("ssh.service".into()),
            unit_state: Some(st.active_state.clone()),
            why: j.why,
        }
    }

    fn pkg(status: &str) -> PackageState {
        PackageState {
            name: "openssh-server".into(),
            want: "install".into(),
            eflag: "ok".into(),
            status: status.into(),
            version: Some("1:9.6p1".into()),
            architecture: None,
            other_instances: vec![],
            depends: vec![],
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Topo {
        Socket,
        Classic,
    }

    /// A healthy machine of either topology.
    fn healthy(t: Topo) -> Snapshot {
        let units = match t {
            Topo::Socket => Units {
                service: unit("ssh.service", "inactive", "disabled", "success"),
                socket: unit("ssh.socket", "active", "enabled", "success"),
            },
            Topo::Classic => {
                let mut svc = unit("ssh.service", "active", "enabled", "success");
                svc.main_pid = Some(500);
                Units {
                    service: svc,
                    socket: unit("ssh.socket", "inactive", "disabled", "success"),
                }
            }
        };
        let listeners = match t {
            Topo::Socket => vec![listener(1, "systemd", "/usr/lib/systemd/systemd", 0, None)],
            Topo::Classic => vec![listener(500, "sshd", "/usr/sbin/sshd", 0, Some(500))],
        };
        Snapshot {
            package: Some(pkg("installed")),
            ports: vec![22],
            sshd_config: ConfigCheck {
                valid: Some(true),
                error: None,
            },
            units: Some(units),
            listeners,
            sessions: 2,
            ..Default::default()
        }
    }

    fn decide_full(s: &Snapshot) -> Plan {
        decide(s, &Config::default(), Mode::Full)
    }

    fn stops(p: &Plan) -> Vec<u32> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::StopStale { process, .. } => Some(process.pid),
                _ => None,
            })
            .collect()
    }

    /// Puts a stale listener in place of what systemd had: the incident.
    fn with_stale(t: Topo, exe: &str) -> Snapshot {
        let mut s = healthy(t);
        let u = s.units.as_mut().unwrap();
        match t {
            Topo::Socket => u.socket = unit("ssh.socket", "failed", "enabled", "resources"),
            Topo::Classic => {
                u.service = unit("ssh.service", "inactive", "enabled", "success");
            }
        }
        s.listeners = vec![listener(4242, "sshd", exe, 0, None)];
        s
    }

    #[test]
    fn healthy_is_a_noop_in_both_topologies_and_modes() {
        for t in [Topo::Socket, Topo::Classic] {
            for m in [Mode::Preflight, Mode::Full] {
                let p = decide(&healthy(t), &Config::default(), m);
                assert!(p.is_noop_for_test(), "{t:?} {m:?}: {p:?}");
                assert!(p.findings.is_empty());
            }
        }
    }

    #[test]
    fn an_unseen_holder_of_the_port_refuses_any_start() {
        // Without root the stale sshd's socket has no visible owner.
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
        s.unowned_sockets = vec!["0.0.0.0:22".into(), "[::]:22".into()];
        s.as_root = false;
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert_eq!(
            p.refused,
            Some(Refusal::UnseenHolder {
                addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
                as_root: false
            })
        );
        // As root it is still refused (starting would only fail to bind),
        // without the hint, and with a stale listener beside it too.
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd");
        s.unowned_sockets = vec!["[::]:22".into()];
        s.as_root = true;
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert_eq!(
            p.refused,
            Some(Refusal::UnseenHolder {
                addresses: vec!["[::]:22".into()],
                as_root: true
            })
        );
    }

    #[test]
    fn unseen_sockets_of_a_running_holder_are_not_a_problem() {
        // Without root, pid 1's (or sshd's) sockets have no visible owner
        // on a healthy machine: nothing to start, nothing to refuse.
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            s.listeners.clear();
            s.unowned_sockets = vec!["0.0.0.0:22".into()];
            let p = decide_full(&s);
            assert!(p.is_noop_for_test(), "{t:?}: {p:?}");
        }
    }

    #[test]
    fn stale_listener_deleted_exe_socket_topology() {
        let s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        let p = decide_full(&s);
        assert_eq!(stops(&p), vec![4242]);
        assert_eq!(
            p.steps,
            vec![
                Step::ResetFailed {
                    unit: "ssh.socket".into()
                },
                Step::StopStale {
                    process: ProcessStamp {
                        pid: 4242,
                        start_time: 777
                    },
                    exe: "/usr/sbin/sshd (deleted)".into()
                },
                Step::StartUnit {
                    unit: "ssh.socket".into()
                },
                Step::VerifyBanner,
            ]
        );
        assert!(matches!(
            p.findings[0],
            Finding::StaleListener { pid: 4242, .. }
        ));
        assert!(
            p.findings.contains(&Finding::UnitFailed {
                unit: "ssh.socket".into(),
                result: "resources".into()
            }),
            "{:?}",
            p.findings
        );
    }

    #[test]
    fn stale_listener_current_exe_classic_topology() {
        let s = with_stale(Topo::Classic, "/usr/sbin/sshd");
        let p = decide_full(&s);
        assert_eq!(stops(&p), vec![4242]);
        assert!(p.steps.contains(&Step::StartUnit {
            unit: "ssh.service".into()
        }));
        assert_eq!(p.steps.last(), Some(&Step::VerifyBanner));
    }

    #[test]
    fn preflight_stops_stale_but_leaves_the_package_to_dpkg() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.package = Some(pkg("half-configured"));
        let p = decide(&s, &Config::default(), Mode::Preflight);
        assert_eq!(stops(&p), vec![4242]);
        assert!(!p
            .steps
            .iter()
            .any(|s| matches!(s, Step::ConfigurePackage { .. })));
        let p = decide_full(&s);
        assert_eq!(
            &p.steps[p.steps.len() - 2..],
            &[
                Step::ConfigurePackage {
                    package: "openssh-server".into()
                },
                Step::VerifyBanner
            ]
        );
    }

    #[test]
    fn preflight_leaves_a_merely_inactive_socket_to_the_postinst() {
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
        s.listeners.clear();
        assert!(decide(&s, &Config::default(), Mode::Preflight).is_noop_for_test());
        let p = decide_full(&s);
        assert_eq!(
            p.steps,
            vec![
                Step::StartUnit {
                    unit: "ssh.socket".into()
                },
                Step::VerifyBanner
            ]
        );
    }

    #[test]
    fn failed_socket_and_dependency_failed_service() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            let u = s.units.as_mut().unwrap();
            u.socket = unit(
                "ssh.socket",
                "failed",
                u.socket.unit_file_state.clone().as_str(),
                "resources",
            );
            u.service = unit(
                "ssh.service",
                "failed",
                u.service.unit_file_state.clone().as_str(),
                "exit-code",
            );
            s.listeners.clear();
            for m in [Mode::Preflight, Mode::Full] {
                let p = decide(&s, &Config::default(), m);
                assert!(
                    p.steps.contains(&Step::ResetFailed {
                        unit: "ssh.socket".into()
                    }),
                    "{t:?}"
                );
                assert!(
                    p.steps.contains(&Step::ResetFailed {
                        unit: "ssh.service".into()
                    }),
                    "{t:?}"
                );
                assert!(stops(&p).is_empty());
                assert_eq!(p.steps.last(), Some(&Step::VerifyBanner));
            }
        }
    }

    #[test]
    fn half_configured_package_alone() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            s.package = Some(pkg("half-configured"));
            let p = decide_full(&s);
            assert_eq!(
                p.steps,
                vec![
                    Step::ConfigurePackage {
                        package: "openssh-server".into()
                    },
                    Step::VerifyBanner
                ],
                "{t:?}"
            );
            assert!(decide(&s, &Config::default(), Mode::Preflight).is_noop_for_test());
        }
    }

    #[test]
    fn bad_config_never_stops_the_running_listener() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = with_stale(t, "/usr/sbin/sshd (deleted)");
            s.package = Some(pkg("half-configured"));
            s.sshd_config = ConfigCheck {
                valid: Some(false),
                error: Some("/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()),
            };
            for m in [Mode::Preflight, Mode::Full] {
                let p = decide(&s, &Config::default(), m);
                assert!(p.steps.is_empty(), "{t:?} {m:?}");
                assert_eq!(
                    p.refused,
                    Some(Refusal::ConfigRejected {
                        sshd_says: Some(
                            "/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()
                        )
                    })
                );
            }
            s.sshd_config = ConfigCheck {
                valid: None,
                error: Some("sshd not found".into()),
            };
            assert!(decide_full(&s).steps.is_empty());
        }
    }

    fn no_host_keys() -> ConfigCheck {
        ConfigCheck {
            valid: Some(false),
            error: Some("sshd: no hostkeys available -- exiting.".into()),
        }
    }

    #[test]
    fn missing_host_keys_are_generated_first() {
        // ssh.service failed its ExecStartPre=sshd -t.
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().service = unit("ssh.service", "failed", "disabled", "exit-code");
        s.sshd_config = no_host_keys();
        let p = decide_full(&s);
        assert!(p.refused.is_none(), "{p:?}");
        assert!(p.findings.contains(&Finding::NoHostKeys {
            service: "ssh.service".into()
        }));
        assert_eq!(
            p.steps,
            vec![
                Step::GenerateHostKeys,
                Step::ResetFailed {
                    unit: "ssh.service".into()
                },
                Step::VerifyBanner
            ]
        );
        // Nothing failed yet (the socket listens, no connection came): the
        // keys are still missing, and the proof follows their creation.
        let mut s = healthy(Topo::Socket);
        s.sshd_config = no_host_keys();
        for m in [Mode::Preflight, Mode::Full] {
            let p = decide(&s, &Config::default(), m);
            assert_eq!(p.steps, vec![Step::GenerateHostKeys, Step::VerifyBanner]);
        }
        // Before a stale listener is stopped.
        let mut s = with_stale(Topo::Classic, "/usr/sbin/sshd");
        s.sshd_config = no_host_keys();
        let p = decide_full(&s);
        assert_eq!(p.steps[0], Step::GenerateHostKeys);
        assert_eq!(stops(&p), vec![4242]);
    }

    #[test]
    fn missing_host_keys_beside_another_config_error_are_refused() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.sshd_config = ConfigCheck {
            valid: Some(false),
            error: Some(
                "/etc/ssh/sshd_config line 3: Bad configuration option: Bogus\nsshd: no hostkeys available -- exiting.".into(),
            ),
        };
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(
            matches!(&p.refused, Some(Refusal::ConfigRejected { sshd_says: Some(e) }) if e.contains("Bogus")),
            "{p:?}"
        );
    }

    #[test]
    fn foreign_process_on_the_port_is_never_touched() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = with_stale(t, "/usr/sbin/sshd (deleted)");
            s.listeners
                .push(listener(999, "nc", "/usr/bin/nc.openbsd", 0, None));
            s.listeners
                .push(listener(998, "sshd", "/usr/sbin/sshd", 1000, None));
            let p = decide_full(&s);
            assert!(p.steps.is_empty(), "{p:?}");
            assert!(matches!(
                p.refused,
                Some(Refusal::ForeignHolder { pid: 999, .. })
            ));
            assert_eq!(p.left_alone.len(), 3, "{:?}", p.left_alone);
        }
    }

    /// A container's sshd (its own PID namespace) on another address than
    /// ssh's: ssh.service is started around it, the container's is named.
    #[test]
    fn a_foreign_listener_elsewhere_does_not_block_restoring_ssh() {
        let mut s = healthy(Topo::Classic);
        s.units.as_mut().unwrap().service = unit("ssh.service", "inactive", "enabled", "success");
        s.addresses = vec!["127.0.0.1:22".into(), "[::1]:22".into()];
        let mut c = listener(999, "sshd", "/usr/sbin/sshd", 0, None);
        c.class = ListenerClass::Foreign;
        c.why = "in another PID namespace than the guard's".into();
        c.addresses = vec!["127.0.0.3:22".into()];
        s.listeners = vec![c.clone()];
        let p = decide_full(&s);
        assert_eq!(p.refused, None, "{p:?}");
        assert_eq!(
            p.steps,
            vec![
                Step::StartUnit {
                    unit: "ssh.service".into()
                },
                Step::VerifyBanner
            ]
        );
        assert!(p
            .left_alone
            .iter()
            .any(|l| matches!(l, LeftAlone::Foreign { pid: 999, .. })));
        // On an address ssh needs (or a wildcard covering it): refused.
        for held in ["127.0.0.1:22", "0.0.0.0:22", "[::]:22"] {
            let mut s2 = s.clone();
            s2.listeners[0].addresses = vec![held.into()];
            assert!(
                matches!(
                    decide_full(&s2).refused,
                    Some(Refusal::ForeignHolder { pid: 999, .. })
                ),
                "{held}"
            );
        }
    }

    fn off_units(service: (&str, &str), socket: (&str, &str)) -> Snapshot {
        let mut s = healthy(Topo::Classic);
        let mut u = Units {
            service: unit("ssh.service", service.0, service.1, "success"),
            socket: unit("ssh.socket", socket.0, socket.1, "success"),
        };
        for st in [&mut u.service, &mut u.socket] {
            if st.unit_file_state == "masked" {
                st.load_state = "masked".into();
            }
        }
        s.units = Some(u);
        s.listeners.clear();
        s
    }

    #[test]
    fn ssh_disabled_by_the_admin_is_not_started_in_any_mode() {
        let s = off_units(("inactive", "disabled"), ("inactive", "disabled"));
        for m in [Mode::Preflight, Mode::Full] {
            let p = decide(&s, &Config::default(), m);
            assert!(p.is_noop_for_test(), "{m:?}: {p:?}");
            assert!(p.findings.is_empty(), "{p:?}");
            assert_eq!(
                p.intent.to_string(),
                "ssh is off by the admin's choice: ssh.service disabled, ssh.socket disabled"
            );
        }
        assert_eq!(
            crate::report::verdict(&s, &decide_full(&s)),
            "OK: ssh is off by the admin's choice: ssh.service disabled, ssh.socket disabled"
        );
    }

    #[test]
    fn ssh_masked_or_not_to_be_run_gets_no_start_and_no_rescue() {
        let mut masked = off_units(("failed", "masked"), ("inactive", "masked"));
        masked.units.as_mut().unwrap().service.result = "exit-code".into();
        let mut cond = off_units(("inactive", "enabled"), ("inactive", "disabled"));
        cond.intent.not_to_be_run = Some(crate::intent::NOT_TO_BE_RUN.into());
        for s in [masked, cond] {
            let p = decide_full(&s);
            assert!(p.steps.is_empty(), "{p:?}");
            assert!(p.findings.is_empty(), "{p:?}");
            assert!(!p.intent.serves());
            // The package is still completed, with nothing to prove after it.
            let mut s2 = s.clone();
            s2.package = Some(pkg("half-configured"));
            assert_eq!(
                decide_full(&s2).steps,
                vec![Step::ConfigurePackage {
                    package: "openssh-server".into()
                }]
            );
        }
    }

    #[test]
    fn a_stale_listener_while_ssh_is_off_is_left_serving_and_said() {
        let mut s = off_units(("inactive", "disabled"), ("inactive", "disabled"));
        s.listeners = vec![listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, None)];
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(stops(&p).is_empty());
        assert!(p
            .left_alone
            .iter()
            .any(|l| matches!(l, LeftAlone::StaleWhileOff { pid: 4242, .. })));
        assert!(
            crate::report::verdict(&s, &p).starts_with("WARNING: ssh is off by the admin's choice")
        );
    }

    /// Item 2 of the intent issue: the preinst stopped ssh.service, the
    /// postinst restarted a masked socket (a no-op), dpkg says installed.
    #[test]
    fn ssh_that_served_before_dpkg_and_was_stopped_by_it_is_restored_and_said() {
        let mut s = off_units(("inactive", "disabled"), ("inactive", "masked"));
        s.intent.served_before = Some(vec!["ssh.service".into()]);
        let p = decide_full(&s);
        assert!(p.intent.serves(), "{p:?}");
        assert!(
            p.findings
                .iter()
                .any(|f| matches!(f, Finding::StoppedByPackage { .. })),
            "{p:?}"
        );
        assert_eq!(
            p.steps,
            vec![
                Step::StartUnit {
                    unit: "ssh.service".into()
                },
                Step::VerifyBanner
            ]
        );
        // A policy-rc.d that forbids starts is named as the explanation.
        s.intent.policy_rc_d = Some(crate::intent::PolicyRcD {
            path: crate::intent::POLICY_RC_D.into(),
            answer: Some(101),
            error: None,
        });
        let found = decide_full(&s)
            .findings
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(found.contains("/usr/sbin/policy-rc.d forbids"), "{found}");
        // Without the record of what served before, disabled stays off.
        s.intent.served_before = None;
        assert!(decide_full(&s).steps.is_empty());
    }

    #[test]
    fn sessions_are_reported_never_planned() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.sessions = 5;
        let p = decide_full(&s);
        assert!(p.left_alone.contains(&LeftAlone::Sessions { count: 5 }));
        assert_eq!(stops(&p), vec![4242]);
    }

    #[test]
    fn managed_listener_with_replaced_binary_is_restarted_through_systemd() {
        let mut s = healthy(Topo::Classic);
        s.listeners = vec![listener(
            500,
            "sshd",
            "/usr/sbin/sshd (deleted)",
            0,
            Some(500),
        )];
        let p = decide_full(&s);
        assert!(stops(&p).is_empty(), "a managed process is never signalled");
        assert_eq!(
            p.steps,
            vec![
                Step::RestartUnit {
                    unit: "ssh.service".into()
                },
                Step::VerifyBanner
            ]
        );
    }

    /// A second sshd under its own unit, as system::claims classifies it.
    fn mgmt_sshd(pid: u32, exe: &str) -> Listener {
        let mut l = listener(pid, "sshd", exe, 0, Some(pid));
        l.unit = Some("sshd-mgmt.service".into());
        l.why = "main process of sshd-mgmt.service".into();
        l.addresses = vec!["0.0.0.0:2222".into()];
        l
    }

    #[test]
    fn a_second_sshd_under_its_own_unit_is_left_alone_on_a_healthy_host() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            s.listeners.push(mgmt_sshd(600, "/usr/sbin/sshd"));
            let p = decide_full(&s);
            assert!(
                p.steps.is_empty() && p.refused.is_none() && p.findings.is_empty(),
                "{t:?}: {p:?}"
            );
        }
    }

    #[test]
    fn ssh_down_beside_a_second_sshd_restores_ssh_without_touching_it() {
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
        s.listeners = vec![mgmt_sshd(600, "/usr/sbin/sshd")];
        let p = decide_full(&s);
        assert!(stops(&p).is_empty(), "{p:?}");
        assert!(p.steps.contains(&Step::StartUnit {
            unit: "ssh.socket".into()
        }));
        // With the incident's stale listener too: only that one is stopped.
        s.listeners
            .push(listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, None));
        assert_eq!(stops(&decide_full(&s)), vec![4242]);
    }

    #[test]
    fn a_second_sshd_on_a_replaced_binary_is_its_units_business_not_a_restart_of_ssh() {
        let mut s = healthy(Topo::Classic);
        s.listeners.push(mgmt_sshd(600, "/usr/sbin/sshd (deleted)"));
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(
            p.left_alone.iter().any(|l| matches!(
                l,
                LeftAlone::OtherUnitOutdated { pid: 600, unit, .. } if unit == "sshd-mgmt.service"
            )),
            "{p:?}"
        );
    }

    #[test]
    fn no_systemd_means_no_action() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.units = None;
        s.systemd_error = Some("no D-Bus".into());
        let p = decide_full(&s);
        assert!(p.steps.is_empty());
        assert_eq!(
            p.refused,
            Some(Refusal::NoSystemd {
                error: Some("no D-Bus".into())
            })
        );
    }

    #[test]
    fn a_service_holding_the_sockets_port_hands_it_back_in_both_modes() {
        // Road f: ssh.socket enabled but not listening, ssh.service bound
        // :22 itself (a socket unit without RequiredBy=ssh.service).
        let mut s = healthy(Topo::Socket);
        let u = s.units.as_mut().unwrap();
        u.socket = unit("ssh.socket", "inactive", "enabled", "success");
        u.service = unit("ssh.service", "active", "disabled", "success");
        u.service.main_pid = Some(700);
        s.listeners = vec![listener(700, "sshd", "/usr/sbin/sshd", 0, Some(700))];
        for m in [Mode::Preflight, Mode::Full] {
            let p = decide(&s, &Config::default(), m);
            assert!(
                p.findings.iter().any(|f| f
                    .to_string()
                    .starts_with("ssh.service (pid 700) listens on 0.0.0.0:22, [::]:22 itself")),
                "{m:?}: {:?}",
                p.findings
            );
            assert_eq!(
                p.steps,
                vec![
                    Step::StopUnit {
                        unit: "ssh.service".into()
                    },
                    Step::StartUnit {
                        unit: "ssh.socket".into()
                    },
                    Step::VerifyBanner
                ],
                "{m:?}"
            );
            assert!(stops(&p).is_empty(), "a managed sshd is never signalled");
        }
        // With the package to complete, dpkg runs before the banner check
        // (which would start ssh.service through the socket again).
        s.package = Some(pkg("half-configured"));
        assert_eq!(
            decide_full(&s).steps,
            vec![
                Step::StopUnit {
                    unit: "ssh.service".into()
                },
                Step::StartUnit {
                    unit: "ssh.socket".into()
                },
                Step::ConfigurePackage {
                    package: "openssh-server".into()
                },
                Step::VerifyBanner
            ]
        );
        s.package = Some(pkg("installed"));
        // With a replaced binary it is still stopped, not restarted.
        s.listeners[0].exe = "/usr/sbin/sshd (deleted)".into();
        s.listeners[0].exe_deleted = true;
        let p = decide_full(&s);
        assert!(
            !p.steps
                .iter()
                .any(|st| matches!(st, Step::RestartUnit { .. })),
            "{p:?}"
        );
        // A bad configuration still blocks it: stopping could lock out.
        s.sshd_config.valid = Some(false);
        assert!(decide_full(&s).steps.is_empty());
    }

    #[test]
    fn a_rescue_on_a_replaced_binary_is_restarted_as_itself_after_dpkg() {
        // Road g: the rescue (pid 900) started before dpkg replaced sshd.
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "failed", "enabled", "resources");
        s.listeners = vec![listener(
            900,
            "sshd",
            "/usr/sbin/sshd (deleted)",
            0,
            Some(900),
        )];
        s.rescue_pid = Some(900);
        let p = decide_full(&s);
        let found: Vec<String> = p.findings.iter().map(|f| f.to_string()).collect();
        assert!(
            found.contains(&"the guard's rescue sshd (pid 900) still runs the replaced binary /usr/sbin/sshd (deleted)".to_string()),
            "{found:?}"
        );
        assert!(
            !found.iter().any(|f| f.starts_with("ssh.service")),
            "the rescue is not ssh.service: {found:?}"
        );
        let restart = Step::RestartUnit {
            unit: crate::system::systemd::RESCUE_UNIT.into(),
        };
        // With ssh.socket to start (issue 18), the rescue gives way
        // first: the proof brings it back, from the installed binary, if
        // the socket does not serve. Before dpkg too: while it holds the
        // port the postinst's restart fails.
        let retire = Step::RetireRescue {
            unit: crate::system::systemd::RESCUE_UNIT.into(),
        };
        for p in [p, decide(&s, &Config::default(), Mode::Preflight)] {
            let at = p
                .steps
                .iter()
                .position(|st| *st == retire)
                .expect("retires the rescue");
            let start = p
                .steps
                .iter()
                .position(|st| matches!(st, Step::StartUnit { .. }))
                .unwrap();
            assert!(at < start, "before the socket starts: {:?}", p.steps);
            assert!(!p.steps.contains(&restart), "{p:?}");
        }
        // Alone (units healthy), it is restarted and checked.
        let mut s2 = healthy(Topo::Socket);
        s2.listeners.push(listener(
            900,
            "sshd",
            "/usr/sbin/sshd (deleted)",
            0,
            Some(900),
        ));
        s2.rescue_pid = Some(900);
        assert_eq!(decide_full(&s2).steps, vec![restart, Step::VerifyBanner]);
    }

    #[test]
    fn a_masked_running_socket_the_postinst_restarts_is_refused_with_the_fix() {
        // Road b.
        let mut s = healthy(Topo::Socket);
        let u = s.units.as_mut().unwrap();
        u.socket.load_state = "masked".into();
        u.socket.unit_file_state = "masked".into();
        s.package = Some(pkg("half-configured"));
        s.packaging_records = crate::roads::PackagingRecords {
            socket_was_enabled: Some(true),
            service_was_enabled: Some(false),
        };
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        let r = p.refused.unwrap().to_string();
        assert!(r.contains("'systemctl unmask ssh.socket'"), "{r}");
        assert!(p.findings.iter().any(|f| f
            .to_string()
            .starts_with("ssh.socket is masked but still running")));
    }

    #[test]
    fn a_start_limit_keeps_the_failed_units_wording_and_adds_systemds() {
        // Road a.
        let mut s = healthy(Topo::Socket);
        let u = s.units.as_mut().unwrap();
        u.socket = unit("ssh.socket", "failed", "enabled", "service-start-limit-hit");
        u.service = unit("ssh.service", "failed", "disabled", "start-limit-hit");
        s.listeners.clear();
        let p = decide_full(&s);
        let found: Vec<String> = p.findings.iter().map(|f| f.to_string()).collect();
        assert!(
            found.contains(&"ssh.service failed (result start-limit-hit): \"Start request repeated too quickly\"".to_string()),
            "{found:?}"
        );
        assert!(p.steps.contains(&Step::ResetFailed {
            unit: "ssh.service".into()
        }));
        assert!(p.steps.contains(&Step::StartUnit {
            unit: "ssh.socket".into()
        }));
    }

    #[test]
    fn findings_gates_and_steps_each_decide_their_part() {
        let s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        let facts = Facts::of(&s);
        let (found, left) = findings(&s, &facts, "ssh.service");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(left, vec![LeftAlone::Sessions { count: 2 }]);
        let w = work(&s, &facts, Mode::Preflight);
        assert_eq!(
            w,
            Work {
                listeners: true,
                package: false,
                rescue: false
            }
        );
        assert_eq!(gate(&s, &facts, w), None);
        assert_eq!(
            gate(&s, &facts, Work::default()),
            None,
            "no work, no refusal"
        );
        let steps = steps(&s, &facts, w, &Config::default());
        assert_eq!(
            steps.first(),
            Some(&Step::ResetFailed {
                unit: "ssh.socket".into()
            })
        );
        let mut bad = s.clone();
        bad.sshd_config.valid = None;
        assert_eq!(
            gate(&bad, &Facts::of(&bad), w),
            Some(Refusal::ConfigUnchecked { why: None })
        );
    }

    #[test]
    fn display_is_the_wording_reports_and_json_use() {
        assert_eq!(
            Finding::UnitFailed {
                unit: "ssh.socket".into(),
                result: String::new()
            }
            .to_string(),
            "ssh.socket failed (result unknown)"
        );
        assert_eq!(
            serde_json::to_string(&Refusal::NoSystemd { error: None }).unwrap(),
            "\"cannot reach systemd (unknown error); nothing was changed\""
        );
        assert_eq!(
            Refusal::UnseenHolder {
                addresses: vec!["[::]:22".into()],
                as_root: false
            }
            .to_string(),
            "[::]:22 is held by a process the guard cannot see (not run as root: run it as root to see every process); it cannot restore ssh while that is so"
        );
    }

    #[test]
    fn every_topology_fault_combination_only_ever_stops_stale_root_sshd() {
        let faults: Vec<fn(&mut Snapshot)> = vec![
            |s| {
                s.listeners
                    .push(listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, None))
            },
            |s| {
                s.listeners
                    .push(listener(4243, "sshd", "/usr/sbin/sshd", 0, None))
            },
            |s| s.units.as_mut().unwrap().socket.active_state = "failed".into(),
            |s| s.units.as_mut().unwrap().service.active_state = "failed".into(),
            |s| s.package = Some(pkg("half-configured")),
            |s| s.sshd_config.valid = Some(false),
            |s| {
                s.listeners
                    .push(listener(4244, "python3", "/usr/bin/python3", 0, None))
            },
            |s| s.sessions = 3,
            |s| {
                s.sshd_config = ConfigCheck {
                    valid: Some(false),
                    error: Some("sshd: no hostkeys available -- exiting.".into()),
                }
            },
        ];
        for t in [Topo::Socket, Topo::Classic] {
            for mask in 0u32..(1 << faults.len()) {
                let mut s = healthy(t);
                for (i, f) in faults.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        f(&mut s);
                    }
                }
                for m in [Mode::Preflight, Mode::Full] {
                    let p = decide(&s, &Config::default(), m);
                    for pid in stops(&p) {
                        let l = s.listeners.iter().find(|l| l.process.pid == pid).unwrap();
                        assert_eq!(l.class, ListenerClass::Stale);
                        assert_eq!(l.uid, 0);
                    }
                    let keys_missing = s.sshd_config.error.is_some();
                    if s.sshd_config.valid != Some(true) && !keys_missing {
                        assert!(
                            p.steps.is_empty(),
                            "bad config must block every step: {p:?}"
                        );
                    }
                    if keys_missing && !p.steps.is_empty() {
                        assert_eq!(
                            p.steps[0],
                            Step::GenerateHostKeys,
                            "keys come before anything touches sshd"
                        );
                    }
                    if !p.steps.is_empty() {
                        assert!(
                            p.steps.contains(&Step::VerifyBanner),
                            "every action is verified: {p:?}"
                        );
                    }
                }
            }
        }
    }
}
