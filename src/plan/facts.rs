//! The snapshot's facts the decision rests on, sorted once, and the two
//! small judgements several rules share.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::intent::{should_serve, ShouldServe};
use crate::model::{Listener, ListenerClass, Snapshot, Topology, UnitState, Units};

/// The snapshot's facts the decision rests on, sorted once.
pub struct Facts<'a> {
    /// Stale listeners: the only processes ever signalled.
    pub(super) stale: Vec<&'a Listener>,
    /// Anything on an ssh port that is not a root sshd.
    pub(super) foreign: Vec<&'a Listener>,
    /// Listeners ssh.service manages that run a replaced binary.
    pub(super) outdated: Vec<&'a Listener>,
    /// Listeners another unit manages that run a replaced binary.
    pub(super) other_outdated: Vec<&'a Listener>,
    /// The package is not fully installed.
    pub(super) pkg_incomplete: bool,
    /// sshd rejects its configuration only because it has no host keys
    /// (cloud images, first-boot scripts): ssh-keygen -A creates them. Any
    /// other configuration error is still refused by [`gate`].
    pub(super) keys_missing: bool,
    /// Road f: ssh.service holds the port ssh.socket should.
    pub(super) service_holds: Option<crate::roads::ServiceHoldsPort>,
    /// Road g: the rescue sshd runs a replaced binary.
    pub(super) stale_rescue: Option<crate::roads::StaleRescue>,
    /// Road b: the unit the postinst restarts is masked and running.
    pub(super) blocked: Option<crate::roads::BlockedRestart>,
    /// Whether ssh should serve (intent.rs).
    pub(super) serve: ShouldServe,
    /// Why a start of ssh.service would be refused or skipped now (a mask,
    /// sshd_not_to_be_run, its condition): then no running ssh unit is
    /// stopped or restarted (intent::start_refused).
    pub(super) start_refused: Option<crate::intent::OffReason>,
    /// Outdated ssh.service listeners kept running because of that.
    pub(super) kept: Vec<&'a Listener>,
    /// Road f's stop of ssh.service skipped because of that.
    pub(super) kept_holding: bool,
    /// The package left not fully installed because of that: its postinst
    /// restarts the running unit, which would then stay down.
    pub(super) kept_package: bool,
}

impl<'a> Facts<'a> {
    /// Sorts the snapshot's listeners and reads the package state.
    pub fn of(s: &'a Snapshot) -> Facts<'a> {
        let of = |class: ListenerClass| -> Vec<&'a Listener> {
            s.listeners.iter().filter(|l| l.class == class).collect()
        };
        // ssh.service's own listener: in its cgroup, or its main process. A
        // second sshd under another unit is that unit's business.
        let service = s.units.as_ref().map(|u| &u.service);
        let is_ssh_service = |l: &&'a Listener| {
            service.is_some_and(|u| {
                l.unit.as_deref() == Some(u.name.as_str())
                    || (u.is_active() && u.main_pid == Some(l.process.pid))
            })
        };
        // The rescue sshd on a replaced binary is restarted as itself
        // (road g): neither ssh.service's nor left alone.
        let (outdated, other_outdated) = of(ListenerClass::Managed)
            .into_iter()
            .filter(|l| l.exe_deleted && Some(l.process.pid) != s.rescue_pid)
            .partition(is_ssh_service);
        Facts {
            stale: of(ListenerClass::Stale),
            foreign: of(ListenerClass::Foreign),
            outdated,
            other_outdated,
            pkg_incomplete: s.package.as_ref().is_some_and(|p| p.is_incomplete()),
            keys_missing: s.sshd_config.valid == Some(false)
                && s.sshd_config
                    .error
                    .as_deref()
                    .is_some_and(crate::hostkeys::only_missing_host_keys),
            service_holds: s
                .units
                .as_ref()
                .and_then(|u| crate::roads::service_holds_port(u, &s.listeners)),
            stale_rescue: crate::roads::stale_rescue(s),
            blocked: s
                .units
                .as_ref()
                .and_then(|u| crate::roads::blocked_restart(u, &s.packaging_records)),
            kept: Vec::new(),
            kept_holding: false,
            kept_package: false,
            serve: s
                .units
                .as_ref()
                .map(|u| should_serve(u, &s.intent))
                .unwrap_or_default(),
            start_refused: s
                .units
                .as_ref()
                .and_then(|u| crate::intent::start_refused(u, &s.intent)),
        }
        .keep_running_units()
    }

    /// sim S11: where ssh.service could not start again, its running
    /// listener is neither restarted for a replaced binary nor stopped for
    /// ssh.socket (road f), and the package is not configured (its postinst
    /// restarts ssh): each would leave ssh down. They are named instead.
    fn keep_running_units(mut self) -> Self {
        if self.start_refused.is_some() {
            self.kept = std::mem::take(&mut self.outdated);
            if self.service_holds.take().is_some() {
                self.kept_holding = true;
            }
            // ssh should serve while a start is refused only because a
            // unit runs: dpkg --configure would restart it into that
            // refusal (sshd_not_to_be_run: stopped, then skipped).
            self.kept_package = self.pkg_incomplete && self.serve.serves();
        }
        self
    }
}

/// The unit that should hold the ssh port in this topology.
pub(super) fn holder(units: &Units) -> &UnitState {
    match units.topology() {
        Topology::SocketActivated => &units.socket,
        Topology::Service => &units.service,
    }
}

/// The units that served before this apt run when none of them (nor any
/// ssh unit) is active now: the package run stopped ssh.
pub(super) fn stopped_by_package(s: &Snapshot, units: &Units) -> Option<Vec<String>> {
    let before = s.intent.served_before.as_ref().filter(|b| !b.is_empty())?;
    let active = [&units.service, &units.socket]
        .iter()
        .any(|u| u.is_active() || u.in_transition());
    (!active
        && s.listeners
            .iter()
            .all(|l| l.class == ListenerClass::Foreign))
    .then(|| before.clone())
}
