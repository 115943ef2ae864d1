//! Which host key ssh really serves, judged against the host's own keys.
//!
//! An `SSH-2.0-` banner is written before any of the work that fails in the
//! field (re-executing a replaced binary, loading the host keys, agreeing on
//! algorithms), so after a repair the guard asks for more: a key exchange on
//! every address, serving one of the keys in /etc/ssh/ssh_host_*_key.pub.
//! This module is the pure half: it parses the public key files and
//! ssh-keyscan's output (both input from the system, so hostile input must
//! give an error, never a panic), computes OpenSSH's SHA256 fingerprints,
//! judges each address and words the result. `system::kex` runs the programs.
#![forbid(unsafe_code)]

use crate::sshd::Endpoint;
use base64::Engine;
use std::path::PathBuf;

/// Longest base64 text accepted for one key: an RSA key of 16384 bits (the
/// most ssh-keygen makes) is about 2.8 KB of base64, a certificate more.
const MAX_B64: usize = 16 * 1024;

/// A public key as OpenSSH writes it: its algorithm name and the key blob
/// (the base64 field, decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubKey {
    pub algo: String,
    pub blob: Vec<u8>,
}

impl PubKey {
    /// OpenSSH's SHA256 fingerprint: "SHA256:" and the unpadded base64 of
    /// the blob's SHA-256, as `ssh-keygen -l` and ssh's prompts print it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&self.blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        )
    }

    /// The key's kind in the words admins use: ed25519, ecdsa, rsa.
    pub fn kind(&self) -> &str {
        keyscan_type(&self.algo).unwrap_or(&self.algo)
    }
}

/// ssh-keyscan's `-t` name for a key algorithm; None for kinds it is not
/// asked for (certificates, security keys, DSA).
pub fn keyscan_type(algo: &str) -> Option<&'static str> {
    match algo {
        "ssh-ed25519" => Some("ed25519"),
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => Some("ecdsa"),
        "ssh-rsa" => Some("rsa"),
        _ => None,
    }
}

/// The `-t` types to ask for, one ssh-keyscan run each until every address
/// is proven: the host's own kinds, strongest and cheapest first. With no
/// public key files to go by, every common kind.
pub fn types_to_try(host_keys: &[PubKey]) -> Vec<&'static str> {
    const ORDER: [&str; 3] = ["ed25519", "ecdsa", "rsa"];
    let have: Vec<&str> = host_keys
        .iter()
        .filter_map(|k| keyscan_type(&k.algo))
        .collect();
    if have.is_empty() {
        return ORDER.to_vec();
    }
    ORDER.into_iter().filter(|t| have.contains(t)).collect()
}

/// One key from the algorithm and base64 fields of a line. The blob must
/// name the same algorithm (its first field, an SSH string), so a truncated
/// or shuffled line is an error rather than a key that never matches, and
/// something must follow the name.
fn key_from_fields(algo: &str, b64: &str) -> Result<PubKey, String> {
    if algo.is_empty() || algo.len() > 64 || !algo.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("not a key algorithm name".into());
    }
    if b64.len() > MAX_B64 {
        return Err(format!("key longer than {MAX_B64} characters"));
    }
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("key is not base64: {e}"))?;
    let named = blob
        .get(..4)
        .and_then(|l| <[u8; 4]>::try_from(l).ok())
        .map(|l| u32::from_be_bytes(l) as usize)
        .and_then(|n| blob.get(4..4_usize.checked_add(n)?))
        .ok_or("key blob too short")?;
    if blob.len() <= named.len().saturating_add(4) {
        return Err("key blob has a name and no key".into());
    }
    if named != algo.as_bytes() {
        return Err(format!(
            "key blob is for {:?}, the line says {algo}",
            String::from_utf8_lossy(named)
        ));
    }
    Ok(PubKey {
        algo: algo.to_string(),
        blob,
    })
}

/// Parses an OpenSSH public key file (`ssh_host_ed25519_key.pub`):
/// "ALGORITHM BASE64 [COMMENT]" on its first line that is not blank or a
/// comment.
pub fn parse_pub(text: &str) -> Result<PubKey, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("no key in the file")?;
    let mut f = line.split_ascii_whitespace();
    match (f.next(), f.next()) {
        (Some(algo), Some(b64)) => key_from_fields(algo, b64),
        _ => Err("not an OpenSSH public key line".into()),
    }
}

/// The host argument ssh-keyscan is given for an endpoint: the address,
/// with its IPv6 scope ("fe80::1%eth0") when it has one.
pub fn keyscan_host(e: &Endpoint) -> String {
    match &e.scope {
        Some(z) => format!("{}%{z}", e.addr.ip()),
        None => e.addr.ip().to_string(),
    }
}

/// How ssh-keyscan names an address it was given as [`keyscan_host`]: the
/// bare host on port 22, "[host]:port" otherwise (OpenSSH's put_host_port).
pub fn keyscan_name(e: &Endpoint) -> String {
    if e.addr.port() == 22 {
        keyscan_host(e)
    } else {
        format!("[{}]:{}", keyscan_host(e), e.addr.port())
    }
}

/// ssh-keyscan's standard output: "HOST ALGORITHM BASE64" per key received;
/// "#" lines are comments. Returns the keys per host name, in order, and
/// lines that could not be read (never fatal: the host then simply has no
/// key).
pub fn parse_keyscan(stdout: &str) -> (Vec<(String, PubKey)>, Vec<String>) {
    let mut keys = Vec::new();
    let mut bad = Vec::new();
    for line in stdout.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let r = match (f.next(), f.next(), f.next()) {
            (Some(host), Some(algo), Some(b64)) => {
                key_from_fields(algo, b64).map(|k| (host.to_string(), k))
            }
            _ => Err("not HOST ALGORITHM KEY".into()),
        };
        match r {
            Ok(k) => keys.push(k),
            Err(e) => bad.push(format!("{}: {e}", clip(line, 80))),
        }
    }
    (keys, bad)
}

/// Why ssh-keyscan got no key from `addr`: its first error line that names
/// the address ("Unable to negotiate with ::1 port 22: no matching host key
/// type found", "write (127.0.0.1): Broken pipe"), clipped.
pub fn keyscan_error(stderr: &str, addr: &Endpoint) -> Option<String> {
    let ip = addr.addr.ip().to_string();
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find(|l| l.contains(&ip))
        .map(|l| clip(l, 200))
}

/// The `hostkey` paths in `sshd -T` output: where sshd loads its keys from
/// when the configuration names others than /etc/ssh/ssh_host_*_key.
pub fn parse_hostkey_paths(sshd_t: &str) -> Vec<PathBuf> {
    sshd_t
        .lines()
        .filter_map(|l| {
            let mut f = l.split_ascii_whitespace();
            match (f.next(), f.next()) {
                (Some("hostkey"), Some(p)) if p.starts_with('/') => Some(PathBuf::from(p)),
                _ => None,
            }
        })
        .collect()
}

/// Whether sshd's error (stderr of `sshd -t`/`-T`) says only that it has no
/// host keys at all ("sshd: no hostkeys available -- exiting."), the one
/// configuration error `ssh-keygen -A` fixes. Any other line (a bad option,
/// a key that exists but cannot be loaded) means no.
pub fn only_missing_host_keys(sshd_error: &str) -> bool {
    let mut lines = sshd_error.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut any = false;
    lines.all(|l| {
        any = true;
        let l = l.strip_prefix("sshd: ").unwrap_or(l);
        matches!(
            l,
            "no hostkeys available -- exiting." | "no hostkeys available -- exiting"
        )
    }) && any
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// What one address proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// A key exchange completed with one of the host's keys.
    HostKey(PubKey),
    /// A key exchange completed, with a key that is none of the host's: a
    /// listener started before the keys were replaced, or not this host's sshd.
    OtherKey(PubKey),
    /// A key exchange completed; the host has no public key files to compare
    /// with, so only the exchange itself is proven.
    Unchecked(PubKey),
    /// No key exchange: ssh-keyscan received no key (the reason it gave).
    NoKeyExchange(String),
}

impl Served {
    pub fn ok(&self) -> bool {
        matches!(self, Served::HostKey(_) | Served::Unchecked(_))
    }
}

/// Judges the keys an address served (usually one) against the host's.
pub fn judge(host_keys: &[PubKey], served: &[&PubKey], error: Option<String>) -> Served {
    if let Some(k) = served.iter().find(|k| host_keys.contains(k)) {
        return Served::HostKey((*k).clone());
    }
    match served.first() {
        Some(k) if host_keys.is_empty() => Served::Unchecked((*k).clone()),
        Some(k) => Served::OtherKey((*k).clone()),
        None => Served::NoKeyExchange(
            error.unwrap_or_else(|| "the connection ended before the server sent its key".into()),
        ),
    }
}

/// The outcome of the key-exchange proof over every address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Key exchanges were attempted; one result per address.
    KeyExchange(Vec<(Endpoint, Served)>),
    /// No key exchange was possible (e.g. ssh-keyscan is missing): only the
    /// banner proves anything, and the reason says why.
    BannerOnly(String),
}

impl Proof {
    /// Every address completed a key exchange (or none could be attempted,
    /// in which case the banner that answered stands).
    pub fn ok(&self) -> bool {
        match self {
            Proof::KeyExchange(r) => r.iter().all(|(_, s)| s.ok()),
            Proof::BannerOnly(_) => true,
        }
    }

    /// The addresses that completed a key exchange.
    pub fn serving(&self) -> Vec<Endpoint> {
        match self {
            Proof::KeyExchange(r) => r
                .iter()
                .filter(|(_, s)| s.ok())
                .map(|(a, _)| a.clone())
                .collect(),
            Proof::BannerOnly(_) => Vec::new(),
        }
    }

    /// What was proven, for a `did:` line: "ssh completed a key exchange
    /// with this host's ed25519 key (SHA256:...) on 127.0.0.1:22, [::1]:22".
    /// `banner_on` names the addresses that answered, for the fallback.
    pub fn success_line(&self, banner_on: &[Endpoint]) -> String {
        match self {
            Proof::BannerOnly(why) => format!(
                "ssh answers with an SSH-2.0 banner on {} (no key exchange tried: {why})",
                join(banner_on)
            ),
            Proof::KeyExchange(r) => {
                // Group addresses by the key they served, in first-seen order.
                let mut groups: Vec<(&Served, Vec<Endpoint>)> = Vec::new();
                for (a, s) in r.iter().filter(|(_, s)| s.ok()) {
                    match groups.iter_mut().find(|(g, _)| *g == s) {
                        Some((_, addrs)) => addrs.push(a.clone()),
                        None => groups.push((s, vec![a.clone()])),
                    }
                }
                let parts: Vec<String> = groups
                    .iter()
                    .map(|(s, addrs)| match s {
                        Served::HostKey(k) => format!(
                            "with this host's {} key ({}) on {}",
                            k.kind(),
                            k.fingerprint(),
                            join(addrs)
                        ),
                        Served::Unchecked(k) | Served::OtherKey(k) => format!(
                            "with an {} key ({}; no /etc/ssh/ssh_host_*_key.pub to compare with) on {}",
                            k.kind(),
                            k.fingerprint(),
                            join(addrs)
                        ),
                        Served::NoKeyExchange(_) => String::new(),
                    })
                    .collect();
                format!("ssh completed a key exchange {}", parts.join("; "))
            }
        }
    }

    /// One line per address that did not prove itself, for `failed:` lines
    /// and findings.
    pub fn problems(&self) -> Vec<String> {
        let Proof::KeyExchange(r) = self else {
            return Vec::new();
        };
        r.iter()
            .filter_map(|(a, s)| match s {
                Served::NoKeyExchange(why) => Some(format!(
                    "ssh answers on {a} but completes no key exchange ({why})"
                )),
                Served::OtherKey(k) => Some(format!(
                    "ssh on {a} serves an {} key ({}) that is none of this host's keys (/etc/ssh/ssh_host_*_key.pub): a listener started before the keys changed?",
                    k.kind(),
                    k.fingerprint()
                )),
                Served::HostKey(_) | Served::Unchecked(_) => None,
            })
            .collect()
    }
}

fn join(addrs: &[Endpoint]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519 -N '' -C root@e2e`; the
    // fingerprint is what `ssh-keygen -lf` printed for it.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6l28bt6L6xjnZJX1OAFRCQ4tu3S6Pt7atifrrz8Wov root@e2e\n";
    const ED_FP: &str = "SHA256:ZxmF40D/WOYTfOVqKtnB7jJ56zqD0ZAmi+dhAyreGvU";

    fn ed() -> PubKey {
        parse_pub(ED).unwrap()
    }

    fn addr(s: &str) -> Endpoint {
        Endpoint::new(s.parse().unwrap())
    }

    #[test]
    fn pub_file_parses_and_fingerprints_like_ssh_keygen() {
        let k = ed();
        assert_eq!(k.algo, "ssh-ed25519");
        assert_eq!(k.kind(), "ed25519");
        assert_eq!(k.blob.len(), 51);
        assert_eq!(k.fingerprint(), ED_FP);
    }

    #[test]
    fn pub_file_skips_blank_and_comment_lines() {
        assert_eq!(parse_pub(&format!("\n# a comment\n  {ED}")).unwrap(), ed());
    }

    #[test]
    fn pub_file_rejects_a_blob_for_another_algorithm() {
        let line = ED.replacen("ssh-ed25519", "ssh-rsa", 1);
        let e = parse_pub(&line).unwrap_err();
        assert!(e.contains("ssh-ed25519"), "{e}");
    }

    #[test]
    fn pub_file_rejects_garbage() {
        for t in [
            "",
            "\n\n",
            "ssh-ed25519",
            "ssh-ed25519 !!!!",
            "ssh-ed25519 AAAA",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
        ] {
            assert!(parse_pub(t).is_err(), "{t:?}");
        }
        let long = format!("ssh-rsa {}", "A".repeat(MAX_B64 + 4));
        assert!(parse_pub(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn blob_length_field_cannot_overflow() {
        // Length 0xffffffff with 4 bytes of data.
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xff, 0xff, 0xff, 0xff, 1]);
        assert!(key_from_fields("ssh-rsa", &b64).is_err());
    }

    #[test]
    fn keyscan_output_per_host_with_ports_and_comments() {
        let body = ED.split_whitespace().nth(1).unwrap();
        let out = format!(
            "# 127.0.0.1:22 SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\n127.0.0.1 ssh-ed25519 {body}\n::1 ssh-ed25519 {body}\n[10.0.0.1]:2222 ssh-ed25519 {body}\ngarbage\n"
        );
        let (keys, bad) = parse_keyscan(&out);
        let hosts: Vec<&str> = keys.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(hosts, ["127.0.0.1", "::1", "[10.0.0.1]:2222"]);
        assert!(keys.iter().all(|(_, k)| *k == ed()));
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn keyscan_names_addresses_as_openssh_does() {
        assert_eq!(keyscan_name(&addr("127.0.0.1:22")), "127.0.0.1");
        assert_eq!(keyscan_name(&addr("[::1]:22")), "::1");
        assert_eq!(keyscan_name(&addr("[::1]:2222")), "[::1]:2222");
        assert_eq!(keyscan_name(&addr("127.0.0.1:2222")), "[127.0.0.1]:2222");
        let scoped = crate::sshd::parse_listen("[fe80::1%eth0]:2222").unwrap();
        assert_eq!(keyscan_host(&scoped), "fe80::1%eth0");
        assert_eq!(keyscan_name(&scoped), "[fe80::1%eth0]:2222");
    }

    #[test]
    fn keyscan_error_is_the_line_naming_the_address() {
        let err = "# ::1:22 SSH-2.0-OpenSSH_9.2p1\nUnable to negotiate with ::1 port 22: no matching host key type found. Their offer: sk-ssh-ed25519@openssh.com\n";
        assert_eq!(
            keyscan_error(err, &addr("[::1]:22")).unwrap(),
            "Unable to negotiate with ::1 port 22: no matching host key type found. Their offer: sk-ssh-ed25519@openssh.com"
        );
        assert_eq!(keyscan_error(err, &addr("127.0.0.1:22")), None);
    }

    #[test]
    fn types_follow_the_hosts_keys() {
        assert_eq!(types_to_try(&[]), ["ed25519", "ecdsa", "rsa"]);
        assert_eq!(types_to_try(&[ed()]), ["ed25519"]);
    }

    #[test]
    fn judging_served_keys() {
        let host = [ed()];
        let other = PubKey {
            algo: "ssh-ed25519".into(),
            blob: vec![0, 0, 0, 11, b's'],
        };
        assert_eq!(judge(&host, &[&ed()], None), Served::HostKey(ed()));
        assert_eq!(
            judge(&host, &[&other, &ed()], None),
            Served::HostKey(ed()),
            "one of several served keys being the host's is enough"
        );
        assert_eq!(
            judge(&host, &[&other], None),
            Served::OtherKey(other.clone())
        );
        assert_eq!(judge(&[], &[&other], None), Served::Unchecked(other));
        assert!(matches!(
            judge(&host, &[], Some("closed".into())),
            Served::NoKeyExchange(e) if e == "closed"
        ));
    }

    #[test]
    fn report_lines() {
        let p = Proof::KeyExchange(vec![
            (addr("127.0.0.1:22"), Served::HostKey(ed())),
            (addr("[::1]:22"), Served::HostKey(ed())),
        ]);
        assert!(p.ok());
        assert_eq!(
            p.success_line(&[]),
            format!("ssh completed a key exchange with this host's ed25519 key ({ED_FP}) on 127.0.0.1:22, [::1]:22")
        );
        let bad = Proof::KeyExchange(vec![
            (addr("127.0.0.1:22"), Served::HostKey(ed())),
            (addr("[::1]:22"), Served::NoKeyExchange("reset".into())),
        ]);
        assert!(!bad.ok());
        assert_eq!(bad.serving(), [addr("127.0.0.1:22")]);
        assert_eq!(
            bad.problems(),
            ["ssh answers on [::1]:22 but completes no key exchange (reset)"]
        );
        let fallback = Proof::BannerOnly("/usr/bin/ssh-keyscan: not found".into());
        assert!(fallback.ok());
        assert_eq!(
            fallback.success_line(&[addr("127.0.0.1:22")]),
            "ssh answers with an SSH-2.0 banner on 127.0.0.1:22 (no key exchange tried: /usr/bin/ssh-keyscan: not found)"
        );
    }

    #[test]
    fn hostkey_paths_from_sshd_t() {
        let t = "port 22\nhostkey /etc/ssh/ssh_host_ed25519_key\nhostkey relative\nhostkeyalgorithms x\n";
        assert_eq!(
            parse_hostkey_paths(t),
            [PathBuf::from("/etc/ssh/ssh_host_ed25519_key")]
        );
    }

    #[test]
    fn only_missing_host_keys_is_exactly_sshds_line() {
        assert!(only_missing_host_keys(
            "sshd: no hostkeys available -- exiting.\n"
        ));
        assert!(only_missing_host_keys("no hostkeys available -- exiting."));
        for other in [
            "",
            "/etc/ssh/sshd_config line 3: Bad configuration option: Foo\nsshd: no hostkeys available -- exiting.",
            "Unable to load host key \"/etc/ssh/ssh_host_ed25519_key\": invalid format\nsshd: no hostkeys available -- exiting.",
            "Missing privilege separation directory: /run/sshd",
            "sshd: no hostkeys available -- exiting. and more",
        ] {
            assert!(!only_missing_host_keys(other), "{other:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_text(text in "\\PC*") {
            let _ = parse_pub(&text);
            let _ = parse_keyscan(&text);
            let _ = keyscan_error(&text, &addr("[::1]:22"));
            let _ = parse_hostkey_paths(&text);
            let _ = only_missing_host_keys(&text);
        }

        #[test]
        fn never_panics_on_key_fields(algo in "[ -~]{0,70}", blob in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
            let _ = parse_pub(&format!("{algo} {b64}"));
            let _ = parse_keyscan(&format!("h {algo} {b64}\n"));
        }

        #[test]
        fn a_wellformed_key_round_trips(name in "[a-z0-9@.-]{1,40}", body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut blob = (name.len() as u32).to_be_bytes().to_vec();
            blob.extend_from_slice(name.as_bytes());
            blob.push(0);
            blob.extend_from_slice(&body);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
            let k = parse_pub(&format!("{name} {b64} comment")).unwrap();
            proptest::prop_assert_eq!(&k.blob, &blob);
            proptest::prop_assert!(k.fingerprint().starts_with("SHA256:"));
            proptest::prop_assert_eq!(k.fingerprint().len(), 7 + 43);
        }
    }
}
