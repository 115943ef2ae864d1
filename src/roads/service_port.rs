//! Road f: ssh.service binds the port ssh.socket should, and its latent form,
//! a socket whose restart the running service refuses.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::model::{Topology, Units};
use serde::Serialize;

/// ssh.service binds the ssh port itself while ssh is socket-activated:
/// ssh.socket cannot listen ("Failed to create listening socket
/// ([::]:22): Address already in use", Result: resources). It happens
/// where ssh.socket does not declare RequiredBy=ssh.service (older socket
/// units, local overrides), so restarting the socket does not stop the
/// service first; the postinst's restart of ssh.socket then fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceHoldsPort {
    /// The service unit.
    pub service: String,
    /// The socket unit.
    pub socket: String,
    /// The service's main process.
    pub pid: u32,
    /// The addresses it holds.
    pub addresses: Vec<String>,
}

impl std::fmt::Display for ServiceHoldsPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}) listens on {} itself while ssh is socket-activated, so {} cannot listen there (Address already in use)",
            self.service,
            self.pid,
            self.addresses.join(", "),
            self.socket
        )
    }
}

/// Road f's latent form: ssh.socket does not stop ssh.service when it is
/// restarted (ssh.service does not require it: the socket unit lacks
/// RequiredBy=ssh.service and its link). While ssh.service runs (it does
/// from the first connection on, Accept=no), openssh-server's
/// `deb-systemd-invoke restart ssh.socket` is refused: "Socket service
/// ssh.service already active, refusing.", and the package is left
/// half-configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketNotRequired {
    /// The service unit.
    pub service: String,
    /// The socket unit.
    pub socket: String,
    /// The commands that make the service require the socket.
    pub fix: String,
}

impl std::fmt::Display for SocketNotRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{s} does not require {k} (the socket unit lacks RequiredBy={s}), so restarting {k} while {s} runs is refused (\"Socket service {s} already active, refusing.\"): openssh-server's postinst does exactly that; fix: {fix}",
            s = self.service,
            k = self.socket,
            fix = self.fix
        )
    }
}

/// Road f's latent form from the units (Requires is read in full detail).
pub fn socket_not_required(units: &Units) -> Option<SocketNotRequired> {
    let requires = units.service.requires.as_ref()?;
    if units.topology() != Topology::SocketActivated
        || units.service.load_state != "loaded"
        || requires.contains(&units.socket.name)
    {
        return None;
    }
    let (s, k) = (&units.service.name, &units.socket.name);
    Some(SocketNotRequired {
        service: s.clone(),
        socket: k.clone(),
        fix: format!(
            "mkdir -p /etc/systemd/system/{s}.d && printf '[Unit]\\nRequires={k}\\nAfter={k}\\n' >/etc/systemd/system/{s}.d/requires-socket.conf && systemctl daemon-reload"
        ),
    })
}

/// Road f from a snapshot: socket-activated topology, ssh.socket not
/// active, and ssh.service's main process (a managed listener, not pid 1)
/// holding an ssh address. A socket-activated sshd holds the same sockets
/// as pid 1, so an active socket never matches.
pub fn service_holds_port(
    units: &Units,
    listeners: &[crate::model::Listener],
) -> Option<ServiceHoldsPort> {
    if units.topology() != Topology::SocketActivated
        || units.socket.is_active()
        || !units.service.is_active()
    {
        return None;
    }
    let main = units.service.main_pid?;
    let l = listeners
        .iter()
        .find(|l| l.process.pid == main && l.class == crate::model::ListenerClass::Managed)?;
    Some(ServiceHoldsPort {
        service: units.service.name.clone(),
        socket: units.socket.name.clone(),
        pid: main,
        addresses: l.addresses.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roads::fixtures::{listener, socket_units};

    #[test]
    fn a_service_holding_the_sockets_port_is_found_only_then() {
        use crate::model::ListenerClass::*;
        let mut u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        u.socket.active_state = "failed".into();
        u.socket.result = "resources".into();
        u.service.active_state = "active".into();
        u.service.main_pid = Some(700);
        let ls = vec![listener(700, Managed)];
        let f = service_holds_port(&u, &ls).unwrap();
        assert_eq!(f.to_string(), "ssh.service (pid 700) listens on 0.0.0.0:22, [::]:22 itself while ssh is socket-activated, so ssh.socket cannot listen there (Address already in use)");
        // Socket-activated sshd shares pid 1's sockets: socket active.
        let mut ok = u.clone();
        ok.socket.active_state = "active".into();
        assert_eq!(
            service_holds_port(&ok, &[listener(1, Systemd), listener(700, Managed)]),
            None
        );
        // A stale listener is another road; the classic topology is fine.
        assert_eq!(service_holds_port(&u, &[listener(800, Stale)]), None);
        let mut classic = u.clone();
        classic.socket.unit_file_state = "disabled".into();
        assert_eq!(service_holds_port(&classic, &ls), None);
    }

    #[test]
    fn a_service_that_does_not_require_its_socket_is_a_warning_with_the_fix() {
        let mut u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        u.service.load_state = "loaded".into();
        assert_eq!(socket_not_required(&u), None, "not read: no verdict");
        u.service.requires = Some(vec!["sysinit.target".into(), "system.slice".into()]);
        let w = socket_not_required(&u).unwrap();
        assert!(
            w.to_string()
                .contains("\"Socket service ssh.service already active, refusing.\""),
            "{w}"
        );
        assert_eq!(w.fix, "mkdir -p /etc/systemd/system/ssh.service.d && printf '[Unit]\\nRequires=ssh.socket\\nAfter=ssh.socket\\n' >/etc/systemd/system/ssh.service.d/requires-socket.conf && systemctl daemon-reload");
        // Noble's unit: RequiredBy=ssh.service, so the service requires it.
        u.service.requires = Some(vec!["ssh.socket".into(), "sysinit.target".into()]);
        assert_eq!(socket_not_required(&u), None);
        // The classic topology does not restart the socket.
        u.service.requires = Some(vec![]);
        u.socket.unit_file_state = "disabled".into();
        assert_eq!(socket_not_required(&u), None);
    }
}
