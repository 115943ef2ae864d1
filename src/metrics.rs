//! Reporting into the monitoring admins already run: Prometheus metrics for
//! node_exporter's textfile collector, and the monitoring-plugin verdict of
//! `check` (Nagios, Icinga, Sensu, monit; node-problem-detector). Pure: the
//! values go in, text and exit codes come out.
#![forbid(unsafe_code)]

use std::fmt::Write;

/// Counters kept across runs (in the state directory), so that
/// `ssh_upgrade_guard_repairs_total` behaves as a Prometheus counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub success: u64,
    pub failure: u64,
    pub refused: u64,
    pub last_repair: Option<u64>,
    /// Unix time when the watchdog gave up (cleared by a later healthy run).
    pub gave_up_at: Option<u64>,
}

impl Counters {
    pub fn parse(text: &str) -> Counters {
        let mut c = Counters::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let Ok(n) = v.trim().parse::<u64>() else {
                continue;
            };
            match k.trim() {
                "success" => c.success = n,
                "failure" => c.failure = n,
                "refused" => c.refused = n,
                "last_repair" => c.last_repair = Some(n),
                "gave_up_at" => c.gave_up_at = Some(n),
                _ => {}
            }
        }
        c
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "success={}\nfailure={}\nrefused={}\n",
            self.success, self.failure, self.refused
        );
        if let Some(t) = self.last_repair {
            let _ = writeln!(s, "last_repair={t}");
        }
        if let Some(t) = self.gave_up_at {
            let _ = writeln!(s, "gave_up_at={t}");
        }
        s
    }
}

/// What one run knows about the machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub package: String,
    pub package_ok: bool,
    pub ssh_up: bool,
    /// ssh is off by the admin's choice (disabled, masked, a start
    /// condition): its being down is no problem (intent.rs).
    pub off_by_choice: bool,
    pub stale_listeners: usize,
    pub inhibited: bool,
    pub roads: RoadSignals,
}

/// The neighbouring roads (crate::roads) as a fleet alerts on them. On the
/// hooks' healthy path each is known to be clear without another read (a
/// unit that is active did not hit its start limit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoadSignals {
    /// Road a: ssh.service or ssh.socket failed with a start or trigger limit.
    pub start_limit_hit: bool,
    /// Road b: the unit openssh-server's postinst restarts is masked and
    /// running, so the next openssh-server upgrade fails.
    pub postinst_restart_blocked: bool,
    /// Road d: sshd_config, ssh.socket and the listening sockets disagree.
    pub socket_drift: bool,
    /// Road e: Unix time since which dpkg waits for an answer, if it does.
    pub dpkg_prompt_since: Option<u64>,
    /// Road f: ssh.service holds the port ssh.socket should, or (latent)
    /// restarting ssh.socket would be refused while ssh.service runs.
    pub service_holds_port: bool,
    /// Road g: the rescue sshd runs a binary dpkg replaced.
    pub stale_rescue: bool,
}

impl RoadSignals {
    pub fn of(r: &crate::roads::Roads) -> RoadSignals {
        RoadSignals {
            start_limit_hit: !r.start_limit.is_empty(),
            postinst_restart_blocked: r.postinst_restart_blocked.is_some(),
            socket_drift: r.socket_drift.is_some(),
            dpkg_prompt_since: r.dpkg_prompt.as_ref().map(|p| p.since),
            service_holds_port: r.service_holds_port.is_some() || r.socket_not_required.is_some(),
            stale_rescue: r.stale_rescue.is_some(),
        }
    }
}

/// A label value in the text exposition format: backslash, double quote
/// and newline are the format's escapes; any other control character is
/// first made a visible escape (`\u{1b}`), whose backslash is then escaped
/// like any other, so a scraper never sees a raw control byte.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                for e in c.escape_default() {
                    if e == '\\' {
                        out.push_str("\\\\");
                    } else {
                        out.push(e);
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The textfile-collector file: names, types, units and HELP as Prometheus
/// conventions want them (`promtool check metrics` clean).
pub fn render(o: &Observed, c: &Counters, version: &str, now: u64) -> String {
    let mut s = String::new();
    let mut gauge = |name: &str, help: &str, labels: &str, value: String| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} gauge");
        let _ = writeln!(s, "{name}{labels} {value}");
    };
    let b = |x: bool| if x { "1".to_string() } else { "0".to_string() };
    let pkg = format!("{{package=\"{}\"}}", escape(&o.package));
    gauge(
        "ssh_upgrade_guard_package_fully_installed",
        "Whether the sshd package is fully installed according to dpkg (1) or not (0).",
        &pkg,
        b(o.package_ok),
    );
    gauge(
        "ssh_upgrade_guard_ssh_up",
        "Whether ssh is up as systemd intends: ssh.socket listening or ssh.service answering (1) or not (0).",
        "",
        b(o.ssh_up),
    );
    gauge(
        "ssh_upgrade_guard_ssh_off_by_choice",
        "Whether ssh is off by the admin's choice (1: disabled, masked or a start condition says no; the guard starts nothing) or should serve (0).",
        "",
        b(o.off_by_choice),
    );
    gauge(
        "ssh_upgrade_guard_stale_listeners",
        "sshd listeners on an ssh port that systemd does not manage, found at the last run.",
        "",
        o.stale_listeners.to_string(),
    );
    gauge(
        "ssh_upgrade_guard_inhibited",
        "Whether a package manager run inhibits watchdog action (1) or not (0).",
        "",
        b(o.inhibited),
    );
    gauge(
        "ssh_upgrade_guard_start_limit_hit",
        "Whether ssh.service or ssh.socket had failed with systemd's start or trigger limit (start request repeated too quickly) at the last run (1) or not (0).",
        "",
        b(o.roads.start_limit_hit),
    );
    gauge(
        "ssh_upgrade_guard_postinst_restart_blocked",
        "Whether the ssh unit openssh-server's postinst restarts is masked but running, so that the next upgrade of the package fails (1) or not (0).",
        "",
        b(o.roads.postinst_restart_blocked),
    );
    gauge(
        "ssh_upgrade_guard_socket_drift",
        "Whether sshd_config, ssh.socket and the sockets really listening disagree about where ssh listens (1) or not (0): a port changed in one place only.",
        "",
        b(o.roads.socket_drift),
    );
    gauge(
        "ssh_upgrade_guard_dpkg_prompt_since_timestamp_seconds",
        "Unix time since which dpkg waits for an answer (a conffile question under the package manager holding its lock), 0 when it does not.",
        "",
        o.roads.dpkg_prompt_since.unwrap_or(0).to_string(),
    );
    gauge(
        "ssh_upgrade_guard_service_holds_port",
        "Whether ssh.service listens on the ssh port itself while ssh is socket-activated, so that ssh.socket cannot, or does not require ssh.socket, so that restarting the socket is refused while it runs (1) or not (0).",
        "",
        b(o.roads.service_holds_port),
    );
    gauge(
        "ssh_upgrade_guard_rescue_on_replaced_binary",
        "Whether the guard's rescue sshd runs a binary dpkg has replaced (1) or not (0).",
        "",
        b(o.roads.stale_rescue),
    );
    gauge(
        "ssh_upgrade_guard_watchdog_gave_up",
        "Whether the watchdog reached its repair limit and stopped trying (1) or not (0).",
        "",
        b(c.gave_up_at.is_some()),
    );
    gauge(
        "ssh_upgrade_guard_last_repair_timestamp_seconds",
        "Unix time of the last repair the guard carried out (0: never).",
        "",
        c.last_repair.unwrap_or(0).to_string(),
    );
    gauge(
        "ssh_upgrade_guard_last_run_timestamp_seconds",
        "Unix time of the guard's last run (hook, watchdog or repair).",
        "",
        now.to_string(),
    );
    gauge(
        "ssh_upgrade_guard_build_info",
        "Build information of ssh-upgrade-guard; the value is always 1.",
        &format!("{{version=\"{}\"}}", escape(version)),
        "1".into(),
    );
    let _ = writeln!(
        s,
        "# HELP ssh_upgrade_guard_repairs_total Repairs carried out by the guard, by outcome (success, failure, refused)."
    );
    let _ = writeln!(s, "# TYPE ssh_upgrade_guard_repairs_total counter");
    for (k, v) in [
        ("success", c.success),
        ("failure", c.failure),
        ("refused", c.refused),
    ] {
        let _ = writeln!(s, "ssh_upgrade_guard_repairs_total{{outcome=\"{k}\"}} {v}");
    }
    s
}

/// Monitoring-plugin states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl PluginState {
    pub fn label(self) -> &'static str {
        match self {
            PluginState::Ok => "OK",
            PluginState::Warning => "WARNING",
            PluginState::Critical => "CRITICAL",
            PluginState::Unknown => "UNKNOWN",
        }
    }

    /// node-problem-detector's custom plugin codes: 0 OK, 1 problem, 2 unknown.
    pub fn npd_code(self) -> i32 {
        match self {
            PluginState::Ok => 0,
            PluginState::Warning | PluginState::Critical => 1,
            PluginState::Unknown => 2,
        }
    }
}

/// The verdict of `check`: CRITICAL when openssh-server is not fully
/// installed, ssh is down or a stale listener holds the port; WARNING when
/// the only problem is one a running package manager may still be fixing,
/// or when ssh is healthy but its addresses drifted (road d) or dpkg waits
/// for an answer (road e);
/// UNKNOWN when systemd cannot be asked.
pub fn plugin_state(o: &Observed, systemd_ok: bool, problems: usize) -> PluginState {
    if !systemd_ok {
        return PluginState::Unknown;
    }
    if problems == 0 && o.package_ok && o.ssh_up && o.stale_listeners == 0 {
        // ssh answers, but where it listens is not what sshd_config says:
        // the next firewall change can lock people out.
        if o.roads.socket_drift || o.roads.dpkg_prompt_since.is_some() || o.roads.service_holds_port
        {
            return PluginState::Warning;
        }
        return PluginState::Ok;
    }
    // Off by the admin's choice: down is what was asked for; a stale
    // listener still serving is worth a look, not an alarm.
    if problems == 0 && o.package_ok && o.off_by_choice {
        return if o.stale_listeners == 0 {
            PluginState::Ok
        } else {
            PluginState::Warning
        };
    }
    if o.inhibited {
        return PluginState::Warning;
    }
    PluginState::Critical
}

/// One status line with perfdata after `|`.
pub fn plugin_line(state: PluginState, summary: &str, o: &Observed) -> String {
    format!(
        "SSH-UPGRADE-GUARD {} - {} | package_ok={} ssh_up={} stale_listeners={} inhibited={}",
        state.label(),
        // One line: a name with a newline in the summary must not end it.
        crate::text::esc(&summary.replace('|', "/")),
        u8::from(o.package_ok),
        u8::from(o.ssh_up),
        o.stale_listeners,
        u8::from(o.inhibited)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Observed {
        Observed {
            package: "openssh-server".into(),
            package_ok: true,
            ssh_up: true,
            off_by_choice: false,
            stale_listeners: 0,
            inhibited: false,
            roads: RoadSignals::default(),
        }
    }

    #[test]
    fn metrics_text_has_help_type_and_values() {
        let c = Counters {
            success: 2,
            failure: 1,
            refused: 0,
            last_repair: Some(1700000000),
            gave_up_at: None,
        };
        let t = render(&obs(), &c, "0.1.0", 1700000100);
        assert!(t.contains("# TYPE ssh_upgrade_guard_repairs_total counter\n"));
        assert!(t.contains("ssh_upgrade_guard_repairs_total{outcome=\"success\"} 2\n"));
        assert!(
            t.contains("ssh_upgrade_guard_package_fully_installed{package=\"openssh-server\"} 1\n")
        );
        assert!(t.contains("ssh_upgrade_guard_last_repair_timestamp_seconds 1700000000\n"));
        assert!(t.contains("ssh_upgrade_guard_build_info{version=\"0.1.0\"} 1\n"));
        assert!(t.contains("ssh_upgrade_guard_watchdog_gave_up 0\n"));
        assert!(t.contains("ssh_upgrade_guard_start_limit_hit 0\n"));
        assert!(t.contains("ssh_upgrade_guard_postinst_restart_blocked 0\n"));
        assert!(t.contains("ssh_upgrade_guard_socket_drift 0\n"));
        assert!(t.contains("ssh_upgrade_guard_service_holds_port 0\n"));
        assert!(t.contains("ssh_upgrade_guard_rescue_on_replaced_binary 0\n"));
        assert!(t.contains("ssh_upgrade_guard_dpkg_prompt_since_timestamp_seconds 0\n"));
        let mut o = obs();
        o.roads.start_limit_hit = true;
        assert!(render(&o, &c, "0.1.0", 0).contains("ssh_upgrade_guard_start_limit_hit 1\n"));
        // Every sample line has a HELP and TYPE before it.
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(t.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(t.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut o = obs();
        o.package = "a\"b\\c\n".into();
        let t = render(&o, &Counters::default(), "1", 0);
        assert!(t.contains("{package=\"a\\\"b\\\\c\\n\"}"));
        o.package = "x\r\u{1b}y".into();
        let t = render(&o, &Counters::default(), "1", 0);
        assert!(t.contains("{package=\"x\\\\r\\\\u{1b}y\"}"), "{t}");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'));
    }

    #[test]
    fn counters_round_trip_and_tolerate_garbage() {
        let c = Counters {
            success: 1,
            failure: 2,
            refused: 3,
            last_repair: Some(4),
            gave_up_at: Some(5),
        };
        assert_eq!(Counters::parse(&c.render()), c);
        assert_eq!(
            Counters::parse("garbage\nsuccess=x\n\u{0}"),
            Counters::default()
        );
    }

    #[test]
    fn check_mapping_for_each_state() {
        assert_eq!(plugin_state(&obs(), true, 0), PluginState::Ok);
        let mut o = obs();
        o.roads.socket_drift = true;
        assert_eq!(plugin_state(&o, true, 0), PluginState::Warning);
        let mut o = obs();
        o.roads.dpkg_prompt_since = Some(1);
        o.inhibited = true;
        assert_eq!(plugin_state(&o, true, 0), PluginState::Warning);
        assert_eq!(plugin_state(&obs(), false, 0), PluginState::Unknown);
        let mut o = obs();
        o.package_ok = false;
        assert_eq!(plugin_state(&o, true, 1), PluginState::Critical);
        o.inhibited = true;
        assert_eq!(plugin_state(&o, true, 1), PluginState::Warning);
        let mut o = obs();
        o.stale_listeners = 1;
        assert_eq!(plugin_state(&o, true, 1), PluginState::Critical);
        let mut o = obs();
        o.ssh_up = false;
        assert_eq!(plugin_state(&o, true, 1), PluginState::Critical);
        assert_eq!(PluginState::Critical.npd_code(), 1);
        assert_eq!(PluginState::Warning.npd_code(), 1);
        assert_eq!(PluginState::Unknown.npd_code(), 2);
        assert_eq!(PluginState::Ok.npd_code(), 0);
        let l = plugin_line(PluginState::Critical, "x | y", &obs());
        assert!(
            l.starts_with("SSH-UPGRADE-GUARD CRITICAL - x / y | package_ok=1"),
            "{l}"
        );
        assert_eq!(l.matches('|').count(), 1);
    }

    #[test]
    fn check_line_stays_one_line_whatever_the_names_in_it() {
        let l = plugin_line(
            PluginState::Critical,
            "PROBLEM: stale sshd listener pid 9 (/tmp/x\nOK: ssh is healthy)",
            &obs(),
        );
        assert_eq!(l.lines().count(), 1, "{l}");
        assert!(l.contains("(/tmp/x\\nOK: ssh is healthy)"), "{l}");
    }

    proptest::proptest! {
        #[test]
        fn counters_never_panic(text in "\\PC*") {
            let _ = Counters::parse(&text);
        }
    }
}
