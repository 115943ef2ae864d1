//! Proving that ssh serves: an SSH key exchange on every address, with one
//! of this host's keys.
//!
//! Why `ssh-keyscan` and not a native client: a client of our own would need
//! curve25519 or ECDH, the SSH binary packet layer and signature checking,
//! i.e. a stack of crypto crates (and their MSRV, against our rust-version
//! floor of Debian 13's rustc) to prove something OpenSSH's own client
//! already does. ssh-keyscan ships in openssh-client, which openssh-server
//! depends on, so it is there wherever there is an sshd to check; it speaks
//! exactly the client side of the protocol the admins' ssh speaks, and it
//! costs one short process per repair (one connection per address for the
//! first key type tried). Where it is missing the banner stays the proof,
//! and the report says so.
//!
//! What it proves, and what not: ssh-keyscan sends its KEXINIT and ECDH/DH
//! init, and prints the host key from the server's KEX reply. sshd sends
//! that reply only after the connection went through everything a login
//! goes through first: the listener accepted and re-executed itself (or
//! sshd-session since OpenSSH 9.8, where a replaced binary fails:
//! `recv_rexec_state: buffer error`), the algorithms were agreed (`no
//! matching host key type`, `No supported key exchange algorithms`), and
//! the private host key was loaded and used to sign the exchange. ssh-keyscan
//! stops as soon as it has the key: it does not verify that signature (we
//! rely on the reply, not on cryptographic proof against a hostile server),
//! and nothing after the key exchange is exercised: user authentication,
//! PAM, the session and the login shell are not proven.
//!
//! Every run is bounded: a hard deadline after which the child is killed and
//! reaped, output read up to a limit.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::sshd::Answer;
use crate::hostkeys::{self, Proof, PubKey};
use crate::sshd::Endpoint;
use crate::system::Roots;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const KEYSCAN: &str = "/usr/bin/ssh-keyscan";

/// A public key file is a line; anything bigger is not one.
const PUB_LIMIT: u64 = 64 * 1024;

/// The host's public keys: every /etc/ssh/ssh_host_*_key.pub that parses.
pub fn read_host_keys(etc_ssh: &Path) -> Vec<PubKey> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(etc_ssh)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.iter().filter_map(|p| read_pub(p)).collect()
}

fn read_pub(path: &Path) -> Option<PubKey> {
    let mut text = String::new();
    let r = std::fs::File::open(path)
        .and_then(|f| f.take(PUB_LIMIT).read_to_string(&mut text))
        .map_err(|e| e.to_string())
        .and_then(|_| hostkeys::parse_pub(&text));
    match r {
        Ok(k) => Some(k),
        Err(e) => {
            log::debug!("{}: {e}", path.display());
            None
        }
    }
}

/// What a bounded run produced.
struct Ran {
    stdout: String,
    stderr: String,
    /// Killed at the deadline.
    timed_out: bool,
    /// Its exit status, if it was reaped.
    status: Option<std::process::ExitStatus>,
}

/// Runs `program args` with no stdin until it exits or `deadline` passes;
/// then it is killed and reaped (bounded as well), by the same
/// `system::child` that bounds `sshd -T`. Err only if it could not be
/// started.
fn run_bounded(program: &Path, args: &[String], deadline: Instant) -> std::io::Result<Ran> {
    let _doing = crate::deadline::doing(format!("running {}", program.display()));
    let child = super::child::spawn(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match super::child::output_until(child, deadline) {
        Ok(out) => Ok(Ran {
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
            timed_out: false,
            status: Some(out.status),
        }),
        Err(super::child::Error::TimedOut) => Ok(Ran {
            stdout: String::new(),
            stderr: String::new(),
            timed_out: true,
            status: None,
        }),
        Err(super::child::Error::Io(e)) => Err(e),
    }
}

/// A deadline `timeout` from now, never overflowing.
fn deadline_in(timeout: Duration) -> Instant {
    crate::deadline::after(timeout)
}

/// Completes a key exchange with each of `targets` (addresses that answered
/// a banner) and judges the key served, all within `timeout`.
pub fn prove(roots: &Roots, targets: &[Endpoint], timeout: Duration) -> Proof {
    let keyscan = roots.under(Path::new(KEYSCAN));
    if targets.is_empty() {
        return Proof::KeyExchange(Vec::new());
    }
    let deadline = deadline_in(timeout);
    let mut host_keys = read_host_keys(&roots.under(Path::new("/etc/ssh")));
    let mut served: Vec<Vec<PubKey>> = vec![Vec::new(); targets.len()];
    let mut errors: Vec<Option<String>> = vec![None; targets.len()];
    for kind in hostkeys::types_to_try(&host_keys) {
        let mut ports: Vec<u16> = targets
            .iter()
            .zip(&served)
            .filter(|(_, s)| s.is_empty())
            .map(|(a, _)| a.addr.port())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            let idx: Vec<usize> = (0..targets.len())
                .filter(|&i| targets[i].addr.port() == port && served[i].is_empty())
                .collect();
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            // -T is ssh-keyscan's per-connection idle limit, whole seconds.
            let secs = left.as_secs().saturating_add(1).to_string();
            let mut args: Vec<String> = ["-T", &secs, "-t", kind, "-p", &port.to_string()]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(idx.iter().map(|&i| hostkeys::keyscan_host(&targets[i])));
            let started = Instant::now();
            let ran = match run_bounded(&keyscan, &args, deadline) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Proof::BannerOnly(format!(
                        "{} not found (package openssh-client)",
                        keyscan.display()
                    ));
                }
                Err(e) => {
                    return Proof::BannerOnly(format!("cannot run {}: {e}", keyscan.display()))
                }
            };
            log::debug!(
                "{:.1} ms: ssh-keyscan {} took {:.1} ms: {:?} {:?}",
                crate::elapsed_ms(),
                args.join(" "),
                started.elapsed().as_secs_f64() * 1000.0,
                ran.stdout,
                ran.stderr
            );
            let (keys, bad) = hostkeys::parse_keyscan(&ran.stdout);
            for b in bad {
                log::debug!("ssh-keyscan printed an unreadable line: {b}");
            }
            for &i in &idx {
                let name = hostkeys::keyscan_name(&targets[i]);
                served[i].extend(
                    keys.iter()
                        .filter(|(h, _)| *h == name)
                        .map(|(_, k)| k.clone()),
                );
                if served[i].is_empty() {
                    errors[i] = hostkeys::keyscan_error(&ran.stderr, &targets[i]).or_else(|| {
                        ran.timed_out
                            .then(|| format!("no key within {} ms", timeout.as_millis()))
                    });
                }
            }
        }
    }
    // sshd may load its keys from elsewhere (HostKey in sshd_config): before
    // calling a served key foreign, ask sshd where its keys are. Only then,
    // so a healthy repair does not pay for an extra sshd -T.
    let foreign = served
        .iter()
        .any(|s| !s.is_empty() && !s.iter().any(|k| host_keys.contains(k)));
    if foreign && !host_keys.is_empty() {
        host_keys.extend(configured_keys(roots, deadline_in(Duration::from_secs(2))));
    }
    Proof::KeyExchange(
        targets
            .iter()
            .zip(served.iter().zip(errors))
            .map(|(a, (s, e))| {
                let s: Vec<&PubKey> = s.iter().collect();
                (a.clone(), hostkeys::judge(&host_keys, &s, e))
            })
            .collect(),
    )
}

/// Whether ssh serves on a set of addresses, as `repair` checks it after
/// acting and `status --probe`/`check --probe` report it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Serving {
    /// Which proof was used: "key exchange", or "banner" where no key
    /// exchange was possible (ssh-keyscan missing).
    pub proof: &'static str,
    /// Every address that should serve answered and proved itself (one
    /// that cannot exist on this host does not count against).
    pub ok: bool,
    /// At least one address serves.
    pub any: bool,
    /// The `did:` line when ok; what fails otherwise, naming the addresses
    /// that do not serve.
    pub summary: String,
    /// The addresses where nothing answers at all (refused, silent): a
    /// rescue sshd can bind those. One that answers but proves nothing is
    /// held by its listener and is not among them.
    #[serde(skip)]
    pub down: Vec<Endpoint>,
}

/// A banner on every target first (bounded by `banner_timeout` while
/// systemd brings the listener up), then a key exchange with this host's key
/// on the addresses that answered, bounded by the same timeout. With no
/// target known, ssh's default 127.0.0.1:22. `when` ends "ssh does not
/// answer" in the summary (" after the repair").
///
/// As with the banner alone (sshd::answered): where some addresses answer
/// and the others cannot be reached from this host (an interface that is
/// down, a link-local scope gone), ssh is up and the unreachable ones are
/// named, not failed; every address that answers must prove itself.
pub fn serves(
    roots: &Roots,
    targets: &[Endpoint],
    banner_timeout: Duration,
    when: &str,
) -> Serving {
    let targets = if targets.is_empty() {
        crate::sshd::probe_targets_or_default(&[])
    } else {
        targets.to_vec()
    };
    let res = super::sshd::wait_endpoints(&targets, banner_timeout);
    let proof = prove(roots, &banners(&res), banner_timeout);
    judge(&res, &proof, when)
}

/// The addresses that answered with a banner.
fn banners(res: &[(Endpoint, Result<Answer, String>)]) -> Vec<Endpoint> {
    res.iter()
        .filter(|(_, r)| matches!(r, Ok(Answer::Banner(_))))
        .map(|(a, _)| a.clone())
        .collect()
}

/// Whether ssh serves, from the banner probe of every target and the key
/// exchanges with those that answered (see [`serves`]): every address that
/// should serve must (banner, then key exchange); one that cannot exist on
/// this host (EADDRNOTAVAIL and kin, an interface that is not there) is
/// named apart and does not count against; a partial result fails, naming
/// the addresses that do not serve.
fn judge(res: &[(Endpoint, Result<Answer, String>)], proof: &Proof, when: &str) -> Serving {
    let banners = banners(res);
    let kind = match proof {
        Proof::KeyExchange(_) => "key exchange",
        Proof::BannerOnly(_) => "banner",
    };
    let serving: Vec<Endpoint> = match proof {
        Proof::KeyExchange(_) => proof.serving(),
        Proof::BannerOnly(_) => banners.clone(),
    };
    let silent: Vec<String> = res
        .iter()
        .filter_map(|(a, r)| r.as_ref().err().map(|e| name_error(a, e)))
        .collect();
    let down: Vec<Endpoint> = res
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(a, _)| a.clone())
        .collect();
    let absent: Vec<String> = res
        .iter()
        .filter_map(|(_, r)| match r {
            Ok(a @ Answer::Unavailable(_)) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    if silent.is_empty() && banners.is_empty() {
        // Every address is one that cannot exist here (e.g. ::1 with IPv6
        // off): nothing to prove, as with the banner alone before.
        return Serving {
            proof: kind,
            ok: true,
            any: false,
            summary: format!(
                "ssh: no address to probe exists on this host {}",
                absent.join("; ")
            ),
            down,
        };
    }
    let any = !serving.is_empty();
    if silent.is_empty() && proof.ok() {
        let mut summary = proof.success_line(&banners);
        if !absent.is_empty() {
            summary.push_str(&format!(
                "; cannot exist on this host: {}",
                absent.join("; ")
            ));
        }
        return Serving {
            proof: kind,
            ok: true,
            any,
            summary,
            down,
        };
    }
    let mut why = Vec::new();
    if !silent.is_empty() {
        why.push(format!("ssh does not answer{when}: {}", silent.join("; ")));
    }
    why.extend(proof.problems());
    if any {
        why.push(format!(
            "it does serve elsewhere: {}",
            proof.success_line(&serving)
        ));
    }
    Serving {
        proof: kind,
        ok: false,
        any,
        summary: why.join("; "),
        down,
    }
}

/// "ADDRESS: error", unless the error already starts with the address.
fn name_error(a: &Endpoint, e: &str) -> String {
    let name = a.to_string();
    if e.starts_with(&name) || e.starts_with(&a.addr.to_string()) {
        e.to_string()
    } else {
        format!("{name}: {e}")
    }
}

/// `status --probe` and `check --probe`: whether ssh serves on every
/// address of the snapshot (the caller makes a finding of it when not).
pub fn probe(roots: &Roots, cfg: &crate::config::Config, snap: &crate::model::Snapshot) -> Serving {
    serves(
        roots,
        &super::snapshot::probe_targets(snap),
        cfg.banner_timeout,
        "",
    )
}

pub const KEYGEN: &str = "/usr/bin/ssh-keygen";

/// `ssh-keygen -A`: creates each of the default host keys that is missing
/// (it never replaces one). Returns the keys that are new, for the report:
/// clients that knew the old ones will warn that the host key changed.
pub fn generate_host_keys(roots: &Roots) -> anyhow::Result<Vec<PubKey>> {
    let etc = roots.under(Path::new("/etc/ssh"));
    let keygen = roots.under(Path::new(KEYGEN));
    let before = read_host_keys(&etc);
    // RSA 3072 takes a second or two on a slow machine; a minute is plenty.
    let ran = run_bounded(
        &keygen,
        &["-A".to_string()],
        deadline_in(Duration::from_secs(60)),
    )
    .map_err(|e| anyhow::anyhow!("cannot run {} -A: {e}", keygen.display()))?;
    let said = ran.stderr.trim();
    if ran.timed_out {
        anyhow::bail!("{} -A did not finish within 60 s", keygen.display());
    }
    if !ran.status.is_some_and(|s| s.success()) {
        anyhow::bail!("{} -A failed: {said}", keygen.display());
    }
    let new: Vec<PubKey> = read_host_keys(&etc)
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    if new.is_empty() {
        anyhow::bail!("{} -A created no host key ({said})", keygen.display());
    }
    Ok(new)
}

/// The public halves of the keys `sshd -T` (with the options ssh.service
/// passes, which may name other keys with -h) says it loads.
fn configured_keys(roots: &Roots, deadline: Instant) -> Vec<PubKey> {
    let mut args = vec!["-T".to_string()];
    args.extend(super::sshd::unit_options(roots).config_args);
    match run_bounded(&roots.sshd, &args, deadline) {
        Ok(r) if !r.timed_out && r.status.is_some_and(|s| s.success()) => {
            hostkeys::parse_hostkey_paths(&r.stdout)
                .into_iter()
                .filter_map(|p| {
                    let mut s = p.into_os_string();
                    s.push(".pub");
                    read_pub(&roots.under(Path::new(&s)))
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_outlives_the_deadline_is_killed_and_reaped() {
        let t = Instant::now();
        let r = run_bounded(
            Path::new("/bin/sleep"),
            &["30".to_string()],
            deadline_in(Duration::from_millis(100)),
        )
        .unwrap();
        assert!(r.timed_out);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn output_of_a_quick_child_is_read_whole() {
        let r = run_bounded(
            Path::new("/bin/sh"),
            &["-c".to_string(), "echo out; echo err >&2".to_string()],
            deadline_in(Duration::from_secs(10)),
        )
        .unwrap();
        assert!(!r.timed_out);
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_hang() {
        let e = run_bounded(
            Path::new("/nonexistent/ssh-keyscan"),
            &[],
            deadline_in(Duration::from_secs(1)),
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    fn ep(s: &str) -> Endpoint {
        crate::sshd::parse_listen(s).unwrap()
    }

    fn ed() -> PubKey {
        hostkeys::parse_pub("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6l28bt6L6xjnZJX1OAFRCQ4tu3S6Pt7atifrrz8Wov root@e2e").unwrap()
    }

    #[test]
    fn an_address_that_cannot_exist_beside_one_that_serves_is_named_not_failed() {
        let banner = || Ok(Answer::Banner("SSH-2.0-OpenSSH_9.6".into()));
        let res = vec![
            (ep("127.0.0.1:22"), banner()),
            (
                ep("[fe80::1%eth9]:22"),
                Ok(Answer::Unavailable(
                    "[fe80::1%eth9]:22: no interface eth9".into(),
                )),
            ),
        ];
        let proof = Proof::KeyExchange(vec![(
            ep("127.0.0.1:22"),
            hostkeys::judge(&[ed()], &[&ed()], None),
        )]);
        let s = judge(&res, &proof, " after the repair");
        assert!(s.ok && s.any, "{s:?}");
        assert!(
            s.summary.ends_with(
                "on 127.0.0.1:22; cannot exist on this host: (address not available on this host: [fe80::1%eth9]:22: no interface eth9)"
            ),
            "{}",
            s.summary
        );
        assert!(s.down.is_empty());
        // Where the one that answers completes no key exchange, it fails.
        let proof = Proof::KeyExchange(vec![(
            ep("127.0.0.1:22"),
            hostkeys::judge(&[ed()], &[], Some("reset".into())),
        )]);
        let s = judge(&res, &proof, " after the repair");
        assert!(!s.ok && !s.any, "{s:?}");
        assert!(
            s.summary
                .contains("127.0.0.1:22 but completes no key exchange (reset)"),
            "{}",
            s.summary
        );
        // It holds its address: no rescue could bind it.
        assert!(s.down.is_empty());
    }

    /// ListenAddress 127.0.0.1 plus a management address: a repair that
    /// leaves the management address dead has not succeeded.
    #[test]
    fn one_address_serving_while_another_is_refused_is_a_failure_naming_it() {
        let banner = || Ok(Answer::Banner("SSH-2.0-OpenSSH_9.6".into()));
        let res = vec![
            (ep("127.0.0.1:22"), banner()),
            (
                ep("10.0.0.5:22"),
                Err("10.0.0.5:22: Connection refused (os error 111)".to_string()),
            ),
        ];
        let proof = Proof::KeyExchange(vec![(
            ep("127.0.0.1:22"),
            hostkeys::judge(&[ed()], &[&ed()], None),
        )]);
        let s = judge(&res, &proof, " after the repair");
        assert!(!s.ok && s.any, "{s:?}");
        assert_eq!(s.down, vec![ep("10.0.0.5:22")]);
        assert!(
            s.summary.starts_with(
                "ssh does not answer after the repair: 10.0.0.5:22: Connection refused (os error 111); it does serve elsewhere: ssh completed a key exchange"
            ),
            "{}",
            s.summary
        );
        assert!(s.summary.ends_with("on 127.0.0.1:22"), "{}", s.summary);
    }

    #[test]
    fn nothing_answering_is_a_failure_without_any() {
        let res = vec![(
            ep("127.0.0.1:22"),
            Err("127.0.0.1:22: Connection refused".to_string()),
        )];
        let s = judge(&res, &Proof::KeyExchange(Vec::new()), " after the repair");
        assert!(!s.ok && !s.any, "{s:?}");
        assert_eq!(
            s.summary,
            "ssh does not answer after the repair: 127.0.0.1:22: Connection refused"
        );
    }

    #[test]
    fn host_keys_are_the_parseable_pub_files_only() {
        let d = tempfile::tempdir().unwrap();
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6l28bt6L6xjnZJX1OAFRCQ4tu3S6Pt7atifrrz8Wov root@e2e\n";
        std::fs::write(d.path().join("ssh_host_ed25519_key.pub"), key).unwrap();
        std::fs::write(d.path().join("ssh_host_rsa_key.pub"), "garbage").unwrap();
        std::fs::write(d.path().join("ssh_host_ed25519_key"), key).unwrap();
        std::fs::write(d.path().join("other.pub"), key).unwrap();
        let keys = read_host_keys(d.path());
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kind(), "ed25519");
    }
}
