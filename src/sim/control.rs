//! `repair::UnitControl` over the simulated machine, with a fault schedule:
//! any call can fail, time out or be slow, a world event can happen before
//! it (a listener exits and its pid is reused), and the hook's deadline or
//! a signal can arrive at it. Every call is recorded with whether it was
//! made inside a `deadline::critical` stretch (as the recording fake in
//! `repair/tests.rs` does), which decides what a deadline or a signal does.
#![forbid(unsafe_code)]

use super::world::*;
use crate::hostkeys::PubKey;
use crate::model::{ConfigCheck, ProcessStamp};
use crate::repair::{Outcome, Settled, UnitControl};
use crate::sshd::Endpoint;
use crate::system::kex::Serving;
use crate::system::signal::Stopped;
use anyhow::{anyhow, Result};
use std::cell::RefCell;
use std::time::Duration;

/// What happens at one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call fails before it acts (a D-Bus error).
    Fail,
    /// The job was queued and acts, but its wait times out (90 s).
    Timeout,
    /// The call acts and takes this many seconds.
    Slow(u64),
    /// The hook's deadline passes as this call begins.
    Deadline,
    /// SIGINT, SIGHUP or SIGTERM arrives as this call begins.
    Signal,
    /// A stale listener exits by itself just before this call, and a
    /// session gets its pid (another start time).
    ListenerExits,
}

/// How long a job waits before it gives up (repair::JOB_TIMEOUT).
pub const JOB_TIMEOUT: u64 = 90;

#[derive(Clone, Debug)]
pub struct Call {
    pub what: String,
    /// Inside a critical stretch (the deadline waits for it).
    pub critical: bool,
    pub at: u64,
}

/// A process the guard signalled, and what the model says it was.
#[derive(Clone, Debug)]
pub struct Signalled {
    pub pid: u32,
    pub truly_stale: bool,
    pub session: bool,
}

#[derive(Default, Debug)]
pub struct Record {
    pub calls: Vec<Call>,
    pub signalled: Vec<Signalled>,
    /// Each package step, and whether ssh served on every address then.
    pub configures: Vec<bool>,
    /// Units the guard started (or restarted) that ran afterwards.
    pub started: Vec<String>,
    /// The process ended (deadline or signal) before this call.
    pub cut_at: Option<usize>,
    pub deadline_at: Option<u64>,
    pub signal_pending: bool,
    /// A listener exited by itself during the hook (not the guard's doing).
    pub world_event: bool,
}

pub struct Sim {
    pub world: RefCell<World>,
    pub rec: RefCell<Record>,
    pub faults: Vec<(usize, Fault)>,
    pub stop_timeout: u64,
    pub banner_timeout: u64,
    pub ledger: RefCell<String>,
    /// How long past its deadline the hook waits for a critical stretch
    /// (repair::grace of the plan, at least deadline::CRITICAL_GRACE).
    pub grace: u64,
}

impl Sim {
    pub fn new(world: World, faults: Vec<(usize, Fault)>) -> Sim {
        let cfg = crate::config::Config::default();
        Sim {
            world: RefCell::new(world),
            rec: RefCell::new(Record::default()),
            faults,
            stop_timeout: cfg.stop_timeout.as_secs(),
            banner_timeout: cfg.banner_timeout.as_secs(),
            ledger: RefCell::new(String::new()),
            grace: crate::deadline::CRITICAL_GRACE.as_secs(),
        }
    }

    /// Begins a call: Err when the guard's process is gone (a deadline
    /// outside a critical stretch, or past its grace; a signal outside one);
    /// else the fault for this call, if any.
    fn begin(&self, what: String) -> std::result::Result<Option<Fault>, ()> {
        let critical = crate::deadline::critical_on_this_thread();
        let mut rec = self.rec.borrow_mut();
        if rec.cut_at.is_some() {
            return Err(());
        }
        let n = rec.calls.len();
        let fault = self.faults.iter().find(|(i, _)| *i == n).map(|(_, f)| *f);
        self.world.borrow_mut().tick();
        let now = self.world.borrow().clock;
        match fault {
            Some(Fault::Deadline) if rec.deadline_at.is_none() => rec.deadline_at = Some(now),
            Some(Fault::Signal) => rec.signal_pending = true,
            Some(Fault::ListenerExits) => {
                rec.world_event = true;
                self.listener_exits()
            }
            _ => {}
        }
        let past_deadline = rec
            .deadline_at
            .is_some_and(|d| now >= d && (!critical || now >= d + self.grace));
        // Signals are held inside a critical stretch and acted on after it
        // (issue 18, item 1): that is the rule the model holds the code to.
        if past_deadline || (rec.signal_pending && !critical) {
            rec.cut_at = Some(n);
            return Err(());
        }
        rec.calls.push(Call {
            what,
            critical,
            at: now,
        });
        Ok(fault)
    }

    fn listener_exits(&self) {
        let mut w = self.world.borrow_mut();
        let Some(p) = w.procs.iter().find(|p| w.truly_stale(p)).cloned() else {
            return;
        };
        w.kill(p.pid);
        w.clock += 1;
        let mut session = p.clone();
        session.kind = Kind::Session;
        session.holds.clear();
        session.start_time = p.start_time + 1;
        session.alive = true;
        session.comm = "sshd".into();
        session.deleted = false;
        w.procs.push(session);
    }

    /// Runs one action with its fault: Fail skips it, Timeout runs it and
    /// fails after JOB_TIMEOUT, Slow runs it late.
    fn act(&self, what: String, f: impl FnOnce(&mut World) -> Result<(), String>) -> Result<()> {
        let fault = self
            .begin(what.clone())
            .map_err(|_| anyhow!("{what}: the guard is gone"))?;
        let mut w = self.world.borrow_mut();
        match fault {
            Some(Fault::Fail) => Err(anyhow!("{what}: D-Bus call failed")),
            Some(Fault::Timeout) => {
                let _ = f(&mut w);
                w.clock += JOB_TIMEOUT;
                Err(anyhow!("{what}: job did not finish within {JOB_TIMEOUT} s"))
            }
            Some(Fault::Slow(s)) => {
                w.clock += s;
                f(&mut w).map_err(|e| anyhow!(e))
            }
            _ => {
                w.clock += 1;
                f(&mut w).map_err(|e| anyhow!(e))
            }
        }
    }

    fn note_started(&self, unit: &str) {
        let active = self.world.borrow().unit(unit).is_some_and(Unit::is_active);
        if active {
            self.rec.borrow_mut().started.push(unit.to_string());
        }
    }
}

fn serving_line(w: &World, targets: &[Endpoint]) -> Serving {
    let mut refused = Vec::new();
    let mut no_kex = Vec::new();
    let mut ok = Vec::new();
    let mut down = Vec::new();
    for e in targets {
        let t = e.to_string();
        match w.answers(&t) {
            (true, _) => ok.push(t),
            (false, true) => no_kex.push(t),
            (false, false) => {
                refused.push(format!("{t}: Connection refused"));
                down.push(e.clone());
            }
        }
    }
    if refused.is_empty() && no_kex.is_empty() {
        return Serving {
            proof: "key exchange",
            ok: true,
            any: !ok.is_empty(),
            summary: format!(
                "ssh completed a key exchange with this host's ed25519 key (SHA256:sim) on {}",
                ok.join(", ")
            ),
            down,
        };
    }
    let mut why = Vec::new();
    if !refused.is_empty() {
        why.push(format!(
            "ssh does not answer after the repair: {}",
            refused.join("; ")
        ));
    }
    for t in &no_kex {
        why.push(format!("ssh answers on {t} but completes no key exchange"));
    }
    Serving {
        proof: "key exchange",
        ok: false,
        any: !ok.is_empty(),
        summary: why.join("; "),
        down,
    }
}

impl UnitControl for Sim {
    fn prepare_jobs(&self) -> Result<()> {
        self.act("prepare".into(), |_| Ok(()))
    }
    fn reset_failed(&self, unit: &str) -> Result<()> {
        self.act(format!("reset-failed {unit}"), |w| w.reset_failed(unit))
    }
    fn start(&self, unit: &str) -> Result<()> {
        let r = self.act(format!("start {unit}"), |w| w.start(unit));
        self.note_started(unit);
        r
    }
    fn restart(&self, unit: &str) -> Result<()> {
        let fault = self.faults.clone();
        let n = self.rec.borrow().calls.len();
        // A restart that fails has stopped the unit: the job's start part
        // is what failed.
        let fails = fault.iter().any(|(i, f)| *i == n && *f == Fault::Fail);
        let r = if fails {
            match self.begin(format!("restart {unit}")) {
                Err(()) => Err(anyhow!("restart {unit}: the guard is gone")),
                Ok(_) => {
                    let mut w = self.world.borrow_mut();
                    w.clock += 1;
                    w.restart_fails(unit).map_err(|e| anyhow!(e))
                }
            }
        } else {
            self.act(format!("restart {unit}"), |w| w.restart(unit))
        };
        self.note_started(unit);
        r
    }
    fn stop(&self, unit: &str) -> Result<()> {
        self.act(format!("stop-unit {unit}"), |w| w.stop(unit))
    }
    fn start_ledger(&self) -> (String, u64) {
        (
            self.ledger.borrow().clone(),
            1_700_000_000 + self.world.borrow().clock,
        )
    }
    fn record_start(&self, unit: &str) {
        let now = 1_700_000_000 + self.world.borrow().clock;
        let l = crate::roads::ledger_add(&self.ledger.borrow(), unit, now);
        *self.ledger.borrow_mut() = l;
    }
    fn stop_stale(&self, process: ProcessStamp, exe: &str) -> Result<Stopped> {
        let mut out = Err(anyhow!("not run"));
        let timeout = self.stop_timeout;
        let r = self.act(format!("stop {}", process.pid), |w| {
            let (r, signalled) = w.stop_stale(process, exe, timeout);
            if let Some(p) = signalled {
                let truly_stale = w.truly_stale(&p) || !p.alive;
                self.rec.borrow_mut().signalled.push(Signalled {
                    pid: p.pid,
                    truly_stale: truly_stale && p.kind == Kind::Listener,
                    session: p.kind == Kind::Session,
                });
            }
            match r {
                Ok(s) => {
                    out = Ok(s);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        });
        r.and(out)
    }
    fn wait_free(&self, addresses: &[String], within: Duration) -> Vec<String> {
        if self.begin("wait-free".into()).is_err() {
            return addresses.to_vec();
        }
        let mut w = self.world.borrow_mut();
        let until = w.clock + within.as_secs();
        loop {
            w.tick();
            let held: Vec<String> = addresses
                .iter()
                .filter(|a| w.holder_of(a).is_some())
                .cloned()
                .collect();
            if held.is_empty() || w.clock >= until {
                return held;
            }
            w.clock += 1;
        }
    }
    fn settle(&self, unit: &str, _within: Duration) -> Settled {
        let _ = self.begin(format!("settle {unit}"));
        let mut w = self.world.borrow_mut();
        w.clock += 1;
        match w.unit(unit) {
            Some(u) => {
                let st = u.state(w.socket_required);
                Settled {
                    active: u.is_active(),
                    n_restarts: st.n_restarts,
                    state: format!("{}/{}", st.active_state, st.sub_state),
                }
            }
            None => Settled {
                active: false,
                n_restarts: None,
                state: "inactive/dead".into(),
            },
        }
    }
    fn interrupted(&self) -> Option<String> {
        self.rec
            .borrow()
            .signal_pending
            .then(|| "SIGTERM".to_string())
    }
    fn serves(&self, targets: &[Endpoint]) -> Serving {
        match self.begin("probe".into()) {
            Err(()) => Serving {
                proof: "key exchange",
                ok: false,
                any: false,
                summary: "the guard is gone".into(),
                down: Vec::new(),
            },
            Ok(fault) => {
                let mut w = self.world.borrow_mut();
                for t in targets {
                    w.connect(&t.to_string());
                }
                let s = serving_line(&w, targets);
                w.clock += if s.ok { 1 } else { self.banner_timeout };
                if let Some(Fault::Slow(x)) = fault {
                    w.clock += x;
                }
                s
            }
        }
    }
    fn generate_host_keys(&self) -> Result<Vec<PubKey>> {
        self.act("keygen".into(), |w| {
            if w.sshd.state == ConfigState::NoHostKeys {
                w.sshd.state = ConfigState::Valid;
            }
            Ok(())
        })?;
        let key = crate::hostkeys::parse_pub(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6l28bt6L6xjnZJX1OAFRCQ4tu3S6Pt7atifrrz8Wov root@sim",
        )
        .map_err(|e| anyhow!(e))?;
        Ok(vec![key])
    }
    fn check_config(&self) -> ConfigCheck {
        match self.begin("sshd -T".into()) {
            Err(()) => ConfigCheck {
                valid: None,
                error: Some("the guard is gone".into()),
            },
            Ok(_) => self.world.borrow().config_check(),
        }
    }
    fn start_rescue_sshd(&self, _opts: &[String]) -> Result<()> {
        let r = self.act("rescue".into(), World::start_rescue);
        self.note_started(RESCUE);
        r
    }
    fn configure_package(&self, package: &str, out: &mut Outcome) -> Result<()> {
        let serving = self.world.borrow().serves_everywhere();
        let before = self.rec.borrow().calls.len();
        let r = self.act(format!("configure {package}"), |w| w.configure());
        if self.rec.borrow().calls.len() > before {
            self.rec.borrow_mut().configures.push(serving);
        }
        r?;
        out.events
            .push((true, format!("configured {package} (dpkg --configure)")));
        Ok(())
    }
}
