//! apt's DPkg::Pre-Invoke and DPkg::Post-Invoke hooks. They never fail apt:
//! whatever happens (errors, even panics) ends as one warning line and exit
//! status 0.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::diagnose::{diagnose_and_repair, refused, repaired, Act, Diagnosis, Inhibition, Where};
use super::output::{Line, Outcome};
use super::record::{metrics_enabled, observed_fast, Inhibit, PackageOk, Record};
use super::{exit, Ctx};
use crate::intent::should_serve;
use crate::marker::{self, Marker};
use crate::model::Units;
use crate::plan::Mode;
use crate::stamp::ProcessStamp;
use crate::system::fast::{self, Detail};
use crate::system::fsx::{Entry, RunDir};
use crate::system::host::host;
use crate::system::intent::fast_facts as intent_facts;
use crate::system::procs::{Procfs, PACKAGE_MANAGERS};
use crate::system::snapshot::{self, Clean, MARKER_FILE};
use crate::system::{dpkg, locks, now_secs, own_pid, parent_pid, Roots};
use anyhow::{anyhow, Context, Result};

/// Runs a hook's body: its errors and panics become one warning line; the
/// exit status is always 0.
fn hook(name: &str, body: impl FnOnce(&mut Outcome) -> Result<()>) -> Outcome {
    let mut o = Outcome::exit(exit::OK);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut o)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => o.lines.push(Line::Warning(format!(
            "{name}: {e:#} (apt continues; the guard did nothing more)"
        ))),
        Err(_) => o.lines.push(Line::Warning(internal_error(name))),
    }
    o
}

/// The warning line for a panic inside a hook (the panic hook leaves the
/// telling to us: one line in all).
fn internal_error(name: &str) -> String {
    format!(
        "{name}: internal error: {} (apt continues)",
        crate::last_panic().unwrap_or_else(|| "the guard stopped unexpectedly".into())
    )
}

/// The two apt hooks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Hook {
    /// DPkg::Pre-Invoke.
    Pre,
    /// DPkg::Post-Invoke.
    Post,
}

impl Hook {
    /// The command's name, as the warning line starts.
    fn name(self) -> &'static str {
        match self {
            Hook::Pre => "pre-invoke",
            Hook::Post => "post-invoke",
        }
    }
}

/// Runs a hook under HOOK_DEADLINE and returns its exit status (always 0).
/// The body, its output included, runs on its own thread; when the deadline
/// passes first (never inside a repair's critical stretch), one warning line
/// says what the guard was waiting for, and the body is abandoned: it ends
/// with the process.
pub(crate) fn bounded(ctx: &Ctx, hook: Hook) -> i32 {
    use crate::deadline::{current, run_hook, Outcome as Bounded};
    crate::enter_hook();
    let limit = ctx.cfg.hook_deadline;
    let theirs = ctx.clone();
    let ran = run_hook(limit, move || {
        let o = match hook {
            Hook::Pre => pre_invoke(&theirs),
            Hook::Post => post_invoke(&theirs),
        };
        super::output::emit(&theirs, o)
    });
    let name = hook.name();
    let line = match ran {
        Bounded::Done(code) => return code,
        Bounded::TimedOut => {
            let doing = current().unwrap_or_else(|| "its checks".to_string());
            let after_note = match hook {
                Hook::Pre => "",
                Hook::Post => "the inhibit marker is left to lapse when apt exits; ",
            };
            format!(
                "{name}: gave up after {} s (HOOK_DEADLINE) while {doing}; {after_note}apt continues",
                limit.as_secs()
            )
        }
        // A panic past the body's own catch (while telling or recording).
        Bounded::Panicked => internal_error(name),
    };
    super::output::emit(ctx, Outcome::exit(exit::OK).warn(line))
}

/// Why the hooks do not act here (a chroot, an image build, dpkg on
/// another root, an apt run whose dpkg does nothing), or None (booted.rs).
fn not_here(ctx: &Ctx, holder: ProcessStamp) -> Option<String> {
    crate::booted::not_here(&host(&ctx.roots, Some(holder.pid)))
}

/// The package manager running this dpkg batch: the holder of lock-frontend,
/// else the nearest apt-like ancestor, else our parent.
fn find_holder(roots: &Roots) -> (ProcessStamp, String) {
    let procfs = Procfs::new(&roots.proc);
    if let Ok(Some(Some(pid))) = locks::holder(&roots.dpkg_admin.join(locks::LOCK_FRONTEND)) {
        if let Some(i) = procfs.info(pid) {
            return (i.process, i.comm);
        }
    }
    let ppid = parent_pid();
    if let Some(i) = procfs.ancestor_named(ppid, PACKAGE_MANAGERS) {
        return (i.process, i.comm);
    }
    // No package manager: the parent (a shell), or ourselves when the parent
    // is outside our PID namespace (ppid 0). Such a marker goes stale as soon
    // as that process ends, which is right for a hand-run pre-invoke.
    let pid = if ppid == 0 { own_pid() } else { ppid };
    match procfs.info(pid) {
        Some(i) => (i.process, i.comm),
        None => (ProcessStamp { pid, start_time: 0 }, "?".into()),
    }
}

/// Places the marker, with the ssh units active now (`served`: None when
/// systemd did not answer). Returns a note when something unexpected sat at the
/// marker path (a symlink, a garbage file): it is replaced, never followed,
/// and the path is named.
fn place_marker(
    ctx: &Ctx,
    (holder, comm): (ProcessStamp, String),
    served: Option<Vec<String>>,
) -> Result<Option<String>> {
    let dir = RunDir::open(&ctx.roots, true)?
        .ok_or_else(|| anyhow!("{} missing", ctx.roots.run_dir.display()))?;
    let note = match dir.read(MARKER_FILE, marker::MAX_MARKER_BYTES) {
        Entry::Refused(why) => Some(format!("{why}; replaced by a new marker")),
        Entry::File(text) => Marker::parse(&text).err().map(|e| {
            format!(
                "{}: unreadable marker ({e}); replaced by a new marker",
                dir.file_path(MARKER_FILE).display()
            )
        }),
        Entry::Missing => None,
    };
    let procfs = Procfs::new(&ctx.roots.proc);
    let m = Marker {
        holder_pid: holder.pid,
        holder_start_time: holder.start_time,
        holder_comm: comm,
        boot_id: procfs.boot_id().context("cannot read the boot id")?,
        created: now_secs(),
        reason: "a package manager is running dpkg (DPkg::Pre-Invoke)".into(),
        served_units: served,
    };
    snapshot::write_marker(&dir, &m.render())?;
    log::info!(
        "placed {} for {} (pid {})",
        dir.file_path(MARKER_FILE).display(),
        m.holder_comm,
        m.holder_pid
    );
    Ok(note)
}

/// Removes the marker if it is ours (same holder) or stale.
fn release_marker(ctx: &Ctx, o: &mut Outcome) -> Result<()> {
    let Some(dir) = RunDir::open(&ctx.roots, false)? else {
        return Ok(());
    };
    let (view, id) = snapshot::marker_view_id(&ctx.roots, &ctx.cfg, Clean::RemoveStale);
    if let Some(p) = &view.problem {
        o.lines.push(Line::Warning(p.clone()));
    }
    if let (Some(m), true) = (&view.marker, view.live) {
        let (us, _) = find_holder(&ctx.roots);
        if m.holder() == us {
            if snapshot::remove_marker_if_same(&dir, id)? {
                log::info!("released {}", dir.file_path(MARKER_FILE).display());
            } else {
                log::info!(
                    "{} was rewritten meanwhile; the new one is left in place",
                    dir.file_path(MARKER_FILE).display()
                );
            }
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

/// DPkg::Pre-Invoke: places the inhibit marker, and repairs an already
/// broken ssh so that the maintainer scripts about to run succeed.
pub(crate) fn pre_invoke(ctx: &Ctx) -> Outcome {
    hook("pre-invoke", |o| {
        // The package manager is looked up once: the marker names it, and
        // its options say whether dpkg works on this system at all.
        let holder = find_holder(&ctx.roots);
        if let Some(why) = not_here(ctx, holder.0) {
            o.lines
                .push(Line::Say(format!("pre-invoke: not acting: {why}")));
            return Ok(());
        }
        // What serves now is recorded in the marker: after dpkg, ssh that
        // served before is restored (intent.rs). One D-Bus read serves both.
        let units = ctx
            .systemd()
            .and_then(|sd| fast::units(&sd, &ctx.cfg, Detail::Brief));
        let served = units.as_ref().ok().map(|u| {
            [&u.service, &u.socket]
                .into_iter()
                .filter(|st| st.is_active() || st.in_transition())
                .map(|st| st.name.clone())
                .collect()
        });
        // The marker and the preflight fail independently; both are reported
        // in the one warning line.
        let marked =
            place_marker(ctx, holder, served).context("could not place the inhibit marker");
        let checked = if ctx.cfg.preflight {
            units
                .and_then(|u| preflight(ctx, o, u))
                .context("preflight skipped")
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
fn preflight(ctx: &Ctx, o: &mut Outcome, units: Units) -> Result<()> {
    // Cheap path: systemd's word that the port holder is up and nothing
    // failed. A stale listener keeps the holder from being active.
    // Road b, said before dpkg runs (apt's hook cannot tell which packages
    // this run configures; the check costs nothing unless a unit is masked).
    if let Some((text, record)) = super::roads::predict_blocked_restart(ctx, &units) {
        o.lines.push(Line::Say(text));
        if metrics_enabled(ctx) {
            o.record = Some(record);
        }
        return Ok(());
    }
    let nothing_to_guard =
        units.service.load_state != "loaded" && units.socket.load_state != "loaded";
    if nothing_to_guard || units.look_healthy() {
        log::info!("preflight: ssh units healthy ({})", units.topology());
        if metrics_enabled(ctx) {
            o.record = Some(Record::observed(observed_fast(
                ctx,
                &units,
                PackageOk::Unknown,
                Inhibit::Inhibited,
            )));
        }
        return Ok(());
    }
    // ssh the admin turned off stays off: nothing to prepare for dpkg.
    let off = should_serve(&units, &intent_facts(&ctx.roots, None));
    if !off.serves() {
        log::info!("preflight: {off}");
        return Ok(());
    }
    let d = diagnose_and_repair(ctx, Mode::Preflight, Act::Repair, Inhibition::Ignore)?;
    if let Some((outcome, after)) = &d.done {
        o.lines.push(Line::Say(
            "before dpkg runs, repairing ssh so that openssh-server's maintainer scripts can succeed:".into(),
        ));
        let (text, record, _) = repaired(
            ctx,
            &d.plan,
            outcome,
            after,
            Where::BeforeDpkg,
            Inhibit::Inhibited,
        );
        o.lines.push(Line::Say(text));
        o.record = Some(record);
    } else if let Some((record, _)) = refused(ctx, &d, Inhibit::Inhibited) {
        o.record = Some(record);
        let Diagnosis { plan, .. } = d;
        return Err(anyhow!(
            "{}",
            plan.refused.map(|r| r.to_string()).unwrap_or_default()
        ));
    }
    Ok(())
}

/// DPkg::Post-Invoke: checks the package and ssh, repairs what is broken,
/// and releases the marker pre-invoke placed.
pub(crate) fn post_invoke(ctx: &Ctx) -> Outcome {
    hook("post-invoke", |o| {
        if let Some(why) = not_here(ctx, find_holder(&ctx.roots).0) {
            o.lines
                .push(Line::Say(format!("post-invoke: not acting: {why}")));
            return Ok(());
        }
        let result = post_invoke_check(ctx, o);
        let released = release_marker(ctx, o);
        result.and(released)
    })
}

/// post-invoke's check and repair (the marker is released after it, whatever happens).
fn post_invoke_check(ctx: &Ctx, o: &mut Outcome) -> Result<()> {
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
    let units = fast::units(&sd, &ctx.cfg, Detail::Brief)?;
    if units.look_healthy() && pkg.is_installed_ok() {
        log::info!(
            "{} installed, ssh units healthy ({}): nothing to do",
            ctx.cfg.package,
            units.topology()
        );
        if metrics_enabled(ctx) {
            o.record = Some(Record::observed(observed_fast(
                ctx,
                &units,
                PackageOk::Known(pkg.is_installed_ok()),
                Inhibit::Free,
            )));
        }
        return Ok(());
    }
    drop(sd);
    // ssh the admin turned off stays off: with the package installed there
    // is nothing to do, and the hook says so in one calm line. What served
    // before this apt run (the marker pre-invoke left) counts as wanted.
    if pkg.is_installed_ok() {
        let marker = snapshot::marker_view(&ctx.roots, &ctx.cfg, Clean::Keep);
        let intent = should_serve(&units, &intent_facts(&ctx.roots, Some(&marker)));
        if !intent.serves() {
            o.lines.push(Line::Say(format!("OK: {intent}")));
            return Ok(());
        }
    }
    if let Some((text, record)) = super::roads::report_blocked_restart(ctx, &units) {
        o.lines.push(Line::Say(text));
        o.record = Some(record);
        return Ok(());
    }
    let d = diagnose_and_repair(ctx, Mode::Full, Act::Repair, Inhibition::Ignore)?;
    if let Some((outcome, after)) = &d.done {
        let (text, record, _) = repaired(
            ctx,
            &d.plan,
            outcome,
            after,
            Where::AfterDpkg,
            Inhibit::Free,
        );
        o.lines.push(Line::Say(text));
        o.record = Some(record);
    } else if let Some((record, line)) = refused(ctx, &d, Inhibit::Free) {
        o.record = Some(record);
        o.lines.push(Line::Warning(line));
    }
    Ok(())
}
