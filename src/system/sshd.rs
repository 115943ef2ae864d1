//! Running sshd to learn its configuration, and proving that ssh answers.

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

/// Connects to `addr` and reads the server's identification line.
pub fn banner(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    // RFC 4253 allows other lines before the identification.
    for _ in 0..5 {
        let mut line = Vec::new();
        Read::by_ref(&mut r)
            .take(256)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("{addr}: {e}"))?;
        if line.is_empty() {
            return Err(format!("{addr}: connection closed before a banner"));
        }
        if is_ssh_banner(&line) {
            // Identify ourselves so sshd logs a clean disconnect, then close.
            let _ = s.write_all(b"SSH-2.0-ssh-upgrade-guard-probe\r\n");
            return Ok(String::from_utf8_lossy(&line).trim().to_string());
        }
    }
    Err(format!("{addr}: no SSH-2.0 banner"))
}

/// Whether an address cannot exist on this host (e.g. ::1 with IPv6 off):
/// nothing can listen there, so it is not a failed address.
fn unavailable(e: &str) -> bool {
    e.contains("Cannot assign requested address")
        || e.contains("Address family not supported")
        || e.contains("Network is unreachable")
}

/// Probes every target until each answers with a banner or `timeout` passes.
/// Returns per target: Ok(banner) or Err(last error).
pub fn wait_banners(
    targets: &[SocketAddr],
    timeout: Duration,
) -> Vec<(SocketAddr, Result<String, String>)> {
    let _doing = crate::deadline::doing("waiting for ssh to answer with a banner");
    let deadline = crate::deadline::after(timeout);
    let mut results: Vec<(SocketAddr, Result<String, String>)> = targets
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
            *res = banner(*addr, left.min(Duration::from_secs(5)));
            if let Err(e) = res {
                if unavailable(e) {
                    *res = Ok(format!("(address not available on this host: {e})"));
                }
            }
        }
        if results.iter().all(|(_, r)| r.is_ok()) || Instant::now() >= deadline {
            return results;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
