//! Running sshd to learn its configuration, and proving that ssh answers.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::model::ConfigCheck;
use crate::sshd::{is_ssh_banner, parse_sshd_t, Endpoint, SshdListen};
use crate::sshd_config::{env_file_value, parse_sshd_opts, split_words, SshdOpts};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `sshd -T` running in the background while the rest of a diagnosis is
/// gathered (it takes about 10 ms, most of a full status run).
pub struct PendingCheck {
    sshd: std::path::PathBuf,
    child: Result<std::process::Child, ConfigCheck>,
    /// When it is killed if it has not answered (see [`SSHD_T_TIMEOUT`]).
    deadline: Instant,
}

/// How long `sshd -T` may take. It answers in about 10 ms; an `Include` of
/// a FIFO or a hung mount, or a resolver that does not answer for a host
/// name in ListenAddress, can block it forever. 10 s covers a slow resolver
/// (glibc's default: 5 s per try) and keeps the hooks well within their
/// deadline.
pub const SSHD_T_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `sshd -T`: the installed binary checks the configuration exactly
/// as `sshd -t` does (same checks, same exit status) and also prints the
/// effective settings, so one run answers both "valid?" and "which ports?".
/// `args`: the options the unit passes to sshd (`-f`, `-p`, `-o`, ...:
/// [`SshdOpts::config_args`]), so that the configuration checked and the
/// ports printed are those ssh.service really runs with.
pub fn start_check(sshd: &Path, args: &[String]) -> PendingCheck {
    let pending = |child| PendingCheck {
        sshd: sshd.to_path_buf(),
        child,
        deadline: crate::deadline::after(SSHD_T_TIMEOUT),
    };
    if !nix::unistd::geteuid().is_root() && sshd == Path::new("/usr/sbin/sshd") {
        // sshd -T reads the host keys: as another user it fails for reasons
        // that have nothing to do with the configuration.
        return pending(Err(ConfigCheck {
            valid: None,
            error: Some("not checked: sshd -T needs root".into()),
        }));
    }
    // sshd refuses to run without its privilege separation directory, which
    // ssh.service creates as RuntimeDirectory only while it runs. Create it
    // as the unit would, so a stopped service is not mistaken for a bad config.
    if nix::unistd::geteuid().is_root() && sshd.starts_with("/usr") {
        let _ = std::fs::DirBuilder::new().mode(0o755).create("/run/sshd");
    }
    pending(
        super::child::spawn(
            Command::new(sshd)
                .arg("-T")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .map_err(|e| ConfigCheck {
            valid: None,
            error: Some(format!("cannot run {} -T: {e}", sshd.display())),
        }),
    )
}

impl PendingCheck {
    pub fn finish(self) -> (ConfigCheck, Option<SshdListen>) {
        let sshd = self.sshd.display();
        let _doing = crate::deadline::doing(format!("waiting for {sshd} -T"));
        let deadline = self.deadline;
        let out = match self.child.map(|c| super::child::output_until(c, deadline)) {
            Ok(Ok(o)) => o,
            Ok(Err(super::child::Error::TimedOut)) => {
                return (
                    ConfigCheck {
                        valid: None,
                        error: Some(format!(
                            "{sshd} -T did not answer within {} s (stopped)",
                            SSHD_T_TIMEOUT.as_secs()
                        )),
                    },
                    None,
                )
            }
            Ok(Err(super::child::Error::Io(e))) => {
                return (
                    ConfigCheck {
                        valid: None,
                        error: Some(format!("{sshd} -T: {e}")),
                    },
                    None,
                )
            }
            Err(check) => return (check, None),
        };
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !out.status.success() {
            let msg = if stderr.is_empty() {
                format!("{sshd} -T exited with {}", out.status)
            } else {
                stderr
            };
            return (
                ConfigCheck {
                    valid: Some(false),
                    error: Some(msg),
                },
                None,
            );
        }
        match parse_sshd_t(&String::from_utf8_lossy(&out.stdout)) {
            Ok(l) => (
                ConfigCheck {
                    valid: Some(true),
                    error: None,
                },
                Some(l),
            ),
            Err(e) => (
                ConfigCheck {
                    valid: Some(true),
                    error: Some(e),
                },
                None,
            ),
        }
    }
}

pub fn check_config(sshd: &Path, args: &[String]) -> (ConfigCheck, Option<SshdListen>) {
    start_check(sshd, args).finish()
}

/// ssh.service's EnvironmentFile, which holds SSHD_OPTS.
pub const UNIT_ENV_FILE: &str = "/etc/default/ssh";

/// Reads a small regular file without blocking on a FIFO or a device:
/// Ok(None) when it does not exist; an error when it is not a regular file
/// or larger than `max`.
pub(super) fn read_small_regular(path: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if m.len() > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The options ssh.service passes to sshd (`sshd -D $SSHD_OPTS`, with
/// SSHD_OPTS from its EnvironmentFile /etc/default/ssh), read the way
/// systemd reads and expands them. A missing file or variable means no
/// options, as for systemd (`EnvironmentFile=-`); an unreadable one is said
/// at -v and taken as none.
///
/// Read from the file rather than from the unit's ExecStart over D-Bus:
/// systemd reports ExecStart unexpanded (`$SSHD_OPTS` as a literal word),
/// so the file must be read anyway; and the options are needed before
/// systemd answers (sshd -T starts first, in parallel) and when the bus is
/// down. Debian's and Ubuntu's ssh.service both run `sshd -D $SSHD_OPTS`.
pub fn unit_options(roots: &super::Roots) -> SshdOpts {
    let path = roots.under(Path::new(UNIT_ENV_FILE));
    match read_small_regular(&path, 64 * 1024) {
        Ok(Some(text)) => {
            let v = env_file_value(&text, "SSHD_OPTS").unwrap_or_default();
            parse_sshd_opts(&split_words(&v))
        }
        Ok(None) => SshdOpts::default(),
        Err(e) => {
            log::info!("{}: {e}; taking SSHD_OPTS as empty", path.display());
            SshdOpts::default()
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

/// Why a banner probe failed: the error, and the OS error number when
/// there is one (what [`unavailable`] judges by).
#[derive(Debug)]
pub struct ProbeError {
    text: String,
    errno: Option<i32>,
}

impl ProbeError {
    fn io(addr: Option<SocketAddr>, e: std::io::Error) -> ProbeError {
        ProbeError {
            text: match addr {
                Some(a) => format!("{a}: {e}"),
                None => e.to_string(),
            },
            errno: e.raw_os_error(),
        }
    }
    fn other(text: String) -> ProbeError {
        ProbeError { text, errno: None }
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Connects to `addr` and reads the server's identification line.
pub fn banner(addr: SocketAddr, timeout: Duration) -> Result<String, ProbeError> {
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| ProbeError::io(Some(addr), e))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| ProbeError::io(None, e))?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| ProbeError::io(None, e))?);
    // RFC 4253 allows other lines before the identification.
    for _ in 0..5 {
        let mut line = Vec::new();
        Read::by_ref(&mut r)
            .take(256)
            .read_until(b'\n', &mut line)
            .map_err(|e| ProbeError::io(Some(addr), e))?;
        if line.is_empty() {
            return Err(ProbeError::other(format!(
                "{addr}: connection closed before a banner"
            )));
        }
        if is_ssh_banner(&line) {
            // Identify ourselves so sshd logs a clean disconnect, then close.
            let _ = s.write_all(b"SSH-2.0-ssh-upgrade-guard-probe\r\n");
            return Ok(String::from_utf8_lossy(&line).trim().to_string());
        }
    }
    Err(ProbeError::other(format!("{addr}: no SSH-2.0 banner")))
}

/// Whether an address cannot exist on this host (e.g. ::1 with IPv6 off):
/// nothing can listen there, so it is not a failed address. Judged by the
/// error number, never by its text.
fn unavailable(e: &ProbeError) -> bool {
    matches!(
        e.errno,
        // ENETDOWN: a link-local scope whose interface is down.
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT | libc::ENETUNREACH | libc::ENETDOWN)
    )
}

/// The watchdog's quick check of a classic ssh.service: `sshd -T`, with the
/// options the unit passes, names the addresses (each port on the families
/// AddressFamily allows when it names none, IPv6 scopes kept); ssh is up
/// when it answers on one of them within 3 s (an address this host cannot
/// reach is no reason to restart ssh.service every few minutes).
pub fn service_answers(roots: &super::Roots) -> bool {
    let opts = unit_options(roots);
    let (_, listen) = check_config(&roots.sshd, &opts.config_args);
    let ports: Vec<u16> = listen
        .as_ref()
        .map(|l| l.ports.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| vec![22]);
    let addrs = crate::sshd::listen_addresses(false, &[], "", listen.as_ref(), &ports);
    let targets = crate::sshd::probe_targets_or_default(&addrs);
    let res = wait_endpoints(&targets, Duration::from_secs(3));
    crate::sshd::answered(&res, |a| matches!(a, Answer::Banner(_))) != crate::sshd::Answered::None
}

/// What a probe of one address found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// ssh answered with this identification line.
    Banner(String),
    /// The address cannot exist on this host (the error says why).
    Unavailable(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Banner(b) => f.write_str(b),
            Answer::Unavailable(e) => write!(f, "(address not available on this host: {e})"),
        }
    }
}

/// Probes every target until each answers with a banner or `timeout` passes.
/// Returns per target: Ok(answer) or Err(last error).
pub fn wait_banners(
    targets: &[SocketAddr],
    timeout: Duration,
) -> Vec<(SocketAddr, Result<Answer, String>)> {
    let _doing = crate::deadline::doing("waiting for ssh to answer with a banner");
    let deadline = crate::deadline::after(timeout);
    let mut results: Vec<(SocketAddr, Result<Answer, String>)> = targets
        .iter()
        .map(|a| (*a, Err("not tried".to_string())))
        .collect();
    loop {
        for (addr, res) in results.iter_mut() {
            if res.is_ok() {
                continue;
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(200));
            *res = match banner(*addr, left.min(Duration::from_secs(5))) {
                Ok(b) => Ok(Answer::Banner(b)),
                Err(e) if unavailable(&e) => Ok(Answer::Unavailable(e.to_string())),
                Err(e) => Err(e.to_string()),
            };
        }
        if results.iter().all(|(_, r)| r.is_ok()) || Instant::now() >= deadline {
            return results;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The socket address to connect to for an endpoint: an IPv6 scope given
/// as an interface name becomes its index (a link-local address cannot be
/// reached without it).
pub fn resolve(e: &Endpoint) -> Result<SocketAddr, String> {
    let Some(zone) = &e.scope else {
        return Ok(e.addr);
    };
    let SocketAddr::V6(v6) = e.addr else {
        return Err(format!("{e}: a scope on an IPv4 address"));
    };
    let index = match zone.parse::<u32>() {
        Ok(i) => i,
        Err(_) => nix::net::if_::if_nametoindex(zone.as_str())
            .map_err(|err| format!("{e}: no interface {zone} ({err})"))?,
    };
    Ok(SocketAddr::V6(std::net::SocketAddrV6::new(
        *v6.ip(),
        v6.port(),
        v6.flowinfo(),
        index,
    )))
}

/// [`wait_banners`] for endpoints, each reported under its own name
/// (scope as the admin wrote it); one whose interface does not exist is an
/// error for that endpoint only.
pub fn wait_endpoints(
    targets: &[Endpoint],
    timeout: Duration,
) -> Vec<(Endpoint, Result<Answer, String>)> {
    let resolved: Vec<(Endpoint, Result<SocketAddr, String>)> =
        targets.iter().map(|e| (e.clone(), resolve(e))).collect();
    let addrs: Vec<SocketAddr> = resolved
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().copied())
        .collect();
    let mut answers = wait_banners(&addrs, timeout).into_iter();
    resolved
        .into_iter()
        .map(|(name, r)| match r {
            Ok(_) => (
                name,
                answers
                    .next()
                    .map(|(_, a)| a)
                    .unwrap_or_else(|| Err("not tried".into())),
            ),
            // No such interface for the scope: an address that cannot
            // exist on this host, not one that fails to serve.
            Err(e) => (name, Ok(Answer::Unavailable(e))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_addresses_are_judged_by_errno() {
        let e = |errno| ProbeError::io(None, std::io::Error::from_raw_os_error(errno));
        assert!(unavailable(&e(libc::EADDRNOTAVAIL)));
        assert!(unavailable(&e(libc::EAFNOSUPPORT)));
        assert!(unavailable(&e(libc::ENETUNREACH)));
        assert!(unavailable(&e(libc::ENETDOWN)));
        assert!(!unavailable(&e(libc::ECONNREFUSED)));
        assert!(!unavailable(&ProbeError::other(
            "Cannot assign requested address".into()
        )));
    }

    #[test]
    fn a_refused_port_is_an_error_naming_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = wait_banners(&[addr], Duration::from_millis(100));
        let e = r[0].1.as_ref().unwrap_err();
        assert!(e.starts_with(&addr.to_string()), "{e}");
    }
}
