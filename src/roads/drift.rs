//! Road d: socket-activation drift, where sshd_config, ssh.socket and the
//! listening sockets disagree about where ssh listens.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::model::{Topology, Units};
use crate::sshd::Endpoint;
use serde::Serialize;

/// Socket-activation drift: the three places that say where ssh listens
/// disagree. On Ubuntu sshd_config's Port/ListenAddress reach ssh.socket
/// only through `sshd-socket-generator` at `daemon-reload`, and a changed
/// ssh.socket listens on its new addresses only once restarted; an admin
/// who changes the port and the firewall in between locks themselves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketDrift {
    /// What `sshd -T` says (sshd_config).
    pub sshd_config: Vec<String>,
    /// ssh.socket's ListenStream, as systemd has loaded it.
    pub socket_listen: Vec<String>,
    /// What is really listening on the ssh ports.
    pub listening: Vec<String>,
    /// Which pair disagrees: `config-not-applied` (sshd_config vs
    /// ssh.socket) or `socket-not-restarted` (ssh.socket vs the sockets).
    pub kind: String,
    /// The commands that apply the change (the guard never runs them).
    pub apply: String,
}

impl std::fmt::Display for SocketDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let j = |v: &[String]| v.join(", ");
        match self.kind.as_str() {
            "config-not-applied" => write!(
                f,
                "sshd_config says ssh listens on {}, but ssh.socket listens on {} (socket activation: sshd's Port and ListenAddress do not reach ssh.socket by themselves); apply it with: {}",
                j(&self.sshd_config),
                j(&self.socket_listen),
                self.apply
            ),
            _ => write!(
                f,
                "ssh.socket is set to listen on {}, but what listens is {} (ssh.socket was not restarted after the change); apply it with: {}",
                j(&self.socket_listen),
                j(&self.listening),
                self.apply
            ),
        }
    }
}

/// One address in a comparison: the socket address without a numeric
/// scope id, and the scope as named (`eth0`, or the kernel's index).
type Reach = (std::net::SocketAddr, Option<String>);

/// A set of listening addresses as a client sees it: a wildcard `[::]:P`
/// without `0.0.0.0:P` beside it is dual-stack (systemd's and sshd's
/// default), so it also serves IPv4; not where `dual_stack` is false
/// (a socket unit with `BindIPv6Only=ipv6-only`).
fn reach(addrs: &[Endpoint], dual_stack: bool) -> std::collections::BTreeSet<Reach> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let key = |e: &Endpoint| -> Reach {
        let mut a = e.addr;
        if let SocketAddr::V6(v6) = &mut a {
            v6.set_scope_id(0);
        }
        (a, e.scope.clone())
    };
    let mut out: std::collections::BTreeSet<Reach> = addrs.iter().map(key).collect();
    for a in addrs {
        let v4 = Endpoint::new(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            a.addr.port(),
        ));
        if dual_stack && a.addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && !addrs.contains(&v4) {
            out.insert(key(&v4));
        }
    }
    out
}

/// [`reach`] without scopes: the kernel names a link-local address's
/// interface by index, systemd and sshd by name, so whether the socket's
/// addresses are up is judged on address and port.
fn unscoped(
    set: &std::collections::BTreeSet<Reach>,
) -> std::collections::BTreeSet<std::net::SocketAddr> {
    set.iter().map(|(a, _)| *a).collect()
}

/// Addresses as sorted, distinct strings (for reports and JSON; IPv6
/// scopes kept).
fn render(addrs: &[Endpoint]) -> Vec<String> {
    let mut v: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// The commands that bring ssh.socket in line with sshd_config: Ubuntu's
/// generator when it is installed, else a drop-in with the addresses
/// (systemd spells an IPv6 scope after the port: `[fe80::1]:22%eth0`).
pub fn apply_commands(socket: &str, sshd: &[Endpoint], generator: bool) -> String {
    if generator {
        return format!("systemctl daemon-reload && systemctl restart {socket}");
    }
    let mut listen: Vec<String> = sshd
        .iter()
        .map(|e| match &e.scope {
            Some(z) => format!("{}%{z}", e.addr),
            None => e.addr.to_string(),
        })
        .collect();
    listen.sort();
    listen.dedup();
    let mut lines = String::from("[Socket]\\nListenStream=\\n");
    for a in listen {
        lines.push_str(&format!("ListenStream={a}\\n"));
    }
    format!(
        "mkdir -p /etc/systemd/system/{socket}.d && printf '{lines}' >/etc/systemd/system/{socket}.d/listen.conf && systemctl daemon-reload && systemctl restart {socket}"
    )
}

/// Compares the three truths; only for a socket-activated ssh whose socket
/// is active (a failed or stopped socket is another finding). `sshd`: the
/// addresses `sshd -T` prints (empty when sshd -T did not answer: no
/// verdict); `listening`: every address listening on the ssh ports.
pub fn socket_drift(
    units: &Units,
    sshd: &[Endpoint],
    listening: &[Endpoint],
    generator: bool,
) -> Option<SocketDrift> {
    if units.topology() != Topology::SocketActivated || !units.socket.is_active() || sshd.is_empty()
    {
        return None;
    }
    let socket: Vec<Endpoint> = units
        .socket
        .listen
        .iter()
        .filter_map(|a| crate::sshd::parse_listen(a))
        .collect();
    if socket.is_empty() {
        return None;
    }
    let socket_dual_stack = units.socket.bind_ipv6_only != "ipv6-only";
    let (s, k, r) = (
        reach(sshd, true),
        reach(&socket, socket_dual_stack),
        reach(listening, socket_dual_stack),
    );
    let kind = if s != k {
        "config-not-applied"
    } else if !unscoped(&r).is_superset(&unscoped(&k)) {
        // Something else may listen on an ssh port too (reported
        // elsewhere); what matters is that the socket's addresses are up.
        "socket-not-restarted"
    } else {
        return None;
    };
    let apply = if kind == "config-not-applied" {
        apply_commands(&units.socket.name, sshd, generator)
    } else {
        format!("systemctl restart {}", units.socket.name)
    };
    Some(SocketDrift {
        sshd_config: render(sshd),
        socket_listen: render(&socket),
        listening: render(listening),
        kind: kind.to_string(),
        apply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roads::fixtures::socket_units;

    fn addrs(v: &[&str]) -> Vec<Endpoint> {
        v.iter()
            .map(|a| crate::sshd::parse_listen(a).unwrap())
            .collect()
    }

    #[test]
    fn a_port_changed_in_sshd_config_only_is_drift_with_the_commands() {
        let u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        let sshd = addrs(&["0.0.0.0:2222", "[::]:2222"]);
        let now = addrs(&["0.0.0.0:22", "[::]:22"]);
        let d = socket_drift(&u, &sshd, &now, true).unwrap();
        assert_eq!(d.kind, "config-not-applied");
        assert_eq!(
            d.apply,
            "systemctl daemon-reload && systemctl restart ssh.socket"
        );
        assert!(d.to_string().starts_with("sshd_config says ssh listens on 0.0.0.0:2222, [::]:2222, but ssh.socket listens on 0.0.0.0:22, [::]:22"), "{d}");
        // Without Ubuntu's generator: a drop-in, addresses spelled out.
        let d = socket_drift(&u, &sshd, &now, false).unwrap();
        assert_eq!(d.apply, "mkdir -p /etc/systemd/system/ssh.socket.d && printf '[Socket]\\nListenStream=\\nListenStream=0.0.0.0:2222\\nListenStream=[::]:2222\\n' >/etc/systemd/system/ssh.socket.d/listen.conf && systemctl daemon-reload && systemctl restart ssh.socket");
    }

    #[test]
    fn a_reloaded_but_not_restarted_socket_is_drift() {
        let u = socket_units(&["0.0.0.0:2222", "[::]:2222"]);
        let sshd = addrs(&["0.0.0.0:2222", "[::]:2222"]);
        let d = socket_drift(&u, &sshd, &addrs(&["0.0.0.0:22", "[::]:22"]), true).unwrap();
        assert_eq!(d.kind, "socket-not-restarted");
        assert_eq!(d.apply, "systemctl restart ssh.socket");
    }

    #[test]
    fn agreeing_truths_are_not_drift_whatever_the_spelling() {
        // Debian's ListenStream=22 is one dual-stack [::]:22; sshd -T
        // prints both wildcards for the default.
        let u = socket_units(&["[::]:22"]);
        let sshd = addrs(&["[::]:22", "0.0.0.0:22"]);
        assert_eq!(socket_drift(&u, &sshd, &addrs(&["[::]:22"]), true), None);
        let u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        assert_eq!(
            socket_drift(
                &u,
                &sshd,
                &addrs(&["0.0.0.0:22", "[::]:22", "127.0.0.1:22"]),
                true
            ),
            None
        );
        // No verdict without sshd -T, without a socket, or for the service
        // topology (sshd binds what sshd_config says itself).
        assert_eq!(socket_drift(&u, &[], &[], true), None);
        let mut classic = u.clone();
        classic.socket.unit_file_state = "disabled".into();
        assert_eq!(
            socket_drift(&classic, &addrs(&["[::]:2222"]), &[], true),
            None
        );
        let mut failed = u.clone();
        failed.socket.active_state = "failed".into();
        assert_eq!(
            socket_drift(&failed, &addrs(&["[::]:2222"]), &[], true),
            None
        );
    }

    #[test]
    fn scopes_and_bind_ipv6_only_are_judged_as_the_kernel_and_systemd_do() {
        // sshd and systemd name a link-local address's interface, the
        // kernel its index: the same socket, no drift.
        let u = socket_units(&["[fe80::1]:22%eth0"]);
        let sshd = addrs(&["[fe80::1%eth0]:22"]);
        assert_eq!(
            socket_drift(&u, &sshd, &addrs(&["[fe80::1%2]:22"]), false),
            None
        );
        // Another interface in sshd_config is drift, and the drop-in
        // spells the scope as systemd does.
        let d = socket_drift(&u, &addrs(&["[fe80::1%eth1]:22"]), &[], false).unwrap();
        assert_eq!(d.kind, "config-not-applied");
        assert!(
            d.apply.contains("ListenStream=[fe80::1]:22%eth1\\n"),
            "{}",
            d.apply
        );
        // A socket bound ipv6-only does not serve the IPv4 wildcard sshd's
        // default asks for.
        let mut u = socket_units(&["[::]:22"]);
        let sshd = addrs(&["[::]:22", "0.0.0.0:22"]);
        assert_eq!(socket_drift(&u, &sshd, &addrs(&["[::]:22"]), true), None);
        u.socket.bind_ipv6_only = "ipv6-only".into();
        let d = socket_drift(&u, &sshd, &addrs(&["[::]:22"]), true).unwrap();
        assert_eq!(d.kind, "config-not-applied");
    }
}
