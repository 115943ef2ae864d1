//! What the repairing commands share: a full diagnosis under the repair
//! lock, its execution, the report of what was found and done, and the
//! record of a refusal.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::record::{observed_from, Inhibit, Record, RepairResult};
use super::Ctx;
use crate::config::Config;
use crate::model::Snapshot;
use crate::plan::{decide, Mode, Plan};
use crate::repair::{self, Machine};
use crate::report;
use crate::system::is_root;
use crate::system::locks::RepairLock;
use crate::system::snapshot::{self, Clean, Fresh};
use crate::text::push_line;
use anyhow::{anyhow, Result};
use std::time::{Duration, Instant};

/// Whether a diagnosis may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// Plan only (`repair --dry-run`): no lock, no root needed.
    DryRun,
    /// Carry the plan out.
    Repair,
}

/// Whether a repair must first make sure, under the repair lock, that
/// nothing inhibits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inhibition {
    /// The watchdog: a package manager may have started while it waited
    /// for the lock, after it last looked.
    Recheck,
    /// The hooks (they are the package manager) and explicit repairs.
    Ignore,
}

/// How long a repair waits for units systemd is acting on (activating,
/// deactivating, reloading) before it decides on what it sees.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a diagnosis (and possibly a repair) found and did.
pub(crate) struct Diagnosis {
    /// The plan made from `before`.
    pub(crate) plan: Plan,
    /// The snapshot the plan was made from.
    pub(crate) before: Snapshot,
    /// When something was done: the outcome and the state afterwards.
    pub(crate) done: Option<(repair::Outcome, Snapshot)>,
    /// Set when, under the repair lock, a watchdog found itself inhibited
    /// (then nothing was looked at or done).
    pub(crate) inhibited: Option<String>,
}

/// Acting on sshd, systemd and dpkg needs root; say so plainly rather than
/// fail halfway on a permission error.
fn require_root(ctx: &Ctx, what: &str) -> Result<()> {
    if ctx.roots.test_root.is_none() && !is_root() {
        return Err(anyhow!(
            "{what} must run as root (try: sudo ssh-upgrade-guard {what})"
        ));
    }
    Ok(())
}

/// Full diagnosis, plan, and (unless dry) execution under the repair lock.
pub(crate) fn diagnose_and_repair(
    ctx: &Ctx,
    mode: Mode,
    act: Act,
    inhibition_check: Inhibition,
) -> Result<Diagnosis> {
    let sd = ctx.systemd().map_err(|e| format!("{e:#}"));
    if act == Act::Repair {
        require_root(ctx, "repair")?;
    }
    let _lock = match act {
        Act::DryRun => None,
        Act::Repair => Some(RepairLock::acquire(&ctx.roots)?),
    };
    // Whatever the watchdog saw before it waited for the lock, a package
    // manager may have started since: look again now that no other repair
    // can run.
    if inhibition_check == Inhibition::Recheck {
        let mut warnings = Vec::new();
        let why = inhibition(ctx, &mut warnings);
        for w in warnings {
            log::info!("{w}");
        }
        if let Some(why) = why {
            return Ok(Diagnosis {
                plan: Plan::default(),
                before: Snapshot::default(),
                done: None,
                inhibited: Some(why),
            });
        }
    }
    let fresh = match act {
        Act::DryRun => Fresh::MayReuse,
        Act::Repair => Fresh::Required,
    };
    let gather = || {
        snapshot::gather(
            &ctx.roots,
            &ctx.cfg,
            fresh,
            sd.as_ref().map_err(Clone::clone),
        )
    };
    let mut snap = gather();
    // systemd is acting on a unit (ssh.service activating, a listener's
    // unit deactivating): wait, bounded, and look again rather than act on
    // a picture that is about to change. A dry run only reports.
    let settle_until = Instant::now() + SETTLE_TIMEOUT;
    while let (Act::Repair, settling) = (act, snap.settling()) {
        if settling.is_empty() {
            break;
        }
        if Instant::now() >= settle_until {
            log::info!(
                "systemd is still acting after {} s ({}); deciding on what is there",
                SETTLE_TIMEOUT.as_secs(),
                settling.join(", ")
            );
            break;
        }
        log::info!("waiting for systemd: {}", settling.join(", "));
        std::thread::sleep(Duration::from_millis(250));
        snap = gather();
    }
    let plan = ctx.plan(&snap, mode);
    if act == Act::DryRun || plan.steps.is_empty() {
        return Ok(Diagnosis {
            plan,
            before: snap,
            done: None,
            inhibited: None,
        });
    }
    let sd = sd.map_err(|e| anyhow!("systemd unavailable: {e}"))?;
    let machine = Machine {
        roots: &ctx.roots,
        cfg: &ctx.cfg,
        sd: &sd,
        ports: &snap.ports,
    };
    let outcome = repair::execute(&machine, &ctx.cfg, &snap, &plan.steps);
    let after = snapshot::gather(&ctx.roots, &ctx.cfg, Fresh::Required, Ok(&sd));
    Ok(Diagnosis {
        plan,
        before: snap,
        done: Some((outcome, after)),
        inhibited: None,
    })
}

/// Why watchdogs must wait right now, or None. Warnings met on the way
/// (a stale marker removed) are added to `warnings`.
pub(crate) fn inhibition(ctx: &Ctx, warnings: &mut Vec<String>) -> Option<String> {
    let view = snapshot::marker_view(&ctx.roots, &ctx.cfg, Clean::RemoveStale);
    if let Some(p) = &view.problem {
        warnings.push(p.clone());
    }
    if let (true, Some(m)) = (view.live, &view.marker) {
        return Some(format!(
            "{} held by {} (pid {}): {}",
            view.path, m.holder_comm, m.holder_pid, m.reason
        ));
    }
    let locks = snapshot::lock_views(&ctx.roots);
    if let Some(e) = locks.iter().find_map(|l| l.error.as_deref()) {
        // Unreadable lock state: when in doubt, wait.
        return Some(format!(
            "cannot read dpkg's locks ({e}); waiting to be safe"
        ));
    }
    locks.into_iter().find_map(|l| {
        l.holder_pid.map(|pid| {
            format!(
                "{} held by {} (pid {pid})",
                l.path,
                l.holder_comm.as_deref().unwrap_or("?")
            )
        })
    })
}

/// A diagnosis for reporting only (status, check, metrics): systemd if it
/// answers, the last sshd -T answer if still valid.
pub(crate) fn report_snapshot(ctx: &Ctx) -> Snapshot {
    let sd = ctx.systemd().map_err(|e| format!("{e:#}"));
    snapshot::gather(
        &ctx.roots,
        &ctx.cfg,
        Fresh::MayReuse,
        sd.as_ref().map_err(Clone::clone),
    )
}

/// Where a repair report appears, which decides its closing line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    /// pre-invoke: the package is left to the dpkg run that follows.
    BeforeDpkg,
    /// post-invoke: apt's output above may hold dpkg's error.
    AfterDpkg,
    /// repair, watchdog.
    Standalone,
}

/// The report a repair prints (without the prefix), and whether ssh is
/// healthy afterwards.
pub(crate) fn repair_report(
    plan: &Plan,
    outcome: &repair::Outcome,
    after: &Snapshot,
    cfg: &Config,
    context: Where,
) -> (String, bool) {
    let mode = if context == Where::BeforeDpkg {
        Mode::Preflight
    } else {
        Mode::Full
    };
    // Judge the end state by what this run was meant to fix: before dpkg,
    // a half-configured package is dpkg's to finish, not a remaining problem.
    let after_plan = decide(after, cfg, mode);
    let failures: Vec<&str> = outcome
        .events
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, l)| l.as_str())
        .collect();
    let healthy =
        after_plan.steps.is_empty() && after_plan.refused.is_none() && !outcome.any_failed();
    // One line per item, control characters escaped: a process name or an
    // sshd message never splits a line or starts one of its own.
    let mut text = String::new();
    for f in &plan.findings {
        push_line(&mut text, &format!("found: {f}"));
    }
    for (ok, line) in &outcome.events {
        push_line(
            &mut text,
            &format!("{}: {line}", if *ok { "did" } else { "FAILED" }),
        );
    }
    for l in &plan.left_alone {
        push_line(&mut text, &format!("left alone: {l}"));
    }
    // Other packages dpkg left not fully installed: named apart, neither
    // ssh's problem nor a failure of a repair that worked.
    if !outcome.unrelated.is_empty() {
        push_line(
            &mut text,
            &format!(
                "left alone, not related to ssh: {} not fully installed; run 'apt-get install -f' or 'dpkg --configure -a' for those",
                outcome.unrelated.join(", ")
            ),
        );
    }
    push_line(&mut text, &format!("now: {}", report::final_state(after)));
    let pkg_incomplete = after.package.as_ref().is_some_and(|p| p.is_incomplete());
    match (healthy, context) {
        (true, Where::BeforeDpkg) if pkg_incomplete => push_line(
            &mut text,
            &format!(
                "ssh is healthy; the dpkg run that follows can now configure {}.",
                cfg.package
            ),
        ),
        (true, Where::AfterDpkg) if plan.found_package_incomplete() => push_line(
            &mut text,
            &format!(
                "the dpkg error above is resolved: {} is now fully installed and ssh answers.",
                cfg.package
            ),
        ),
        (true, _) => push_line(&mut text, "ssh is healthy."),
        (false, _) => {
            let mut left: Vec<String> = after_plan.findings.iter().map(|f| f.to_string()).collect();
            if let Some(r) = &after_plan.refused {
                left.push(r.to_string());
            }
            // Never an empty list: when nothing a diagnosis sees remains
            // (e.g. no key exchange), what failed is what remains.
            if left.is_empty() {
                left.extend(failures.iter().map(|f| f.to_string()));
            }
            push_line(&mut text, &format!("PROBLEM REMAINS: {}", left.join("; ")));
        }
    }
    (text, healthy)
}

/// A repair's report (to say) and record. Returns whether ssh is healthy now.
pub(crate) fn repaired(
    ctx: &Ctx,
    plan: &Plan,
    outcome: &repair::Outcome,
    after: &Snapshot,
    context: Where,
    inhibit: Inhibit,
) -> (String, Record, bool) {
    let (text, healthy) = repair_report(plan, outcome, after, &ctx.cfg, context);
    let result = if healthy {
        RepairResult::Success
    } else {
        RepairResult::Failure
    };
    (
        text,
        Record::repair(observed_from(ctx, after, inhibit), result),
        healthy,
    )
}

/// When the guard refused to act on this diagnosis: the record of the
/// refusal and its one line (what was found; why nothing was done).
pub(crate) fn refused(ctx: &Ctx, d: &Diagnosis, inhibit: Inhibit) -> Option<(Record, String)> {
    let r = d.plan.refused.as_ref()?;
    Some((
        Record::repair(
            observed_from(ctx, &d.before, inhibit),
            RepairResult::Refused,
        ),
        format!("{}; {r}", report::join(&d.plan.findings, "; ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpkg::PackageState;
    use crate::plan::Finding;

    /// The state after a repair that worked: the package installed.
    fn installed() -> Snapshot {
        Snapshot {
            package: Some(PackageState {
                name: "openssh-server".into(),
                want: "install".into(),
                eflag: "ok".into(),
                status: "installed".into(),
                version: None,
                architecture: None,
                other_instances: vec![],
                depends: vec![],
            }),
            ..Default::default()
        }
    }

    /// An unrelated package dpkg left half-configured beside a successful
    /// ssh repair: reported as the success it is (so counted as one), the
    /// other package named apart, never `PROBLEM REMAINS:` with nothing.
    #[test]
    fn a_successful_ssh_repair_is_reported_as_such_beside_an_unrelated_broken_package() {
        let plan = Plan {
            findings: vec![Finding::PackageIncomplete {
                package: "openssh-server".into(),
                summary: "install ok half-configured".into(),
            }],
            ..Default::default()
        };
        let outcome = repair::Outcome {
            events: vec![(true, "configured openssh-server (dpkg --configure)".into())],
            unrelated: vec!["e2e-broken (half-configured)".into()],
        };
        let (text, healthy) = repair_report(
            &plan,
            &outcome,
            &installed(),
            &Config::default(),
            Where::AfterDpkg,
        );
        assert!(healthy, "{text}");
        assert!(!text.contains("PROBLEM REMAINS"), "{text}");
        assert!(text.contains("the dpkg error above is resolved"), "{text}");
        assert!(
            text.contains(
                "left alone, not related to ssh: e2e-broken (half-configured) not fully installed"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_failed_step_is_what_remains_never_an_empty_list() {
        let outcome = repair::Outcome {
            events: vec![(false, "systemctl start ssh.socket: job failed".into())],
            unrelated: vec![],
        };
        let (text, healthy) = repair_report(
            &Plan::default(),
            &outcome,
            &installed(),
            &Config::default(),
            Where::Standalone,
        );
        assert!(!healthy);
        assert!(
            text.contains("PROBLEM REMAINS: systemctl start ssh.socket: job failed\n"),
            "{text}"
        );
    }

    /// A finding naming a process with a newline in its binary path stays
    /// one `found:` line.
    #[test]
    fn names_with_control_characters_never_split_a_report_line() {
        let outcome = repair::Outcome {
            events: vec![(true, "stopped pid 9 (/opt/x\nssh is healthy.)".into())],
            unrelated: vec![],
        };
        let (text, _) = repair_report(
            &Plan::default(),
            &outcome,
            &installed(),
            &Config::default(),
            Where::Standalone,
        );
        assert!(text.lines().all(|l| l != "ssh is healthy.)"), "{text}");
        assert!(text.contains("(/opt/x\\nssh is healthy.)"), "{text}");
    }
}
