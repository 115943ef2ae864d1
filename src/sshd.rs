//! What sshd and ssh.socket say about where ssh listens, and which loopback
//! address proves each listening address answers. Pure parsing of `sshd -T`
//! output and of systemd's socket Listen entries.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A listening address as sshd or systemd names it, IPv6 scope (zone)
/// kept: `[fe80::1%eth0]:22` is not `[fe80::1]:22`, which no socket can
/// connect to. The scope is an interface name or index; turning a name into
/// an index is the system's job (system::sshd::resolve).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub scope: Option<String>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, scope: None }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.scope, self.addr.ip()) {
            (Some(z), IpAddr::V6(ip)) => write!(f, "[{ip}%{z}]:{}", self.addr.port()),
            _ => write!(f, "{}", self.addr),
        }
    }
}

/// Ports, listen addresses and address family in force according to
/// `sshd -T`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshdListen {
    pub ports: Vec<u16>,
    pub addresses: Vec<Endpoint>,
    /// `addressfamily`: any, inet or inet6 (None when not printed).
    #[serde(default)]
    pub address_family: Option<String>,
}

/// Parses `sshd -T` output (lowercase keywords, one per line). Unknown lines
/// are ignored: sshd adds keywords in every release.
pub fn parse_sshd_t(text: &str) -> Result<SshdListen, String> {
    let mut out = SshdListen::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some("port"), Some(p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("sshd -T: bad port line {line:?}"))?;
                if !out.ports.contains(&port) {
                    out.ports.push(port);
                }
            }
            (Some("listenaddress"), Some(a)) => {
                // sshd -T prints "listenaddress [::]:22" / "0.0.0.0:22" /
                // "[fe80::1%eth0]:22", plus " rdomain X" on some systems,
                // which we do not need.
                let addr = parse_listen(a)
                    .ok_or_else(|| format!("sshd -T: bad listenaddress line {line:?}"))?;
                if !out.addresses.contains(&addr) {
                    out.addresses.push(addr);
                }
            }
            (Some("addressfamily"), Some(f)) => out.address_family = Some(f.to_string()),
            _ => {}
        }
    }
    if out.ports.is_empty() && out.addresses.is_empty() {
        return Err("sshd -T printed no port and no listenaddress".into());
    }
    Ok(out)
}

/// Parses one systemd ListenStream value or sshd address: "22",
/// "0.0.0.0:22", "[::]:22", "[::1]:2222", and with an IPv6 scope either
/// "[fe80::1%eth0]:22" (sshd, getnameinfo) or "[fe80::1]:22%eth0"
/// (systemd's rendering). A bare port means both address families (systemd
/// binds it dual-stack).
pub fn parse_listen(s: &str) -> Option<Endpoint> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return (port != 0)
            .then(|| Endpoint::new(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)));
    }
    let (text, scope) = match s.split_once('%') {
        None => (s.to_string(), None),
        Some((head, tail)) => {
            if let Some((zone, rest)) = tail.split_once(']') {
                // [addr%zone]:port
                (format!("{head}]{rest}"), Some(zone.to_string()))
            } else {
                // [addr]:port%zone
                (head.to_string(), Some(tail.to_string()))
            }
        }
    };
    let scope = match scope {
        Some(z) if z.is_empty() || z.contains(['%', '[', ']', '/']) || z.len() > 64 => return None,
        z => z,
    };
    let addr: SocketAddr = text.parse().ok()?;
    if addr.port() == 0 || (scope.is_some() && !addr.is_ipv6()) {
        return None;
    }
    Some(Endpoint { addr, scope })
}

/// Whether binding `a` could fail with EADDRINUSE because `b` listens (or
/// the reverse): the same port, and the same address, or a wildcard on
/// either side that covers the other. `[::]` counts as covering IPv4 too
/// (it may be bound dual-stack): cautious, never a bind that fails.
pub fn bind_conflict(a: &Endpoint, b: &Endpoint) -> bool {
    if a.addr.port() != b.addr.port() {
        return false;
    }
    let (x, y) = (a.addr.ip(), b.addr.ip());
    if x == y {
        return true;
    }
    let covers = |w: IpAddr, other: IpAddr| match w {
        IpAddr::V6(v6) if v6.is_unspecified() => true,
        IpAddr::V4(v4) if v4.is_unspecified() => other.is_ipv4(),
        _ => false,
    };
    covers(x, y) || covers(y, x)
}

/// Whether any of `wanted` (address texts) could not be bound while
/// `held` listen; an address that does not parse counts as a conflict.
pub fn any_bind_conflict(wanted: &[String], held: &[String]) -> bool {
    if wanted.is_empty() {
        return !held.is_empty();
    }
    held.iter().any(|h| {
        let Some(h) = parse_listen(h) else {
            return true;
        };
        wanted
            .iter()
            .any(|w| parse_listen(w).is_none_or(|w| bind_conflict(&w, &h)))
    })
}

/// Where ssh should answer, from what is known: ssh.socket's Listen when
/// socket-activated, else `sshd -T`'s listen addresses, else the wildcard of
/// each family sshd's AddressFamily allows, on every port.
///
/// `[::]:port` is also reachable over IPv4 only where it is bound
/// dual-stack: a socket unit's bare port or IPv6 wildcard unless
/// `BindIPv6Only=ipv6-only`. sshd itself always binds IPv6 sockets
/// v6-only (IPV6_V6ONLY), so its own `[::]:22` never is; probing
/// `0.0.0.0:22` under `AddressFamily inet6` can only fail.
pub fn listen_addresses(
    socket_activated: bool,
    socket: &[Endpoint],
    bind_ipv6_only: &str,
    sshd: Option<&SshdListen>,
    ports: &[u16],
) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let mut push = |e: Endpoint| {
        if !out.contains(&e) {
            out.push(e)
        }
    };
    let v4_any = |p: u16| Endpoint::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p));
    let v6_any = |p: u16| Endpoint::new(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), p));
    if socket_activated && !socket.is_empty() {
        for e in socket {
            push(e.clone());
            let unspecified_v6 = e.addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            if unspecified_v6 && bind_ipv6_only != "ipv6-only" {
                push(v4_any(e.addr.port()));
            }
        }
    } else if let Some(l) = sshd.filter(|l| !l.addresses.is_empty()) {
        for e in &l.addresses {
            push(e.clone());
        }
    } else {
        let family = sshd
            .and_then(|l| l.address_family.as_deref())
            .unwrap_or("any");
        for p in ports {
            if family != "inet6" {
                push(v4_any(*p));
            }
            if family != "inet" {
                push(v6_any(*p));
            }
        }
    }
    out
}

/// The addresses a client connects to, to prove each listening address
/// answers: the wildcard of each family becomes that family's loopback;
/// anything else (scope included) is connected to as it is.
pub fn probe_targets(listening: &[Endpoint]) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let mut push = |a: Endpoint| {
        if !out.contains(&a) {
            out.push(a)
        }
    };
    for a in listening {
        match a.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => push(Endpoint::new(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                a.addr.port(),
            ))),
            IpAddr::V6(ip) if ip.is_unspecified() => push(Endpoint::new(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                a.addr.port(),
            ))),
            _ => push(a.clone()),
        }
    }
    out
}

/// [`probe_targets`], or 127.0.0.1:22 when there is nothing to probe
/// (sshd -T gave no address): the watchdog's healthy-path check.
pub fn probe_targets_or_default(listening: &[Endpoint]) -> Vec<Endpoint> {
    let mut targets = probe_targets(listening);
    if targets.is_empty() {
        targets.push(Endpoint::new(SocketAddr::from(([127, 0, 0, 1], 22))));
    }
    targets
}

/// How a banner check went over all targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Every address answered (or cannot exist on this host).
    All,
    /// Some answered; the others (address: error) could not be reached.
    /// ssh is up: reported, not a reason to keep the package unconfigured.
    Some { unreachable: Vec<String> },
    /// None answered: ssh is down.
    None,
}

/// Judges per-target results: Ok(what answered) or Err(why); `is_banner`
/// tells a real SSH banner from an address that cannot exist on this host.
/// Only a real banner counts as an answer; an address that cannot exist is
/// no failure.
pub fn answered<A: std::fmt::Display, T>(
    results: &[(A, Result<T, String>)],
    is_banner: impl Fn(&T) -> bool,
) -> Answered {
    let bad: Vec<String> = results
        .iter()
        .filter_map(|(a, r)| r.as_ref().err().map(|e| format!("{a}: {e}")))
        .collect();
    let banners = results
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(&is_banner))
        .count();
    if bad.is_empty() {
        Answered::All
    } else if banners > 0 {
        Answered::Some { unreachable: bad }
    } else {
        Answered::None
    }
}

/// True when `line` is an SSH protocol identification (RFC 4253 4.2).
pub fn is_ssh_banner(line: &[u8]) -> bool {
    line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_conflicts_follow_wildcards_and_ports() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // A container's sshd on 127.0.0.3:22 does not stand in ssh.service's way.
        assert!(!any_bind_conflict(
            &v(&["127.0.0.1:22", "[::1]:22"]),
            &v(&["127.0.0.3:22"])
        ));
        assert!(any_bind_conflict(
            &v(&["127.0.0.1:22"]),
            &v(&["127.0.0.1:22"])
        ));
        assert!(any_bind_conflict(
            &v(&["0.0.0.0:22"]),
            &v(&["127.0.0.3:22"])
        ));
        assert!(any_bind_conflict(&v(&["[::]:22"]), &v(&["127.0.0.3:22"])));
        assert!(any_bind_conflict(&v(&["22"]), &v(&["10.1.2.3:22"])));
        assert!(any_bind_conflict(
            &v(&["127.0.0.1:22"]),
            &v(&["0.0.0.0:22"])
        ));
        assert!(!any_bind_conflict(&v(&["0.0.0.0:22"]), &v(&["[::1]:22"])));
        assert!(!any_bind_conflict(
            &v(&["0.0.0.0:22"]),
            &v(&["0.0.0.0:2222"])
        ));
        // Unknown on either side: cautious.
        assert!(any_bind_conflict(&v(&[]), &v(&["127.0.0.3:22"])));
        assert!(any_bind_conflict(&v(&["127.0.0.1:22"]), &v(&["garbage"])));
        assert!(!any_bind_conflict(&v(&[]), &v(&[])));
    }

    fn ep(s: &str) -> Endpoint {
        Endpoint::new(s.parse().unwrap())
    }

    #[test]
    fn ipv6_scope_ids_are_kept_in_both_renderings() {
        for text in ["[fe80::1%eth0]:22", "[fe80::1]:22%eth0"] {
            let e = parse_listen(text).unwrap();
            assert_eq!(e.scope.as_deref(), Some("eth0"), "{text}");
            assert_eq!(e.to_string(), "[fe80::1%eth0]:22");
            assert_eq!(parse_listen(&e.to_string()), Some(e.clone()));
            assert_eq!(probe_targets(std::slice::from_ref(&e)), vec![e]);
        }
        let t = "port 22\naddressfamily inet6\nlistenaddress [fe80::1%eth0]:22\n";
        let l = parse_sshd_t(t).unwrap();
        assert_eq!(l.addresses[0].to_string(), "[fe80::1%eth0]:22");
        assert_eq!(
            parse_listen("[fe80::1%3]:22").unwrap().scope.as_deref(),
            Some("3")
        );
        assert!(
            parse_listen("127.0.0.1:22%eth0").is_none(),
            "no scope on IPv4"
        );
        assert!(parse_listen("[fe80::1%]:22").is_none());
    }

    #[test]
    fn ipv6_wildcard_is_probed_over_ipv4_only_where_it_is_dual_stack() {
        let v6 = vec![ep("[::]:22")];
        let targets = |t: Vec<Endpoint>| -> Vec<String> {
            probe_targets(&t).iter().map(|e| e.to_string()).collect()
        };
        // ssh.socket: a bare ListenStream=22 (BindIPv6Only default) is
        // dual-stack; noble's ipv6-only [::]:22 is not.
        assert_eq!(
            targets(listen_addresses(true, &v6, "default", None, &[22])),
            vec!["[::1]:22", "127.0.0.1:22"]
        );
        assert_eq!(
            targets(listen_addresses(true, &v6, "ipv6-only", None, &[22])),
            vec!["[::1]:22"]
        );
        // sshd binds its own sockets v6-only: AddressFamily inet6 means
        // [::]:22 and nothing on IPv4.
        let l = parse_sshd_t("port 22\naddressfamily inet6\nlistenaddress [::]:22\n").unwrap();
        assert_eq!(
            targets(listen_addresses(false, &[], "", Some(&l), &[22])),
            vec!["[::1]:22"]
        );
        // Nothing but ports known: the families AddressFamily allows.
        let l = SshdListen {
            ports: vec![22],
            addresses: vec![],
            address_family: Some("inet6".into()),
        };
        assert_eq!(
            targets(listen_addresses(false, &[], "", Some(&l), &[22])),
            vec!["[::1]:22"]
        );
        assert_eq!(
            targets(listen_addresses(false, &[], "", None, &[22])),
            vec!["127.0.0.1:22", "[::1]:22"]
        );
    }

    #[test]
    fn an_unreachable_address_beside_answering_ones_is_reported_not_fatal() {
        let ok = || Ok::<String, String>("SSH-2.0-OpenSSH".into());
        let bad = || Err::<String, String>("Connection refused".into());
        let absent = || Ok::<String, String>("(not on this host)".into());
        let judge = |r: &[(&str, Result<String, String>)]| {
            answered(r, |b: &String| is_ssh_banner(b.as_bytes()))
        };
        assert_eq!(judge(&[("a", ok()), ("b", ok())]), Answered::All);
        assert_eq!(
            judge(&[("a", ok()), ("[fe80::1%eth0]:22", bad())]),
            Answered::Some {
                unreachable: vec!["[fe80::1%eth0]:22: Connection refused".into()]
            }
        );
        assert_eq!(judge(&[("a", bad())]), Answered::None);
        assert_eq!(judge(&[("a", absent()), ("b", bad())]), Answered::None);
        assert_eq!(judge(&[("a", absent()), ("b", ok())]), Answered::All);
        assert_eq!(judge(&[]), Answered::All);
        assert_eq!(judge(&[("a", absent())]), Answered::All);
    }

    #[test]
    fn sshd_t_debian_default() {
        let t = "port 22\naddressfamily any\nlistenaddress [::]:22\nlistenaddress 0.0.0.0:22\nusepam yes\n";
        let l = parse_sshd_t(t).unwrap();
        assert_eq!(l.ports, vec![22]);
        assert_eq!(l.addresses.len(), 2);
        let targets = probe_targets(&l.addresses);
        assert_eq!(targets, vec![ep("[::1]:22"), ep("127.0.0.1:22")]);
    }

    #[test]
    fn sshd_t_several_ports_and_rdomain() {
        let t = "port 22\nport 2222\nlistenaddress 192.0.2.1:2222 rdomain 1\n";
        let l = parse_sshd_t(t).unwrap();
        assert_eq!(l.ports, vec![22, 2222]);
        assert_eq!(l.addresses, vec![ep("192.0.2.1:2222")]);
    }

    #[test]
    fn sshd_t_hostile() {
        assert!(parse_sshd_t("").is_err());
        assert!(parse_sshd_t("port 0\n").is_err());
        assert!(parse_sshd_t("port 99999\n").is_err());
        assert!(parse_sshd_t("listenaddress nonsense\n").is_err());
        assert!(parse_sshd_t("port\n").is_err());
    }

    #[test]
    fn systemd_listen_entries() {
        // ssh.socket's Stream entries as systemd reports them (the
        // Datagram ones are dropped when they are read from D-Bus).
        let l = ["0.0.0.0:22", "[::]:22", "[fe80::1%eth0]:22", "/run/x.sock"];
        let a: Vec<Endpoint> = l.iter().filter_map(|a| parse_listen(a)).collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a[2].to_string(), "[fe80::1%eth0]:22", "the scope is kept");
        assert_eq!(parse_listen("22").unwrap().addr.port(), 22);
        assert!(parse_listen("0").is_none());
    }

    #[test]
    fn banners() {
        assert!(is_ssh_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
        assert!(!is_ssh_banner(b"HTTP/1.1 400"));
        assert!(!is_ssh_banner(b""));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse_sshd_t(&text);
            let _ = parse_listen(&text);
        }
    }
}
