//! Bounded time: a hook must never stall apt, whatever hangs underneath it
//! (a frozen system bus, an `sshd -T` stuck on a FIFO or a dead mount, a
//! systemd that does not answer). Each wait has its own bound where it
//! happens; this module adds the overall one: [`hook`] runs a hook's body on
//! a thread and, when the deadline passes, says in one line what the guard
//! was waiting for, and returns 0 so that apt goes on. The body's thread is
//! abandoned, and ends with the process.
//!
//! Two things shape what "gave up" may leave behind:
//! - [`doing`] records what the guard is waiting for right now, so the line
//!   names it ("waiting for sshd -T"), not just the hook.
//! - [`critical`] marks a stretch that must not be cut: from stopping
//!   anything that serves ssh until ssh answers again (or the rescue sshd
//!   was tried). Cutting it would leave ssh down. Every wait inside it is
//!   bounded on its own, so the hook waits for it to end (up to the grace
//!   the stretch asked for, [`critical_for`], which follows from those
//!   bounds) before giving up. SIGINT, SIGHUP and SIGTERM are held off
//!   inside it (system::signal, whose handler the real repair machine
//!   installs before its first step: repair::Machine::prepare_jobs).
//! - When a hook gives up, no stretch can begin any more (the body would
//!   stop a listener the exiting process could not bring back), and every
//!   child the guard started is killed with its process group
//!   (system::child), so no `dpkg --configure` holds dpkg's lock after apt
//!   has let go.
//!
//! What the hook then says is written by `commands::output`, the one
//! output place; this module only measures time.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// `now + d`, never overflowing: a duration too large for an Instant (the
/// settings cap durations at a day, but nothing here relies on it) means
/// "practically never".
pub fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// What the guard waits for, innermost last; each entry is removed by its
/// own [`Doing`] (threads may record and finish out of order).
static DOING: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static CRITICAL: AtomicUsize = AtomicUsize::new(0);
/// The grace asked for by the stretches begun so far, in seconds.
static GRACE: AtomicU64 = AtomicU64::new(CRITICAL_GRACE.as_secs());
/// A hook gave up: its body must not begin a critical stretch. Beginning a
/// stretch and giving up both hold this lock, so one of them sees the other.
static GAVE_UP: Mutex<bool> = Mutex::new(false);

/// While alive, [`current`] names this activity (the latest one recorded).
#[must_use = "the activity ends when this is dropped"]
pub struct Doing(u64);

/// Records what the guard is waiting for until the returned value drops.
pub fn doing(what: impl Into<String>) -> Doing {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut d) = DOING.lock() {
        d.push((id, what.into()));
    }
    Doing(id)
}

impl Drop for Doing {
    fn drop(&mut self) {
        if let Ok(mut d) = DOING.lock() {
            d.retain(|(id, _)| *id != self.0);
        }
    }
}

/// What the guard is waiting for right now, if anything was recorded.
pub fn current() -> Option<String> {
    DOING
        .lock()
        .ok()
        .and_then(|d| d.last().map(|(_, what)| what.clone()))
}

/// While alive, a hook's deadline does not cut the work short (see the
/// module's comment).
#[must_use = "the critical stretch ends when this is dropped"]
pub struct Critical(());

/// Starts a critical stretch with the default grace ([`CRITICAL_GRACE`]);
/// it ends when the value drops.
#[cfg(test)]
pub fn critical() -> Critical {
    critical_for(CRITICAL_GRACE)
}

/// Starts a critical stretch whose bounded waits add up to at most
/// `grace`: a hook's deadline waits that much longer for it to end. Once a
/// hook has given up, this never returns: the process is exiting, and a
/// stretch begun now would stop what nobody then restores.
pub fn critical_for(grace: Duration) -> Critical {
    GRACE.fetch_max(grace.as_secs().saturating_add(1), Ordering::SeqCst);
    let began = {
        let g = GAVE_UP.lock().unwrap_or_else(|e| e.into_inner());
        if !*g {
            CRITICAL.fetch_add(1, Ordering::SeqCst);
        }
        !*g
    };
    if !began {
        loop {
            std::thread::park();
        }
    }
    HELD_HERE.with(|h| h.set(h.get() + 1));
    Critical(())
}

/// Whether a critical stretch is under way on any thread (async-signal-safe:
/// one atomic load).
pub fn in_critical() -> bool {
    CRITICAL.load(Ordering::SeqCst) > 0
}

impl Drop for Critical {
    fn drop(&mut self) {
        CRITICAL.fetch_sub(1, Ordering::SeqCst);
        HELD_HERE.with(|h| h.set(h.get().saturating_sub(1)));
    }
}

thread_local! {
    /// Critical stretches held by this thread: what the repair-ordering
    /// tests observe, unaffected by tests running on other threads.
    static HELD_HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether this thread is inside a critical stretch.
#[cfg(test)]
pub fn critical_on_this_thread() -> bool {
    HELD_HERE.with(|h| h.get() > 0)
}

/// The least a hook waits past its deadline for a critical stretch to end;
/// a repair asks for what its own steps' bounds add up to
/// (repair::grace), when that is more.
pub const CRITICAL_GRACE: Duration = Duration::from_secs(240);

/// How long a hook waits, once a critical stretch it waited for has ended,
/// for the body to say what it did (a few unit reads: each bounded by
/// systemd::METHOD_TIMEOUT).
pub const REPORT_GRACE: Duration = Duration::from_secs(15);

/// How a bounded run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    Done(T),
    /// The limit passed; the work goes on, abandoned, on its thread.
    TimedOut,
    /// The work panicked outside any catch of its own.
    Panicked,
}

/// Runs `f` on its own thread and waits at most `limit` for it. If no
/// thread can be started, `f` runs here, unbounded: doing the work beats
/// skipping it.
pub fn run_within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Outcome<T> {
    run(limit, false, f)
}

/// [`run_within`]; with `grace` (a hook), waits longer while a
/// [`critical`] stretch is under way, up to the grace it asked for; when it
/// then gives up, no stretch may begin and the guard's children are killed.
fn run<T: Send + 'static>(
    limit: Duration,
    grace: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Outcome<T> {
    let (tx, rx) = mpsc::channel();
    // The body is handed over through a slot so that it can be taken back
    // and run here if the OS refuses a thread.
    let slot = Arc::new(Mutex::new(Some(f)));
    let theirs = Arc::clone(&slot);
    let spawned = std::thread::Builder::new().spawn(move || {
        let f = theirs.lock().ok().and_then(|mut s| s.take());
        if let Some(f) = f {
            let _ = tx.send(f());
        }
    });
    if spawned.is_err() {
        let f = slot.lock().ok().and_then(|mut s| s.take());
        return match f {
            Some(f) => Outcome::Done(f()),
            None => Outcome::Panicked,
        };
    }
    let wait =
        |until: Instant| match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(v) => Some(Outcome::Done(v)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Outcome::Panicked),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        };
    if let Some(o) = wait(after(limit)) {
        return o;
    }
    if !grace {
        return Outcome::TimedOut;
    }
    let mut grace_end = None;
    // Once a stretch waited for has ended, the body gets REPORT_GRACE to
    // finish and say what it did (its report is written at its end).
    let mut stretch_seen = false;
    let mut report_end: Option<Instant> = None;
    loop {
        let end = *grace_end
            .get_or_insert_with(|| after(Duration::from_secs(GRACE.load(Ordering::SeqCst))));
        // Under the lock critical_for takes: no stretch begins after this.
        {
            let mut g = GAVE_UP.lock().unwrap_or_else(|e| e.into_inner());
            let idle = CRITICAL.load(Ordering::SeqCst) == 0;
            if !idle {
                stretch_seen = true;
                report_end = None;
            } else if stretch_seen && report_end.is_none() {
                report_end = Some(after(REPORT_GRACE));
            }
            let now = Instant::now();
            if now >= end || (idle && report_end.is_none_or(|r| now >= r)) {
                *g = true;
                break;
            }
        }
        if let Some(o) = wait(after(Duration::from_millis(100)).min(end)) {
            return o;
        }
    }
    crate::system::child::kill_all();
    Outcome::TimedOut
}

/// Runs an apt hook's body bounded by `limit` (HOOK_DEADLINE), waiting
/// past it while a [`critical`] stretch is under way (up to
/// [`CRITICAL_GRACE`]). The caller says what happened: see [`current`].
pub fn run_hook<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> Outcome<T> {
    run(limit, true, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_never_overflows() {
        let far = after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(3600));
        assert!(after(Duration::from_secs(1)) > Instant::now());
    }

    #[test]
    fn run_within_returns_the_result_in_time() {
        assert_eq!(run_within(Duration::from_secs(5), || 7), Outcome::Done(7));
    }

    #[test]
    fn run_within_gives_up_on_a_hung_body() {
        let t = Instant::now();
        let o = run_within(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(30));
        });
        assert_eq!(o, Outcome::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn run_within_reports_a_panicking_body() {
        // The bound is not what is tested (a panic is reported at once): it
        // only has to outlast a loaded machine (it ran out at 5 s once with
        // the load average at 10).
        let o: Outcome<()> = run_within(Duration::from_secs(60), || panic!("boom"));
        assert_eq!(o, Outcome::Panicked);
    }

    #[test]
    fn deadline_waits_for_a_critical_stretch_to_end() {
        let o = run(Duration::from_millis(50), true, || {
            let _c = critical();
            std::thread::sleep(Duration::from_millis(400));
            1
        });
        assert_eq!(o, Outcome::Done(1));
    }

    #[test]
    fn after_a_critical_stretch_the_hook_waits_for_the_report() {
        // The stretch outlasts the deadline; the report after it takes a
        // moment (unit reads): it is waited for, not cut.
        let o = run(Duration::from_millis(50), true, || {
            {
                let _c = critical();
                std::thread::sleep(Duration::from_millis(300));
            }
            std::thread::sleep(Duration::from_millis(300));
            2
        });
        assert_eq!(o, Outcome::Done(2));
    }

    #[test]
    fn doing_names_the_latest_activity_until_dropped() {
        let id = format!("test activity {:?}", std::thread::current().id());
        let d = doing(id.clone());
        assert!(DOING.lock().unwrap().iter().any(|(_, w)| *w == id));
        drop(d);
        assert!(!DOING.lock().unwrap().iter().any(|(_, w)| *w == id));
    }
}
