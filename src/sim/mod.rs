//! A simulated machine, and properties checked over it (issue 18, item 6).
//!
//! The real `plan::decide` and `repair::execute` run on snapshots of a
//! small model of systemd, sshd and dpkg ([`world`], [`act`]), acting
//! through `repair::UnitControl` with a fault schedule ([`control`]);
//! after every hook the properties of [`check`] must hold. [`props`]
//! generates machines and schedules with proptest (10,000 cases in a plain
//! `cargo test`; `make sim CASES=N` for more), [`regressions`] pins every
//! shrunk counterexample found on the way, and [`scenarios`] holds each e2e
//! scenario's starting state against its expected end, so that the model
//! and the booted containers cannot drift apart silently.
//!
//! Test-only: nothing here ships.
#![forbid(unsafe_code)]

pub mod act;
pub mod build;
pub mod control;
mod props;
mod regressions;
mod scenarios;
pub mod world;

use crate::config::Config;
use crate::plan::{decide, Mode, Plan, Step};
use crate::repair::{execute, Outcome};
use control::{Fault, Record, Sim};
use world::*;

/// How a run goes: one command, or a whole apt run (pre-invoke, dpkg,
/// post-invoke).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// `repair`, the watchdog, or a post-invoke with nothing before it.
    Repair,
    /// pre-invoke (preflight), then dpkg unpacks and configures
    /// openssh-server, then post-invoke. `preinst_stops`: the preinst
    /// stops ssh.service (Ubuntu 13.19 does).
    Apt { preinst_stops: bool },
}

/// One hook (or command) carried out on the simulated machine.
pub struct Hook {
    pub mode: Mode,
    pub before: World,
    pub after: World,
    pub plan: Plan,
    pub outcome: Outcome,
    pub rec: Record,
}

/// Runs plan + execute once on `w` in `mode`, with `faults`.
pub fn hook(w: &World, mode: Mode, faults: &[(usize, Fault)]) -> Hook {
    let mut w = w.clone();
    // What was due to exit by itself has, before the hook looks.
    w.tick();
    let w = &w;
    let cfg = Config::default();
    let snap = w.snapshot();
    let plan = decide(&snap, &cfg, mode);
    let mut sim = Sim::new(w.clone(), faults.to_vec());
    sim.grace = sim
        .grace
        .max(crate::repair::grace(&cfg, &plan.steps).as_secs() + 1);
    let outcome = execute(&sim, &cfg, &snap, &plan.steps);
    Hook {
        mode,
        before: w.clone(),
        after: sim.world.into_inner(),
        plan,
        outcome,
        rec: sim.rec.into_inner(),
    }
}

/// A whole run: the hooks in order (dpkg between them).
pub fn run(
    w: &World,
    how: Run,
    faults: &[(usize, Fault)],
    faults2: &[(usize, Fault)],
) -> Vec<Hook> {
    match how {
        Run::Repair => vec![hook(w, Mode::Full, faults)],
        Run::Apt { preinst_stops } => apt_run(w, preinst_stops, &[], faults, faults2),
    }
}

/// An apt run upgrading openssh-server: pre-invoke, then `between` (what
/// happens after the guard's hook and before dpkg: a later hook, a cron
/// job), the preinst's stop, dpkg's unpack and configure, post-invoke.
pub fn apt_run(
    w: &World,
    preinst_stops: bool,
    between: &[build::Op],
    faults: &[(usize, Fault)],
    faults2: &[(usize, Fault)],
) -> Vec<Hook> {
    // Pre-invoke records the ssh units active when it looks (its marker's
    // served_units); both hooks read it back.
    let mut w = w.clone();
    w.tick();
    w.served_units = Some(w.active_units());
    let pre = hook(&w, Mode::Preflight, faults);
    let mut mid = pre.after.clone();
    for op in between {
        mid.apply(*op);
    }
    mid.clock += 5;
    if preinst_stops {
        let _ = mid.stop(SERVICE);
    }
    mid.unpack();
    let _ = mid.configure();
    mid.clock += 5;
    let post = hook(&mid, Mode::Full, faults2);
    vec![pre, post]
}

/// Whether the guard could restore ssh at all here: sshd accepts its
/// configuration (or only lacks host keys) and no process it may not
/// touch holds an ssh address.
fn restorable(w: &World) -> bool {
    let foreign = w.procs.iter().any(|p| {
        p.alive
            && p.kind == Kind::Listener
            && p.other_ns
            && w.sshd_binds()
                .iter()
                .chain(w.socket.listen.iter())
                .any(|a| p.holds.iter().any(|h| collides(a, h)))
    });
    !matches!(w.sshd.state, ConfigState::Invalid | ConfigState::Hung) && !foreign
}

/// The unit a report line is about: "started U", "restarted U", and the
/// model's job errors "start U: ...", "restart U: ...".
fn unit_of(line: &str) -> Option<(&str, bool)> {
    let is_unit = |u: &str| u.ends_with(".service") || u.ends_with(".socket");
    // repair::start_unit's failure: "U is failed/failed: start U: ...".
    if let Some((u, _)) = line.split_once(" is ") {
        if is_unit(u) && line.contains("start") {
            return Some((u, false));
        }
    }
    for (prefix, did) in [
        ("started ", true),
        ("restarted ", true),
        ("start ", false),
        ("restart ", false),
    ] {
        if let Some(rest) = line.strip_prefix(prefix) {
            let unit = rest.split([' ', ':']).next()?;
            if is_unit(unit) {
                return Some((unit, did));
            }
        }
    }
    None
}

/// The properties of issue 18, item 6, over one hook.
pub fn check(h: &Hook) -> Result<(), String> {
    let (b, a) = (&h.before, &h.after);
    // The model's intent rule over the machine this hook saw (with the
    // served_units of this apt run's pre-invoke).
    let should = b.should_serve();
    // 1. Only a process stale in the model is signalled; no session.
    for s in &h.rec.signalled {
        if !s.truly_stale || s.session {
            return Err(format!(
                "signalled pid {} which the model does not call stale{}",
                s.pid,
                if s.session { " (a session)" } else { "" }
            ));
        }
    }
    // 2. What served keeps serving, whatever failed; and where ssh served
    //    before this run and should serve, ssh or the rescue serves after.
    // The rescue itself could not be started: every means failed.
    let no_rescue = h
        .outcome
        .events
        .iter()
        .any(|(ok, l)| !ok && l.starts_with("could not start a rescue"));
    let lost: Vec<String> = b
        .serving()
        .into_iter()
        .filter(|t| !a.answers(t).0)
        .collect();
    if !lost.is_empty() && should && !no_rescue && !h.rec.world_event {
        return Err(format!(
            "ssh served on {} before this hook and no longer does",
            lost.join(", ")
        ));
    }
    // "Served before": every machine is built from a healthy one that
    // served (build::healthy), so what breaks it came after; whether it
    // still should serve is the intent rule's to say.
    // The guard owns the outcome once it touched anything that serves; a
    // run cut (or refused) before it acted leaves the machine as it was.
    let touched = h.rec.calls.iter().any(|c| {
        ["start ", "restart ", "stop", "rescue", "configure"]
            .iter()
            .any(|p| c.what.starts_with(p))
    });
    // A listener the guard could not stop, serving nobody, on every
    // address: nothing could serve there. The rescue is one too when its
    // stop failed (a systemd unit's process: never signalled by the guard).
    let rescue_stop_failed = h
        .outcome
        .events
        .iter()
        .any(|(ok, l)| !ok && l.starts_with(&format!("stop-unit {RESCUE}")));
    let blocked = a.targets().iter().all(|t| {
        a.reached(t).is_some_and(|p| {
            !p.works
                && (a.truly_stale(p) || (rescue_stop_failed && p.unit.as_deref() == Some(RESCUE)))
        })
    });
    if h.mode == Mode::Full
        && !no_rescue
        && should
        && restorable(b)
        && touched
        && !blocked
        && a.serving().is_empty()
    {
        return Err(
            "ssh served before this run and should serve, and nothing serves after it".into(),
        );
    }
    // 3. Intent: the guard's rule (intent::should_serve, as the plan
    //    carries it) agrees with the model's; nothing started where ssh
    //    should not serve; no rescue.
    if h.plan.intent.serves() != should {
        return Err(format!(
            "the guard says '{}', the model says ssh {} serve",
            h.plan.intent,
            if should { "should" } else { "should not" }
        ));
    }
    if !should {
        if let Some(u) = h.rec.started.first() {
            return Err(format!("{u} started although ssh should not serve"));
        }
        if h.rec.calls.iter().any(|c| c.what == "rescue") {
            return Err("a rescue was started although ssh should not serve".into());
        }
    }
    // 5. The package step: never while ssh does not serve, never twice.
    if h.rec.configures.len() > 1 {
        return Err("the package step ran twice".into());
    }
    // Where ssh is off by the admin's choice there is nothing to keep
    // serving while dpkg runs.
    if should && h.rec.configures.iter().any(|served| !served) {
        return Err("the package step ran while ssh did not serve on every address".into());
    }
    // 4. The report matches the end state (when there is a report: a
    //    process cut by its deadline prints only its one line).
    if h.rec.cut_at.is_some() {
        return Ok(());
    }
    for (ok, line) in &h.outcome.events {
        match unit_of(line) {
            _ if *ok
                && line.starts_with("started a rescue sshd")
                && !h.rec.started.iter().any(|s| s == RESCUE) =>
            {
                return Err(format!("did: {line}, but the rescue did not run"));
            }
            Some((u, true)) if *ok && !h.rec.started.iter().any(|s| s == u) => {
                return Err(format!("did: {line}, but {u} did not run"));
            }
            Some((u, false))
                if !ok
                    && a.unit(u).is_some_and(Unit::is_active)
                    && a.serves_everywhere()
                    && u != RESCUE =>
            {
                return Err(format!("FAILED: {line}, but {u} runs and ssh serves"));
            }
            _ => {}
        }
        if let Some(pid) = line
            .strip_prefix("stopped stale sshd listener pid ")
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse::<u32>().ok())
        {
            if *ok && a.proc(pid).is_some_and(|p| p.kind == Kind::Listener) {
                return Err(format!("did: {line}, but pid {pid} still listens"));
            }
        }
    }
    let acted = !h.plan.steps.is_empty();
    if acted && !h.outcome.any_failed() {
        // Where ssh should not serve, success is the plan's other work.
        if should && !a.serves_everywhere() {
            return Err(format!(
                "the repair reports success, but ssh serves only on [{}] of [{}]",
                a.serving().join(", "),
                a.targets().join(", ")
            ));
        }
        let configured = h
            .plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::ConfigurePackage { .. }));
        if configured && a.pkg != "installed" {
            return Err(format!(
                "the repair reports success, but openssh-server is {}",
                a.pkg
            ));
        }
    }
    Ok(())
}

/// Every hook of a run, checked.
pub fn check_run(hooks: &[Hook]) -> Result<(), String> {
    for (i, h) in hooks.iter().enumerate() {
        check(h).map_err(|e| format!("hook {} ({:?}): {e}", i + 1, h.mode))?;
    }
    Ok(())
}

/// What a failed case looks like, for the findings file and the test's
/// message.
pub fn describe(first: &World, hooks: &[Hook]) -> String {
    let mut s = String::new();
    for (i, h) in hooks.iter().enumerate() {
        s.push_str(&format!(
            "hook {} {:?}: steps {:?}\n  calls {:?}\n  events {:?}\n  signalled {:?} cut_at {:?}\n  after: socket {:?} service {:?} rescue {:?} pkg {} serving {:?} of {:?}\n",
            i + 1,
            h.mode,
            h.plan.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            h.rec.calls.iter().map(|c| format!("{}{}@{}", c.what, if c.critical { "*" } else { "" }, c.at)).collect::<Vec<_>>(),
            h.outcome.events,
            h.rec.signalled,
            h.rec.cut_at,
            h.after.socket.active,
            h.after.service.active,
            h.after.rescue.active,
            h.after.pkg,
            h.after.serving(),
            h.after.targets(),
        ));
    }
    format!("start: serving {:?}\n{s}", first.serving())
}
