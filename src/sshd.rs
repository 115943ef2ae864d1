//! What sshd and ssh.socket say about where ssh listens, and which loopback
//! address proves each listening address answers. Pure parsing of `sshd -T`
//! output and of systemd's socket Listen entries.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Ports and listen addresses in force according to `sshd -T`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshdListen {
    pub ports: Vec<u16>,
    pub addresses: Vec<SocketAddr>,
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
                // sshd -T prints "listenaddress [::]:22" / "0.0.0.0:22", plus
                // " rdomain X" on some systems, which we do not need.
                let addr = parse_listen(a)
                    .ok_or_else(|| format!("sshd -T: bad listenaddress line {line:?}"))?;
                if !out.addresses.contains(&addr) {
                    out.addresses.push(addr);
                }
            }
            _ => {}
        }
    }
    if out.ports.is_empty() && out.addresses.is_empty() {
        return Err("sshd -T printed no port and no listenaddress".into());
    }
    Ok(out)
}

/// Parses one systemd ListenStream value or sshd address: "22", "0.0.0.0:22",
/// "[::]:22", "[::1]:2222". A bare port means both address families (systemd
/// binds it dual-stack).
pub fn parse_listen(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return (port != 0).then(|| SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    // systemd may add "%dev" to an address; drop the interface.
    let s = match (s.find('%'), s.rfind(':')) {
        (Some(p), Some(c)) if p < c => {
            let close = s[p..].find(']').map(|i| p + i).unwrap_or(c);
            format!("{}{}", &s[..p], &s[close..])
        }
        _ => s.to_string(),
    };
    let a: SocketAddr = s.parse().ok()?;
    (a.port() != 0).then_some(a)
}

/// The addresses a client connects to, to prove each listening address
/// answers: the wildcard of each family becomes that family's loopback.
pub fn probe_targets(listening: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    let mut push = |a: SocketAddr| {
        if !out.contains(&a) {
            out.push(a)
        }
    };
    for a in listening {
        match a.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port()))
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), a.port()))
            }
            _ => push(*a),
        }
    }
    out
}

/// [`probe_targets`], or 127.0.0.1:22 when there is nothing to probe
/// (sshd -T gave no address): the watchdog's healthy-path check.
pub fn probe_targets_or_default(listening: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut targets = probe_targets(listening);
    if targets.is_empty() {
        targets.push(SocketAddr::from(([127, 0, 0, 1], 22)));
    }
    targets
}

/// True when `line` is an SSH protocol identification (RFC 4253 4.2).
pub fn is_ssh_banner(line: &[u8]) -> bool {
    line.starts_with(b"SSH-2.0-") || line.starts_with(b"SSH-1.99-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_t_debian_default() {
        let t = "port 22\naddressfamily any\nlistenaddress [::]:22\nlistenaddress 0.0.0.0:22\nusepam yes\n";
        let l = parse_sshd_t(t).unwrap();
        assert_eq!(l.ports, vec![22]);
        assert_eq!(l.addresses.len(), 2);
        let targets = probe_targets(&l.addresses);
        assert_eq!(
            targets,
            vec!["[::1]:22".parse().unwrap(), "127.0.0.1:22".parse().unwrap()]
        );
    }

    #[test]
    fn sshd_t_several_ports_and_rdomain() {
        let t = "port 22\nport 2222\nlistenaddress 192.0.2.1:2222 rdomain 1\n";
        let l = parse_sshd_t(t).unwrap();
        assert_eq!(l.ports, vec![22, 2222]);
        assert_eq!(l.addresses, vec!["192.0.2.1:2222".parse().unwrap()]);
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
        let a: Vec<SocketAddr> = l.iter().filter_map(|a| parse_listen(a)).collect();
        assert_eq!(a.len(), 3);
        assert_eq!(a[2], "[fe80::1]:22".parse().unwrap());
        assert_eq!(parse_listen("22").unwrap().port(), 22);
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
