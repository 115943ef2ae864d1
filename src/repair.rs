//! Carrying out a plan. Every step is checked before (the plan was made only
//! if sshd accepts its configuration; a stale pid is re-verified through its
//! pidfd) and after (an SSH-2.0 banner must answer on every address and a
//! key exchange complete with this host's key; if no address serves, a
//! rescue sshd is started so nobody is locked out).
//!
//! [`execute`] holds the ordering rules and acts only through the
//! [`UnitControl`] seam: [`Machine`] is the real one (systemd, signals, dpkg,
//! sockets, ssh-keyscan, ssh-keygen); tests drive the rules with a recording fake.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::config::Config;
use crate::hostkeys::PubKey;
use crate::model::ConfigCheck;
#[cfg(test)]
use crate::model::ListenerClass;
use crate::model::{ProcessStamp, Snapshot};
use crate::plan::Step;
use crate::sshd::Endpoint;
use crate::system::kex::Serving;
use crate::system::signal::Stopped;
use crate::system::sshd;
#[cfg(test)]
use crate::system::systemd::RESCUE_UNIT;
use anyhow::Result;
use std::time::Duration;

/// How long a systemd job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a unit whose start job failed is watched for systemd's own
/// Restart= bringing it up (ssh.service: RestartSec 100 ms; a few tries).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A unit's state once systemd has settled it (no job, no pending
/// auto-restart), or when the settle bound passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// ActiveState active (or reloading).
    pub active: bool,
    /// systemd's automatic restarts since the guard's start (NRestarts);
    /// None when not read (sockets have none).
    pub n_restarts: Option<u32>,
    /// "ActiveState/SubState", for the report.
    pub state: String,
}

/// The guard's own unit starts, one "UNIXTIME UNIT" line each, under the
/// run directory (see roads::start_budget).
pub const START_LEDGER: &str = "unit-starts";

/// What a repair did, in the order it happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (true: done, false: failed), one line each.
    pub events: Vec<(bool, String)>,
    /// Other packages left not fully installed, "name (status)": named in
    /// the report, but not ssh's problem nor a failure of the repair.
    pub unrelated: Vec<String>,
}

impl Outcome {
    /// Records a step done.
    fn did(&mut self, s: String) {
        self.events.push((true, s));
    }
    /// Records a step that failed.
    fn failed(&mut self, s: String) {
        self.events.push((false, s));
    }
    /// Whether any step failed.
    pub fn any_failed(&self) -> bool {
        self.events.iter().any(|(ok, _)| !ok)
    }
}

/// Everything a repair does to the machine. [`execute`] decides the order;
/// an implementation only carries out one action.
pub trait UnitControl {
    /// Subscribes to systemd's job signals before anything is stopped.
    fn prepare_jobs(&self) -> Result<()>;
    /// systemctl reset-failed UNIT.
    fn reset_failed(&self, unit: &str) -> Result<()>;
    /// systemctl start UNIT, waiting for the job.
    fn start(&self, unit: &str) -> Result<()>;
    /// systemctl restart UNIT, waiting for the job.
    fn restart(&self, unit: &str) -> Result<()>;
    /// systemctl stop UNIT, waiting for the job (road f: ssh.service
    /// handing the port back to ssh.socket; KillMode=process keeps sessions).
    fn stop(&self, unit: &str) -> Result<()>;
    /// The guard's own start ledger (see roads::start_budget) and now.
    fn start_ledger(&self) -> (String, u64);
    /// Records one start of `unit` by the guard in the ledger.
    fn record_start(&self, unit: &str);
    /// Stops a stale listener if it still is the process that was found.
    fn stop_stale(&self, process: ProcessStamp, exe: &str) -> Result<Stopped>;
    /// Waits (polling, at most `within`) until no process listens on any of
    /// `addresses` ("0.0.0.0:22", "[::]:22": what stopped listeners held),
    /// so that a unit started next can bind them. Returns those still held
    /// when the bound passed (empty: all free).
    fn wait_free(&self, addresses: &[String], within: Duration) -> Vec<String>;
    /// After a start or restart job failed: the unit's state once systemd
    /// settled it (bounded by `within`; an `auto-restart` or `activating`
    /// unit is waited for), so that a unit systemd's Restart= brought up is
    /// judged by that end state, not by the failed job.
    fn settle(&self, unit: &str, within: Duration) -> Settled;
    /// Whether ssh serves on each target: an SSH-2.0 banner (waited for
    /// until the banner timeout passes), then a key exchange with this
    /// host's key (system::kex).
    fn serves(&self, targets: &[Endpoint]) -> Serving;
    /// `ssh-keygen -A`: creates the missing default host keys; returns the
    /// new ones.
    fn generate_host_keys(&self) -> Result<Vec<PubKey>>;
    /// `sshd -T` with the installed binary and the options ssh.service
    /// passes: does it accept its configuration?
    fn check_config(&self) -> ConfigCheck;
    /// Starts the transient rescue sshd with the options ssh.service
    /// passes (SSHD_OPTS).
    fn start_rescue_sshd(&self, opts: &[String]) -> Result<()>;
    /// dpkg --configure `package` (arch-qualified when the package has
    /// several stanzas) and those waiting for it.
    fn configure_package(&self, package: &str, out: &mut Outcome) -> Result<()>;
    /// The termination signal (SIGINT, SIGHUP, SIGTERM: "SIGINT") that came
    /// while a critical stretch held it off (system::signal), if any:
    /// asked when a stretch ends, and the repair then stops there.
    fn interrupted(&self) -> Option<String>;
}

/// The most a critical stretch over `steps` can take: the sum of each
/// step's own bounds (a stop's SIGTERM wait, SIGKILL and the wait for its
/// addresses; a job; the package configure and the one for the packages
/// waiting for it; a proof, the rescue and its proof), so that a hook's
/// grace follows the settings (STOP_TIMEOUT and BANNER_TIMEOUT go up to a
/// day) instead of a fixed figure.
pub fn grace(cfg: &Config, steps: &[Step]) -> Duration {
    // A banner wait, then a key exchange bounded by the same timeout, and
    // the 2 s sshd -T that may follow it (system::kex).
    let proof = cfg.banner_timeout * 2 + Duration::from_secs(2);
    // The proof, the rescue (with ssh.socket stopped first and perhaps
    // started again) and its proof.
    let verify = proof * 2 + JOB_TIMEOUT * 3;
    let per_step = |s: &Step| match s {
        // Its SIGTERM wait and SIGKILL, and the wait for its addresses
        // when it failed (execute).
        Step::StopStale { .. } => cfg.stop_timeout * 3 + Duration::from_secs(5),
        Step::ResetFailed { .. } => crate::system::systemd::METHOD_TIMEOUT,
        Step::StartUnit { .. } | Step::RestartUnit { .. } => {
            JOB_TIMEOUT + SETTLE_TIMEOUT + cfg.stop_timeout
        }
        Step::StopUnit { .. } | Step::RetireRescue { .. } => JOB_TIMEOUT,
        Step::VerifyBanner => verify,
        Step::GenerateHostKeys => Duration::from_secs(60) + sshd::SSHD_T_TIMEOUT,
        Step::ConfigurePackage { .. } => cfg.configure_timeout * 2,
    };
    // The final proof execute adds when the plan ends unproven.
    steps.iter().map(per_step).sum::<Duration>() + verify
}

/// Whether a step can leave ssh down, or runs while it may be: from the
/// first such step until ssh is proven (or the rescue tried), nothing
/// may cut the repair short (deadline::critical) and every failure goes on
/// to the proof. Starts belong here too: a start after a stop is what
/// brings ssh back, and a failed one is what the proof must catch.
fn touches_ssh(step: &Step) -> bool {
    match step {
        // ConfigurePackage: the postinst restarts ssh.socket or ssh.service.
        Step::StopStale { .. }
        | Step::RetireRescue { .. }
        | Step::StopUnit { .. }
        | Step::StartUnit { .. }
        | Step::RestartUnit { .. }
        | Step::ConfigurePackage { .. } => true,
        Step::ResetFailed { .. } | Step::VerifyBanner | Step::GenerateHostKeys => false,
    }
}

/// Executes the steps in order, as a transaction from the first step that
/// touches what serves ssh ([`touches_ssh`]): from there on every failure
/// (a second stale listener that will not stop, a start job failing or
/// timing out, dpkg failing) skips to the proof and its rescue, never
/// returns early, and the stretch until ssh is proven is critical (a hook's
/// deadline waits for it, SIGINT/SIGHUP/SIGTERM are held off until it ends;
/// then the repair stops there, saying so in one line). Before anything was
/// touched, a failure ends the repair: a stale listener that could not be
/// stopped still serves logins; without host keys nothing can start.
pub fn execute(m: &impl UnitControl, cfg: &Config, snap: &Snapshot, steps: &[Step]) -> Outcome {
    let mut out = Outcome::default();
    if !prepare(m, steps, &mut out) {
        return out;
    }
    let grace = grace(cfg, steps);
    // Addresses held by listeners stopped since the last start.
    let mut freed: Vec<String> = Vec::new();
    // What the rescue needs to know (see Before).
    let mut before = Before {
        within: cfg.stop_timeout,
        ..Before::default()
    };
    // Something that served was stopped (not only started or configured):
    // the plan ends with a proof whether it asked for one or not.
    let mut stopped_any = false;
    let mut skip_to_verify = false;
    // Unit starts that failed (their line in `out.events`, the unit):
    // judged again once ssh is proven (rejudge).
    let mut failed_starts: Vec<(usize, String)> = Vec::new();
    // Something that serves was touched: no early return from here on.
    let mut touched = false;
    // The critical stretch: from the first step that touches ssh until ssh
    // is proven again (or the rescue tried).
    let mut restoring: Option<crate::deadline::Critical> = None;
    for (i, step) in steps.iter().enumerate() {
        // Skipped after a failure: all but the proof, and the stops of the
        // other stale listeners (each re-checked before its signal), so
        // that the rescue can bind their addresses (sim: a pre-auth child
        // left running by a skipped stop kept the rescue from binding).
        if skip_to_verify && !matches!(step, Step::VerifyBanner | Step::StopStale { .. }) {
            continue;
        }
        if touches_ssh(step) {
            restoring.get_or_insert_with(|| crate::deadline::critical_for(grace));
        }
        let r: Result<()> = match step {
            Step::VerifyBanner => {
                let answers = verify(m, snap, &before, &mut out);
                // ssh answers again, or the rescue sshd was tried: the
                // deadline may cut what follows.
                restoring = None;
                if answers {
                    rejudge(m, &mut out, &mut failed_starts);
                }
                if let Some(sig) = m.interrupted() {
                    stopped_by_signal(&mut out, &sig, &steps[i + 1..]);
                    return out;
                }
                if !answers {
                    // The package step would restart ssh again; stop here.
                    return out;
                }
                // ssh is proven to serve and every failure before was a
                // start whose unit came up after all: the package step
                // after the proof runs as planned.
                skip_to_verify &= out.any_failed();
                Ok(())
            }
            Step::StartUnit { unit } | Step::RestartUnit { unit } => {
                wait_for_freed(m, cfg, &mut freed);
                start_unit(m, step, unit, &mut out)
            }
            _ => run_step(m, cfg, step, &mut out),
        };
        if r.is_ok() {
            note_stopped(snap, step, &mut before, &mut freed);
        }
        stopped_any |= matches!(
            step,
            Step::StopStale { .. }
                | Step::StopUnit { .. }
                | Step::RestartUnit { .. }
                | Step::RetireRescue { .. }
        );
        if let Err(e) = r {
            out.failed(format!("{e:#}"));
            if let Step::StartUnit { unit } | Step::RestartUnit { unit } = step {
                failed_starts.push((out.events.len() - 1, unit.clone()));
            }
            match after_failure(m, cfg, snap, step, touched, &mut freed) {
                Next::Stop => return out,
                Next::Skip => skip_to_verify = true,
                Next::Go => {}
            }
        }
        if touches_ssh(step) {
            touched = true;
        }
    }
    // The plan ended inside the stretch (a failure skipped to a proof that
    // was not there, or the plan had none after its last touch): prove ssh
    // now, with the rescue if it does not serve.
    // A plan that only configured or started, without a proof of its own
    // (where ssh should not serve, intent), keeps ssh as it was: no rescue.
    let asked = steps.iter().any(|s| matches!(s, Step::VerifyBanner));
    if restoring.is_some() && (stopped_any || asked) {
        if verify(m, snap, &before, &mut out) {
            rejudge(m, &mut out, &mut failed_starts);
        }
        drop(restoring);
        if let Some(sig) = m.interrupted() {
            stopped_by_signal(&mut out, &sig, &[]);
        }
    }
    out
}

/// What execute does after a step failed.
enum Next {
    /// End the repair here: nothing that serves was touched.
    Stop,
    /// Skip to the proof (and the other stale listeners' stops).
    Skip,
    /// Go on with the next step.
    Go,
}

/// The rule after a failed step (see [`execute`]).
fn after_failure(
    m: &impl UnitControl,
    cfg: &Config,
    snap: &Snapshot,
    step: &Step,
    touched: bool,
    freed: &mut Vec<String>,
) -> Next {
    match step {
        // reset-failed touches nothing that serves: the start after it is
        // tried all the same (and judged by its end state).
        Step::ResetFailed { .. } => Next::Go,
        // Without host keys sshd cannot start: touch nothing.
        Step::GenerateHostKeys if !touched => Next::Stop,
        // Nothing that serves was touched yet, and the stale listener (or
        // the rescue) still holds its addresses: it still serves logins;
        // touch nothing. If they are free (it exited by itself, or died
        // after all: a stop job that timed out after it acted), ssh is
        // down: the plan goes on to bring it back. Waited for (bounded): a
        // pre-auth child the listener forked may hold them for a moment
        // after it exited (sim S9); the next steps stop such children.
        Step::StopStale { .. } | Step::RetireRescue { .. } if !touched => {
            let addrs = stopped_addresses(snap, step);
            if addrs.is_empty() || !m.wait_free(&addrs, cfg.stop_timeout).is_empty() {
                return Next::Stop;
            }
            log::info!(
                "{} no longer held: ssh is down, the repair goes on",
                addrs.join(", ")
            );
            freed.extend(addrs);
            Next::Go
        }
        _ => Next::Skip,
    }
}

/// Before a unit start: a listener's exit is not its addresses' release (a
/// pre-auth child it forked, the socket's teardown), and a unit started now
/// could fail to bind them; waited for, bounded by STOP_TIMEOUT.
fn wait_for_freed(m: &impl UnitControl, cfg: &Config, freed: &mut Vec<String>) {
    if freed.is_empty() {
        return;
    }
    let held = m.wait_free(freed, cfg.stop_timeout);
    if !held.is_empty() {
        log::warn!(
            "still held {} s after the stale listener stopped: {}",
            cfg.stop_timeout.as_secs(),
            held.join(", ")
        );
    }
    freed.clear();
}

/// What is done before anything is touched; false when the repair must
/// not go on (the start budget refuses, or no job signals).
fn prepare(m: &impl UnitControl, steps: &[Step], out: &mut Outcome) -> bool {
    // The guard's own starts are never the storm (issue 12, road a):
    // checked before anything is stopped, so a refusal leaves the running
    // listener alone.
    let starts: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::StartUnit { unit } | Step::RestartUnit { unit } => Some(unit.as_str()),
            _ => None,
        })
        .collect();
    let (ledger, now) = m.start_ledger();
    if let Some(why) = crate::roads::start_budget(&ledger, &starts, now) {
        out.failed(why);
        return false;
    }
    // Everything that can be done before a stale listener is stopped is
    // done first, so that between its exit and systemd listening again there
    // is only the start request: subscribe to job signals, and reset-failed
    // every unit about to be started (it also clears the start-rate counter,
    // which repeated repairs would otherwise hit: start-limit-hit).
    if let Err(e) = m.prepare_jobs() {
        out.failed(format!("{e:#}"));
        return false;
    }
    for step in steps {
        if let Step::StartUnit { unit } | Step::RestartUnit { unit } = step {
            let _ = m.reset_failed(unit);
        }
    }
    true
}

/// After a stop that succeeded: the addresses it freed, for the next unit
/// start (`freed`) and the rescue (`before`).
fn note_stopped(snap: &Snapshot, step: &Step, before: &mut Before, freed: &mut Vec<String>) {
    match step {
        Step::StopStale { process, .. } => {
            let addrs = addresses_of(snap, *process);
            before.stopped.extend(addrs.iter().cloned());
            freed.extend(addrs);
        }
        Step::RetireRescue { .. } => {
            before.retired = true;
            freed.extend(stopped_addresses(snap, step));
        }
        _ => {}
    }
}

/// The addresses a stop step's process held, as the snapshot saw them.
fn stopped_addresses(snap: &Snapshot, step: &Step) -> Vec<String> {
    match step {
        Step::StopStale { process, .. } => addresses_of(snap, *process),
        Step::RetireRescue { .. } => snap
            .listeners
            .iter()
            .filter(|l| Some(l.process.pid) == snap.rescue_pid)
            .flat_map(|l| l.addresses.iter().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// The addresses the snapshot saw `process` listen on.
fn addresses_of(snap: &Snapshot, process: ProcessStamp) -> Vec<String> {
    snap.listeners
        .iter()
        .filter(|l| l.process == process)
        .flat_map(|l| l.addresses.iter().cloned())
        .collect()
}

mod act;
mod machine;
mod proof;
use act::{rejudge, run_step, start_unit, stopped_by_signal};
pub use machine::Machine;
use proof::{verify, Before};

#[cfg(test)]
mod tests;
