//! What a run is there to fix (`work`) and the no-lockout rules (`gate`)
//! that may refuse it.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::facts::{holder, Facts};
use super::words::Refusal;
use super::Mode;
use crate::model::{Listener, Snapshot};

/// What a run is there to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// Listeners and units: stop stale listeners, (re)start units.
    pub listeners: bool,
    /// Complete the package's configuration.
    pub package: bool,
    /// Restart the rescue sshd on the unpacked binaries (road g; after
    /// dpkg only: before it, dpkg would replace them again).
    pub rescue: bool,
}

impl Work {
    /// Whether there is anything to do.
    pub fn any(self) -> bool {
        self.listeners || self.package || self.rescue
    }
}

/// What this mode has to fix. Without systemd there is nothing it could.
pub fn work(s: &Snapshot, facts: &Facts, mode: Mode) -> Work {
    let Some(units) = &s.units else {
        return Work::default();
    };
    // ssh the admin turned off stays off: no unit is started, no rescue;
    // the package is completed all the same (its scripts start nothing
    // that is disabled or masked).
    // Nor where systemd would refuse or skip every start of ssh (a mask on
    // ssh.service, sshd_not_to_be_run, its condition) while a running unit
    // still serves: starting ssh.socket, stopping or restarting the unit
    // would only take ssh down (sim S11).
    // The package, though, not while a unit runs that could not start
    // again after the postinst's restart (Facts::kept_package).
    if !facts.serve.serves() || facts.start_refused.is_some() {
        return Work {
            package: mode == Mode::Full && facts.pkg_incomplete && !facts.kept_package,
            ..Work::default()
        };
    }
    let any_failed = units.socket.is_failed() || units.service.is_failed();
    let stale = !facts.stale.is_empty();
    let listeners = facts.keys_missing
        || match mode {
            // Before dpkg: only what makes the postinst's restart fail. An
            // inactive ssh.socket is started by the postinst itself.
            Mode::Preflight => stale || any_failed || facts.service_holds.is_some(),
            Mode::Full => {
                stale
                    || any_failed
                    || !holder(units).is_active()
                    || !facts.outdated.is_empty()
                    || facts.service_holds.is_some()
            }
        };
    Work {
        listeners,
        package: mode == Mode::Full && facts.pkg_incomplete,
        rescue: mode == Mode::Full && facts.stale_rescue.is_some(),
    }
}

/// The no-lockout rules: Some(reason) when the guard must not act on this
/// snapshot although there is work (or, without systemd, a problem).
pub fn gate(s: &Snapshot, facts: &Facts, work: Work) -> Option<Refusal> {
    let Some(units) = &s.units else {
        // Without systemd we cannot restore anything safely; only report.
        return (!facts.stale.is_empty() || facts.pkg_incomplete).then(|| Refusal::NoSystemd {
            error: s.systemd_error.clone(),
        });
    };
    if !work.any() {
        return None;
    }
    // No lockout: nothing that stops or restarts sshd unless the installed
    // sshd accepts its configuration.
    match s.sshd_config.valid {
        Some(true) => {}
        // Created as the first step (ssh-keygen -A), once nothing below refuses.
        Some(false) if facts.keys_missing => {}
        Some(false) => {
            return Some(Refusal::ConfigRejected {
                sshd_says: s.sshd_config.error.clone(),
            })
        }
        None => {
            return Some(Refusal::ConfigUnchecked {
                why: s.sshd_config.error.clone(),
            })
        }
    }
    // Road b: starting units around a masked unit the postinst restarts
    // fails ("Unit ssh.socket is masked."), and so would dpkg: the admin
    // decides whether to unmask; the guard says how.
    if let Some(b) = &facts.blocked {
        return Some(Refusal::PostinstRestartBlocked(b.clone()));
    }
    // A foreign holder blocks only what would need its addresses: starting
    // a unit (or the rescue) that binds where it listens, or signalling a
    // stale listener whose socket it shares. Elsewhere the repair goes on
    // around it, and findings name it as left alone.
    let binds = work.listeners || work.package;
    let needs = |held: &[String]| binds && crate::sshd::any_bind_conflict(&s.addresses, held);
    let shares_stale = |f: &&Listener| {
        facts
            .stale
            .iter()
            .any(|st| st.addresses.iter().any(|a| f.addresses.contains(a)))
    };
    if let Some(f) = facts
        .foreign
        .iter()
        .find(|f| needs(&f.addresses) || shares_stale(f))
    {
        return Some(Refusal::ForeignHolder {
            pid: f.process.pid,
            comm: f.comm.clone(),
            addresses: f.addresses.clone(),
            why: f.why.clone(),
        });
    }
    // A socket on an ssh port whose holder cannot be seen: starting the
    // unit could only fail to bind, and the holder is nobody the guard may
    // stop. Without root this is every root process's socket.
    let will_bind = work.listeners && (!holder(units).is_active() || !facts.stale.is_empty());
    if will_bind && needs(&s.unowned_sockets) {
        return Some(Refusal::UnseenHolder {
            addresses: s.unowned_sockets.clone(),
            as_root: s.as_root,
        });
    }
    None
}
