//! The entry points: pre_invoke, post_invoke, inhibited, status, repair,
//! watchdog. Each gathers what it needs (cheaply on the healthy path), asks
//! `plan::decide`, acts through `repair::execute` and reports.

use crate::config::Config;
use crate::marker::Marker;
use crate::metrics::{self, Observed, PluginState};
use crate::model::{ListenerClass, Snapshot, Topology, Units};
use crate::plan::{decide, Mode, Plan};
use crate::report::{self, PREFIX};
use crate::system::fsx::RunDir;
use crate::system::procs::{Procfs, PACKAGE_MANAGERS};
use crate::system::snapshot::{self, Fresh, MARKER_FILE};
use crate::system::systemd::Systemd;
use crate::system::{dpkg, locks, now_secs, publish, Roots};
use crate::{repair, sshd};
use anyhow::{anyhow, Context, Result};
use std::io::Write;
use std::time::{Duration, Instant};

pub mod exit {
    pub const OK: i32 = 0;
    pub const PROBLEM: i32 = 1;
    pub const INTERNAL: i32 = 3;
    pub const GAVE_UP: i32 = 4;
}

pub struct Ctx {
    pub roots: Roots,
    pub cfg: Config,
}

impl Ctx {
    fn systemd(&self) -> Result<Systemd> {
        if self.roots.test_root.is_some() {
            return Err(anyhow!("systemd is not consulted under a test root"));
        }
        Systemd::connect()
    }

    fn plan(&self, s: &Snapshot, mode: Mode) -> Plan {
        decide(
            s,
            &self.cfg.ssh_service,
            &self.cfg.ssh_socket,
            &self.cfg.package,
            mode,
        )
    }
}

fn warn_line(msg: &str) {
    // One line, whatever the error chain: apt and cron mail show it as is.
    // Never panics, even on a closed stderr (the hooks' last word).
    crate::deadline::warn_line(msg);
}

fn say(msg: &str) {
    let mut out = std::io::stdout().lock();
    for line in msg.lines() {
        let _ = writeln!(out, "{PREFIX}: {line}");
    }
    let _ = out.flush();
}

/// Serializes repairs: a lock under the run directory, waited for (a repair
/// takes seconds), so a second run finds the first one's result.
struct RepairLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn repair_lock(roots: &Roots) -> Result<RepairLock> {
    let dir =
        RunDir::open(roots, true)?.ok_or_else(|| anyhow!("{} missing", roots.run_dir.display()))?;
    let mut file = dir.lock_file("repair.lock")?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut said = false;
    loop {
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(RepairLock { _lock: lock }),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                if !said {
                    log::info!("another repair is running; waiting for it to finish");
                    said = true;
                }
                file = f;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, e)) => {
                return Err(anyhow!(
                    "cannot lock {}: {e}",
                    dir.file_path("repair.lock").display()
                ))
            }
        }
    }
}

/// Acting on sshd, systemd and dpkg needs root; say so plainly rather than
/// fail halfway on a permission error.
fn require_root(ctx: &Ctx, what: &str) -> Result<()> {
    if ctx.roots.test_root.is_none() && !nix::unistd::geteuid().is_root() {
        return Err(anyhow!(
            "{what} must run as root (try: sudo ssh-upgrade-guard {what})"
        ));
    }
    Ok(())
}

/// What a diagnosis (and possibly a repair) found and did.
struct Diagnosis {
    plan: Plan,
    /// The snapshot the plan was made from.
    before: Snapshot,
    /// When something was done: the outcome and the state afterwards.
    done: Option<(repair::Outcome, Snapshot)>,
}

/// Full diagnosis, plan, and (unless dry) execution.
fn diagnose_and_repair(ctx: &Ctx, mode: Mode, dry_run: bool) -> Result<Diagnosis> {
    let sd = ctx.systemd().map_err(|e| format!("{e:#}"));
    if !dry_run {
        require_root(ctx, "repair")?;
    }
    let _lock = if dry_run {
        None
    } else {
        Some(repair_lock(&ctx.roots)?)
    };
    let fresh = if dry_run {
        Fresh::MayReuse
    } else {
        Fresh::Required
    };
    let snap = snapshot::gather(
        &ctx.roots,
        &ctx.cfg,
        fresh,
        sd.as_ref().map_err(Clone::clone),
    );
    let plan = ctx.plan(&snap, mode);
    if dry_run || plan.steps.is_empty() {
        return Ok(Diagnosis {
            plan,
            before: snap,
            done: None,
        });
    }
    let sd = sd.map_err(|e| anyhow!("systemd unavailable: {e}"))?;
    let outcome = repair::execute(&ctx.roots, &ctx.cfg, &sd, &snap, &plan.steps);
    let after = snapshot::gather(&ctx.roots, &ctx.cfg, Fresh::Required, Ok(&sd));
    Ok(Diagnosis {
        plan,
        before: snap,
        done: Some((outcome, after)),
    })
}

/// Where a repair report appears, which decides its closing line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// pre-invoke: the package is left to the dpkg run that follows.
    BeforeDpkg,
    /// post-invoke: apt's output above may hold dpkg's error.
    AfterDpkg,
    /// repair, watchdog.
    Standalone,
}

fn print_repair_report(
    plan: &Plan,
    outcome: &repair::Outcome,
    after: &Snapshot,
    ctx: &Ctx,
    context: Where,
) -> bool {
    let mode = if context == Where::BeforeDpkg {
        Mode::Preflight
    } else {
        Mode::Full
    };
    // Judge the end state by what this run was meant to fix: before dpkg,
    // a half-configured package is dpkg's to finish, not a remaining problem.
    let after_plan = ctx.plan(after, mode);
    let healthy =
        after_plan.steps.is_empty() && after_plan.refused.is_none() && !outcome.any_failed();
    let mut text = String::new();
    for f in &plan.findings {
        text.push_str(&format!("found: {f}\n"));
    }
    for (ok, line) in &outcome.events {
        text.push_str(&format!(
            "{}: {line}
",
            if *ok { "did" } else { "FAILED" }
        ));
    }
    for l in &plan.left_alone {
        text.push_str(&format!("left alone: {l}\n"));
    }
    text.push_str(&format!("now: {}\n", report::final_state(after)));
    let pkg_incomplete = after.package.as_ref().is_some_and(|p| p.is_incomplete());
    let was_incomplete = plan
        .findings
        .iter()
        .any(|f| f.contains("not fully installed"));
    match (healthy, context) {
        (true, Where::BeforeDpkg) if pkg_incomplete => text.push_str(&format!(
            "ssh is healthy; the dpkg run that follows can now configure {}.\n",
            ctx.cfg.package
        )),
        (true, Where::AfterDpkg) if was_incomplete => text.push_str(&format!(
            "the dpkg error above is resolved: {} is now fully installed and ssh answers.\n",
            ctx.cfg.package
        )),
        (true, _) => text.push_str("ssh is healthy.\n"),
        (false, _) => {
            let mut left = after_plan.findings.clone();
            if let Some(r) = &after_plan.refused {
                left.push(r.clone());
            }
            text.push_str(&format!("PROBLEM REMAINS: {}\n", left.join("; ")));
        }
    }
    say(&text);
    healthy
}

// ---------------------------------------------------------------- metrics

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepairResult {
    Success,
    Failure,
    Refused,
}

fn metrics_enabled(ctx: &Ctx) -> bool {
    ctx.cfg
        .metrics_dir
        .as_ref()
        .is_some_and(|d| ctx.roots.under(d).is_dir())
}

fn observed_from(ctx: &Ctx, s: &Snapshot, inhibited: bool) -> Observed {
    Observed {
        package: ctx.cfg.package.clone(),
        package_ok: s.package.as_ref().is_some_and(|p| p.is_installed_ok()),
        ssh_up: s.units.as_ref().is_some_and(|u| u.look_healthy()),
        stale_listeners: s
            .listeners
            .iter()
            .filter(|l| l.class == ListenerClass::Stale)
            .count(),
        inhibited,
    }
}

/// The healthy fast path's observation: no stale listener can hold the port
/// while systemd's unit holds it. `package_ok`: what the caller already read
/// from dpkg (read here only when it did not).
fn observed_fast(ctx: &Ctx, units: &Units, package_ok: Option<bool>, inhibited: bool) -> Observed {
    Observed {
        package: ctx.cfg.package.clone(),
        package_ok: package_ok.unwrap_or_else(|| {
            dpkg::state(&ctx.roots.dpkg_admin, &ctx.cfg.package).is_ok_and(|p| p.is_installed_ok())
        }),
        ssh_up: units.look_healthy(),
        stale_listeners: 0,
        inhibited,
    }
}

/// Records a repair's outcome in the counters and refreshes the metrics
/// file. Failures here never change a command's result (-v shows them).
fn publish(ctx: &Ctx, o: Option<Observed>, result: Option<RepairResult>, gave_up: Option<bool>) {
    let mut c = publish::load_counters(&ctx.roots);
    let loaded = c.clone();
    let now = now_secs();
    match result {
        Some(RepairResult::Success) => c.success += 1,
        Some(RepairResult::Failure) => c.failure += 1,
        Some(RepairResult::Refused) => c.refused += 1,
        None => {}
    }
    if matches!(
        result,
        Some(RepairResult::Success) | Some(RepairResult::Failure)
    ) {
        c.last_repair = Some(now);
    }
    if let Some(g) = gave_up {
        c.gave_up_at = if g { c.gave_up_at.or(Some(now)) } else { None };
    }
    // Written only when it changed: the watchdog runs every few minutes.
    if c != loaded {
        if let Err(e) = publish::save_counters(&ctx.roots, &c) {
            log::info!("{e:#}");
        }
    }
    if let Some(o) = o {
        if let Err(e) = publish::write_metrics(&ctx.roots, ctx.cfg.metrics_dir.as_deref(), &o, &c) {
            log::info!("{e:#}");
        }
    }
}

/// Reports a repair, then records it. Returns whether ssh is healthy now.
fn report_and_publish(
    ctx: &Ctx,
    plan: &Plan,
    outcome: &repair::Outcome,
    after: &Snapshot,
    context: Where,
    inhibited: bool,
) -> bool {
    let healthy = print_repair_report(plan, outcome, after, ctx, context);
    let result = if healthy {
        RepairResult::Success
    } else {
        RepairResult::Failure
    };
    publish(
        ctx,
        Some(observed_from(ctx, after, inhibited)),
        Some(result),
        None,
    );
    healthy
}

// ---------------------------------------------------------------- hooks

/// The package manager running this dpkg batch: the holder of lock-frontend,
/// else the nearest apt-like ancestor, else our parent.
fn find_holder(roots: &Roots) -> (u32, String, u64) {
    let procfs = Procfs::new(&roots.proc);
    if let Ok(Some(Some(pid))) = locks::holder(&roots.dpkg_admin.join(locks::LOCK_FRONTEND)) {
        if let Some(i) = procfs.info(pid) {
            return (i.pid, i.comm, i.start_time);
        }
    }
    let ppid = nix::unistd::getppid().as_raw() as u32;
    if let Some(i) = procfs.ancestor_named(ppid, PACKAGE_MANAGERS) {
        return (i.pid, i.comm, i.start_time);
    }
    // No package manager: the parent (a shell), or ourselves when the parent
    // is outside our PID namespace (ppid 0). Such a marker goes stale as soon
    // as that process ends, which is right for a hand-run pre-invoke.
    let me = std::process::id();
    let pid = if ppid == 0 { me } else { ppid };
    match procfs.info(pid) {
        Some(i) => (i.pid, i.comm, i.start_time),
        None => (pid, "?".into(), 0),
    }
}

/// Places the marker. Returns a note when something unexpected sat at the
/// marker path (a symlink, a garbage file): it is replaced, never followed,
/// and the path is named.
fn place_marker(ctx: &Ctx) -> Result<Option<String>> {
    let dir = RunDir::open(&ctx.roots, true)?
        .ok_or_else(|| anyhow!("{} missing", ctx.roots.run_dir.display()))?;
    let note = match dir.read(MARKER_FILE, crate::marker::MAX_MARKER_BYTES) {
        crate::system::fsx::Entry::Refused(why) => Some(format!("{why}; replaced by a new marker")),
        crate::system::fsx::Entry::File(text) => Marker::parse(&text).err().map(|e| {
            format!(
                "{}: unreadable marker ({e}); replaced by a new marker",
                dir.file_path(MARKER_FILE).display()
            )
        }),
        crate::system::fsx::Entry::Missing => None,
    };
    let (pid, comm, start) = find_holder(&ctx.roots);
    let procfs = Procfs::new(&ctx.roots.proc);
    let m = Marker {
        holder_pid: pid,
        holder_start_time: start,
        holder_comm: comm,
        boot_id: procfs.boot_id().context("cannot read the boot id")?,
        created: now_secs(),
        reason: "a package manager is running dpkg (DPkg::Pre-Invoke)".into(),
    };
    dir.write_atomic(MARKER_FILE, &m.render(), 0o644)?;
    log::info!(
        "placed {} for {} (pid {})",
        dir.file_path(MARKER_FILE).display(),
        m.holder_comm,
        m.holder_pid
    );
    Ok(note)
}

/// Removes the marker if it is ours (same holder) or stale.
fn release_marker(ctx: &Ctx) -> Result<()> {
    let Some(dir) = RunDir::open(&ctx.roots, false)? else {
        return Ok(());
    };
    let view = snapshot::marker_view(&ctx.roots, &ctx.cfg, true);
    if let Some(p) = &view.problem {
        warn_line(p);
    }
    if let (Some(m), true) = (&view.marker, view.live) {
        let (pid, _, start) = find_holder(&ctx.roots);
        if m.holder_pid == pid && m.holder_start_time == start {
            dir.remove(MARKER_FILE)?;
            log::info!("released {}", dir.file_path(MARKER_FILE).display());
        } else {
            log::info!(
                "marker belongs to {} (pid {}), not this run; left in place",
                m.holder_comm,
                m.holder_pid
            );
        }
    }
    Ok(())
}

/// Hooks never fail apt: errors and even panics become one warning line.
fn hook(name: &str, f: impl FnOnce() -> Result<()> + std::panic::UnwindSafe) -> i32 {
    match std::panic::catch_unwind(f) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn_line(&format!(
            "{name}: {e:#} (apt continues; the guard did nothing more)"
        )),
        Err(_) => warn_line(&format!(
            "{name}: internal error: {} (apt continues)",
            crate::last_panic().unwrap_or_else(|| "panic".into())
        )),
    }
    exit::OK
}

pub fn pre_invoke(ctx: &Ctx) -> i32 {
    hook("pre-invoke", || {
        // The marker and the preflight fail independently; both are reported
        // in the one warning line.
        let marked = place_marker(ctx).context("could not place the inhibit marker");
        let checked = if ctx.cfg.preflight {
            preflight(ctx).context("preflight skipped")
        } else {
            Ok(())
        };
        let mut problems: Vec<String> = Vec::new();
        match marked {
            Ok(Some(note)) => problems.push(note),
            Ok(None) => {}
            Err(e) => problems.push(format!("{e:#}")),
        }
        if let Err(e) = checked {
            problems.push(format!("{e:#}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("{}", problems.join("; ")))
        }
    })
}

/// Repairs an already broken ssh before dpkg runs, so that the maintainer
/// scripts' restart of ssh.socket/ssh.service succeeds.
fn preflight(ctx: &Ctx) -> Result<()> {
    // Cheap path: systemd's word that the port holder is up and nothing
    // failed. A stale listener keeps the holder from being active.
    let sd = ctx.systemd()?;
    let units = snapshot::units(&sd, &ctx.cfg, false)?;
    let nothing_to_guard =
        units.service.load_state != "loaded" && units.socket.load_state != "loaded";
    if nothing_to_guard || units.look_healthy() {
        log::info!("preflight: ssh units healthy ({})", units.topology());
        if metrics_enabled(ctx) {
            publish(
                ctx,
                Some(observed_fast(ctx, &units, None, true)),
                None,
                None,
            );
        }
        return Ok(());
    }
    drop(sd);
    let Diagnosis { plan, before, done } = diagnose_and_repair(ctx, Mode::Preflight, false)?;
    if let Some((outcome, after)) = done {
        say("before dpkg runs, repairing ssh so that openssh-server's maintainer scripts can succeed:");
        report_and_publish(ctx, &plan, &outcome, &after, Where::BeforeDpkg, true);
    } else if let Some(r) = &plan.refused {
        publish(
            ctx,
            Some(observed_from(ctx, &before, true)),
            Some(RepairResult::Refused),
            None,
        );
        return Err(anyhow!("{r}"));
    }
    Ok(())
}

pub fn post_invoke(ctx: &Ctx) -> i32 {
    hook("post-invoke", || {
        let result = (|| -> Result<()> {
            let pkg = dpkg::state(&ctx.roots.dpkg_admin, &ctx.cfg.package)?;
            log::debug!(
                "{:.1} ms: read {}'s dpkg state",
                crate::elapsed_ms(),
                ctx.cfg.package
            );
            if pkg.status == "not-installed" || pkg.status == "config-files" {
                log::info!("{} is not installed: nothing to guard", ctx.cfg.package);
                return Ok(());
            }
            let sd = ctx.systemd()?;
            let units = snapshot::units(&sd, &ctx.cfg, false)?;
            if units.look_healthy() && pkg.is_installed_ok() {
                log::info!(
                    "{} installed, ssh units healthy ({}): nothing to do",
                    ctx.cfg.package,
                    units.topology()
                );
                if metrics_enabled(ctx) {
                    publish(
                        ctx,
                        Some(observed_fast(
                            ctx,
                            &units,
                            Some(pkg.is_installed_ok()),
                            false,
                        )),
                        None,
                        None,
                    );
                }
                return Ok(());
            }
            drop(sd);
            let Diagnosis { plan, before, done } = diagnose_and_repair(ctx, Mode::Full, false)?;
            match done {
                Some((outcome, after)) => {
                    report_and_publish(ctx, &plan, &outcome, &after, Where::AfterDpkg, false);
                }
                None => {
                    if let Some(r) = &plan.refused {
                        publish(
                            ctx,
                            Some(observed_from(ctx, &before, false)),
                            Some(RepairResult::Refused),
                            None,
                        );
                        warn_line(&format!("{}; {r}", plan.findings.join("; ")));
                    }
                }
            }
            Ok(())
        })();
        let released = release_marker(ctx);
        result.and(released)
    })
}

// ---------------------------------------------------------------- inhibited

/// Why watchdogs must wait right now, or None.
pub fn inhibition(ctx: &Ctx) -> Option<String> {
    let view = snapshot::marker_view(&ctx.roots, &ctx.cfg, true);
    if let Some(p) = &view.problem {
        warn_line(p);
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

pub fn inhibited(ctx: &Ctx) -> i32 {
    match inhibition(ctx) {
        Some(why) => {
            log::info!("inhibited: {why}");
            exit::OK
        }
        None => {
            log::info!("not inhibited: no live marker, dpkg's locks are free");
            exit::PROBLEM
        }
    }
}

// ---------------------------------------------------------------- status / repair

/// A diagnosis for reporting only (status, check, metrics): systemd if it
/// answers, the last sshd -T answer if still valid.
fn report_snapshot(ctx: &Ctx) -> Snapshot {
    let sd = ctx.systemd().map_err(|e| format!("{e:#}"));
    snapshot::gather(
        &ctx.roots,
        &ctx.cfg,
        Fresh::MayReuse,
        sd.as_ref().map_err(Clone::clone),
    )
}

pub fn status(ctx: &Ctx, json: bool) -> i32 {
    let snap = report_snapshot(ctx);
    let plan = ctx.plan(&snap, Mode::Full);
    let healthy = plan.findings.is_empty() && plan.refused.is_none() && snap.units.is_some();
    if json {
        let v = serde_json::json!({
            "schema": 1,
            "verdict": report::verdict(&snap, &plan),
            "healthy": healthy,
            "snapshot": snap,
            "plan": plan,
        });
        match serde_json::to_string_pretty(&v) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{PREFIX}: error: {e}");
                return exit::INTERNAL;
            }
        }
    } else {
        print!("{}", report::status_text(&snap, &plan));
    }
    if snap.units.is_none() && snap.listeners.is_empty() && plan.findings.is_empty() {
        return exit::INTERNAL;
    }
    if healthy {
        exit::OK
    } else {
        exit::PROBLEM
    }
}

pub fn repair(ctx: &Ctx, dry_run: bool) -> i32 {
    match diagnose_and_repair(ctx, Mode::Full, dry_run) {
        Err(e) => {
            eprintln!("{PREFIX}: error: {e:#}");
            exit::INTERNAL
        }
        Ok(Diagnosis {
            plan, done: None, ..
        }) => {
            print!("{}", report::plan_text(&plan));
            if dry_run {
                exit::OK
            } else if plan.refused.is_some() {
                exit::PROBLEM
            } else {
                println!("{PREFIX}: ssh is healthy; nothing to do.");
                exit::OK
            }
        }
        Ok(Diagnosis {
            plan,
            done: Some((outcome, after)),
            ..
        }) => {
            if report_and_publish(ctx, &plan, &outcome, &after, Where::Standalone, false) {
                exit::OK
            } else {
                exit::PROBLEM
            }
        }
    }
}

// ---------------------------------------------------------------- check

pub fn check(ctx: &Ctx, npd: bool) -> i32 {
    let snap = report_snapshot(ctx);
    let plan = ctx.plan(&snap, Mode::Full);
    let inhibited = snap.marker.live || snap.locks.iter().any(|l| l.holder_pid.is_some());
    let o = observed_from(ctx, &snap, inhibited);
    let state = metrics::plugin_state(
        &o,
        snap.units.is_some(),
        plan.findings.len() + usize::from(plan.refused.is_some()),
    );
    let summary = match state {
        PluginState::Ok => "ssh is healthy".to_string(),
        _ => report::verdict(&snap, &plan),
    };
    println!("{}", metrics::plugin_line(state, &summary, &o));
    if npd {
        state.npd_code()
    } else {
        state as i32
    }
}

// ---------------------------------------------------------------- watchdog

const WATCHDOG_LOG: &str = "watchdog-repairs";

/// Repairs recorded in the last hour (Unix times, one per line).
fn recent_repairs(dir: &RunDir, now: u64) -> Vec<u64> {
    match dir.read(WATCHDOG_LOG, 64 * 1024) {
        crate::system::fsx::Entry::File(t) => t
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .filter(|t| now.saturating_sub(*t) < 3600)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn watchdog(ctx: &Ctx) -> i32 {
    if let Some(why) = inhibition(ctx) {
        log::info!("inhibited, not acting: {why}");
        return exit::OK;
    }
    let sd = match ctx.systemd() {
        Ok(sd) => sd,
        Err(e) => {
            eprintln!("{PREFIX}: error: {e:#}");
            return exit::INTERNAL;
        }
    };
    let units = match snapshot::units(&sd, &ctx.cfg, false) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{PREFIX}: error: {e:#}");
            return exit::INTERNAL;
        }
    };
    let pkg = dpkg::state(&ctx.roots.dpkg_admin, &ctx.cfg.package).ok();
    let pkg_ok = pkg.as_ref().is_none_or(|p| !p.is_incomplete());
    let installed = pkg.as_ref().map(|p| p.is_installed_ok());
    if units.look_healthy() && pkg_ok {
        let answers = match units.topology() {
            // A listening ssh.socket is healthy: probing would spawn sshd.
            Topology::SocketActivated => true,
            Topology::Service => {
                let (_, listen) = crate::system::sshd::check_config(&ctx.roots.sshd);
                let addrs: Vec<std::net::SocketAddr> =
                    listen.map(|l| l.addresses).unwrap_or_default();
                let mut targets = sshd::probe_targets(&addrs);
                if targets.is_empty() {
                    targets.push(std::net::SocketAddr::from(([127, 0, 0, 1], 22)));
                }
                let res = crate::system::sshd::wait_banners(&targets, Duration::from_secs(3));
                res.iter().all(|(_, r)| r.is_ok())
            }
        };
        if answers {
            log::info!("ssh is healthy ({})", units.topology());
            publish(
                ctx,
                metrics_enabled(ctx).then(|| observed_fast(ctx, &units, installed, false)),
                None,
                Some(false),
            );
            return exit::OK;
        }
    }
    drop(sd);
    let dir = match RunDir::open(&ctx.roots, true)
        .and_then(|d| d.ok_or_else(|| anyhow!("run directory missing")))
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{PREFIX}: error: {e:#}");
            return exit::INTERNAL;
        }
    };
    let now = now_secs();
    let mut recent = recent_repairs(&dir, now);
    if recent.len() as u32 >= ctx.cfg.watchdog_max_repairs {
        if ctx.cfg.watchdog_max_repairs == 0 {
            eprintln!(
                "{PREFIX}: error: GAVE UP: ssh is unhealthy and watchdog repairs are disabled (WATCHDOG_MAX_REPAIRS=0). Run 'ssh-upgrade-guard status' to see why, 'ssh-upgrade-guard repair' to fix it."
            );
        } else {
            eprintln!(
                "{PREFIX}: error: GAVE UP: ssh is unhealthy and {} repairs in the last hour did not fix it (WATCHDOG_MAX_REPAIRS={}). Not trying again until an hour after the last one. Run 'ssh-upgrade-guard status' to see why.",
                recent.len(),
                ctx.cfg.watchdog_max_repairs
            );
        }
        // Monitoring must hear of it now, not at the next apt run.
        let observed =
            metrics_enabled(ctx).then(|| observed_from(ctx, &report_snapshot(ctx), false));
        publish(ctx, observed, None, Some(true));
        return exit::GAVE_UP;
    }
    match diagnose_and_repair(ctx, Mode::Full, false) {
        Err(e) => {
            eprintln!("{PREFIX}: error: {e:#}");
            exit::INTERNAL
        }
        Ok(Diagnosis {
            plan,
            before,
            done: None,
        }) => {
            if let Some(r) = &plan.refused {
                eprintln!("{PREFIX}: error: {}; {r}", plan.findings.join("; "));
                publish(
                    ctx,
                    Some(observed_from(ctx, &before, false)),
                    Some(RepairResult::Refused),
                    None,
                );
                return exit::PROBLEM;
            }
            exit::OK
        }
        Ok(Diagnosis {
            plan,
            done: Some((outcome, after)),
            ..
        }) => {
            recent.push(now);
            let text: String = recent.iter().map(|t| format!("{t}\n")).collect();
            if let Err(e) = dir.write_atomic(WATCHDOG_LOG, &text, 0o644) {
                warn_line(&format!("{e:#}"));
            }
            if report_and_publish(ctx, &plan, &outcome, &after, Where::Standalone, false) {
                exit::OK
            } else {
                exit::PROBLEM
            }
        }
    }
}
