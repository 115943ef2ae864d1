//! The ordering rules of [`execute`], driven through a recording fake
//! machine: no systemd, no signals, no sockets.
#![forbid(unsafe_code)]

use super::*;
use anyhow::anyhow;
use std::cell::RefCell;

/// Records every call; fails the ones named in `fail`.
#[derive(Default)]
struct Fake {
    calls: RefCell<Vec<String>>,
    /// Whether a hook's deadline could cut the repair at each call (no
    /// `deadline::Critical` held), in the order of `calls`.
    cuttable: RefCell<Vec<bool>>,
    fail: Vec<&'static str>,
    /// Results of successive proofs (the last one repeats).
    answers: RefCell<Vec<Serving>>,
    /// What `sshd -T` says after ssh-keygen -A.
    config_after_keygen: Option<ConfigCheck>,
    /// The start ledger, kept in memory.
    ledger: RefCell<String>,
    /// A termination signal "received" at the call starting with this.
    signal_at: Option<(&'static str, &'static str)>,
    /// The signal held off, once its call was made.
    held: RefCell<Option<String>>,
    /// What settle() finds after a failed job (default: failed, no restarts).
    settled: Option<Settled>,
    /// Addresses wait_free() finds still held (default: none).
    still_held: Vec<String>,
}

/// ssh serves everywhere.
fn serving() -> Serving {
    Serving {
        proof: "key exchange",
        ok: true,
        any: true,
        summary: "ssh completed a key exchange with this host's ed25519 key".into(),
        down: Vec::new(),
    }
}

/// No address answers.
fn silent() -> Serving {
    Serving {
        proof: "key exchange",
        ok: false,
        any: false,
        summary: "ssh does not answer after the repair: 0.0.0.0:22: Connection refused".into(),
        down: vec![crate::sshd::parse_listen("0.0.0.0:22").unwrap()],
    }
}

impl Fake {
    fn failing(fail: &[&'static str]) -> Fake {
        Fake {
            fail: fail.to_vec(),
            ..Default::default()
        }
    }
    fn act(&self, call: String) -> Result<()> {
        if let Some((at, sig)) = self.signal_at {
            if call.starts_with(at) && crate::deadline::critical_on_this_thread() {
                self.held
                    .borrow_mut()
                    .get_or_insert_with(|| sig.to_string());
            }
        }
        let failed = self.fail.iter().any(|f| call.starts_with(f));
        self.calls.borrow_mut().push(call.clone());
        self.cuttable
            .borrow_mut()
            .push(!crate::deadline::critical_on_this_thread());
        if failed {
            Err(anyhow!("{call}: failed"))
        } else {
            Ok(())
        }
    }
    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
    /// The calls a hook's deadline could not cut (made in a critical
    /// stretch).
    fn uncuttable(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .zip(self.cuttable.borrow().iter())
            .filter(|(_, cuttable)| !**cuttable)
            .map(|(c, _)| c)
            .collect()
    }
}

impl UnitControl for Fake {
    fn prepare_jobs(&self) -> Result<()> {
        self.act("prepare".into())
    }
    fn reset_failed(&self, unit: &str) -> Result<()> {
        self.act(format!("reset-failed {unit}"))
    }
    fn start(&self, unit: &str) -> Result<()> {
        self.act(format!("start {unit}"))
    }
    fn restart(&self, unit: &str) -> Result<()> {
        self.act(format!("restart {unit}"))
    }
    fn stop(&self, unit: &str) -> Result<()> {
        self.act(format!("stop-unit {unit}"))
    }
    fn start_ledger(&self) -> (String, u64) {
        (self.ledger.borrow().clone(), 1_700_000_000)
    }
    fn record_start(&self, unit: &str) {
        let l = crate::roads::ledger_add(&self.ledger.borrow(), unit, 1_700_000_000);
        *self.ledger.borrow_mut() = l;
    }
    fn stop_stale(&self, process: ProcessStamp, _exe: &str) -> Result<Stopped> {
        self.act(format!("stop {}", process.pid))
            .map(|_| Stopped::Term)
    }
    fn wait_free(&self, addresses: &[String], _within: Duration) -> Vec<String> {
        let _ = self.act(format!("wait-free {}", addresses.join(" ")));
        addresses
            .iter()
            .filter(|a| self.still_held.contains(a))
            .cloned()
            .collect()
    }
    fn settle(&self, unit: &str, _within: Duration) -> Settled {
        let _ = self.act(format!("settle {unit}"));
        self.settled.clone().unwrap_or(Settled {
            active: false,
            n_restarts: Some(0),
            state: "failed/failed".into(),
        })
    }
    fn serves(&self, _targets: &[Endpoint]) -> Serving {
        let _ = self.act("probe".into());
        let mut answers = self.answers.borrow_mut();
        if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers.first().cloned().unwrap_or_else(serving)
        }
    }
    fn generate_host_keys(&self) -> Result<Vec<PubKey>> {
        self.act("keygen".into())?;
        let key = crate::hostkeys::parse_pub(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6l28bt6L6xjnZJX1OAFRCQ4tu3S6Pt7atifrrz8Wov root@e2e",
        )
        .map_err(|e| anyhow!(e))?;
        Ok(vec![key])
    }
    fn check_config(&self) -> ConfigCheck {
        let _ = self.act("sshd -T".into());
        self.config_after_keygen.clone().unwrap_or(ConfigCheck {
            valid: Some(true),
            error: None,
        })
    }
    fn start_rescue_sshd(&self, opts: &[String]) -> Result<()> {
        if opts.is_empty() {
            self.act("rescue".into())
        } else {
            self.act(format!("rescue {}", opts.join(" ")))
        }
    }
    fn configure_package(&self, package: &str, out: &mut Outcome) -> Result<()> {
        if package == "openssh-server" {
            self.act("configure".into())?;
        } else {
            self.act(format!("configure {package}"))?;
        }
        out.did("configured".into());
        Ok(())
    }
    fn interrupted(&self) -> Option<String> {
        self.held.borrow().clone()
    }
}

fn snap() -> Snapshot {
    Snapshot {
        addresses: vec!["0.0.0.0:22".into()],
        ..Default::default()
    }
}

fn unit(u: &str) -> String {
    u.to_string()
}

/// The incident's plan, and the package step after it.
fn steps() -> Vec<Step> {
    vec![
        Step::ResetFailed {
            unit: unit("ssh.socket"),
        },
        Step::StopStale {
            process: ProcessStamp {
                pid: 4242,
                start_time: 7,
            },
            exe: "/usr/sbin/sshd (deleted)".into(),
        },
        Step::StartUnit {
            unit: unit("ssh.socket"),
        },
        Step::VerifyBanner,
        Step::ConfigurePackage {
            package: "openssh-server".into(),
        },
        Step::VerifyBanner,
    ]
}

fn run(fake: &Fake) -> Outcome {
    execute(fake, &Config::default(), &snap(), &steps())
}

#[test]
fn everything_before_the_stop_is_done_first_then_the_plan_in_order() {
    let fake = Fake::default();
    let out = run(&fake);
    assert!(!out.any_failed(), "{:?}", out.events);
    assert_eq!(
        fake.calls(),
        vec![
            "prepare",
            // reset-failed of the unit about to be started, before the stop
            "reset-failed ssh.socket",
            "reset-failed ssh.socket",
            "stop 4242",
            "start ssh.socket",
            "probe",
            "configure",
            "probe",
        ]
    );
}

#[test]
fn the_deadline_never_cuts_between_the_stop_and_ssh_answering() {
    let fake = Fake::default();
    let _ = run(&fake);
    // From the stop through the banner check, not before (reset-failed);
    // and the package step (its postinst restarts ssh) through its proof.
    assert_eq!(
        fake.uncuttable(),
        vec![
            "stop 4242",
            "start ssh.socket",
            "probe",
            "configure",
            "probe"
        ]
    );
    assert!(!crate::deadline::critical_on_this_thread());
}

#[test]
fn the_critical_stretch_covers_the_rescue_and_ends_with_a_failed_stop() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let _ = run(&fake);
    assert_eq!(
        fake.uncuttable(),
        vec!["stop 4242", "start ssh.socket", "probe", "rescue", "probe"]
    );
    assert!(!crate::deadline::critical_on_this_thread());

    let fake = Fake::failing(&["stop"]);
    let _ = run(&fake);
    assert_eq!(fake.uncuttable(), vec!["stop 4242"]);
    assert!(!crate::deadline::critical_on_this_thread());
}

#[test]
fn without_job_signals_nothing_is_touched() {
    let fake = Fake::failing(&["prepare"]);
    let out = run(&fake);
    assert_eq!(fake.calls(), vec!["prepare"]);
    assert!(out.any_failed());
}

#[test]
fn a_failed_stop_ends_the_repair_at_once() {
    let fake = Fake::failing(&["stop"]);
    let out = run(&fake);
    assert_eq!(
        fake.calls().last().map(String::as_str),
        Some("stop 4242"),
        "no start, no probe, no package step after a failed stop"
    );
    assert!(out.any_failed());
}

#[test]
fn a_failed_start_goes_straight_to_the_banner_check() {
    let fake = Fake::failing(&["start"]);
    let out = run(&fake);
    let calls = fake.calls();
    // Every later step but the banner checks is skipped; once ssh is
    // proven, the unit whose start failed is looked at again (still down).
    assert_eq!(
        &calls[calls.len() - 5..],
        &[
            "start ssh.socket",
            "settle ssh.socket",
            "probe",
            "settle ssh.socket",
            "probe"
        ]
    );
    assert!(!calls.contains(&"configure".to_string()));
    assert!(out.any_failed());
}

#[test]
fn a_silent_ssh_gets_a_rescue_sshd_and_the_package_is_left_alone() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let out = run(&fake);
    let calls = fake.calls();
    assert_eq!(&calls[calls.len() - 3..], &["probe", "rescue", "probe"]);
    assert!(!calls.contains(&"configure".to_string()));
    assert!(out.events.iter().any(|(ok, l)| *ok && l.contains("rescue")));
    assert!(out.any_failed(), "the failed check is reported");
}

#[test]
fn an_address_that_cannot_exist_is_not_a_failure_and_no_rescue_starts() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![Serving {
        proof: "key exchange",
        ok: true,
        any: false,
        summary: "ssh: no address to probe exists on this host".into(),
        down: Vec::new(),
    }];
    let out = execute(&fake, &Config::default(), &snap(), &[Step::VerifyBanner]);
    assert!(!out.any_failed(), "{:?}", out.events);
    assert!(!fake.calls().contains(&"rescue".to_string()));
}

#[test]
fn a_banner_without_a_key_exchange_fails_the_repair_and_no_rescue_starts() {
    // The listener holds the port: a rescue could not bind it.
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![Serving {
        proof: "key exchange",
        ok: false,
        any: true,
        summary: "ssh answers on 0.0.0.0:22 but completes no key exchange (...)".into(),
        down: Vec::new(),
    }];
    let out = run(&fake);
    let calls = fake.calls();
    assert!(!calls.contains(&"rescue".to_string()), "{calls:?}");
    assert!(!calls.contains(&"configure".to_string()), "{calls:?}");
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| !ok && l.contains("completes no key exchange")));
}

/// The missing-host-keys road: keys first, then the incident's plan.
fn keygen_steps() -> Vec<Step> {
    let mut v = vec![Step::GenerateHostKeys];
    v.extend(steps());
    v
}

#[test]
fn host_keys_are_generated_and_checked_before_anything_else() {
    let fake = Fake::default();
    let out = execute(&fake, &Config::default(), &snap(), &keygen_steps());
    assert!(!out.any_failed(), "{:?}", out.events);
    let calls = fake.calls();
    let keygen = calls.iter().position(|c| c == "keygen").unwrap();
    assert_eq!(calls[keygen + 1], "sshd -T", "{calls:?}");
    for later in [
        "reset-failed ssh.socket",
        "stop 4242",
        "start ssh.socket",
        "probe",
    ] {
        let i = calls.iter().rposition(|c| c == later).unwrap();
        assert!(i > keygen + 1, "{later} before the keys: {calls:?}");
    }
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| *ok && l.contains("ed25519 SHA256:")));
}

#[test]
fn sshd_still_rejecting_its_configuration_after_keygen_stops_the_repair() {
    let fake = Fake {
        config_after_keygen: Some(ConfigCheck {
            valid: Some(false),
            error: Some("/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()),
        }),
        ..Default::default()
    };
    let out = execute(&fake, &Config::default(), &snap(), &keygen_steps());
    let calls = fake.calls();
    assert_eq!(
        calls.last().map(String::as_str),
        Some("sshd -T"),
        "nothing touches sshd after a failed check: {calls:?}"
    );
    assert!(!calls.contains(&"stop 4242".to_string()));
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| !ok && l.contains("still rejects") && l.contains("Bogus")));
}

#[test]
fn a_failed_keygen_stops_the_repair() {
    let fake = Fake::failing(&["keygen"]);
    let out = execute(&fake, &Config::default(), &snap(), &keygen_steps());
    let calls = fake.calls();
    assert_eq!(
        calls.last().map(String::as_str),
        Some("keygen"),
        "{calls:?}"
    );
    assert!(out.any_failed());
}

/// An address that cannot exist on this host (a link-local scope whose
/// interface is gone) beside one that answers: said in the did line, and
/// the package still gets configured, no rescue.
#[test]
fn an_address_that_cannot_exist_beside_an_answering_one_does_not_stop_the_package_step() {
    // (system::kex::judge makes such a proof ok, naming the address.)
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![Serving {
        proof: "key exchange",
        ok: true,
        any: true,
        summary: "ssh completed a key exchange with this host's ed25519 key (SHA256:x) on 127.0.0.1:22; cannot exist on this host: (address not available on this host: [fe80::1%eth9]:22: no interface eth9)".into(),
        down: Vec::new(),
    }];
    let mut s = snap();
    s.addresses = vec!["0.0.0.0:22".into(), "[fe80::1%eth9]:22".into()];
    let out = execute(&fake, &Config::default(), &s, &steps());
    assert!(!out.any_failed(), "{:?}", out.events);
    assert!(fake.calls().contains(&"configure".to_string()));
    assert!(!fake.calls().iter().any(|c| c.starts_with("rescue")));
}

/// One address serves, the management address does not: FAILED naming it,
/// the rescue stands in for it, and the package step waits.
#[test]
fn a_partial_proof_fails_and_the_rescue_stands_in_for_the_addresses_that_do_not_serve() {
    let fake = Fake::default();
    let partial = Serving {
        proof: "key exchange",
        ok: false,
        any: true,
        summary: "ssh does not answer after the repair: 10.0.0.5:22: Connection refused; it does serve elsewhere: ...".into(),
        down: vec![crate::sshd::parse_listen("10.0.0.5:22").unwrap()],
    };
    *fake.answers.borrow_mut() = vec![partial, serving()];
    let out = run(&fake);
    let calls = fake.calls();
    assert_eq!(&calls[calls.len() - 3..], &["probe", "rescue", "probe"]);
    assert!(!calls.contains(&"configure".to_string()));
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| !ok && l.contains("10.0.0.5:22: Connection refused")));
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| *ok && l.contains("rescue sshd") && l.contains("for 10.0.0.5:22")));
}

/// The rescue sshd gets the options ssh.service passes (SSHD_OPTS), and a
/// multi-arch package step names the stanza to configure.
#[test]
fn the_rescue_sshd_gets_the_unit_options_and_the_package_step_its_qualified_name() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let mut s = snap();
    s.sshd_options = vec!["-f".into(), "/etc/ssh/other_config".into()];
    execute(&fake, &Config::default(), &s, &[Step::VerifyBanner]);
    assert!(fake
        .calls()
        .contains(&"rescue -f /etc/ssh/other_config".to_string()));
    let fake = Fake::default();
    execute(
        &fake,
        &Config::default(),
        &snap(),
        &[Step::ConfigurePackage {
            package: "openssh-server:i386".into(),
        }],
    );
    // (No proof of its own in this plan, and nothing stopped: none, sim S10.)
    assert_eq!(fake.calls()[1..], ["configure openssh-server:i386"]);
}

#[test]
fn the_guards_fourth_start_of_a_unit_is_refused_before_anything_is_stopped() {
    // Road a: the guard is never the restart storm.
    let fake = Fake::default();
    for _ in 0..3 {
        let out = run(&fake);
        assert!(!out.any_failed(), "{:?}", out.events);
    }
    let before = fake.calls().len();
    let out = run(&fake);
    assert!(
        out.events[0].1.contains("already started"),
        "{:?}",
        out.events
    );
    assert_eq!(
        fake.calls().len(),
        before,
        "nothing done: {:?}",
        fake.calls()
    );
}

#[test]
fn a_service_handing_back_the_port_is_stopped_then_the_socket_started() {
    // Road f.
    let fake = Fake::default();
    let steps = vec![
        Step::StopUnit {
            unit: "ssh.service".into(),
        },
        Step::StartUnit {
            unit: "ssh.socket".into(),
        },
        Step::VerifyBanner,
    ];
    let out = execute(&fake, &Config::default(), &snap(), &steps);
    assert!(!out.any_failed(), "{:?}", out.events);
    let calls = fake.calls();
    let stop = calls
        .iter()
        .position(|c| c == "stop-unit ssh.service")
        .unwrap();
    let start = calls.iter().position(|c| c == "start ssh.socket").unwrap();
    assert!(stop < start, "{calls:?}");
    assert_eq!(out.events[0].1, "stopped ssh.service (sessions kept)");
    // From the stop until ssh answers, a hook's deadline cannot cut it.
    assert_eq!(
        fake.uncuttable(),
        vec!["stop-unit ssh.service", "start ssh.socket", "probe"]
    );
    assert!(!crate::deadline::critical_on_this_thread());
}

fn stale(pid: u32) -> Step {
    Step::StopStale {
        process: ProcessStamp { pid, start_time: 7 },
        exe: "/usr/sbin/sshd (deleted)".into(),
    }
}

/// Two stale listeners (separate -4 and -6 sshds): the first stops, the
/// second will not. Nothing may be left without a proof and its rescue.
#[test]
fn second_stop_failing_still_restores_ssh() {
    let fake = Fake::failing(&["stop 5353"]);
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let steps = vec![
        stale(4242),
        stale(5353),
        Step::StartUnit {
            unit: unit("ssh.socket"),
        },
        Step::VerifyBanner,
        Step::ConfigurePackage {
            package: "openssh-server".into(),
        },
        Step::VerifyBanner,
    ];
    let out = execute(&fake, &Config::default(), &snap(), &steps);
    let calls = fake.calls();
    let from = calls.iter().position(|c| c == "stop 4242").unwrap();
    assert_eq!(
        &calls[from..],
        &["stop 4242", "stop 5353", "probe", "rescue", "probe"]
    );
    assert_eq!(
        fake.uncuttable(),
        vec!["stop 4242", "stop 5353", "probe", "rescue", "probe"]
    );
    assert!(out.any_failed());
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| !ok && l.contains("stop 5353")));
    assert!(!crate::deadline::critical_on_this_thread());
}

#[test]
fn a_failed_restart_goes_on_to_the_proof_inside_the_critical_stretch() {
    let fake = Fake::failing(&["restart"]);
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let steps = vec![
        Step::RestartUnit {
            unit: unit("ssh.service"),
        },
        Step::VerifyBanner,
    ];
    let out = execute(&fake, &Config::default(), &snap(), &steps);
    assert_eq!(
        fake.uncuttable(),
        vec![
            "restart ssh.service",
            "settle ssh.service",
            "probe",
            "rescue",
            "probe"
        ]
    );
    assert!(out.any_failed());
}

#[test]
fn a_failed_configure_is_proven_inside_the_critical_stretch() {
    let fake = Fake::failing(&["configure"]);
    let steps = vec![
        Step::ConfigurePackage {
            package: "openssh-server".into(),
        },
        Step::VerifyBanner,
    ];
    let out = execute(&fake, &Config::default(), &snap(), &steps);
    assert_eq!(fake.uncuttable(), vec!["configure", "probe"]);
    assert!(out.any_failed());
}

/// A plan whose last touch of ssh is not followed by a proof (a failure
/// skipped to one that is not there) still gets one, and its rescue.
#[test]
fn a_plan_ending_unproven_after_a_stop_is_proven_at_the_end() {
    let fake = Fake::failing(&["start"]);
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let steps = vec![
        stale(4242),
        Step::StartUnit {
            unit: unit("ssh.socket"),
        },
    ];
    let out = execute(&fake, &Config::default(), &snap(), &steps);
    assert_eq!(
        fake.uncuttable(),
        vec![
            "stop 4242",
            "start ssh.socket",
            "settle ssh.socket",
            "probe",
            "rescue",
            "probe"
        ]
    );
    assert!(out.any_failed());
}

/// SIGINT (Ctrl-C in an apt run over ssh) between the stop and the start:
/// held off, the start and the proof still run, then the repair stops
/// there in one line, before the package step.
#[test]
fn a_signal_in_the_critical_stretch_waits_until_ssh_is_proven_then_stops_the_repair() {
    let fake = Fake {
        signal_at: Some(("start", "SIGINT")),
        ..Default::default()
    };
    let out = run(&fake);
    let calls = fake.calls();
    assert!(
        calls.ends_with(&[
            "stop 4242".into(),
            "start ssh.socket".into(),
            "probe".into()
        ]),
        "{calls:?}"
    );
    assert!(!calls.contains(&"configure".to_string()), "{calls:?}");
    let last = &out.events.last().unwrap().1;
    assert_eq!(
        last,
        "SIGINT received during the repair: finished restoring ssh before honouring it; not done: dpkg --configure openssh-server (and packages waiting for it)",
    );
}

#[test]
fn the_hooks_grace_follows_the_configured_timeouts() {
    let mut cfg = Config::default();
    let base = grace(&cfg, &steps());
    cfg.stop_timeout = Duration::from_secs(3600);
    cfg.banner_timeout = Duration::from_secs(1800);
    let long = grace(&cfg, &steps());
    // Stop (twice STOP_TIMEOUT) and three proofs (banner and key exchange
    // each, twice with the rescue).
    assert!(
        long >= Duration::from_secs(2 * 3600 + 3 * 4 * 1800),
        "{long:?}"
    );
    assert!(long > base);
    assert!(base >= cfg.configure_timeout * 2, "{base:?}");
}

/// The flaky e2e failure (address_family_inet6, sshd_opts): the start job
/// fails while something still held the port, and systemd's Restart=
/// brings ssh.service up a moment later. That is a start, said as such.
#[test]
fn a_start_job_failing_while_restart_brings_the_unit_up_is_reported_from_the_end_state() {
    let fake = Fake {
        fail: vec!["start"],
        settled: Some(Settled {
            active: true,
            n_restarts: Some(1),
            state: "active/running".into(),
        }),
        ..Default::default()
    };
    let out = run(&fake);
    assert!(!out.any_failed(), "{:?}", out.events);
    assert!(fake.calls().contains(&"configure".to_string()));
    assert!(
        out.events.iter().any(|(ok, l)| *ok
            && l.starts_with("started ssh.socket (its first start failed: start ssh.socket: failed; systemd's Restart= brought it up)")),
        "{:?}",
        out.events
    );
}

#[test]
fn a_failed_start_job_whose_unit_stays_down_names_its_state() {
    let fake = Fake::failing(&["start"]);
    let out = run(&fake);
    assert!(
        out.events
            .iter()
            .any(|(ok, l)| !ok && l == "ssh.socket is failed/failed: start ssh.socket: failed"),
        "{:?}",
        out.events
    );
}

/// The unit is started only once the addresses the stopped listener held
/// are free (waited for, bounded), never before.
#[test]
fn a_unit_starts_only_once_the_stopped_listeners_addresses_are_free() {
    let fake = Fake::default();
    let mut s = snap();
    s.listeners = vec![stale_listener(4242, &["0.0.0.0:22", "[::]:22"])];
    let out = execute(&fake, &Config::default(), &s, &steps());
    assert!(!out.any_failed(), "{:?}", out.events);
    let calls = fake.calls();
    let stop = calls.iter().position(|c| c == "stop 4242").unwrap();
    assert_eq!(
        calls[stop..stop + 3],
        [
            "stop 4242",
            "wait-free 0.0.0.0:22 [::]:22",
            "start ssh.socket"
        ]
    );
    // Once: the package step's restart needs no wait of its own.
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("wait-free")).count(),
        1
    );
}

/// A stale listener as the snapshot saw it.
fn stale_listener(pid: u32, addresses: &[&str]) -> crate::model::Listener {
    crate::model::Listener {
        process: ProcessStamp { pid, start_time: 7 },
        uid: 0,
        comm: "sshd".into(),
        exe: "/usr/sbin/sshd (deleted)".into(),
        exe_deleted: true,
        cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups".into(),
        cgroup: "0::/system.slice/cron.service".into(),
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        class: ListenerClass::Stale,
        unit: None,
        unit_state: None,
        why: "no unit manages it".into(),
    }
}

/// sim S1: the stale listener exited by itself after the snapshot (its
/// pid now a session's): the stop rightly refuses, but its addresses are
/// free, so ssh is down and the repair goes on to start and prove it.
#[test]
fn a_failed_first_stop_of_a_listener_already_gone_still_restores_ssh() {
    let fake = Fake::failing(&["stop 4242"]);
    let mut s = snap();
    s.listeners = vec![stale_listener(4242, &["0.0.0.0:22", "[::]:22"])];
    let _ = execute(&fake, &Config::default(), &s, &steps());
    let calls = fake.calls();
    let stop = calls.iter().position(|c| c == "stop 4242").unwrap();
    assert_eq!(
        calls[stop..],
        [
            "stop 4242",
            "wait-free 0.0.0.0:22 [::]:22",
            "wait-free 0.0.0.0:22 [::]:22",
            "start ssh.socket",
            "probe",
            "configure",
            "probe"
        ]
    );
    // Still held: the listener still serves logins; nothing else is done.
    let fake = Fake {
        fail: vec!["stop 4242"],
        still_held: vec!["0.0.0.0:22".into()],
        ..Default::default()
    };
    let _ = execute(&fake, &Config::default(), &s, &steps());
    assert_eq!(
        fake.calls().last().map(String::as_str),
        Some("wait-free 0.0.0.0:22 [::]:22")
    );
}

/// sim S3: one stale listener per family; the second stop fails. The
/// freed 0.0.0.0:22 must not stay dead because [::]:22 still serves.
#[test]
fn a_second_stop_failing_with_the_other_family_serving_brings_the_rescue_for_the_freed_address() {
    let fake = Fake::failing(&["stop 102"]);
    let v4_down = Serving {
        proof: "key exchange",
        ok: false,
        any: true,
        summary: "ssh does not answer after the repair: 127.0.0.1:22: Connection refused".into(),
        down: vec![crate::sshd::parse_listen("127.0.0.1:22").unwrap()],
    };
    *fake.answers.borrow_mut() = vec![v4_down, serving()];
    let mut s = snap();
    s.listeners = vec![
        stale_listener(101, &["0.0.0.0:22"]),
        stale_listener(102, &["[::]:22"]),
    ];
    let steps = vec![
        stale(101),
        stale(102),
        Step::StartUnit {
            unit: unit("ssh.socket"),
        },
        Step::VerifyBanner,
    ];
    let out = execute(&fake, &Config::default(), &s, &steps);
    let calls = fake.calls();
    assert_eq!(
        calls[calls.len() - 6..],
        [
            "stop 101",
            "stop 102",
            "probe",
            "wait-free 0.0.0.0:22",
            "rescue",
            "probe"
        ]
    );
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| *ok && l.contains("for 127.0.0.1:22")));
}

/// A socket-activated snapshot (ssh.socket enabled).
fn socket_snap() -> Snapshot {
    let mut s = snap();
    let unit = |name: &str| crate::model::UnitState {
        name: name.into(),
        load_state: "loaded".into(),
        active_state: "active".into(),
        unit_file_state: "enabled".into(),
        ..Default::default()
    };
    s.units = Some(crate::model::Units {
        service: unit("ssh.service"),
        socket: unit("ssh.socket"),
    });
    s
}

/// ssh.socket holds the port while nothing behind it serves: the rescue
/// could not bind it, so the socket is stopped first, inside the stretch.
#[test]
fn a_socket_holding_the_port_with_nothing_behind_it_is_stopped_before_the_rescue() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let out = execute(&fake, &Config::default(), &socket_snap(), &steps());
    let calls = fake.calls();
    assert_eq!(
        &calls[calls.len() - 4..],
        &["probe", "stop-unit ssh.socket", "rescue", "probe"]
    );
    assert!(fake.uncuttable().ends_with(&[
        "probe".to_string(),
        "stop-unit ssh.socket".to_string(),
        "rescue".to_string(),
        "probe".to_string()
    ]));
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| *ok && l.starts_with("stopped ssh.socket so that the rescue sshd")));
}

#[test]
fn a_rescue_that_does_not_serve_gives_the_port_back_to_the_socket() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![silent(), silent()];
    let _ = execute(
        &fake,
        &Config::default(),
        &socket_snap(),
        &[Step::VerifyBanner],
    );
    // The socket started again is proven again (silent here: nothing
    // more is done).
    assert_eq!(
        fake.calls()[1..],
        [
            "probe",
            "stop-unit ssh.socket",
            "rescue",
            "probe",
            "start ssh.socket",
            "probe"
        ]
    );
}

/// Where some address serves, the socket (which may be what serves it)
/// is left alone.
#[test]
fn a_partly_serving_socket_is_not_stopped_for_the_rescue() {
    let fake = Fake::default();
    let partial = Serving {
        any: true,
        ..silent()
    };
    *fake.answers.borrow_mut() = vec![partial, serving()];
    let _ = execute(
        &fake,
        &Config::default(),
        &socket_snap(),
        &[Step::VerifyBanner],
    );
    assert_eq!(fake.calls()[1..], ["probe", "rescue", "probe"]);
}

/// The retiring of a running rescue: it gives way, its addresses are
/// waited for, the socket starts.
fn retire_steps() -> Vec<Step> {
    vec![
        Step::RetireRescue {
            unit: RESCUE_UNIT.into(),
        },
        Step::StartUnit {
            unit: unit("ssh.socket"),
        },
        Step::VerifyBanner,
    ]
}

fn rescue_snap() -> Snapshot {
    let mut s = socket_snap();
    s.rescue_pid = Some(900);
    s.listeners = vec![stale_listener(900, &["0.0.0.0:22", "[::]:22"])];
    s
}

#[test]
fn a_running_rescue_gives_way_when_the_socket_can_serve() {
    let fake = Fake::default();
    let out = execute(&fake, &Config::default(), &rescue_snap(), &retire_steps());
    assert!(!out.any_failed(), "{:?}", out.events);
    assert_eq!(
        fake.uncuttable(),
        [
            "stop-unit ssh-upgrade-guard-rescue.service",
            "wait-free 0.0.0.0:22 [::]:22",
            "start ssh.socket",
            "probe"
        ]
    );
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| *ok && l.starts_with("stopped the rescue sshd")));
    assert!(!fake.calls().iter().any(|c| c.starts_with("rescue")));
}

#[test]
fn a_retired_rescue_comes_back_when_the_socket_still_does_not_serve() {
    let fake = Fake::failing(&["start ssh.socket"]);
    *fake.answers.borrow_mut() = vec![silent(), serving()];
    let out = execute(&fake, &Config::default(), &rescue_snap(), &retire_steps());
    let calls = fake.calls();
    assert_eq!(
        calls[calls.len() - 4..],
        ["probe", "stop-unit ssh.socket", "rescue", "probe"]
    );
    assert!(
        out.events
            .iter()
            .any(|(ok, l)| *ok && l.starts_with("restarted ssh-upgrade-guard-rescue.service: ")),
        "{:?}",
        out.events
    );
}

/// sim S13: the stop job of the rescue times out after the rescue
/// stopped: its addresses are free, so ssh is down and the repair goes on.
#[test]
fn a_rescue_whose_stop_failed_after_it_stopped_still_gets_ssh_back() {
    let fake = Fake::failing(&["stop-unit ssh-upgrade-guard-rescue.service"]);
    let _ = execute(&fake, &Config::default(), &rescue_snap(), &retire_steps());
    let calls = fake.calls();
    let at = calls
        .iter()
        .position(|c| c == "stop-unit ssh-upgrade-guard-rescue.service")
        .unwrap();
    assert_eq!(
        calls[at..],
        [
            "stop-unit ssh-upgrade-guard-rescue.service",
            "wait-free 0.0.0.0:22 [::]:22",
            "wait-free 0.0.0.0:22 [::]:22",
            "start ssh.socket",
            "probe"
        ]
    );
}

#[test]
fn a_rescue_that_will_not_stop_is_left_serving() {
    let fake = Fake {
        fail: vec!["stop-unit ssh-upgrade-guard-rescue.service"],
        still_held: vec!["0.0.0.0:22".into()],
        ..Default::default()
    };
    let out = execute(&fake, &Config::default(), &rescue_snap(), &retire_steps());
    assert_eq!(
        fake.calls().last().map(String::as_str),
        Some("wait-free 0.0.0.0:22 [::]:22")
    );
    assert!(out.any_failed());
}

/// sim S10: the admin turned ssh off (disable --now) with openssh-server
/// unpacked: the plan only configures the package, without a proof. No
/// closing proof, so no rescue against the admin's choice.
#[test]
fn a_package_only_plan_without_a_proof_starts_no_rescue() {
    let fake = Fake::default();
    *fake.answers.borrow_mut() = vec![silent()];
    let steps = vec![Step::ConfigurePackage {
        package: "openssh-server".into(),
    }];
    let out = execute(&fake, &Config::default(), &snap(), &steps);
    assert_eq!(fake.calls(), ["prepare", "configure"]);
    assert!(!out.any_failed(), "{:?}", out.events);
}

/// sim S8: a stopped listener's pre-auth child still holds [::]:22 when
/// the proof fails: the rescue waits (bounded) for the stopped listeners'
/// addresses, and its did: line names only the addresses it made serve.
#[test]
fn the_rescue_waits_for_the_stopped_listeners_addresses_and_names_only_what_it_serves() {
    let fake = Fake::failing(&["stop 103"]);
    let both_down = Serving {
        summary: "ssh does not answer after the repair: 127.0.0.1:22: refused; [::1]:22: silent"
            .into(),
        down: vec![
            crate::sshd::parse_listen("127.0.0.1:22").unwrap(),
            crate::sshd::parse_listen("[::1]:22").unwrap(),
        ],
        ..silent()
    };
    let v6_down = Serving {
        any: true,
        summary: "ssh does not answer after the repair: [::1]:22: refused".into(),
        down: vec![crate::sshd::parse_listen("[::1]:22").unwrap()],
        ..silent()
    };
    *fake.answers.borrow_mut() = vec![both_down, v6_down];
    let mut s = snap();
    s.listeners = vec![
        stale_listener(101, &["0.0.0.0:22"]),
        stale_listener(102, &["[::]:22"]),
    ];
    let steps = vec![
        stale(101),
        stale(102),
        stale(103),
        Step::StartUnit {
            unit: unit("ssh.service"),
        },
        Step::VerifyBanner,
    ];
    let out = execute(&fake, &Config::default(), &s, &steps);
    let calls = fake.calls();
    assert_eq!(
        calls[calls.len() - 4..],
        ["probe", "wait-free 0.0.0.0:22 [::]:22", "rescue", "probe"]
    );
    assert!(
        out.events
            .iter()
            .any(|(ok, l)| *ok && l.starts_with(
                "started a rescue sshd (ssh-upgrade-guard-rescue.service) for 127.0.0.1:22 so that"
            )),
        "{:?}",
        out.events
    );
    assert!(out
        .events
        .iter()
        .any(|(ok, l)| !ok && l.starts_with("still not serving after the rescue: ")));
}
