//! Running sshd to learn its configuration, and proving that ssh answers.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::model::ConfigCheck;
use crate::sshd::{is_ssh_banner, parse_sshd_t, SshdListen};
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
pub fn start_check(sshd: &Path) -> PendingCheck {
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
        Command::new(sshd)
            .arg("-T")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
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

pub fn check_config(sshd: &Path) -> (ConfigCheck, Option<SshdListen>) {
    start_check(sshd).finish()
}

/// `status` and `check` only report, so they may reuse the last `sshd -T`
/// answer while nothing it depends on changed: the binary, sshd_config,
/// sshd_config.d/ and the host keys (device, inode, size, mtime and ctime of
/// each). Everything that acts on sshd runs it afresh.
const CACHE_FILE: &str = "sshd-T.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    key: String,
    check: ConfigCheck,
    listen: Option<SshdListen>,
}

pub fn cache_key(roots: &super::Roots) -> String {
    use std::os::unix::fs::MetadataExt;
    let etc = roots.under(Path::new("/etc/ssh"));
    let mut paths = vec![roots.sshd.clone(), etc.join("sshd_config")];
    for dir in [etc.join("sshd_config.d"), etc.clone()] {
        let mut more: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if dir == etc {
            more.retain(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ssh_host_"))
            });
        }
        more.sort();
        paths.push(dir);
        paths.extend(more);
    }
    let mut key = String::new();
    for p in paths {
        match std::fs::metadata(&p) {
            Ok(m) => key.push_str(&format!(
                "{} {} {} {} {}.{} {}.{}\n",
                p.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            )),
            Err(_) => key.push_str(&format!("{} -\n", p.display())),
        }
    }
    key
}

pub fn load_cached(
    dir: &super::fsx::RunDir,
    key: &str,
) -> Option<(ConfigCheck, Option<SshdListen>)> {
    let super::fsx::Entry::File(text) = dir.read(CACHE_FILE, 256 * 1024) else {
        return None;
    };
    let c: Cached = serde_json::from_str(&text).ok()?;
    (c.key == key && c.check.valid.is_some()).then_some((c.check, c.listen))
}

pub fn store_cached(
    dir: &super::fsx::RunDir,
    key: String,
    check: &ConfigCheck,
    listen: &Option<SshdListen>,
) {
    if check.valid.is_none() {
        return;
    }
    let c = Cached {
        key,
        check: check.clone(),
        listen: listen.clone(),
    };
    if let Ok(text) = serde_json::to_string(&c) {
        if let Err(e) = dir.write_atomic(CACHE_FILE, &text, 0o644) {
            log::debug!("{e:#}");
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
        Some(libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT | libc::ENETUNREACH)
    )
}

/// The watchdog's quick check of a classic ssh.service: every address
/// `sshd -T` names (127.0.0.1:22 when none) answers within 3 s.
pub fn service_answers(sshd: &Path) -> bool {
    let (_, listen) = check_config(sshd);
    let addrs = listen.map(|l| l.addresses).unwrap_or_default();
    let targets = crate::sshd::probe_targets_or_default(&addrs);
    wait_banners(&targets, Duration::from_secs(3))
        .iter()
        .all(|(_, r)| r.is_ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_addresses_are_judged_by_errno() {
        let e = |errno| ProbeError::io(None, std::io::Error::from_raw_os_error(errno));
        assert!(unavailable(&e(libc::EADDRNOTAVAIL)));
        assert!(unavailable(&e(libc::EAFNOSUPPORT)));
        assert!(unavailable(&e(libc::ENETUNREACH)));
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
