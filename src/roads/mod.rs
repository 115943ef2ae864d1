//! The neighbouring roads to a broken openssh-server upgrade (issue 12 §2):
//! how each one shows in what the guard already knows, as plain data that
//! the plan, `status --json`, `check` and the metrics share. Pure: no
//! system call; the facts come in from `system`, a verdict goes out.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

mod drift;
mod masked;
mod prompt;
mod rescue;
mod service_port;
mod start_limit;

pub use drift::{socket_drift, SocketDrift};
pub use masked::{any_masked, blocked_restart, was_enabled_from, BlockedRestart};
pub use prompt::{dpkg_prompt, ProcRow};
pub use rescue::{stale_rescue, StaleRescue};
pub use service_port::{
    service_holds_port, socket_not_required, ServiceHoldsPort, SocketNotRequired,
};
pub use start_limit::{ledger_add, start_budget, start_limits, StartLimit};

use crate::model::DpkgPrompt;
use crate::sshd::Endpoint;
use serde::Serialize;

// plan.rs's tests name the records here, where they lived before.
#[cfg(test)]
pub use crate::model::PackagingRecords;

/// What every road found in one snapshot: the `roads` object of
/// `status --json` (fields are only ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Roads {
    /// Road a: units failed with a start or trigger limit.
    pub start_limit: Vec<StartLimit>,
    /// Road b: the unit the postinst restarts is masked and running (with
    /// the commands that fix it), or null.
    pub postinst_restart_blocked: Option<BlockedRestart>,
    /// Road d: sshd_config, ssh.socket and the listening sockets disagree
    /// (a WARNING: ssh still answers where the socket listens), or null.
    pub socket_drift: Option<SocketDrift>,
    /// Road f's latent form: ssh.socket's restart would be refused while
    /// ssh.service runs (a WARNING), or null.
    pub socket_not_required: Option<SocketNotRequired>,
    /// Road e: dpkg waits for an answer under the lock holder, or null.
    pub dpkg_prompt: Option<DpkgPrompt>,
    /// Road g: the rescue sshd runs a replaced binary, or null.
    pub stale_rescue: Option<StaleRescue>,
    /// Road f: ssh.service holds the port ssh.socket should, or null.
    pub service_holds_port: Option<ServiceHoldsPort>,
}

impl Roads {
    /// What every road shows in this snapshot.
    pub fn of(s: &crate::model::Snapshot) -> Roads {
        let units = s.units.as_ref();
        Roads {
            start_limit: units.map(start_limits).unwrap_or_default(),
            postinst_restart_blocked: units.and_then(|u| blocked_restart(u, &s.packaging_records)),
            socket_drift: units.and_then(|u| {
                let p = |v: &[String]| -> Vec<Endpoint> {
                    v.iter()
                        .filter_map(|a| crate::sshd::parse_listen(a))
                        .collect()
                };
                socket_drift(u, &p(&s.sshd_listen), &p(&s.listening), s.socket_generator)
            }),
            service_holds_port: units.and_then(|u| service_holds_port(u, &s.listeners)),
            dpkg_prompt: s.dpkg_prompt.clone(),
            socket_not_required: units.and_then(socket_not_required),
            stale_rescue: stale_rescue(s),
        }
    }
}

/// Units and listeners the roads' tests share.
#[cfg(test)]
mod fixtures {
    use crate::model::{UnitState, Units};

    pub(super) fn unit(name: &str, active: &str, result: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            result: result.into(),
            unit_file_state: "enabled".into(),
            ..Default::default()
        }
    }

    pub(super) fn socket_units(listen: &[&str]) -> Units {
        let mut socket = unit("ssh.socket", "active", "");
        socket.unit_file_state = "enabled".into();
        socket.listen = listen.iter().map(|s| s.to_string()).collect();
        Units {
            service: unit("ssh.service", "inactive", ""),
            socket,
        }
    }

    pub(super) fn listener(pid: u32, class: crate::model::ListenerClass) -> crate::model::Listener {
        crate::model::Listener {
            process: crate::model::ProcessStamp { pid, start_time: 1 },
            uid: 0,
            comm: "sshd".into(),
            exe: "/usr/sbin/sshd".into(),
            exe_deleted: false,
            cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups".into(),
            cgroup: "0::/system.slice/ssh.service".into(),
            addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
            class,
            unit: None,
            unit_state: None,
            why: String::new(),
        }
    }
}
