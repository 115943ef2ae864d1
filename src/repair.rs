//! Carrying out a plan. Every step is checked before (the plan was made only
//! if sshd accepts its configuration; a stale pid is re-verified through its
//! pidfd) and after (an SSH-2.0 banner must answer on every address; if it
//! does not, a rescue sshd is started so nobody is locked out).

use crate::config::Config;
use crate::model::Snapshot;
use crate::plan::Step;
use crate::system::procs::Procfs;
use crate::system::signal::{self, Stopped};
use crate::system::snapshot::probe_targets;
use crate::system::systemd::Systemd;
use crate::system::{dpkg, locks, sshd, Roots};
use anyhow::{anyhow, Result};
use std::time::Duration;

const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// What a repair did, in the order it happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (true: done, false: failed), one line each.
    pub events: Vec<(bool, String)>,
}

impl Outcome {
    fn did(&mut self, s: String) {
        self.events.push((true, s));
    }
    fn failed(&mut self, s: String) {
        self.events.push((false, s));
    }
    pub fn any_failed(&self) -> bool {
        self.events.iter().any(|(ok, _)| !ok)
    }
}

/// Runs dpkg inside apt's hooks (apt holds lock-frontend and says so in
/// DPKG_FRONTEND_LOCKED) or, outside apt, after taking lock-frontend itself.
fn configure_package(roots: &Roots, cfg: &Config, out: &mut Outcome) -> Result<()> {
    let inside_apt = std::env::var_os("DPKG_FRONTEND_LOCKED").is_some();
    let _lock = if inside_apt {
        None
    } else {
        Some(
            locks::take_frontend(&roots.dpkg_admin)
                .map_err(|e| anyhow!("not configuring {} now: {e:#}", cfg.package))?,
        )
    };
    dpkg::configure(std::slice::from_ref(&cfg.package), true)?;
    out.did(format!("configured {} (dpkg --configure)", cfg.package));
    // Packages dpkg skipped because they depend on it ("dependency problems").
    let states = dpkg::states(&roots.dpkg_admin)?;
    let waiting: Vec<String> = states
        .iter()
        .filter(|p| p.is_incomplete() && p.depends_on(&cfg.package))
        .map(|p| p.name.clone())
        .collect();
    if !waiting.is_empty() {
        dpkg::configure(&waiting, true)?;
        out.did(format!(
            "configured {} (they were waiting for {})",
            waiting.join(", "),
            cfg.package
        ));
    }
    let unrelated: Vec<String> = dpkg::states(&roots.dpkg_admin)?
        .into_iter()
        .filter(|p| p.is_incomplete())
        .map(|p| format!("{} ({})", p.name, p.status))
        .collect();
    if !unrelated.is_empty() {
        out.failed(format!(
            "left alone, not related to ssh: {} not fully installed; run 'apt-get install -f' or 'dpkg --configure -a' for those",
            unrelated.join(", ")
        ));
    }
    Ok(())
}

fn verify(roots: &Roots, cfg: &Config, sd: &Systemd, snap: &Snapshot, out: &mut Outcome) -> bool {
    let targets = probe_targets(snap);
    let res = sshd::wait_banners(&targets, cfg.banner_timeout);
    let bad: Vec<String> = res
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().cloned())
        .collect();
    if bad.is_empty() {
        let good: Vec<String> = res
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|b| b.starts_with("SSH-")))
            .map(|(a, _)| a.to_string())
            .collect();
        out.did(format!(
            "ssh answers with an SSH-2.0 banner on {}",
            good.join(", ")
        ));
        return true;
    }
    out.failed(format!(
        "ssh does not answer after the repair: {}",
        bad.join("; ")
    ));
    // Never leave the machine without a listener: start sshd as a transient
    // unit from the installed binary and say so loudly.
    let any_answer = res
        .iter()
        .any(|(_, r)| r.as_ref().is_ok_and(|b| b.starts_with("SSH-")));
    if !any_answer {
        match sd.start_rescue_sshd(&roots.sshd.display().to_string(), JOB_TIMEOUT) {
            Ok(()) => {
                let again = sshd::wait_banners(&targets, cfg.banner_timeout);
                if again.iter().any(|(_, r)| r.is_ok()) {
                    out.did(format!(
                        "started a rescue sshd ({}) so that you can still log in; fix ssh.service/ssh.socket, then 'systemctl stop {}'",
                        crate::system::systemd::RESCUE_UNIT,
                        crate::system::systemd::RESCUE_UNIT
                    ));
                } else {
                    out.failed("the rescue sshd does not answer either".into());
                }
            }
            Err(e) => out.failed(format!("could not start a rescue sshd: {e:#}")),
        }
    }
    false
}

/// Executes the steps in order. A failed step that leaves ssh possibly down
/// goes straight to the banner check (and its rescue).
pub fn execute(
    roots: &Roots,
    cfg: &Config,
    sd: &Systemd,
    snap: &Snapshot,
    steps: &[Step],
) -> Outcome {
    let mut out = Outcome::default();
    let procfs = Procfs::new(&roots.proc);
    // Everything that can be done before a stale listener is stopped is
    // done first, so that between its exit and systemd listening again there
    // is only the start request: subscribe to job signals, and reset-failed
    // every unit about to be started (it also clears the start-rate counter,
    // which repeated repairs would otherwise hit: start-limit-hit).
    if let Err(e) = sd.prepare_jobs() {
        out.failed(format!("{e:#}"));
        return out;
    }
    for step in steps {
        if let Step::StartUnit { unit } | Step::RestartUnit { unit } = step {
            let _ = sd.reset_failed(unit);
        }
    }
    let mut skip_to_verify = false;
    // From stopping a stale listener until ssh answers again (or the rescue
    // sshd was started), a hook's deadline must not cut the repair short:
    // that could leave ssh down (deadline.rs).
    let mut restoring: Option<crate::deadline::Critical> = None;
    for step in steps {
        if skip_to_verify && !matches!(step, Step::VerifyBanner) {
            continue;
        }
        let r: Result<()> = match step {
            Step::StopStale {
                pid,
                start_time,
                exe,
            } => {
                restoring.get_or_insert_with(crate::deadline::critical);
                let still_same = || -> Result<bool> {
                    Ok(procfs.start_time(*pid) == Some(*start_time)
                        && procfs.exe(*pid).as_deref() == Some(exe.as_str()))
                };
                signal::terminate(*pid, cfg.stop_timeout, still_same).map(|how| {
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
                })
            }
            Step::ResetFailed { unit } => sd
                .reset_failed(unit)
                .map(|_| out.did(format!("reset the failed state of {unit}"))),
            Step::StartUnit { unit } => sd
                .job("start", unit, JOB_TIMEOUT)
                .map(|_| out.did(format!("started {unit}"))),
            Step::RestartUnit { unit } => sd
                .job("restart", unit, JOB_TIMEOUT)
                .map(|_| out.did(format!("restarted {unit}"))),
            Step::VerifyBanner => {
                let answers = verify(roots, cfg, sd, snap, &mut out);
                restoring = None;
                if !answers {
                    // The package step would restart ssh again; stop here.
                    return out;
                }
                Ok(())
            }
            Step::ConfigurePackage { .. } => configure_package(roots, cfg, &mut out),
        };
        if let Err(e) = r {
            out.failed(format!("{e:#}"));
            match step {
                // The stale listener still serves logins: nothing else to do.
                Step::StopStale { .. } => return out,
                _ => skip_to_verify = true,
            }
        }
    }
    out
}
