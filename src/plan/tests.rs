//! The decision's tests: findings, the gate and the steps on fixtures.

use super::gate::Work;
use super::*;
use crate::dpkg::PackageState;
use crate::model::*;

impl Plan {
    fn is_noop_for_test(&self) -> bool {
        self.steps.is_empty() && self.refused.is_none()
    }
}

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
        ..Default::default()
    }
}

/// A listener as system::claims classifies it: in ssh.service's cgroup,
/// whose active main process is `main`.
fn listener(pid: u32, comm: &str, exe: &str, uid: u32, main: Option<u32>) -> Listener {
    let unit = crate::identity::CgroupUnit::Unit("ssh.service".into());
    let st = UnitState {
        name: "ssh.service".into(),
        active_state: if main.is_some() { "active" } else { "inactive" }.into(),
        main_pid: main,
        ..Default::default()
    };
    let ns = crate::identity::Namespaces::default();
    let f = crate::identity::Facts {
        pid,
        uid,
        exe,
        ns: &ns,
        guard_ns: &ns,
        main_mnt: None,
        unit: &unit,
        ancestors: &[],
    };
    let j = crate::identity::judge(&f, Some(Ok(&st)));
    Listener {
        process: ProcessStamp {
            pid,
            start_time: 777,
        },
        uid,
        comm: comm.into(),
        exe: exe.into(),
        exe_deleted: exe.ends_with("(deleted)"),
        cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups".into(),
        cgroup: "0::/system.slice/ssh.service".into(),
        addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
        class: j.class,
        unit: Some("ssh.service".into()),
        unit_state: Some(st.active_state.clone()),
        why: j.why,
    }
}

fn pkg(status: &str) -> PackageState {
    PackageState {
        name: "openssh-server".into(),
        want: "install".into(),
        eflag: "ok".into(),
        status: status.into(),
        version: Some("1:9.6p1".into()),
        architecture: None,
        other_instances: vec![],
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
    decide(s, &Config::default(), Mode::Full)
}

fn stops(p: &Plan) -> Vec<u32> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::StopStale { process, .. } => Some(process.pid),
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
            let p = decide(&healthy(t), &Config::default(), m);
            assert!(p.is_noop_for_test(), "{t:?} {m:?}: {p:?}");
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
    assert_eq!(
        p.refused,
        Some(Refusal::UnseenHolder {
            addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
            as_root: false
        })
    );
    // As root it is still refused (starting would only fail to bind),
    // without the hint, and with a stale listener beside it too.
    let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd");
    s.unowned_sockets = vec!["[::]:22".into()];
    s.as_root = true;
    let p = decide_full(&s);
    assert!(p.steps.is_empty(), "{p:?}");
    assert_eq!(
        p.refused,
        Some(Refusal::UnseenHolder {
            addresses: vec!["[::]:22".into()],
            as_root: true
        })
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
        assert!(p.is_noop_for_test(), "{t:?}: {p:?}");
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
                process: ProcessStamp {
                    pid: 4242,
                    start_time: 777
                },
                exe: "/usr/sbin/sshd (deleted)".into()
            },
            Step::StartUnit {
                unit: "ssh.socket".into()
            },
            Step::VerifyBanner,
        ]
    );
    assert!(matches!(
        p.findings[0],
        Finding::StaleListener { pid: 4242, .. }
    ));
    assert!(
        p.findings.contains(&Finding::UnitFailed {
            unit: "ssh.socket".into(),
            result: "resources".into()
        }),
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
    let p = decide(&s, &Config::default(), Mode::Preflight);
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
    assert!(decide(&s, &Config::default(), Mode::Preflight).is_noop_for_test());
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
            let p = decide(&s, &Config::default(), m);
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
        // Proven before dpkg runs (sim S2), and after it.
        assert_eq!(
            p.steps,
            vec![
                Step::VerifyBanner,
                Step::ConfigurePackage {
                    package: "openssh-server".into()
                },
                Step::VerifyBanner
            ],
            "{t:?}"
        );
        assert!(decide(&s, &Config::default(), Mode::Preflight).is_noop_for_test());
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
            let p = decide(&s, &Config::default(), m);
            assert!(p.steps.is_empty(), "{t:?} {m:?}");
            assert_eq!(
                p.refused,
                Some(Refusal::ConfigRejected {
                    sshd_says: Some(
                        "/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()
                    )
                })
            );
        }
        s.sshd_config = ConfigCheck {
            valid: None,
            error: Some("sshd not found".into()),
        };
        assert!(decide_full(&s).steps.is_empty());
    }
}

fn no_host_keys() -> ConfigCheck {
    ConfigCheck {
        valid: Some(false),
        error: Some("sshd: no hostkeys available -- exiting.".into()),
    }
}

#[test]
fn missing_host_keys_are_generated_first() {
    // ssh.service failed its ExecStartPre=sshd -t.
    let mut s = healthy(Topo::Socket);
    s.units.as_mut().unwrap().service = unit("ssh.service", "failed", "disabled", "exit-code");
    s.sshd_config = no_host_keys();
    let p = decide_full(&s);
    assert!(p.refused.is_none(), "{p:?}");
    assert!(p.findings.contains(&Finding::NoHostKeys {
        service: "ssh.service".into()
    }));
    assert_eq!(
        p.steps,
        vec![
            Step::GenerateHostKeys,
            Step::ResetFailed {
                unit: "ssh.service".into()
            },
            Step::VerifyBanner
        ]
    );
    // Nothing failed yet (the socket listens, no connection came): the
    // keys are still missing, and the proof follows their creation.
    let mut s = healthy(Topo::Socket);
    s.sshd_config = no_host_keys();
    for m in [Mode::Preflight, Mode::Full] {
        let p = decide(&s, &Config::default(), m);
        assert_eq!(p.steps, vec![Step::GenerateHostKeys, Step::VerifyBanner]);
    }
    // Before a stale listener is stopped.
    let mut s = with_stale(Topo::Classic, "/usr/sbin/sshd");
    s.sshd_config = no_host_keys();
    let p = decide_full(&s);
    assert_eq!(p.steps[0], Step::GenerateHostKeys);
    assert_eq!(stops(&p), vec![4242]);
}

#[test]
fn missing_host_keys_beside_another_config_error_are_refused() {
    let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
    s.sshd_config = ConfigCheck {
        valid: Some(false),
        error: Some(
            "/etc/ssh/sshd_config line 3: Bad configuration option: Bogus\nsshd: no hostkeys available -- exiting.".into(),
        ),
    };
    let p = decide_full(&s);
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(
        matches!(&p.refused, Some(Refusal::ConfigRejected { sshd_says: Some(e) }) if e.contains("Bogus")),
        "{p:?}"
    );
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
        assert!(matches!(
            p.refused,
            Some(Refusal::ForeignHolder { pid: 999, .. })
        ));
        assert_eq!(p.left_alone.len(), 3, "{:?}", p.left_alone);
    }
}

/// A container's sshd (its own PID namespace) on another address than
/// ssh's: ssh.service is started around it, the container's is named.
#[test]
fn a_foreign_listener_elsewhere_does_not_block_restoring_ssh() {
    let mut s = healthy(Topo::Classic);
    s.units.as_mut().unwrap().service = unit("ssh.service", "inactive", "enabled", "success");
    s.addresses = vec!["127.0.0.1:22".into(), "[::1]:22".into()];
    let mut c = listener(999, "sshd", "/usr/sbin/sshd", 0, None);
    c.class = ListenerClass::Foreign;
    c.why = "in another PID namespace than the guard's".into();
    c.addresses = vec!["127.0.0.3:22".into()];
    s.listeners = vec![c.clone()];
    let p = decide_full(&s);
    assert_eq!(p.refused, None, "{p:?}");
    assert_eq!(
        p.steps,
        vec![
            Step::StartUnit {
                unit: "ssh.service".into()
            },
            Step::VerifyBanner
        ]
    );
    assert!(p
        .left_alone
        .iter()
        .any(|l| matches!(l, LeftAlone::Foreign { pid: 999, .. })));
    // On an address ssh needs (or a wildcard covering it): refused.
    for held in ["127.0.0.1:22", "0.0.0.0:22", "[::]:22"] {
        let mut s2 = s.clone();
        s2.listeners[0].addresses = vec![held.into()];
        assert!(
            matches!(
                decide_full(&s2).refused,
                Some(Refusal::ForeignHolder { pid: 999, .. })
            ),
            "{held}"
        );
    }
}

fn off_units(service: (&str, &str), socket: (&str, &str)) -> Snapshot {
    let mut s = healthy(Topo::Classic);
    let mut u = Units {
        service: unit("ssh.service", service.0, service.1, "success"),
        socket: unit("ssh.socket", socket.0, socket.1, "success"),
    };
    for st in [&mut u.service, &mut u.socket] {
        if st.unit_file_state == "masked" {
            st.load_state = "masked".into();
        }
    }
    s.units = Some(u);
    s.listeners.clear();
    s
}

#[test]
fn ssh_disabled_by_the_admin_is_not_started_in_any_mode() {
    let s = off_units(("inactive", "disabled"), ("inactive", "disabled"));
    for m in [Mode::Preflight, Mode::Full] {
        let p = decide(&s, &Config::default(), m);
        assert!(p.is_noop_for_test(), "{m:?}: {p:?}");
        assert!(p.findings.is_empty(), "{p:?}");
        assert_eq!(
            p.intent.to_string(),
            "ssh is off by the admin's choice: ssh.service disabled, ssh.socket disabled"
        );
    }
    assert_eq!(
        crate::report::verdict(&s, &decide_full(&s)),
        "OK: ssh is off by the admin's choice: ssh.service disabled, ssh.socket disabled"
    );
}

#[test]
fn ssh_masked_or_not_to_be_run_gets_no_start_and_no_rescue() {
    let mut masked = off_units(("failed", "masked"), ("inactive", "masked"));
    masked.units.as_mut().unwrap().service.result = "exit-code".into();
    let mut cond = off_units(("inactive", "enabled"), ("inactive", "disabled"));
    cond.intent.not_to_be_run = Some(crate::intent::NOT_TO_BE_RUN.into());
    for s in [masked, cond] {
        let p = decide_full(&s);
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(p.findings.is_empty(), "{p:?}");
        assert!(!p.intent.serves());
        // The package is still completed, with nothing to prove after it.
        let mut s2 = s.clone();
        s2.package = Some(pkg("half-configured"));
        assert_eq!(
            decide_full(&s2).steps,
            vec![Step::ConfigurePackage {
                package: "openssh-server".into()
            }]
        );
    }
}

#[test]
fn a_stale_listener_while_ssh_is_off_is_left_serving_and_said() {
    let mut s = off_units(("inactive", "disabled"), ("inactive", "disabled"));
    s.listeners = vec![listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, None)];
    let p = decide_full(&s);
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(stops(&p).is_empty());
    assert!(p
        .left_alone
        .iter()
        .any(|l| matches!(l, LeftAlone::StaleWhileOff { pid: 4242, .. })));
    assert!(crate::report::verdict(&s, &p).starts_with("WARNING: ssh is off by the admin's choice"));
}

/// Item 2 of the intent issue: the preinst stopped ssh.service, the
/// postinst restarted a masked socket (a no-op), dpkg says installed.
#[test]
fn ssh_that_served_before_dpkg_and_was_stopped_by_it_is_restored_and_said() {
    let mut s = off_units(("inactive", "disabled"), ("inactive", "masked"));
    s.intent.served_before = Some(vec!["ssh.service".into()]);
    let p = decide_full(&s);
    assert!(p.intent.serves(), "{p:?}");
    assert!(
        p.findings
            .iter()
            .any(|f| matches!(f, Finding::StoppedByPackage { .. })),
        "{p:?}"
    );
    assert_eq!(
        p.steps,
        vec![
            Step::StartUnit {
                unit: "ssh.service".into()
            },
            Step::VerifyBanner
        ]
    );
    // A policy-rc.d that forbids starts is named as the explanation.
    s.intent.policy_rc_d = Some(crate::intent::PolicyRcD {
        path: crate::intent::POLICY_RC_D.into(),
        answer: Some(101),
        error: None,
    });
    let found = decide_full(&s)
        .findings
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(found.contains("/usr/sbin/policy-rc.d forbids"), "{found}");
    // Without the record of what served before, disabled stays off.
    s.intent.served_before = None;
    assert!(decide_full(&s).steps.is_empty());
}

/// sim S11: ssh.service runs a replaced binary while sshd_not_to_be_run
/// exists (or it is masked): a restart would stop it and systemd would
/// skip the start. It is left running and named.
#[test]
fn a_running_service_is_not_restarted_where_its_start_would_be_refused() {
    let mut s = healthy(Topo::Classic);
    s.listeners = vec![listener(
        500,
        "sshd",
        "/usr/sbin/sshd (deleted)",
        0,
        Some(500),
    )];
    assert!(decide_full(&s).steps.contains(&Step::RestartUnit {
        unit: "ssh.service".into()
    }));
    for refuse in 0..2 {
        let mut s2 = s.clone();
        if refuse == 0 {
            s2.intent.not_to_be_run = Some(crate::intent::NOT_TO_BE_RUN.into());
        } else {
            let u = &mut s2.units.as_mut().unwrap().service;
            u.load_state = "masked".into();
            u.unit_file_state = "masked".into();
        }
        let p = decide_full(&s2);
        assert!(p.intent.serves(), "it runs: {p:?}");
        assert!(p.steps.is_empty(), "{p:?}");
        assert!(
            p.left_alone
                .iter()
                .any(|l| matches!(l, LeftAlone::KeptRunning { .. })
                    && l.to_string().contains("systemd would not start it again")),
            "{:?}",
            p.left_alone
        );
    }
}

/// Found by the sim (seed 2): ssh.service runs while sshd_not_to_be_run
/// exists and the package is only unpacked. dpkg --configure would restart
/// ssh.service into the refused start; the package is left unconfigured
/// and that is said, where a masked or stopped ssh has nothing to lose.
#[test]
fn the_package_is_not_configured_where_its_restart_would_leave_ssh_down() {
    let mut s = healthy(Topo::Classic);
    s.package = Some(pkg("unpacked"));
    s.intent.not_to_be_run = Some(crate::intent::NOT_TO_BE_RUN.into());
    let p = decide_full(&s);
    assert!(p.intent.serves(), "it runs: {p:?}");
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.found_package_incomplete());
    let said: Vec<String> = p.left_alone.iter().map(|l| l.to_string()).collect();
    assert!(
        said.iter()
            .any(|l| l.contains("dpkg --configure restarts ssh")
                && l.contains("/etc/ssh/sshd_not_to_be_run")),
        "{said:?}"
    );
    // Without the file, the package is completed as always.
    s.intent.not_to_be_run = None;
    assert!(decide_full(&s)
        .steps
        .iter()
        .any(|st| matches!(st, Step::ConfigurePackage { .. })));
}

#[test]
fn sessions_are_reported_never_planned() {
    let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
    s.sessions = 5;
    let p = decide_full(&s);
    assert!(p.left_alone.contains(&LeftAlone::Sessions { count: 5 }));
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

/// A second sshd under its own unit, as system::claims classifies it.
fn mgmt_sshd(pid: u32, exe: &str) -> Listener {
    let mut l = listener(pid, "sshd", exe, 0, Some(pid));
    l.unit = Some("sshd-mgmt.service".into());
    l.why = "main process of sshd-mgmt.service".into();
    l.addresses = vec!["0.0.0.0:2222".into()];
    l
}

#[test]
fn a_second_sshd_under_its_own_unit_is_left_alone_on_a_healthy_host() {
    for t in [Topo::Socket, Topo::Classic] {
        let mut s = healthy(t);
        s.listeners.push(mgmt_sshd(600, "/usr/sbin/sshd"));
        let p = decide_full(&s);
        assert!(
            p.steps.is_empty() && p.refused.is_none() && p.findings.is_empty(),
            "{t:?}: {p:?}"
        );
    }
}

#[test]
fn ssh_down_beside_a_second_sshd_restores_ssh_without_touching_it() {
    let mut s = healthy(Topo::Socket);
    s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
    s.listeners = vec![mgmt_sshd(600, "/usr/sbin/sshd")];
    let p = decide_full(&s);
    assert!(stops(&p).is_empty(), "{p:?}");
    assert!(p.steps.contains(&Step::StartUnit {
        unit: "ssh.socket".into()
    }));
    // With the incident's stale listener too: only that one is stopped.
    s.listeners
        .push(listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, None));
    assert_eq!(stops(&decide_full(&s)), vec![4242]);
}

#[test]
fn a_second_sshd_on_a_replaced_binary_is_its_units_business_not_a_restart_of_ssh() {
    let mut s = healthy(Topo::Classic);
    s.listeners.push(mgmt_sshd(600, "/usr/sbin/sshd (deleted)"));
    let p = decide_full(&s);
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(
        p.left_alone.iter().any(|l| matches!(
            l,
            LeftAlone::OtherUnitOutdated { pid: 600, unit, .. } if unit == "sshd-mgmt.service"
        )),
        "{p:?}"
    );
}

#[test]
fn no_systemd_means_no_action() {
    let mut s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
    s.units = None;
    s.systemd_error = Some("no D-Bus".into());
    let p = decide_full(&s);
    assert!(p.steps.is_empty());
    assert_eq!(
        p.refused,
        Some(Refusal::NoSystemd {
            error: Some("no D-Bus".into())
        })
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
        let p = decide(&s, &Config::default(), m);
        assert!(
            p.findings.iter().any(|f| f
                .to_string()
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
    assert_eq!(
        decide_full(&s).steps,
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
    let found: Vec<String> = p.findings.iter().map(|f| f.to_string()).collect();
    assert!(
        found.contains(&"the guard's rescue sshd (pid 900) still runs the replaced binary /usr/sbin/sshd (deleted)".to_string()),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|f| f.starts_with("ssh.service")),
        "the rescue is not ssh.service: {found:?}"
    );
    let restart = Step::RestartUnit {
        unit: crate::model::RESCUE_UNIT.into(),
    };
    // With ssh.socket to start (issue 18), the rescue gives way
    // first: the proof brings it back, from the installed binary, if
    // the socket does not serve. Before dpkg too: while it holds the
    // port the postinst's restart fails.
    let retire = Step::RetireRescue {
        unit: crate::model::RESCUE_UNIT.into(),
    };
    for p in [p, decide(&s, &Config::default(), Mode::Preflight)] {
        let at = p
            .steps
            .iter()
            .position(|st| *st == retire)
            .expect("retires the rescue");
        let start = p
            .steps
            .iter()
            .position(|st| matches!(st, Step::StartUnit { .. }))
            .unwrap();
        assert!(at < start, "before the socket starts: {:?}", p.steps);
        assert!(!p.steps.contains(&restart), "{p:?}");
    }
    // Alone (units healthy), it is restarted and checked.
    let mut s2 = healthy(Topo::Socket);
    s2.listeners.push(listener(
        900,
        "sshd",
        "/usr/sbin/sshd (deleted)",
        0,
        Some(900),
    ));
    s2.rescue_pid = Some(900);
    assert_eq!(decide_full(&s2).steps, vec![restart, Step::VerifyBanner]);
}

#[test]
fn a_masked_running_socket_the_postinst_restarts_is_refused_with_the_fix() {
    // Road b.
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
    let r = p.refused.unwrap().to_string();
    assert!(r.contains("'systemctl unmask ssh.socket'"), "{r}");
    assert!(p.findings.iter().any(|f| f
        .to_string()
        .starts_with("ssh.socket is masked but still running")));
}

#[test]
fn a_start_limit_keeps_the_failed_units_wording_and_adds_systemds() {
    // Road a.
    let mut s = healthy(Topo::Socket);
    let u = s.units.as_mut().unwrap();
    u.socket = unit("ssh.socket", "failed", "enabled", "service-start-limit-hit");
    u.service = unit("ssh.service", "failed", "disabled", "start-limit-hit");
    s.listeners.clear();
    let p = decide_full(&s);
    let found: Vec<String> = p.findings.iter().map(|f| f.to_string()).collect();
    assert!(
        found.contains(
            &"ssh.service failed (result start-limit-hit): \"Start request repeated too quickly\""
                .to_string()
        ),
        "{found:?}"
    );
    assert!(p.steps.contains(&Step::ResetFailed {
        unit: "ssh.service".into()
    }));
    assert!(p.steps.contains(&Step::StartUnit {
        unit: "ssh.socket".into()
    }));
}

#[test]
fn findings_gates_and_steps_each_decide_their_part() {
    let s = with_stale(Topo::Socket, "/usr/sbin/sshd (deleted)");
    let facts = Facts::of(&s);
    let (found, left) = findings(&s, &facts, "ssh.service");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(left, vec![LeftAlone::Sessions { count: 2 }]);
    let w = work(&s, &facts, Mode::Preflight);
    assert_eq!(
        w,
        Work {
            listeners: true,
            package: false,
            rescue: false
        }
    );
    assert_eq!(gate(&s, &facts, w), None);
    assert_eq!(
        gate(&s, &facts, Work::default()),
        None,
        "no work, no refusal"
    );
    let steps = steps(&s, &facts, w, &Config::default());
    assert_eq!(
        steps.first(),
        Some(&Step::ResetFailed {
            unit: "ssh.socket".into()
        })
    );
    let mut bad = s.clone();
    bad.sshd_config.valid = None;
    assert_eq!(
        gate(&bad, &Facts::of(&bad), w),
        Some(Refusal::ConfigUnchecked { why: None })
    );
}

#[test]
fn display_is_the_wording_reports_and_json_use() {
    assert_eq!(
        Finding::UnitFailed {
            unit: "ssh.socket".into(),
            result: String::new()
        }
        .to_string(),
        "ssh.socket failed (result unknown)"
    );
    assert_eq!(
        serde_json::to_string(&Refusal::NoSystemd { error: None }).unwrap(),
        "\"cannot reach systemd (unknown error); nothing was changed\""
    );
    assert_eq!(
        Refusal::UnseenHolder {
            addresses: vec!["[::]:22".into()],
            as_root: false
        }
        .to_string(),
        "[::]:22 is held by a process the guard cannot see (not run as root: run it as root to see every process); it cannot restore ssh while that is so"
    );
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
        |s| {
            s.sshd_config = ConfigCheck {
                valid: Some(false),
                error: Some("sshd: no hostkeys available -- exiting.".into()),
            }
        },
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
                let p = decide(&s, &Config::default(), m);
                for pid in stops(&p) {
                    let l = s.listeners.iter().find(|l| l.process.pid == pid).unwrap();
                    assert_eq!(l.class, ListenerClass::Stale);
                    assert_eq!(l.uid, 0);
                }
                let keys_missing = s.sshd_config.error.is_some();
                if s.sshd_config.valid != Some(true) && !keys_missing {
                    assert!(
                        p.steps.is_empty(),
                        "bad config must block every step: {p:?}"
                    );
                }
                if keys_missing && !p.steps.is_empty() {
                    assert_eq!(
                        p.steps[0],
                        Step::GenerateHostKeys,
                        "keys come before anything touches sshd"
                    );
                }
                if !p.steps.is_empty() {
                    assert!(
                        p.steps.contains(&Step::VerifyBanner),
                        "every action is verified: {p:?}"
                    );
                }
            }
        }
    }
}
