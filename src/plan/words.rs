//! What the decision says, as types: findings, refusals, what is left alone
//! and the steps. Code matches their variants; their `Display` is the wording
//! admins read and `status --json` carries.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::model::ProcessStamp;
use serde::Serialize;
use std::fmt;

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
