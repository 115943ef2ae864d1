//! The real machine behind [`UnitControl`]: systemd over D-Bus, pidfd
//! signals, sockets, dpkg, ssh-keyscan and ssh-keygen.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::{Outcome, Settled, UnitControl, JOB_TIMEOUT, START_LEDGER};
use crate::config::Config;
use crate::hostkeys::PubKey;
use crate::model::{ConfigCheck, ListenerClass, ProcessStamp};
use crate::sshd::Endpoint;
use crate::system::claims;
use crate::system::fsx::{Entry, RunDir};
use crate::system::kex::{self, Serving};
use crate::system::procs::Procfs;
use crate::system::signal::{self, Stopped};
use crate::system::systemd::{Systemd, RESCUE_UNIT};
use crate::system::{dpkg, locks, now_secs, sshd, Roots};
use anyhow::{anyhow, Result};
use std::time::Duration;

/// The real machine: systemd over D-Bus, pidfd signals, sockets, dpkg.
pub struct Machine<'a> {
    /// Where everything lives.
    pub roots: &'a Roots,
    /// The settings (timeouts, package).
    pub cfg: &'a Config,
    /// The connection to systemd.
    pub sd: &'a Systemd,
    /// The ssh ports: a stale listener is signalled only while it holds one.
    pub ports: &'a [u16],
}

impl UnitControl for Machine<'_> {
    fn prepare_jobs(&self) -> Result<()> {
        // Before anything is touched: SIGINT, SIGHUP and SIGTERM are held
        // off inside the critical stretches from here on (system::signal).
        signal::hold_in_critical_stretches();
        self.sd.prepare_jobs()
    }
    fn reset_failed(&self, unit: &str) -> Result<()> {
        self.sd.reset_failed(unit)
    }
    fn start(&self, unit: &str) -> Result<()> {
        self.sd.job("start", unit, JOB_TIMEOUT)
    }
    fn restart(&self, unit: &str) -> Result<()> {
        self.sd.job("restart", unit, JOB_TIMEOUT)
    }
    fn stop(&self, unit: &str) -> Result<()> {
        self.sd.job("stop", unit, JOB_TIMEOUT)
    }
    fn start_ledger(&self) -> (String, u64) {
        let text = match RunDir::open(self.roots, true)
            .ok()
            .flatten()
            .map(|d| d.read(START_LEDGER, 64 * 1024))
        {
            Some(Entry::File(t)) => t,
            _ => String::new(),
        };
        (text, now_secs())
    }
    fn record_start(&self, unit: &str) {
        let Some(d) = RunDir::open(self.roots, true).ok().flatten() else {
            return;
        };
        let (ledger, now) = self.start_ledger();
        let text = crate::roads::ledger_add(&ledger, unit, now);
        if let Err(e) = d.write_atomic(START_LEDGER, &text, 0o644) {
            log::info!("{e:#}");
        }
    }
    fn stop_stale(&self, process: ProcessStamp, exe: &str) -> Result<Stopped> {
        let procfs = Procfs::new(&self.roots.proc);
        // After the pidfd is open: the same process (start time, binary),
        // and still stale by the same rules, read afresh (its cgroup,
        // namespaces, ancestors, its unit's state and main process).
        let still_same = || -> Result<bool> {
            let j = claims::rejudge(&procfs, self.sd, process, exe, self.ports)?;
            if j.class != ListenerClass::Stale {
                return Err(anyhow!(
                    "pid {} is no longer a stale listener ({}); not signalled",
                    process.pid,
                    j.why
                ));
            }
            Ok(true)
        };
        signal::terminate(process.pid, self.cfg.stop_timeout, still_same)
    }
    fn wait_free(&self, addresses: &[String], within: Duration) -> Vec<String> {
        let wanted: Vec<std::net::SocketAddr> = addresses
            .iter()
            .filter_map(|a| crate::sshd::parse_listen(a).map(|e| e.addr))
            .collect();
        let mut ports: Vec<u16> = wanted.iter().map(|a| a.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        let _doing =
            crate::deadline::doing(format!("waiting for {} to be free", addresses.join(", ")));
        let procfs = Procfs::new(&self.roots.proc);
        let deadline = crate::deadline::after(within);
        loop {
            let held: Vec<String> = procfs
                .listening(&ports, &mut Vec::new())
                .values()
                .filter(|a| wanted.contains(a))
                .map(|a| a.to_string())
                .collect();
            if held.is_empty() || std::time::Instant::now() >= deadline {
                return held;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn settle(&self, unit: &str, within: Duration) -> Settled {
        let _doing = crate::deadline::doing(format!("waiting for {unit} to settle"));
        let deadline = crate::deadline::after(within);
        loop {
            let st = self.sd.unit_state(unit, true);
            let settled = match &st {
                Ok(u) => {
                    !(u.in_transition() || u.sub_state == "auto-restart")
                        || std::time::Instant::now() >= deadline
                }
                Err(_) => std::time::Instant::now() >= deadline,
            };
            if settled {
                return match st {
                    Ok(u) => Settled {
                        active: u.is_active(),
                        n_restarts: u.n_restarts,
                        state: format!("{}/{}", u.active_state, u.sub_state),
                    },
                    Err(e) => Settled {
                        active: false,
                        n_restarts: None,
                        state: format!("unknown ({e:#})"),
                    },
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn serves(&self, targets: &[Endpoint]) -> Serving {
        kex::serves(
            self.roots,
            targets,
            self.cfg.banner_timeout,
            " after the repair",
        )
    }
    fn generate_host_keys(&self) -> Result<Vec<PubKey>> {
        kex::generate_host_keys(self.roots)
    }
    fn check_config(&self) -> ConfigCheck {
        let opts = sshd::unit_options(self.roots);
        sshd::check_config(&self.roots.sshd, &opts.config_args).0
    }
    fn start_rescue_sshd(&self, opts: &[String]) -> Result<()> {
        self.sd
            .start_rescue_sshd(&self.roots.sshd.display().to_string(), opts, JOB_TIMEOUT)
            .or_else(|e| {
                // A rescue stopped with sessions left in its cgroup
                // (KillMode=process) stays loaded: the transient unit then
                // "already exists", and is started as it is.
                log::info!("{e:#}; starting {RESCUE_UNIT} as it is");
                self.sd
                    .job("start", RESCUE_UNIT, JOB_TIMEOUT)
                    .map_err(|e2| e.context(e2))
            })
    }
    fn configure_package(&self, package: &str, out: &mut Outcome) -> Result<()> {
        configure_package(self.roots, self.cfg, package, out)
    }
    fn interrupted(&self) -> Option<String> {
        signal::held()
    }
}

/// Runs dpkg inside apt's hooks (apt holds lock-frontend and says so in
/// DPKG_FRONTEND_LOCKED) or, outside apt, after taking lock-frontend itself.
/// `target` is the step's package name, arch-qualified when the package has
/// several stanzas (multi-arch).
fn configure_package(roots: &Roots, cfg: &Config, target: &str, out: &mut Outcome) -> Result<()> {
    let _lock = if dpkg::inside_apt() {
        None
    } else {
        Some(
            locks::take_frontend(&roots.dpkg_admin)
                .map_err(|e| anyhow!("not configuring {} now: {e:#}", cfg.package))?,
        )
    };
    dpkg::configure(&[target.to_string()], true, cfg.configure_timeout)?;
    out.did(format!("configured {target} (dpkg --configure)"));
    // Packages dpkg skipped because they depend on it ("dependency problems").
    let states = dpkg::states(&roots.dpkg_admin)?;
    let waiting: Vec<String> = states
        .iter()
        .filter(|p| p.is_incomplete() && p.depends_on(&cfg.package))
        .map(|p| p.name.clone())
        .collect();
    if !waiting.is_empty() {
        dpkg::configure(&waiting, true, cfg.configure_timeout)?;
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
    out.unrelated = unrelated;
    Ok(())
}
