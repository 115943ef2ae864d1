//! The decision: a snapshot goes in, a printable plan comes out. Pure, so
//! every invariant (never touch a session, never stop a listener when sshd
//! rejects its configuration, only stale listeners are signalled) is tested
//! here on fixtures without a machine.
#![forbid(unsafe_code)]

use crate::model::{ListenerClass, Snapshot, Topology};
use serde::Serialize;

/// When the plan is made: the pre-invoke preflight fixes only what would
/// make the coming dpkg run fail (a stale listener, failed units) and leaves
/// the package to dpkg; everything else completes the package too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Preflight,
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// SIGTERM (then SIGKILL) to a stale listener, after re-checking that the
    /// pid still is this process (start time and binary).
    StopStale {
        pid: u32,
        start_time: u64,
        exe: String,
    },
    ResetFailed {
        unit: String,
    },
    StartUnit {
        unit: String,
    },
    RestartUnit {
        unit: String,
    },
    /// systemctl stop UNIT: ssh.service handing the port back to
    /// ssh.socket (road f). Its KillMode=process keeps the sessions.
    StopUnit {
        unit: String,
    },
    /// An SSH-2.0 banner must answer on every address ssh listens on.
    VerifyBanner,
    /// dpkg --configure PACKAGE, then the packages left unconfigured because of it.
    ConfigurePackage {
        package: String,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::StopStale { pid, exe, .. } => write!(
                f,
                "stop stale sshd listener pid {pid} ({exe}): SIGTERM, SIGKILL if it lingers"
            ),
            Step::ResetFailed { unit } => write!(f, "systemctl reset-failed {unit}"),
            Step::StartUnit { unit } => write!(f, "systemctl start {unit}"),
            Step::RestartUnit { unit } => write!(f, "systemctl restart {unit}"),
            Step::StopUnit { unit } => write!(
                f,
                "systemctl stop {unit} (its listener only: sessions stay)"
            ),
            Step::VerifyBanner => write!(
                f,
                "check that an SSH-2.0 banner answers on every ssh address"
            ),
            Step::ConfigurePackage { package } => write!(
                f,
                "dpkg --configure {package} (and packages waiting for it)"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Plan {
    /// What is wrong, one line each.
    pub findings: Vec<String>,
    pub steps: Vec<Step>,
    /// Set when the guard will not act, with the reason.
    pub refused: Option<String>,
    /// What is seen and deliberately left alone.
    pub left_alone: Vec<String>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.steps.is_empty() && self.refused.is_none()
    }
}

/// Decides what to do about the snapshot. Settings that matter here are the
/// unit names and the package name.
pub fn decide(s: &Snapshot, service: &str, socket: &str, package: &str, mode: Mode) -> Plan {
    let mut p = Plan::default();

    let stale: Vec<_> = s
        .listeners
        .iter()
        .filter(|l| l.class == ListenerClass::Stale)
        .collect();
    let foreign: Vec<_> = s
        .listeners
        .iter()
        .filter(|l| l.class == ListenerClass::Foreign)
        .collect();
    // The rescue sshd is restarted as itself (road g), never as ssh.service.
    let outdated: Vec<_> = s
        .listeners
        .iter()
        .filter(|l| l.class == ListenerClass::Managed && l.exe_deleted)
        .filter(|l| Some(l.pid) != s.rescue_pid)
        .collect();

    for l in &stale {
        p.findings.push(format!(
            "stale sshd listener pid {} ({}) holds {}; systemd does not manage it",
            l.pid,
            l.exe,
            l.addresses.join(", ")
        ));
    }
    for l in &foreign {
        p.left_alone.push(format!(
            "pid {} ({}, uid {}) also listens on {}: not a root sshd, never touched",
            l.pid,
            l.comm,
            l.uid,
            l.addresses.join(", ")
        ));
    }
    if s.sessions > 0 {
        p.left_alone.push(format!(
            "{} sshd session process(es): never touched",
            s.sessions
        ));
    }

    let pkg_incomplete = s.package.as_ref().is_some_and(|p| p.is_incomplete());
    if let Some(pk) = s.package.as_ref().filter(|_| pkg_incomplete) {
        p.findings.push(format!(
            "{} is not fully installed ({})",
            pk.name,
            pk.summary()
        ));
    }

    let Some(units) = &s.units else {
        // Without systemd we cannot restore anything safely; only report.
        if !stale.is_empty() || pkg_incomplete {
            p.refused = Some(format!(
                "cannot reach systemd ({}); nothing was changed",
                s.systemd_error.as_deref().unwrap_or("unknown error")
            ));
        }
        return p;
    };
    let topology = units.topology();
    let holder = match topology {
        Topology::SocketActivated => &units.socket,
        Topology::Service => &units.service,
    };
    for u in [&units.socket, &units.service] {
        if u.is_failed() {
            let result = if u.result.is_empty() {
                "unknown"
            } else {
                u.result.as_str()
            };
            p.findings
                .push(format!("{} failed (result {result})", u.name));
        }
    }
    if !holder.is_active() && !holder.is_failed() {
        p.findings.push(format!(
            "{} is not running ({})",
            holder.name,
            holder.describe()
        ));
    }
    for l in &outdated {
        p.findings.push(format!(
            "{service} (pid {}) still runs the replaced binary {}",
            l.pid, l.exe
        ));
    }
    // Road f: ssh.service bound the port ssh.socket should hold.
    let service_holds = crate::roads::service_holds_port(units, &s.listeners);
    if let Some(f) = &service_holds {
        p.findings.push(f.to_string());
    }
    // Road g: after dpkg, a rescue sshd still on the replaced binary is
    // restarted on the unpacked one (before dpkg it would be replaced again).
    let stale_rescue = crate::roads::stale_rescue(s).filter(|_| mode == Mode::Full);
    if let Some(g) = &stale_rescue {
        p.findings.push(g.to_string());
    }

    let any_failed = units.socket.is_failed() || units.service.is_failed();
    let listener_work = match mode {
        // Before dpkg: only what makes the postinst's restart fail. An
        // inactive ssh.socket is started by the postinst itself.
        Mode::Preflight => !stale.is_empty() || any_failed || service_holds.is_some(),
        Mode::Full => {
            !stale.is_empty()
                || any_failed
                || !holder.is_active()
                || !outdated.is_empty()
                || service_holds.is_some()
                || stale_rescue.is_some()
        }
    };
    let pkg_work = mode == Mode::Full && pkg_incomplete;
    if !listener_work && !pkg_work {
        return p;
    }

    // No lockout: nothing that stops or restarts sshd unless the installed
    // sshd accepts its configuration.
    match (&s.sshd_config.valid, &s.sshd_config.error) {
        (Some(true), _) => {}
        (Some(false), e) => {
            p.refused = Some(format!(
                "sshd rejects its configuration, so the running listener is left alone (stopping it could lock you out). sshd -t says: {}",
                e.as_deref().unwrap_or("(no message)")
            ));
            return p;
        }
        (None, e) => {
            p.refused = Some(format!(
                "could not check the sshd configuration ({}), so nothing was stopped",
                e.as_deref().unwrap_or("sshd -t did not run")
            ));
            return p;
        }
    }
    // Road b: a masked unit the postinst restarts. Starting units around
    // it fails ("Unit ssh.socket is masked."), and so would dpkg: the
    // admin decides whether to unmask; the guard says how.
    if let Some(b) = crate::roads::blocked_restart(units, &s.packaging_records) {
        p.findings.push(b.to_string());
        p.refused = Some(b.advice());
        return p;
    }
    if let Some(f) = foreign.first() {
        p.refused = Some(format!(
            "pid {} ({}) holds {} and is not a root sshd; the guard does not stop it and cannot restore ssh while it is there",
            f.pid,
            f.comm,
            f.addresses.join(", ")
        ));
        return p;
    }

    // A socket on an ssh port whose holder cannot be seen: starting the
    // unit could only fail to bind, and the holder is nobody the guard may
    // stop. Without root this is every root process's socket.
    let will_bind = listener_work && (!holder.is_active() || !stale.is_empty());
    if will_bind && !s.unowned_sockets.is_empty() {
        p.refused = Some(format!(
            "{} {} held by a process the guard cannot see{}; it cannot restore ssh while that is so",
            s.unowned_sockets.join(", "),
            if s.unowned_sockets.len() == 1 { "is" } else { "are" },
            if s.as_root {
                ""
            } else {
                " (not run as root: run it as root to see every process)"
            }
        ));
        return p;
    }

    // reset-failed first: it is harmless while the stale listener still
    // runs, and every round trip left between its exit and systemd
    // listening again is a window of refused connections.
    if listener_work {
        for u in [&units.service, &units.socket] {
            if u.is_failed() {
                p.steps.push(Step::ResetFailed {
                    unit: u.name.clone(),
                });
            }
        }
    }
    for l in &stale {
        p.steps.push(Step::StopStale {
            pid: l.pid,
            start_time: l.start_time,
            exe: l.exe.clone(),
        });
    }
    if stale_rescue.is_some() {
        // First: a failed unit start below skips to the banner check.
        p.steps.push(Step::RestartUnit {
            unit: crate::system::systemd::RESCUE_UNIT.to_string(),
        });
    }
    if listener_work {
        match topology {
            Topology::SocketActivated => {
                if service_holds.is_some() {
                    p.steps.push(Step::StopUnit {
                        unit: service.to_string(),
                    });
                }
                if !stale.is_empty() || !units.socket.is_active() {
                    p.steps.push(Step::StartUnit {
                        unit: socket.to_string(),
                    });
                }
                // A service just stopped is started again by the socket.
                if !outdated.is_empty() && service_holds.is_none() {
                    p.steps.push(Step::RestartUnit {
                        unit: service.to_string(),
                    });
                }
            }
            Topology::Service => {
                if !units.service.is_active() {
                    p.steps.push(Step::StartUnit {
                        unit: service.to_string(),
                    });
                } else if !stale.is_empty() || !outdated.is_empty() {
                    p.steps.push(Step::RestartUnit {
                        unit: service.to_string(),
                    });
                }
            }
        }
        // Road f with the package to complete: a banner check now would
        // make the socket start ssh.service again, and the postinst's
        // restart of a socket whose service runs is refused ("Socket
        // service ssh.service already active, refusing.") when the socket
        // does not stop it first. dpkg goes first; the check after it
        // proves ssh answers (and brings the rescue if it does not).
        if !(service_holds.is_some() && pkg_work) {
            p.steps.push(Step::VerifyBanner);
        }
    }
    if pkg_work {
        p.steps.push(Step::ConfigurePackage {
            package: package.to_string(),
        });
        p.steps.push(Step::VerifyBanner);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpkg::PackageState;
    use crate::model::*;

    fn unit(name: &str, active: &str, file: &str, result: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: if active == "active" {
                "listening".into()
            } else {
                "dead".into()
            },
            result: result.into(),
            unit_file_state: file.into(),
            main_pid: None,
            listen: vec![],
            n_restarts: None,
        }
    }

    fn listener(pid: u32, comm: &str, exe: &str, uid: u32, main: Option<u32>) -> Listener {
        Listener {
            pid,
            start_time: 777,
            uid,
            comm: comm.into(),
            exe: exe.into(),
            exe_deleted: exe.ends_with("(deleted)"),
            cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups".into(),
            cgroup: "0::/system.slice/cron.service".into(),
            addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
            class: classify(pid, uid, comm, exe, main.as_slice()),
        }
    }

    fn pkg(status: &str) -> PackageState {
        PackageState {
            name: "openssh-server".into(),
            want: "install".into(),
            eflag: "ok".into(),
            status: status.into(),
            version: Some("1:9.6p1".into()),
            depends: vec![],
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Topo {
        Socket,
        Classic,
    }

    /// A healthy machine of either topology.
    fn healthy(t: Topo) -> Snapshot {
        let units = match t {
            Topo::Socket => Units {
                service: unit("ssh.service", "inactive", "disabled", "success"),
                socket: unit("ssh.socket", "active", "enabled", "success"),
            },
            Topo::Classic => {
                let mut svc = unit("ssh.service", "active", "enabled", "success");
                svc.main_pid = Some(500);
                Units {
                    service: svc,
                    socket: unit("ssh.socket", "inactive", "disabled", "success"),
                }
            }
        };
        let listeners = match t {
            Topo::Socket => vec![listener(1, "systemd", "/usr/lib/systemd/systemd", 0, None)],
            Topo::Classic => vec![listener(500, "sshd", "/usr/sbin/sshd", 0, Some(500))],
        };
        Snapshot {
            package: Some(pkg("installed")),
            ports: vec![22],
            sshd_config: ConfigCheck {
                valid: Some(true),
                error: None,
            },
            units: Some(units),
            listeners,
            sessions: 2,
            ..Default::default()
        }
    }

    fn decide_full(s: &Snapshot) -> Plan {
        decide(s, "ssh.service", "ssh.socket", "openssh-server", Mode::Full)
    }

    fn stops(p: &Plan) -> Vec<u32> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::StopStale { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect()
    }

    /// Puts a stale listener in place of what systemd had: the incident.
    fn with_stale(t: Topo, exe: &str) -> Snapshot {
        let mut s = healthy(t);
        let u = s.units.as_mut().unwrap();
        match t {
            Topo::Socket => u.socket = unit("ssh.socket", "failed", "enabled", "resources"),
            Topo::Classic => {
                u.service = unit("ssh.service", "inactive", "enabled", "success");
            }
        }
        s.listeners = vec![listener(4242, "sshd", exe, 0, None)];
        s
    }

    #[test]
    fn healthy_is_a_noop_in_both_topologies_and_modes() {
        for t in [Topo::Socket, Topo::Classic] {
            for m in [Mode::Preflight, Mode::Full] {
                let p = decide(
                    &healthy(t),
                    "ssh.service",
                    "ssh.socket",
                    "openssh-server",
                    m,
                );
                assert!(p.is_noop(), "{t:?} {m:?}: {p:?}");
                assert!(p.findings.is_empty());
            }
        }
    }

    #[test]
    fn an_unseen_holder_of_the_port_refuses_any_start() {
        // Without root the stale sshd's socket has no visible owner.
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
        s.unowned_sockets = vec!["0.0.0.0:22".into(), "[::]:22".into()];
        s.as_root = false;
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        let r = p.refused.unwrap();
        assert!(
            r.contains("0.0.0.0:22, [::]:22 are held by a process the guard cannot see"),
            "{r}"
        );
        assert!(r.contains("not run as root"), "{r}");
        // As root it is still refused (starting would only fail to bind),
        // without the hint, and with a stale listener beside it too.
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd");
        s.unowned_sockets = vec!["[::]:22".into()];
        s.as_root = true;
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        let r = p.refused.unwrap();
        assert!(
            r.contains("[::]:22 is held by") && !r.contains("root"),
            "{r}"
        );
    }

    #[test]
    fn unseen_sockets_of_a_running_holder_are_not_a_problem() {
        // Without root, pid 1's (or sshd's) sockets have no visible owner
        // on a healthy machine: nothing to start, nothing to refuse.
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            s.listeners.clear();
            s.unowned_sockets = vec!["0.0.0.0:22".into()];
            let p = decide_full(&s);
            assert!(p.is_noop(), "{t:?}: {p:?}");
        }
    }

    #[test]
    fn stale_listener_deleted_exe_socket_topology() {
        let s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        let p = decide_full(&s);
        assert_eq!(stops(&p), vec![4242]);
        assert_eq!(
            p.steps,
            vec![
                Step::ResetFailed {
                    unit: "ssh.socket".into()
                },
                Step::StopStale {
                    pid: 4242,
                    start_time: 777,
                    exe: "/usr/sbin/sshd (deleted)".into()
                },
                Step::StartUnit {
                    unit: "ssh.socket".into()
                },
                Step::VerifyBanner,
            ]
        );
        assert!(p.findings[0].contains("stale sshd listener pid 4242"));
        assert!(
            p.findings
                .contains(&"ssh.socket failed (result resources)".to_string()),
            "{:?}",
            p.findings
        );
    }

    #[test]
    fn stale_listener_current_exe_classic_topology() {
        let s = with_stale(Topo::Classic, "/usr/sbin/sshd");
        let p = decide_full(&s);
        assert_eq!(stops(&p), vec![4242]);
        assert!(p.steps.contains(&Step::StartUnit {
            unit: "ssh.service".into()
        }));
        assert_eq!(p.steps.last(), Some(&Step::VerifyBanner));
    }

    #[test]
    fn preflight_stops_stale_but_leaves_the_package_to_dpkg() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.package = Some(pkg("half-configured"));
        let p = decide(
            &s,
            "ssh.service",
            "ssh.socket",
            "openssh-server",
            Mode::Preflight,
        );
        assert_eq!(stops(&p), vec![4242]);
        assert!(!p
            .steps
            .iter()
            .any(|s| matches!(s, Step::ConfigurePackage { .. })));
        let p = decide_full(&s);
        assert_eq!(
            &p.steps[p.steps.len() - 2..],
            &[
                Step::ConfigurePackage {
                    package: "openssh-server".into()
                },
                Step::VerifyBanner
            ]
        );
    }

    #[test]
    fn preflight_leaves_a_merely_inactive_socket_to_the_postinst() {
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
        s.listeners.clear();
        assert!(decide(
            &s,
            "ssh.service",
            "ssh.socket",
            "openssh-server",
            Mode::Preflight
        )
        .is_noop());
        let p = decide_full(&s);
        assert_eq!(
            p.steps,
            vec![
                Step::StartUnit {
                    unit: "ssh.socket".into()
                },
                Step::VerifyBanner
            ]
        );
    }

    #[test]
    fn failed_socket_and_dependency_failed_service() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            let u = s.units.as_mut().unwrap();
            u.socket = unit(
                "ssh.socket",
                "failed",
                u.socket.unit_file_state.clone().as_str(),
                "resources",
            );
            u.service = unit(
                "ssh.service",
                "failed",
                u.service.unit_file_state.clone().as_str(),
                "exit-code",
            );
            s.listeners.clear();
            for m in [Mode::Preflight, Mode::Full] {
                let p = decide(&s, "ssh.service", "ssh.socket", "openssh-server", m);
                assert!(
                    p.steps.contains(&Step::ResetFailed {
                        unit: "ssh.socket".into()
                    }),
                    "{t:?}"
                );
                assert!(
                    p.steps.contains(&Step::ResetFailed {
                        unit: "ssh.service".into()
                    }),
                    "{t:?}"
                );
                assert!(stops(&p).is_empty());
                assert_eq!(p.steps.last(), Some(&Step::VerifyBanner));
            }
        }
    }

    #[test]
    fn half_configured_package_alone() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = healthy(t);
            s.package = Some(pkg("half-configured"));
            let p = decide_full(&s);
            assert_eq!(
                p.steps,
                vec![
                    Step::ConfigurePackage {
                        package: "openssh-server".into()
                    },
                    Step::VerifyBanner
                ],
                "{t:?}"
            );
            assert!(decide(
                &s,
                "ssh.service",
                "ssh.socket",
                "openssh-server",
                Mode::Preflight
            )
            .is_noop());
        }
    }

    #[test]
    fn bad_config_never_stops_the_running_listener() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = with_stale(t, "/usr/sbin/sshd (deleted)");
            s.package = Some(pkg("half-configured"));
            s.sshd_config = ConfigCheck {
                valid: Some(false),
                error: Some("/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()),
            };
            for m in [Mode::Preflight, Mode::Full] {
                let p = decide(&s, "ssh.service", "ssh.socket", "openssh-server", m);
                assert!(p.steps.is_empty(), "{t:?} {m:?}");
                let r = p.refused.unwrap();
                assert!(r.contains("Bad configuration option: Bogus"), "{r}");
            }
            s.sshd_config = ConfigCheck {
                valid: None,
                error: Some("sshd not found".into()),
            };
            assert!(decide_full(&s).steps.is_empty());
        }
    }

    #[test]
    fn foreign_process_on_the_port_is_never_touched() {
        for t in [Topo::Socket, Topo::Classic] {
            let mut s = with_stale(t, "/usr/sbin/sshd (deleted)");
            s.listeners
                .push(listener(999, "nc", "/usr/bin/nc.openbsd", 0, None));
            s.listeners
                .push(listener(998, "sshd", "/usr/sbin/sshd", 1000, None));
            let p = decide_full(&s);
            assert!(p.steps.is_empty(), "{p:?}");
            assert!(p.refused.unwrap().contains("pid 999"));
            assert_eq!(p.left_alone.len(), 3, "{:?}", p.left_alone);
        }
    }

    #[test]
    fn sessions_are_reported_never_planned() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.sessions = 5;
        let p = decide_full(&s);
        assert!(p.left_alone.iter().any(|l| l.contains("5 sshd session")));
        assert_eq!(stops(&p), vec![4242]);
    }

    #[test]
    fn managed_listener_with_replaced_binary_is_restarted_through_systemd() {
        let mut s = healthy(Topo::Classic);
        s.listeners = vec![listener(
            500,
            "sshd",
            "/usr/sbin/sshd (deleted)",
            0,
            Some(500),
        )];
        let p = decide_full(&s);
        assert!(stops(&p).is_empty(), "a managed process is never signalled");
        assert_eq!(
            p.steps,
            vec![
                Step::RestartUnit {
                    unit: "ssh.service".into()
                },
                Step::VerifyBanner
            ]
        );
    }

    #[test]
    fn a_service_holding_the_sockets_port_hands_it_back_in_both_modes() {
        // Road f: ssh.socket enabled but not listening, ssh.service bound
        // :22 itself (a socket unit without RequiredBy=ssh.service).
        let mut s = healthy(Topo::Socket);
        let u = s.units.as_mut().unwrap();
        u.socket = unit("ssh.socket", "inactive", "enabled", "success");
        u.service = unit("ssh.service", "active", "disabled", "success");
        u.service.main_pid = Some(700);
        s.listeners = vec![listener(700, "sshd", "/usr/sbin/sshd", 0, Some(700))];
        for m in [Mode::Preflight, Mode::Full] {
            let p = decide(&s, "ssh.service", "ssh.socket", "openssh-server", m);
            assert!(
                p.findings.iter().any(|f| f
                    .starts_with("ssh.service (pid 700) listens on 0.0.0.0:22, [::]:22 itself")),
                "{m:?}: {:?}",
                p.findings
            );
            assert_eq!(
                p.steps,
                vec![
                    Step::StopUnit {
                        unit: "ssh.service".into()
                    },
                    Step::StartUnit {
                        unit: "ssh.socket".into()
                    },
                    Step::VerifyBanner
                ],
                "{m:?}"
            );
            assert!(stops(&p).is_empty(), "a managed sshd is never signalled");
        }
        // With the package to complete, dpkg runs before the banner check
        // (which would start ssh.service through the socket again).
        s.package = Some(pkg("half-configured"));
        let p = decide_full(&s);
        assert_eq!(
            p.steps,
            vec![
                Step::StopUnit {
                    unit: "ssh.service".into()
                },
                Step::StartUnit {
                    unit: "ssh.socket".into()
                },
                Step::ConfigurePackage {
                    package: "openssh-server".into()
                },
                Step::VerifyBanner
            ]
        );
        s.package = Some(pkg("installed"));
        // With a replaced binary it is still stopped, not restarted.
        s.listeners[0].exe = "/usr/sbin/sshd (deleted)".into();
        s.listeners[0].exe_deleted = true;
        let p = decide_full(&s);
        assert!(
            !p.steps
                .iter()
                .any(|st| matches!(st, Step::RestartUnit { .. })),
            "{p:?}"
        );
        // A bad configuration still blocks it: stopping could lock out.
        s.sshd_config.valid = Some(false);
        assert!(decide_full(&s).steps.is_empty());
    }

    #[test]
    fn a_rescue_on_a_replaced_binary_is_restarted_as_itself_after_dpkg() {
        // Road g: the rescue (pid 900) started before dpkg replaced sshd.
        let mut s = healthy(Topo::Socket);
        s.units.as_mut().unwrap().socket = unit("ssh.socket", "failed", "enabled", "resources");
        s.listeners = vec![listener(
            900,
            "sshd",
            "/usr/sbin/sshd (deleted)",
            0,
            Some(900),
        )];
        s.rescue_pid = Some(900);
        let p = decide_full(&s);
        assert!(
            p.findings.contains(&"the guard's rescue sshd (pid 900) still runs the replaced binary /usr/sbin/sshd (deleted)".to_string()),
            "{:?}",
            p.findings
        );
        assert!(
            !p.findings.iter().any(|f| f.starts_with("ssh.service")),
            "the rescue is not ssh.service: {:?}",
            p.findings
        );
        let restart = Step::RestartUnit {
            unit: crate::system::systemd::RESCUE_UNIT.into(),
        };
        let at = p
            .steps
            .iter()
            .position(|st| *st == restart)
            .expect("restarts the rescue");
        let start = p
            .steps
            .iter()
            .position(|st| matches!(st, Step::StartUnit { .. }))
            .unwrap();
        assert!(at < start, "before anything that may fail: {:?}", p.steps);
        assert!(!p.steps.contains(&Step::RestartUnit {
            unit: "ssh.service".into()
        }));
        // Before dpkg it would only be replaced again.
        let p = decide(
            &s,
            "ssh.service",
            "ssh.socket",
            "openssh-server",
            Mode::Preflight,
        );
        assert!(!p.steps.contains(&restart), "{p:?}");
    }

    #[test]
    fn a_masked_running_socket_the_postinst_restarts_is_refused_with_the_fix() {
        let mut s = healthy(Topo::Socket);
        let u = s.units.as_mut().unwrap();
        u.socket.load_state = "masked".into();
        u.socket.unit_file_state = "masked".into();
        s.package = Some(pkg("half-configured"));
        s.packaging_records = crate::roads::PackagingRecords {
            socket_was_enabled: Some(true),
            service_was_enabled: Some(false),
        };
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(p
            .findings
            .iter()
            .any(|f| f.starts_with("ssh.socket is masked but still running")));
        assert!(p.refused.unwrap().contains("'systemctl unmask ssh.socket'"));
    }

    #[test]
    fn no_systemd_means_no_action() {
        let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
        s.units = None;
        s.systemd_error = Some("no D-Bus".into());
        let p = decide_full(&s);
        assert!(p.steps.is_empty());
        assert!(p.refused.unwrap().contains("no D-Bus"));
    }

    #[test]
    fn every_topology_fault_combination_only_ever_stops_stale_root_sshd() {
        let faults: Vec<fn(&mut Snapshot)> = vec![
            |s| {
                s.listeners
                    .push(listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, None))
            },
            |s| {
                s.listeners
                    .push(listener(4243, "sshd", "/usr/sbin/sshd", 0, None))
            },
            |s| s.units.as_mut().unwrap().socket.active_state = "failed".into(),
            |s| s.units.as_mut().unwrap().service.active_state = "failed".into(),
            |s| s.package = Some(pkg("half-configured")),
            |s| s.sshd_config.valid = Some(false),
            |s| {
                s.listeners
                    .push(listener(4244, "python3", "/usr/bin/python3", 0, None))
            },
            |s| s.sessions = 3,
        ];
        for t in [Topo::Socket, Topo::Classic] {
            for mask in 0u32..(1 << faults.len()) {
                let mut s = healthy(t);
                for (i, f) in faults.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        f(&mut s);
                    }
                }
                for m in [Mode::Preflight, Mode::Full] {
                    let p = decide(&s, "ssh.service", "ssh.socket", "openssh-server", m);
                    for pid in stops(&p) {
                        let l = s.listeners.iter().find(|l| l.pid == pid).unwrap();
                        assert_eq!(l.class, ListenerClass::Stale);
                        assert_eq!(l.uid, 0);
                    }
                    if s.sshd_config.valid != Some(true) {
                        assert!(
                            p.steps.is_empty(),
                            "bad config must block every step: {p:?}"
                        );
                    }
                    if !p.steps.is_empty() {
                        assert!(
                            p.steps.contains(&Step::VerifyBanner),
                            "every action is verified"
                        );
                    }
                }
            }
        }
    }
}
