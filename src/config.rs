//! Settings from /etc/default/ssh-upgrade-guard (Debian's KEY=value
//! convention). Parsing is pure: a bad value yields a warning naming the key
//! and the default stays in force, so a typo never disables the guard.
#![forbid(unsafe_code)]

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// An inhibit marker older than this is stale whoever holds it.
    pub marker_max_age: Duration,
    /// SIGTERM to a stale listener, SIGKILL after this.
    pub stop_timeout: Duration,
    /// How long a repaired ssh has to answer with an SSH-2.0 banner.
    pub banner_timeout: Duration,
    /// Watchdog repairs allowed per hour before it gives up.
    pub watchdog_max_repairs: u32,
    pub ssh_service: String,
    pub ssh_socket: String,
    pub package: String,
    /// Ports treated as ssh ports besides those sshd and ssh.socket name.
    pub extra_ports: Vec<u16>,
    /// pre-invoke repairs an already broken ssh before dpkg runs.
    pub preflight: bool,
    /// node_exporter's textfile collector directory; metrics are written
    /// there only when it exists. Empty: never.
    pub metrics_dir: Option<std::path::PathBuf>,
    /// Each apt hook gives up after this long, says so, and lets apt go on.
    pub hook_deadline: Duration,
    /// CONFIGURE_TIMEOUT: how long the guard's own `dpkg --configure` may
    /// take before it is stopped with its maintainer scripts (default 15m).
    /// A repair waits for it past HOOK_DEADLINE, since the postinst restarts
    /// ssh: cutting it halfway could leave ssh down.
    pub configure_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            marker_max_age: Duration::from_secs(6 * 3600),
            stop_timeout: Duration::from_secs(5),
            banner_timeout: Duration::from_secs(10),
            watchdog_max_repairs: 3,
            ssh_service: "ssh.service".into(),
            ssh_socket: "ssh.socket".into(),
            package: "openssh-server".into(),
            extra_ports: Vec::new(),
            preflight: true,
            metrics_dir: Some("/var/lib/prometheus/node-exporter".into()),
            // Above systemd's DefaultTimeoutStartSec (90 s), so a slow but
            // progressing start of ssh is waited for; far above a healthy
            // hook (milliseconds) and a repair (seconds, BENCHMARKS.md);
            // short enough that an unattended run never looks hung.
            hook_deadline: Duration::from_secs(120),
            // openssh-server's postinst takes seconds; ucf or debconf
            // waiting on a question it cannot ask is killed well before an
            // unattended run looks hung for good.
            configure_timeout: Duration::from_secs(15 * 60),
        }
    }
}

/// Parses a duration: an integer with an optional unit s, m or h (seconds by default).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (examples: 30s, 5m, 6h)"))?;
    n.checked_mul(mult)
        .filter(|secs| *secs <= MAX_DURATION.as_secs())
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is too large (at most 24h)"))
}

/// No duration setting makes sense beyond a day, and larger ones would
/// overflow deadline arithmetic (an Instant plus u64::MAX seconds).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        other => Err(format!("'{other}' is not yes or no")),
    }
}

fn unit_name(s: &str, suffix: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.ends_with(suffix)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not a {suffix} unit name"))
    }
}

fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("'{p}' is not a TCP port")),
            Ok(n) => Ok(n),
        })
        .collect()
}

/// Parses the settings file text (the tests' form of [`parse_bytes`]).
#[cfg(test)]
pub fn parse(text: &str, source: &str) -> (Config, Vec<String>) {
    parse_bytes(text.as_bytes(), source)
}

/// Parses the settings file's bytes line by line. Returns the configuration
/// and one warning per line that could not be used (the default stays in
/// force for it); a line that is not UTF-8 costs that line only.
pub fn parse_bytes(bytes: &[u8], source: &str) -> (Config, Vec<String>) {
    let mut cfg = Config::default();
    let mut warnings = Vec::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let Ok(raw) = std::str::from_utf8(raw) else {
            warnings.push(format!("{source}:{}: not valid UTF-8, ignored", n + 1));
            continue;
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            warnings.push(format!("{source}:{}: not KEY=value, ignored", n + 1));
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let result: Result<(), String> = match key {
            "MARKER_MAX_AGE" => parse_duration(value).map(|d| cfg.marker_max_age = d),
            "STOP_TIMEOUT" => parse_duration(value).map(|d| cfg.stop_timeout = d),
            "BANNER_TIMEOUT" => parse_duration(value).map(|d| cfg.banner_timeout = d),
            "HOOK_DEADLINE" => parse_duration(value).and_then(|d| {
                if d.is_zero() {
                    Err("must be at least 1s".to_string())
                } else {
                    cfg.hook_deadline = d;
                    Ok(())
                }
            }),
            "CONFIGURE_TIMEOUT" => parse_duration(value).and_then(|d| {
                if d.is_zero() {
                    Err("must be at least 1s".to_string())
                } else {
                    cfg.configure_timeout = d;
                    Ok(())
                }
            }),
            "WATCHDOG_MAX_REPAIRS" => value
                .parse::<u32>()
                .map(|v| cfg.watchdog_max_repairs = v)
                .map_err(|_| format!("'{value}' is not a whole number")),
            "SSH_SERVICE" => unit_name(value, ".service").map(|v| cfg.ssh_service = v),
            "SSH_SOCKET" => unit_name(value, ".socket").map(|v| cfg.ssh_socket = v),
            "PACKAGE" => {
                // Debian policy 5.6.1: at least two characters, starting
                // with a letter or digit (so never a dpkg option such as
                // "--pending").
                let ok = value.len() >= 2
                    && value.len() <= 128
                    && value
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
                if ok {
                    cfg.package = value.to_string();
                    Ok(())
                } else {
                    Err(format!("'{value}' is not a Debian package name"))
                }
            }
            "EXTRA_PORTS" => parse_ports(value).map(|v| cfg.extra_ports = v),
            "PREFLIGHT" => parse_bool(value).map(|v| cfg.preflight = v),
            "METRICS_DIR" => {
                if value.is_empty() {
                    cfg.metrics_dir = None;
                    Ok(())
                } else if value.starts_with('/') {
                    cfg.metrics_dir = Some(value.into());
                    Ok(())
                } else {
                    Err(format!("'{value}' is not an absolute path"))
                }
            }
            _ => Err("unknown setting".to_string()),
        };
        if let Err(e) = result {
            warnings.push(format!("{source}:{}: {key}: {e}; using the default", n + 1));
        }
    }
    (cfg, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_empty() {
        let (c, w) = parse("", "f");
        assert_eq!(c, Config::default());
        assert!(w.is_empty());
    }

    #[test]
    fn every_key() {
        let text = "# comment\nMARKER_MAX_AGE=2h\nSTOP_TIMEOUT=3\nBANNER_TIMEOUT=\"1m\"\n\
                    WATCHDOG_MAX_REPAIRS=7\nSSH_SERVICE=sshd.service\nSSH_SOCKET='x.socket'\n\
                    PACKAGE=openssh-server\nEXTRA_PORTS=2222 2200\nexport PREFLIGHT=no\nMETRICS_DIR=\n\
                    HOOK_DEADLINE=90s\nCONFIGURE_TIMEOUT=20m\n";
        let (c, w) = parse(text, "f");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.marker_max_age, Duration::from_secs(7200));
        assert_eq!(c.stop_timeout, Duration::from_secs(3));
        assert_eq!(c.banner_timeout, Duration::from_secs(60));
        assert_eq!(c.watchdog_max_repairs, 7);
        assert_eq!(c.ssh_service, "sshd.service");
        assert_eq!(c.ssh_socket, "x.socket");
        assert_eq!(c.extra_ports, vec![2222, 2200]);
        assert!(!c.preflight);
        assert_eq!(c.metrics_dir, None);
        assert_eq!(c.hook_deadline, Duration::from_secs(90));
        assert_eq!(c.configure_timeout, Duration::from_secs(1200));
    }

    #[test]
    fn durations_longer_than_a_day_are_refused_naming_the_key() {
        let (c, w) = parse(
            "STOP_TIMEOUT=18446744073709551615\nBANNER_TIMEOUT=25h\nMARKER_MAX_AGE=24h\nHOOK_DEADLINE=0\n",
            "f",
        );
        assert_eq!(c.stop_timeout, Config::default().stop_timeout);
        assert_eq!(c.banner_timeout, Config::default().banner_timeout);
        assert_eq!(c.marker_max_age, Duration::from_secs(24 * 3600));
        assert_eq!(c.hook_deadline, Config::default().hook_deadline);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("STOP_TIMEOUT") && w[0].contains("too large"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("BANNER_TIMEOUT"), "{}", w[1]);
        assert!(
            w[2].contains("HOOK_DEADLINE") && w[2].contains("at least"),
            "{}",
            w[2]
        );
    }

    #[test]
    fn a_line_of_invalid_utf8_costs_that_line_only() {
        let (c, w) = parse_bytes(b"STOP_TIMEOUT=7\nPACKAGE=\xff\xfe\nPREFLIGHT=no\n", "f");
        assert_eq!(c.stop_timeout, Duration::from_secs(7));
        assert!(!c.preflight);
        assert_eq!(c.package, "openssh-server");
        assert_eq!(w, vec!["f:2: not valid UTF-8, ignored".to_string()]);
    }

    #[test]
    fn bad_value_names_key_and_keeps_default() {
        let (c, w) = parse(
            "STOP_TIMEOUT=soon\nEXTRA_PORTS=22 70000\nSSH_SOCKET=ssh.service\nFOO=1\nnonsense\n",
            "/etc/default/x",
        );
        assert_eq!(c, Config::default());
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(w[0].contains("/etc/default/x:1: STOP_TIMEOUT"), "{}", w[0]);
        assert!(w[1].contains("EXTRA_PORTS"));
        assert!(w[3].contains("FOO: unknown setting"));
        assert!(w[4].contains(":5: not KEY=value"));
    }

    #[test]
    fn package_must_be_a_package_name_never_a_dpkg_option() {
        for bad in ["--pending", "-a", "x", "Openssh", "a b", "pkg;rm", ""] {
            let (c, w) = parse(&format!("PACKAGE={bad}\n"), "f");
            assert_eq!(c.package, Config::default().package, "{bad}");
            assert_eq!(w.len(), 1, "{bad}: {w:?}");
        }
        let (c, w) = parse("PACKAGE=openssh-server+x.1\n", "f");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.package, "openssh-server+x.1");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21600)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text, "f");
        }

        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_bytes(&bytes, "f");
        }

        #[test]
        fn accepted_durations_never_exceed_a_day(s in "[0-9]{1,22}[smh]?") {
            if let Ok(d) = parse_duration(&s) {
                proptest::prop_assert!(d <= MAX_DURATION);
            }
        }
    }
}
