//! `watchdog`: one check for the shipped timer. Waits while a package
//! manager runs, takes the cheap healthy path when it can, and repairs at
//! most WATCHDOG_MAX_REPAIRS times an hour before it gives up and says so.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::diagnose::{
    diagnose_and_repair, inhibition, refused, repaired, report_snapshot, Act, Inhibition, Where,
};
use super::output::Outcome;
use super::record::{
    metrics_enabled, observed_fast, observed_from, GaveUp, Inhibit, PackageOk, Record,
};
use super::{exit, Ctx};
use crate::intent::should_serve;
use crate::model::{Topology, Units};
use crate::plan::Mode;
use crate::system;
use crate::system::fast::{self, Detail};
use crate::system::fsx::{Entry, RunDir};
use crate::system::intent::fast_facts as intent_facts;
use crate::system::{dpkg, now_secs};
use anyhow::{anyhow, Result};

/// The run-directory file that lists the watchdog's repairs (Unix times).
const WATCHDOG_LOG: &str = "watchdog-repairs";

/// Repairs recorded in the last hour (Unix times, one per line).
fn recent_repairs(dir: &RunDir, now: u64) -> Vec<u64> {
    match dir.read(WATCHDOG_LOG, 64 * 1024) {
        Entry::File(t) => recent(&t, now),
        _ => Vec::new(),
    }
}

/// The times in `log` less than an hour before `now`.
fn recent(log: &str, now: u64) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .filter(|t| now.saturating_sub(*t) < 3600)
        .collect()
}

/// Whether ssh answers as systemd intends: a listening ssh.socket counts
/// (probing would spawn sshd); ssh.service must answer with a banner.
fn answers(ctx: &Ctx, units: &Units) -> bool {
    match units.topology() {
        Topology::SocketActivated => true,
        Topology::Service => system::sshd::service_answers(&ctx.roots),
    }
}

/// The healthy path: Some(outcome) when ssh is healthy and nothing needs
/// the full diagnosis.
fn healthy_path(ctx: &Ctx) -> Result<Option<Outcome>> {
    let sd = ctx.systemd()?;
    let units = fast::units(&sd, &ctx.cfg, Detail::Brief)?;
    let pkg = dpkg::state(&ctx.roots.dpkg_admin, &ctx.cfg.package).ok();
    let pkg_ok = pkg.as_ref().is_none_or(|p| !p.is_incomplete());
    let installed = match &pkg {
        Some(p) => PackageOk::Known(p.is_installed_ok()),
        None => PackageOk::Unknown,
    };
    if !units.look_healthy() && pkg_ok {
        // ssh the admin turned off stays off: the watchdog is no longer
        // the one that brings it back.
        let intent = should_serve(&units, &intent_facts(&ctx.roots, None));
        if !intent.serves() {
            return Ok(Some(Outcome::exit(exit::OK).info(format!("OK: {intent}"))));
        }
    }
    if !(units.look_healthy() && pkg_ok && answers(ctx, &units)) {
        return Ok(None);
    }
    // Road d's metric stays true between status runs: the watchdog compares
    // the three truths when there is a metrics file to write.
    let record = Record {
        observed: metrics_enabled(ctx).then(|| {
            let mut o = observed_fast(ctx, &units, installed, Inhibit::Free);
            o.roads.socket_drift = super::roads::socket_drift(ctx, &sd, &units);
            o
        }),
        repair: None,
        gave_up: GaveUp::Cleared,
    };
    Ok(Some(
        Outcome::exit(exit::OK)
            .info(format!("ssh is healthy ({})", units.topology()))
            .record(record),
    ))
}

/// `watchdog`.
pub(crate) fn watchdog(ctx: &Ctx) -> Outcome {
    let mut warnings = Vec::new();
    let why = inhibition(ctx, &mut warnings);
    let mut o = Outcome::exit(exit::OK);
    for w in warnings {
        o = o.warn(w);
    }
    if let Some(why) = why {
        let o = o.info(format!("inhibited, not acting: {why}"));
        return super::roads::inhibited_prompt(ctx, o);
    }
    let next = match healthy_path(ctx) {
        Ok(Some(healthy)) => healthy,
        Ok(None) => blocked(ctx).unwrap_or_else(|| repair(ctx)),
        Err(e) => Outcome::failed(&e),
    };
    o.lines.extend(next.lines);
    o.record = next.record;
    o.with_exit(next.exit)
}

/// Road b: a masked unit the postinst restarts is reported with its fix;
/// no repair is tried around it.
fn blocked(ctx: &Ctx) -> Option<Outcome> {
    let sd = ctx.systemd().ok()?;
    let units = fast::units(&sd, &ctx.cfg, Detail::Brief).ok()?;
    let (text, record) = super::roads::report_blocked_restart(ctx, &units)?;
    Some(Outcome::exit(exit::PROBLEM).say(text).record(record))
}

/// The unhealthy path: repair unless the hourly limit is reached.
fn repair(ctx: &Ctx) -> Outcome {
    let dir = match RunDir::open(&ctx.roots, true)
        .and_then(|d| d.ok_or_else(|| anyhow!("run directory missing")))
    {
        Ok(d) => d,
        Err(e) => return Outcome::failed(&e),
    };
    let now = now_secs();
    let mut recent = recent_repairs(&dir, now);
    let max = ctx.cfg.watchdog_max_repairs;
    if recent.len() as u32 >= max {
        let o = Outcome::exit(exit::GAVE_UP).error(if max == 0 {
            "GAVE UP: ssh is unhealthy and watchdog repairs are disabled (WATCHDOG_MAX_REPAIRS=0). Run 'ssh-upgrade-guard status' to see why, 'ssh-upgrade-guard repair' to fix it.".to_string()
        } else {
            format!(
                "GAVE UP: ssh is unhealthy and {} repairs in the last hour did not fix it (WATCHDOG_MAX_REPAIRS={max}). Not trying again until an hour after the last one. Run 'ssh-upgrade-guard status' to see why.",
                recent.len()
            )
        });
        // Monitoring must hear of it now, not at the next apt run.
        let observed =
            metrics_enabled(ctx).then(|| observed_from(ctx, &report_snapshot(ctx), Inhibit::Free));
        return o.record(Record {
            observed,
            repair: None,
            gave_up: GaveUp::Now,
        });
    }
    let d = match diagnose_and_repair(ctx, Mode::Full, Act::Repair, Inhibition::Recheck) {
        Ok(d) => d,
        Err(e) => return Outcome::failed(&e),
    };
    if let Some(why) = &d.inhibited {
        return Outcome::exit(exit::OK).info(format!(
            "inhibited (seen under the repair lock), not acting: {why}"
        ));
    }
    if let Some((outcome, after)) = &d.done {
        recent.push(now);
        let text: String = recent.iter().map(|t| format!("{t}\n")).collect();
        let mut o = Outcome::exit(exit::OK);
        if let Err(e) = dir.write_atomic(WATCHDOG_LOG, &text, 0o644) {
            o = o.warn(format!("{e:#}"));
        }
        let (text, record, healthy) = repaired(
            ctx,
            &d.plan,
            outcome,
            after,
            Where::Standalone,
            Inhibit::Free,
        );
        return o.say(text).record(record).with_exit(if healthy {
            exit::OK
        } else {
            exit::PROBLEM
        });
    }
    match refused(ctx, &d, Inhibit::Free) {
        Some((record, line)) => Outcome::exit(exit::PROBLEM).error(line).record(record),
        None if !d.plan.intent.serves() => {
            Outcome::exit(exit::OK).info(format!("OK: {}", d.plan.intent))
        }
        None => Outcome::exit(exit::OK),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_last_hour_of_repairs_counts() {
        let log = "100\n3700\ngarbage\n\n 4000 \n";
        assert_eq!(super::recent(log, 4000), vec![3700, 4000]);
        assert_eq!(super::recent(log, 100_000), Vec::<u64>::new());
    }
}
