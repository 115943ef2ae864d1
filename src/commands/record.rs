//! What a run records: the repair counters (kept across runs) and the
//! metrics file for node_exporter. Failures here never change a command's
//! result (-v shows them).
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::Ctx;
use crate::metrics::{Observed, RoadSignals};
use crate::model::{ListenerClass, Snapshot, Units};
use crate::system::{dpkg, fast, now_secs, publish};

/// How a repair ended, for `ssh_upgrade_guard_repairs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepairResult {
    /// ssh is healthy afterwards.
    Success,
    /// A problem remains.
    Failure,
    /// The guard would not act (a no-lockout rule).
    Refused,
}

/// What a run says about the watchdog's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GaveUp {
    /// Nothing: leave it as recorded.
    Unchanged,
    /// The watchdog gives up now (kept at its first time).
    Now,
    /// ssh is healthy: clear it.
    Cleared,
}

/// Whether a package manager run inhibits watchdogs right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inhibit {
    /// A package manager runs (the hooks, a live marker, a held lock).
    Inhibited,
    /// Nothing inhibits.
    Free,
}

/// One run's contribution to the counters and the metrics file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// What the run saw; the metrics file is rewritten only with one.
    pub(crate) observed: Option<Observed>,
    /// A repair to count.
    pub(crate) repair: Option<RepairResult>,
    /// The watchdog's limit.
    pub(crate) gave_up: GaveUp,
}

impl Record {
    /// Only an observation.
    pub(crate) fn observed(o: Observed) -> Record {
        Record {
            observed: Some(o),
            repair: None,
            gave_up: GaveUp::Unchanged,
        }
    }

    /// A repair's result with the state it left.
    pub(crate) fn repair(o: Observed, r: RepairResult) -> Record {
        Record {
            observed: Some(o),
            repair: Some(r),
            gave_up: GaveUp::Unchanged,
        }
    }
}

/// Whether the metrics file is written at all (its directory exists).
pub(crate) fn metrics_enabled(ctx: &Ctx) -> bool {
    ctx.cfg
        .metrics_dir
        .as_ref()
        .is_some_and(|d| publish::metrics_dir_exists(&ctx.roots, d))
}

/// The observation a full snapshot gives.
pub(crate) fn observed_from(ctx: &Ctx, s: &Snapshot, inhibit: Inhibit) -> Observed {
    Observed {
        package: ctx.cfg.package.clone(),
        package_ok: s.package.as_ref().is_some_and(|p| p.is_installed_ok()),
        ssh_up: s.units.as_ref().is_some_and(|u| u.look_healthy()),
        off_by_choice: s
            .units
            .as_ref()
            .is_some_and(|u| !crate::intent::should_serve(u, &s.intent).serves()),
        stale_listeners: s
            .listeners
            .iter()
            .filter(|l| l.class == ListenerClass::Stale)
            .count(),
        inhibited: inhibit == Inhibit::Inhibited,
        roads: RoadSignals::of(&crate::roads::Roads::of(s)),
    }
}

/// What the caller knows of the package when it takes the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PackageOk {
    /// Already read from dpkg: fully installed or not.
    Known(bool),
    /// Not read yet: read it now.
    Unknown,
}

/// The healthy fast path's observation: no stale listener can hold the port
/// while systemd's unit holds it.
pub(crate) fn observed_fast(
    ctx: &Ctx,
    units: &Units,
    package: PackageOk,
    inhibit: Inhibit,
) -> Observed {
    Observed {
        package: ctx.cfg.package.clone(),
        package_ok: match package {
            PackageOk::Known(ok) => ok,
            PackageOk::Unknown => dpkg::state(&ctx.roots.dpkg_admin, &ctx.cfg.package)
                .is_ok_and(|p| p.is_installed_ok()),
        },
        ssh_up: units.look_healthy(),
        off_by_choice: false,
        stale_listeners: 0,
        inhibited: inhibit == Inhibit::Inhibited,
        // Taken when the units look healthy: neither is failed, so neither
        // hit a start limit (Result need not be read). Road b is read only
        // when a unit is masked.
        roads: RoadSignals {
            postinst_restart_blocked: fast::blocked_restart_now(&ctx.roots, &ctx.cfg, units)
                .is_some(),
            ..Default::default()
        },
    }
}

/// Records a run in the counters and refreshes the metrics file.
pub(crate) fn publish(ctx: &Ctx, r: Record) {
    let mut c = publish::load_counters(&ctx.roots);
    let loaded = c.clone();
    let now = now_secs();
    match r.repair {
        Some(RepairResult::Success) => c.success += 1,
        Some(RepairResult::Failure) => c.failure += 1,
        Some(RepairResult::Refused) => c.refused += 1,
        None => {}
    }
    if matches!(
        r.repair,
        Some(RepairResult::Success) | Some(RepairResult::Failure)
    ) {
        c.last_repair = Some(now);
    }
    match r.gave_up {
        GaveUp::Unchanged => {}
        GaveUp::Now => c.gave_up_at = c.gave_up_at.or(Some(now)),
        GaveUp::Cleared => c.gave_up_at = None,
    }
    // Written only when it changed: the watchdog runs every few minutes.
    if c != loaded {
        if let Err(e) = publish::save_counters(&ctx.roots, &c) {
            log::info!("{e:#}");
        }
    }
    if let Some(o) = r.observed {
        if let Err(e) = publish::write_metrics(&ctx.roots, ctx.cfg.metrics_dir.as_deref(), &o, &c) {
            log::info!("{e:#}");
        }
    }
}
