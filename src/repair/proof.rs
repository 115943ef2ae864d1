//! The proof after a repair, and the rescue when it fails: every address
//! that should serve must (banner, then key exchange); the rescue sshd
//! stands in for those where nothing answers.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::{Outcome, UnitControl};
use crate::model::Snapshot;
use crate::system::snapshot::probe_targets;
use crate::system::systemd::RESCUE_UNIT;
use std::time::Duration;

/// What the repair did before a proof, as far as the rescue is concerned.
#[derive(Default)]
pub(super) struct Before {
    /// The running rescue was stopped to give way (a rescue started now is
    /// that one coming back).
    pub(super) retired: bool,
    /// Addresses held by listeners this repair stopped: waited for (up to
    /// `within`) before the rescue binds (a pre-auth child may still hold
    /// one).
    pub(super) stopped: Vec<String>,
    /// The bound of that wait (STOP_TIMEOUT).
    pub(super) within: Duration,
}

/// The proof after a repair (banner, then key exchange, on every address
/// that should serve); starts the rescue sshd when some address has
/// nothing answering on it. True when every address serves.
pub(super) fn verify(
    m: &impl UnitControl,
    snap: &Snapshot,
    before: &Before,
    out: &mut Outcome,
) -> bool {
    let targets = probe_targets(snap);
    let first = m.serves(&targets);
    if first.ok {
        out.did(first.summary);
        return true;
    }
    out.failed(first.summary);
    // Never leave an address without a listener that serves: start sshd as
    // a transient unit from the installed binary and say so loudly. It
    // binds what is free (sshd goes on when some of its addresses are
    // taken), so it stands in for the addresses that do not serve. Where a
    // listener answers the banner but completes no key exchange it holds
    // the address, and the rescue cannot bind it: that stays reported.
    // With the unit's own options (SSHD_OPTS): the same configuration
    // file, ports and -o settings as the sshd it stands in for.
    if !first.down.is_empty() {
        let down: Vec<String> = first.down.iter().map(|a| a.to_string()).collect();
        // Socket activation with nothing serving: ssh.socket may hold the
        // addresses while nothing behind it serves (instances that fail, a
        // service stuck activating), and the rescue could not bind them.
        // Stopped first (sessions kept: KillMode=process), started again
        // if the rescue does not serve either.
        let socket = snap
            .units
            .as_ref()
            .filter(|u| !first.any && u.topology() == crate::model::Topology::SocketActivated)
            .map(|u| u.socket.name.clone());
        let socket_stopped = match &socket {
            Some(sock) => match m.stop(sock) {
                Ok(()) => {
                    out.did(format!(
                        "stopped {sock} so that the rescue sshd can bind its addresses (nothing behind it serves)"
                    ));
                    true
                }
                Err(e) => {
                    log::info!("{e:#}");
                    false
                }
            },
            None => false,
        };
        if !before.stopped.is_empty() {
            let held = m.wait_free(&before.stopped, before.within);
            if !held.is_empty() {
                log::warn!("still held when the rescue starts: {}", held.join(", "));
            }
        }
        let rescued = match m.start_rescue_sshd(&snap.sshd_options) {
            Ok(()) => match m.serves(&targets) {
                // Named: the addresses the rescue made serve, only.
                again
                    if down
                        .iter()
                        .any(|d| !again.down.iter().any(|a| a.to_string() == *d)) =>
                {
                    let now: Vec<&String> = down
                        .iter()
                        .filter(|d| !again.down.iter().any(|a| a.to_string() == **d))
                        .collect();
                    let now = now
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.did(if before.retired {
                        format!(
                            "restarted {RESCUE_UNIT}: ssh.socket/ssh.service still do not serve {now}; fix them, and the guard retires the rescue at its next run"
                        )
                    } else {
                        format!(
                            "started a rescue sshd ({RESCUE_UNIT}) for {now} so that you can still log in; fix ssh.service/ssh.socket, then 'systemctl stop {RESCUE_UNIT}'"
                        )
                    });
                    if !again.ok {
                        out.failed(format!(
                            "still not serving after the rescue: {}",
                            again.summary
                        ));
                    }
                    // Said plainly, before dpkg as after it.
                    log::warn!(
                        "while the rescue sshd holds {now}, openssh-server's postinst cannot restart ssh.socket/ssh.service there: an upgrade of openssh-server fails until they can serve again"
                    );
                    true
                }
                again => {
                    out.failed(format!(
                        "the rescue sshd does not serve {} either: {}",
                        down.join(", "),
                        again.summary
                    ));
                    false
                }
            },
            Err(e) => {
                out.failed(format!("could not start a rescue sshd: {e:#}"));
                false
            }
        };
        if let (false, true, Some(sock)) = (rescued, socket_stopped, &socket) {
            return socket_back(m, sock, &targets, out);
        }
    }
    false
}

/// The socket stopped for a rescue that did not serve, started again:
/// judged by its end state, as every start of a repair (sim S14), and
/// proven again. True when ssh serves now (a start that failed before is
/// then looked at again by the caller).
fn socket_back(
    m: &impl UnitControl,
    sock: &str,
    targets: &[crate::sshd::Endpoint],
    out: &mut Outcome,
) -> bool {
    let step = crate::plan::Step::StartUnit {
        unit: sock.to_string(),
    };
    match super::act::start_unit(m, &step, sock, out) {
        Ok(()) => {
            let again = m.serves(targets);
            if again.ok {
                out.did(again.summary);
                return true;
            }
            log::info!("{}", again.summary);
        }
        Err(e) => out.failed(format!("{e:#}")),
    }
    false
}
