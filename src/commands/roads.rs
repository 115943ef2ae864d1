//! The neighbouring roads (issue 12 §2) where the commands meet them
//! outside a full diagnosis: road b's prediction and report from the units
//! the hooks and the watchdog read anyway, road d's check on the watchdog's
//! healthy path, road e's report while the watchdog is inhibited.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::output::Outcome;
use super::record::{metrics_enabled, observed_fast, Inhibit, PackageOk, Record};
use super::{exit, Ctx};
use crate::model::Units;
use crate::system::fast::{self, Detail};
use crate::system::snapshot;
use crate::system::{dpkg, systemd::Systemd};

/// Road b before dpkg: the prediction, said with the fix.
pub(crate) fn predict_blocked_restart(ctx: &Ctx, units: &Units) -> Option<(String, Record)> {
    let b = fast::blocked_restart_now(&ctx.roots, &ctx.cfg, units)?;
    let text = format!(
        "WARNING: if this run configures {}, its postinst will fail: {b}\nfix: {}",
        ctx.cfg.package,
        b.advice()
    );
    let mut o = observed_fast(ctx, units, PackageOk::Unknown, Inhibit::Inhibited);
    o.roads.postinst_restart_blocked = true;
    Some((text, Record::observed(o)))
}

/// Road b after dpkg (or in the watchdog): a package left half-configured
/// by a masked unit's restart is said precisely, with the commands that fix
/// it; nothing is started and dpkg is not run again (the postinst would
/// fail the same way). None when this is not the case.
pub(crate) fn report_blocked_restart(ctx: &Ctx, units: &Units) -> Option<(String, Record)> {
    let b = fast::blocked_restart_now(&ctx.roots, &ctx.cfg, units)?;
    let pkg = dpkg::state(&ctx.roots.dpkg_admin, &ctx.cfg.package).ok();
    let incomplete = pkg.as_ref().filter(|p| p.is_incomplete());
    let mut text = String::new();
    if let Some(p) = incomplete {
        text.push_str(&format!(
            "found: {} is not fully installed ({})\n",
            p.name,
            p.summary()
        ));
    }
    text.push_str(&format!("found: {b}\n"));
    let configure = match incomplete {
        Some(_) => format!("; then 'dpkg --configure {}'", ctx.cfg.package),
        None => String::new(),
    };
    text.push_str(&format!("PROBLEM REMAINS: {}{configure}", b.advice()));
    let known = pkg.as_ref().map_or(PackageOk::Unknown, |p| {
        PackageOk::Known(p.is_installed_ok())
    });
    let mut o = observed_fast(ctx, units, known, Inhibit::Free);
    o.roads.postinst_restart_blocked = true;
    Some((
        text,
        Record::repair(o, crate::commands::record::RepairResult::Refused),
    ))
}

/// Road d on the watchdog's healthy path, when there is a metrics file to
/// keep true: cached sshd -T, one D-Bus read, one sock_diag dump.
pub(crate) fn socket_drift(ctx: &Ctx, sd: &Systemd, units: &Units) -> bool {
    let drift = fast::socket_drift_now(&ctx.roots, &ctx.cfg, sd, units);
    if let Some(d) = &drift {
        log::info!("WARNING: {d}");
    }
    drift.is_some()
}

/// Road e while the watchdog is inhibited: a run stuck on a question is
/// said (and published). Only then is the metrics file rewritten during a
/// package manager's run.
pub(crate) fn inhibited_prompt(ctx: &Ctx, o: Outcome) -> Outcome {
    let Some(p) = fast::dpkg_prompt(&ctx.roots, &snapshot::lock_views(&ctx.roots)) else {
        return o;
    };
    let o = o.warn(p.to_string());
    let units = ctx
        .systemd()
        .and_then(|sd| fast::units(&sd, &ctx.cfg, Detail::Brief));
    match (metrics_enabled(ctx), units) {
        (true, Ok(units)) => {
            let mut obs = observed_fast(ctx, &units, PackageOk::Unknown, Inhibit::Inhibited);
            obs.roads.dpkg_prompt_since = Some(p.since);
            o.record(Record::observed(obs))
        }
        _ => o.with_exit(exit::OK),
    }
}
