//! The reporting commands: `status` (the table or JSON), `check` (the
//! monitoring-plugin line) and `inhibited` (may a watchdog act?). They
//! change nothing but a stale marker.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::diagnose::{inhibition, report_snapshot};
use super::output::Outcome;
use super::record::{observed_from, Inhibit};
use super::{exit, Ctx};
use crate::metrics::{self, PluginState};
use crate::model::Snapshot;
use crate::plan::{Finding, Mode, Plan};
use crate::report;
use crate::system::kex::{self, Serving};

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The table with its verdict line.
    Text,
    /// `status --json`, schema 1.
    Json,
}

/// Which exit codes `check` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Convention {
    /// Nagios/Icinga: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    MonitoringPlugin,
    /// node-problem-detector: 0 OK, 1 problem, 2 unknown.
    NodeProblemDetector,
}

/// Whether `status`/`check` also prove that ssh serves (`--probe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Only the snapshot: no connection to ssh.
    Off,
    /// A banner and a key exchange on every address (system::kex); when ssh
    /// does not serve, that is one more finding.
    KeyExchange,
}

/// Runs the probe if asked for; a failure becomes a finding of `plan`.
fn probe(ctx: &Ctx, snap: &Snapshot, plan: &mut Plan, probe: Probe) -> Option<Serving> {
    if probe == Probe::Off {
        return None;
    }
    let s = kex::probe(&ctx.roots, &ctx.cfg, snap);
    if !s.ok {
        plan.findings.push(Finding::NotServing {
            why: s.summary.clone(),
        });
    }
    Some(s)
}

/// `inhibited`: exit 0 when a watchdog must wait, 1 when it may act.
pub(crate) fn inhibited(ctx: &Ctx) -> Outcome {
    let mut warnings = Vec::new();
    let why = inhibition(ctx, &mut warnings);
    let mut o = Outcome::exit(match &why {
        Some(_) => exit::OK,
        None => exit::PROBLEM,
    });
    for w in warnings {
        o = o.warn(w);
    }
    match why {
        Some(why) => o.info(format!("inhibited: {why}")),
        None => o.info("not inhibited: no live marker, dpkg's locks are free"),
    }
}

/// Healthy as `status` judges it: nothing found, nothing refused, systemd
/// answered.
fn healthy(snap: &Snapshot, plan: &Plan) -> bool {
    plan.findings.is_empty() && plan.refused.is_none() && snap.units.is_some()
}

/// The `status --json` document (schema 1). `probe` is null without
/// `--probe`.
pub(crate) fn status_json(
    snap: &Snapshot,
    plan: &Plan,
    probe: Option<&Serving>,
) -> serde_json::Result<String> {
    let v = serde_json::json!({
        "schema": 1,
        "verdict": report::verdict(snap, plan),
        "healthy": healthy(snap, plan),
        "snapshot": snap,
        "plan": plan,
        "probe": probe,
        "roads": crate::roads::Roads::of(snap),
    });
    serde_json::to_string_pretty(&v)
}

/// The status table, and the probe's line when there was one.
pub(crate) fn status_text(snap: &Snapshot, plan: &Plan, probe: Option<&Serving>) -> String {
    let mut text = report::status_text(snap, plan);
    if let Some(p) = probe {
        text.push_str(&format!("  probe       {}\n", p.summary));
    }
    text
}

/// `status`: the snapshot and its plan, as a table or JSON.
pub(crate) fn status(ctx: &Ctx, format: Format, with: Probe) -> Outcome {
    let snap = report_snapshot(ctx);
    let mut plan = ctx.plan(&snap, Mode::Full);
    let probed = probe(ctx, &snap, &mut plan, with);
    let code = if snap.units.is_none() && snap.listeners.is_empty() && plan.findings.is_empty() {
        exit::INTERNAL
    } else if healthy(&snap, &plan) {
        exit::OK
    } else {
        exit::PROBLEM
    };
    match format {
        Format::Json => match status_json(&snap, &plan, probed.as_ref()) {
            Ok(s) => Outcome::exit(code).print(s + "\n"),
            Err(e) => Outcome::failed(&e.into()),
        },
        Format::Text => Outcome::exit(code).print(status_text(&snap, &plan, probed.as_ref())),
    }
}

/// `check`'s state and line for a snapshot and its plan (and the probe's
/// result, with `--probe`).
pub(crate) fn check_line(
    ctx: &Ctx,
    snap: &Snapshot,
    plan: &Plan,
    probe: Option<&Serving>,
) -> (PluginState, String) {
    let inhibit = if snap.marker.live || snap.locks.iter().any(|l| l.holder_pid.is_some()) {
        Inhibit::Inhibited
    } else {
        Inhibit::Free
    };
    let o = observed_from(ctx, snap, inhibit);
    let state = metrics::plugin_state(
        &o,
        snap.units.is_some(),
        plan.findings.len() + usize::from(plan.refused.is_some()),
    );
    let summary = match state {
        PluginState::Ok if !plan.intent.serves() => plan.intent.to_string(),
        PluginState::Ok => match probe {
            Some(p) => format!("ssh is healthy; {}", p.summary),
            None => "ssh is healthy".to_string(),
        },
        _ => report::verdict(snap, plan),
    };
    (state, metrics::plugin_line(state, &summary, &o))
}

/// `check`: one monitoring-plugin line with perfdata.
pub(crate) fn check(ctx: &Ctx, convention: Convention, with: Probe) -> Outcome {
    let snap = report_snapshot(ctx);
    let mut plan = ctx.plan(&snap, Mode::Full);
    let probed = probe(ctx, &snap, &mut plan, with);
    let (state, line) = check_line(ctx, &snap, &plan, probed.as_ref());
    let code = match convention {
        Convention::NodeProblemDetector => state.npd_code(),
        Convention::MonitoringPlugin => state as i32,
    };
    Outcome::exit(code).print(line + "\n")
}
