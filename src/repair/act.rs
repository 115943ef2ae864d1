//! One step of a plan at a time: each action carried out through
//! [`UnitControl`] and said in the repair's report, a start judged by its
//! unit's end state, a failed start looked at again once ssh is proven,
//! and the one line for a signal held off until ssh was restored.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::{Outcome, UnitControl, SETTLE_TIMEOUT};
use crate::config::Config;
use crate::plan::Step;
use crate::system::signal::Stopped;
use anyhow::{anyhow, Result};
use std::time::Duration;

/// Once ssh is proven: a unit whose start failed earlier in the repair and
/// is active now (socket activation or systemd's Restart= brought it up
/// while the proof connected, sim S4) is said so; its line no longer reads
/// as a failure.
pub(super) fn rejudge(
    m: &impl UnitControl,
    out: &mut Outcome,
    failed_starts: &mut Vec<(usize, String)>,
) {
    for (i, unit) in failed_starts.drain(..) {
        let st = m.settle(&unit, Duration::ZERO);
        if !st.active {
            continue;
        }
        if let Some(ev) = out.events.get_mut(i) {
            *ev = (
                true,
                format!(
                    "{unit} is {} after all, by the time ssh was proven (its start had failed: {})",
                    st.state, ev.1
                ),
            );
        }
    }
}

/// One step other than the proof.
pub(super) fn run_step(
    m: &impl UnitControl,
    cfg: &Config,
    step: &Step,
    out: &mut Outcome,
) -> Result<()> {
    match step {
        Step::StopStale { process, exe } => m.stop_stale(*process, exe).map(|how| {
            let pid = process.pid;
            out.did(match how {
                Stopped::AlreadyGone => {
                    format!("stale listener pid {pid} had already exited")
                }
                Stopped::Term => {
                    format!("stopped stale sshd listener pid {pid} ({exe}) with SIGTERM")
                }
                Stopped::Kill => format!(
                    "stopped stale sshd listener pid {pid} ({exe}) with SIGKILL after {} s",
                    cfg.stop_timeout.as_secs()
                ),
            })
        }),
        Step::ResetFailed { unit } => m
            .reset_failed(unit)
            .map(|_| out.did(format!("reset the failed state of {unit}"))),
        Step::StartUnit { unit } | Step::RestartUnit { unit } => start_unit(m, step, unit, out),
        Step::RetireRescue { unit } => m.stop(unit).map(|_| {
            out.did(format!(
                "stopped the rescue sshd ({unit}; sessions kept) so that ssh.socket/ssh.service serve again"
            ))
        }),
        // ssh.service stopped so that ssh.socket can take the port (road f).
        Step::StopUnit { unit } => m
            .stop(unit)
            .map(|_| out.did(format!("stopped {unit} (sessions kept)"))),
        Step::GenerateHostKeys => m.generate_host_keys().and_then(|new| {
            let keys: Vec<String> = new
                .iter()
                .map(|k| format!("{} {}", k.kind(), k.fingerprint()))
                .collect();
            out.did(format!(
                "created the missing host keys with ssh-keygen -A: {} (clients that knew the old keys will warn that the host key changed)",
                keys.join(", ")
            ));
            // Checked again before anything touches sshd.
            match m.check_config() {
                c if c.valid == Some(true) => Ok(()),
                c => Err(anyhow!(
                    "sshd still rejects its configuration after ssh-keygen -A, so nothing else was done: {}",
                    c.error.as_deref().unwrap_or("(no message)")
                )),
            }
        }),
        Step::ConfigurePackage { package } => m.configure_package(package, out),
        Step::VerifyBanner => Ok(()),
    }
}

/// A start or restart, judged by the unit's end state: a failed job whose
/// unit systemd's Restart= brought up (or that is active all the same) is a
/// start, said as such; a unit that did not come up is the job's failure.
pub(super) fn start_unit(
    m: &impl UnitControl,
    step: &Step,
    unit: &str,
    out: &mut Outcome,
) -> Result<()> {
    let (job, verb) = match step {
        Step::RestartUnit { .. } => (m.restart(unit), "restarted"),
        _ => (m.start(unit), "started"),
    };
    // Recorded once the job is done, not before it: between a stale
    // listener's exit and this request nothing listens, and the ledger's
    // write (a temporary file and a rename) was in that window (make bench:
    // 9 refused probes in 10 repairs, 0.1.0 2).
    m.record_start(unit);
    let Err(e) = job else {
        out.did(format!("{verb} {unit}"));
        return Ok(());
    };
    let st = m.settle(unit, SETTLE_TIMEOUT);
    if !st.active {
        return Err(e.context(format!("{unit} is {}", st.state)));
    }
    let how = match st.n_restarts {
        Some(n) if n > 0 => "systemd's Restart= brought it up".to_string(),
        _ => format!("it is {} all the same", st.state),
    };
    out.did(format!(
        "{verb} {unit} (its first start failed: {e:#}; {how})"
    ));
    Ok(())
}

/// The one line for a termination signal held off during the critical
/// stretch: ssh was restored (or the rescue tried) first; what the plan
/// had left is not done, and the signal is honoured once the report is out
/// (system::signal::honour_held).
pub(super) fn stopped_by_signal(out: &mut Outcome, sig: &str, left: &[Step]) {
    let left: Vec<String> = left
        .iter()
        .filter(|s| !matches!(s, Step::VerifyBanner))
        .map(|s| s.to_string())
        .collect();
    if left.is_empty() {
        out.did(format!(
            "{sig} received during the repair: finished restoring ssh before honouring it"
        ));
    } else {
        out.failed(format!(
            "{sig} received during the repair: finished restoring ssh before honouring it; not done: {}",
            left.join("; ")
        ));
    }
}
