//! Each e2e scenario (tests/e2e/scenarios/NN-name.sh) in the model: its
//! starting machine as [`Op`]s, the runs it makes (repair or watchdog, an
//! apt run with or without the preinst's stop, dpkg without the guard) and
//! the end state its assertions check, so that the model and the booted
//! containers cannot drift apart silently. A scenario the model cannot
//! express says why ([`Entry::Inexpressible`]); a scenario file with no
//! entry fails `sim_every_e2e_scenario_has_an_entry`.
//!
//! Adding a scenario is one entry in [`table`]: `model("NN-name", topo,
//! ops, runs, End::clean()...)` or `no("NN-name", "why")`.
#![forbid(unsafe_code)]

use super::build::{Op, Topo};
use super::control::Fault;
use super::world::*;
use super::{apt_run, check_run, hook, Hook};
use crate::plan::Mode;

/// One run on the machine, in order.
#[derive(Clone, Debug)]
pub enum Go {
    /// `repair` or the watchdog, with this fault schedule.
    Repair(Vec<(usize, Fault)>),
    /// An apt run upgrading openssh-server with the guard's hooks; `between`
    /// happens after pre-invoke and before dpkg.
    Apt {
        preinst_stops: bool,
        between: Vec<Op>,
    },
    /// The same upgrade with no guard (GUARD=off, fixture_incident).
    Bare,
    /// The admin (or a fixture) changes the machine between runs.
    Then(Op),
}

/// What a scenario asserts about the end.
#[derive(Clone, Debug)]
pub struct End {
    /// ssh serves on every address (assert_banner, a key exchange).
    pub serves: bool,
    /// Units that must be active (assert_unit_active).
    pub active: Vec<&'static str>,
    /// Units that must not be.
    pub inactive: Vec<&'static str>,
    /// openssh-server's dpkg status, where the scenario asserts it.
    pub pkg: Option<&'static str>,
    /// A listener the model calls stale still runs (assert_no_stale's
    /// opposite: the guard left it alone).
    pub stale_left: bool,
    /// Every session open at the start is alive (assert_session).
    pub sessions_kept: bool,
    /// Processes that keep their pid (and start time): other units' main
    /// processes (second_sshd's sshd-mgmt.service).
    pub kept_units: Vec<&'static str>,
    /// The last run reported a FAILED line (exit 1, PROBLEM REMAINS).
    pub failed: bool,
    /// A report line of the last run contains this.
    pub says: Option<&'static str>,
}

impl End {
    /// assert_clean_socket_activated, a session kept, exit 0.
    pub fn clean() -> End {
        End {
            serves: true,
            active: vec![SOCKET],
            inactive: vec![RESCUE],
            pkg: Some("installed"),
            stale_left: false,
            sessions_kept: true,
            kept_units: vec![],
            failed: false,
            says: None,
        }
    }
    /// Classic topology: ssh.service serves.
    fn classic(mut self) -> End {
        self.active = vec![SERVICE];
        self
    }
    fn pkg(mut self, pkg: &'static str) -> End {
        self.pkg = Some(pkg);
        self
    }
    fn pkg_unasserted(mut self) -> End {
        self.pkg = None;
        self
    }
    fn failed(mut self) -> End {
        self.failed = true;
        self
    }
    fn stale_left(mut self) -> End {
        self.stale_left = true;
        self
    }
    fn rescue(mut self) -> End {
        self.active = vec![RESCUE];
        self.inactive = vec![SOCKET];
        self
    }
    fn keeps(mut self, unit: &'static str) -> End {
        self.kept_units.push(unit);
        self.active.push(unit);
        self
    }
    fn says(mut self, s: &'static str) -> End {
        self.says = Some(s);
        self
    }
}

pub enum Entry {
    Model {
        topo: Topo,
        ops: Vec<Op>,
        runs: Vec<Go>,
        end: End,
        /// What of the scenario the model leaves out, if anything.
        partly: Option<&'static str>,
        /// The model ends otherwise than the scenario asserts (a known
        /// drift, said in the entry): the test requires that it still
        /// does, so that the mark goes once model or code is fixed.
        drift: Option<&'static str>,
    },
    Inexpressible {
        why: &'static str,
    },
}

fn model(
    name: &'static str,
    topo: Topo,
    ops: Vec<Op>,
    runs: Vec<Go>,
    end: End,
) -> (&'static str, Entry) {
    (
        name,
        Entry::Model {
            topo,
            ops,
            runs,
            end,
            partly: None,
            drift: None,
        },
    )
}

/// lib/extra_sshd.sh's scenarios: an sshd on an extra port in an active
/// unit with no main process, beside the stale listener; the repair stops
/// only the stale one.
fn beside_stale(name: &'static str, unit: &'static str, port: u16) -> (&'static str, Entry) {
    model(
        name,
        Topo::Socket,
        vec![Op::SshdInUnit { unit, port }, Op::Session, stale()],
        vec![repair()],
        End::clean().keeps(unit),
    )
}

/// Like [`model`], for a scenario whose other half the model cannot show.
fn partly(
    name: &'static str,
    topo: Topo,
    ops: Vec<Op>,
    runs: Vec<Go>,
    end: End,
    left_out: &'static str,
) -> (&'static str, Entry) {
    let (n, mut e) = model(name, topo, ops, runs, end);
    if let Entry::Model { partly, .. } = &mut e {
        *partly = Some(left_out);
    }
    (n, e)
}

fn no(name: &'static str, why: &'static str) -> (&'static str, Entry) {
    (name, Entry::Inexpressible { why })
}

/// make_stale_listener: the units stopped, an sshd left by a transient unit.
fn stale() -> Op {
    Op::Stale {
        dies: Dies::OnTerm,
        works: true,
        split: false,
    }
}

fn apt() -> Go {
    Go::Apt {
        preinst_stops: false,
        between: vec![],
    }
}

fn repair() -> Go {
    Go::Repair(vec![])
}

/// Every scenario file (its name without `.sh`), in the directory's order.
pub fn table() -> Vec<(&'static str, Entry)> {
    use Topo::{Classic, Socket};
    let seed = || vec![stale(), Op::Session];
    vec![
        model(
            "00-fixture_incident",
            Socket,
            seed(),
            vec![Go::Bare],
            End {
                serves: true,
                active: vec![],
                inactive: vec![SOCKET],
                pkg: Some("half-configured"),
                stale_left: true,
                ..End::clean()
            },
        ),
        model("01-seed_incident", Socket, seed(), vec![apt()], End::clean()),
        partly(
            "02-stale_during_dpkg",
            Socket,
            vec![Op::Session],
            vec![Go::Apt {
                preinst_stops: false,
                between: vec![stale()],
            }],
            End::clean(),
            "the report's 'resolved' wording and apt's own exit code",
        ),
        model(
            "03-manual_recovery",
            Socket,
            vec![stale(), Op::Session, Op::Unpack, Op::TrySocket, Op::HalfConfigured],
            vec![apt()],
            End::clean(),
        ),
        partly(
            "04-cron_apt",
            Socket,
            seed(),
            vec![apt()],
            End::clean(),
            "cron-apt as the driver and its log",
        ),
        partly(
            "05-unattended_upgrades",
            Socket,
            seed(),
            vec![apt()],
            End::clean(),
            "unattended-upgrades' MinimalSteps (hooks run per step)",
        ),
        partly(
            "06-watchdog_inhibited",
            Socket,
            vec![Op::Session, Op::StopUnits],
            vec![repair()],
            End::clean(),
            "the inhibition while apt holds dpkg's lock (the model has no locks): only the later outage the watchdog restores",
        ),
        no(
            "07-apt_killed",
            "the inhibit marker, dpkg's locks and `inhibited` after apt is SIGKILLed: the model has no marker, locks or processes of apt",
        ),
        no(
            "08-dpkg_direct",
            "`inhibited` while dpkg -i holds its lock: the model has no locks",
        ),
        model(
            "09-bad_sshd_config",
            Socket,
            vec![stale(), Op::Session, Op::BadConfig],
            vec![repair()],
            End {
                active: vec![],
                ..End::clean().stale_left().failed()
            },
        ),
        model(
            "10-classic",
            Classic,
            seed(),
            vec![apt()],
            End {
                inactive: vec![SOCKET, RESCUE],
                ..End::clean().classic()
            },
        ),
        no(
            "11-dbus_down",
            "D-Bus stopped: the hooks' one warning line and apt's result come from commands::hooks before any plan; the model starts at the snapshot",
        ),
        no(
            "12-hostile_run_dir",
            "symlinks, directories and garbage at the marker's path: files under /run are not in the model",
        ),
        partly(
            "13-trixie",
            Socket,
            seed(),
            vec![apt()],
            End::clean(),
            "OpenSSH 10's sshd-session processes (the model's sessions are sshd forks either way)",
        ),
        no(
            "14-concurrent_repairs",
            "two guard processes serialized by the repair lock: the model runs one hook at a time",
        ),
        no(
            "15-pkg_install",
            "the guard's own package (install, hooks, timer, no test seam): not in the model",
        ),
        no("16-pkg_upgrade", "the guard's own package upgrade: not in the model"),
        no("17-pkg_remove", "the guard's own package removal: not in the model"),
        no("18-pkg_purge", "the guard's own package purge: not in the model"),
        no("19-pkg_reinstall", "the guard's own package reinstall: not in the model"),
        partly(
            "20-fleet_metrics",
            Socket,
            seed(),
            vec![apt()],
            End::clean(),
            "Ansible, node_exporter, promtool and check's exit codes: only the seed incident's repair",
        ),
        model(
            "21-no_lockout_rescue",
            Socket,
            vec![stale(), Op::Session, Op::BreakSocket],
            vec![repair()],
            End::clean()
                .rescue()
                .failed()
                .says("started a rescue sshd"),
        ),
        model(
            "22-second_sshd",
            Socket,
            vec![Op::SecondSshd, Op::Session, Op::StopUnits, stale()],
            vec![repair()],
            End::clean().keeps("sshd-mgmt.service"),
        ),
        no(
            "23-watchdog_lock_recheck",
            "the watchdog re-checking dpkg's lock under the repair lock: the model has no locks",
        ),
        model(
            "24-start_limit",
            Socket,
            vec![Op::Session, Op::Storm],
            vec![apt()],
            End::clean(),
        ),
        partly(
            "25-masked_socket",
            Socket,
            vec![
                Op::Session,
                Op::Mask {
                    socket: true,
                    now: false,
                },
            ],
            vec![apt()],
            End {
                active: vec![SOCKET],
                ..End::clean().pkg("half-configured").failed()
            },
            "the printed fix commands run afterwards",
        ),
        no(
            "26-socket_drift",
            "Port changed in sshd_config while ssh.socket keeps :22: a warning of status/check/metrics (roads::socket_drift); the repair path does nothing, and the model's ssh.socket has no generator or daemon-reload",
        ),
        model(
            "27-service_holds_port",
            Socket,
            vec![Op::Session, Op::ServiceHoldsPort],
            vec![apt()],
            End::clean(),
        ),
        no(
            "28-dpkg_prompt",
            "ucf waiting for an answer under dpkg's lock holder: the model has no maintainer-script processes or prompts",
        ),
        model(
            "29-rescue_binaries",
            Socket,
            vec![stale(), Op::Session, Op::BreakSocket],
            vec![repair(), apt()],
            End::clean()
                .rescue()
                .pkg_unasserted()
                .failed()
                .says("restarted ssh-upgrade-guard-rescue.service"),
        ),
        partly(
            "30-key_exchange",
            Socket,
            seed(),
            vec![repair()],
            End::clean(),
            "(b), a real sshd that answers the banner but completes no key exchange under ssh.socket: the model's ssh.service always completes one",
        ),
        model(
            "31-missing_host_keys",
            Socket,
            vec![Op::Session, Op::Connect, Op::NoHostKeys, Op::StopUnits, Op::TrySocket],
            vec![repair()],
            End::clean(),
        ),
        partly(
            "32-regenerated_host_keys",
            Socket,
            vec![
                Op::Stale {
                    dies: Dies::OnTerm,
                    works: false,
                    split: false,
                },
                Op::Session,
            ],
            vec![repair()],
            End::clean(),
            "which foreign key status --probe names: the model's stale listener just completes no key exchange with this host's key",
        ),
        partly(
            "40-sshd_opts",
            Classic,
            vec![Op::OtherConfig2222, stale(), Op::Session],
            vec![repair()],
            End {
                inactive: vec![SOCKET, RESCUE],
                ..End::clean().classic()
            },
            "the second half, other_config rejected (09-bad_sshd_config's case)",
        ),
        model(
            "41-address_family_inet6",
            Classic,
            vec![Op::Inet6Only, stale(), Op::Session],
            vec![repair()],
            End {
                inactive: vec![SOCKET, RESCUE],
                ..End::clean().classic()
            },
        ),
        no(
            "42-link_local_scope",
            "an IPv6 link-local ListenAddress with its scope: the model's addresses collide and reach by ip:port only, no interface scope",
        ),
        no(
            "50-frozen_bus",
            "dbus-daemon SIGSTOPped: the 5 s D-Bus connect bound and apt's logind inhibitor are below the model's UnitControl",
        ),
        model(
            "51-hung_sshd_config",
            Socket,
            vec![stale(), Op::Session, Op::HungConfig],
            vec![repair()],
            End {
                active: vec![],
                ..End::clean().stale_left().failed()
            },
        ),
        no(
            "60-guard_upgrade",
            "the old guard's hooks driving the apt run that replaces the guard: the guard's own package is not in the model",
        ),
        partly(
            "70-interrupted_repair",
            Socket,
            vec![
                Op::Stale {
                    dies: Dies::OnKill,
                    works: true,
                    split: false,
                },
                Op::Session,
            ],
            // prepare, reset-failed ssh.socket, then the stop: the signal
            // arrives while the guard waits for the listener to die.
            vec![Go::Repair(vec![(2, Fault::Signal)])],
            End::clean().says("finished restoring ssh before honouring it"),
            "the exit status 130 (the model reports, it does not exit)",
        ),
        model(
            "71-rescue_gives_way",
            Socket,
            vec![stale(), Op::Session, Op::BreakSocket],
            vec![repair(), Go::Then(Op::MendSocket), apt()],
            End::clean().says("stopped the rescue sshd"),
        ),
        beside_stale("80-rc_local_sshd", "rc-local.service", 2222),
        beside_stale("81-init_script_sshd", "ssh-second.service", 2200),
        no(
            "82-sandboxed_leftover",
            "a sandboxed ssh.service's leftover in that sandbox's mount namespace: the model has one namespace flag per process, not per-unit sandboxes",
        ),
        no(
            "83-hybrid_cgroup",
            "hybrid cgroup lines (name=systemd beside 0::): parsing below the model, which gives each process its unit directly",
        ),
        no(
            "84-python_named_sshd",
            "every model process runs /usr/sbin/sshd: a python calling itself sshd needs a process kind of its own, which the model does not have yet",
        ),
        partly(
            "90-ssh_off_by_choice",
            Classic,
            vec![Op::Disable { now: true }, stale()],
            vec![repair()],
            End {
                serves: true,
                active: vec![],
                inactive: vec![SOCKET, SERVICE, RESCUE],
                stale_left: true,
                ..End::clean()
            },
            "only the first of its three ways (disable --now, then the stale listener); mask --now and sshd_not_to_be_run are in the random run",
        ),
        no(
            "91-container_sshd_elsewhere",
            "the model's ssh addresses are 0.0.0.0:22 and [::]:22 (probed on 127.0.0.1 and ::1); the scenario's ssh.service listens on loopback only, beside Op::Foreign's 127.0.0.3:22, which needs per-address ListenAddress in the model",
        ),
        partly(
            "92-stopped_by_package",
            Classic,
            vec![
                Op::Session,
                Op::Mask {
                    socket: true,
                    now: true,
                },
            ],
            vec![Go::Apt {
                preinst_stops: true,
                between: vec![],
            }],
            End {
                inactive: vec![SOCKET, RESCUE],
                ..End::clean().classic()
            },
            "deb-systemd-helper's empty state file (the model's was_enabled is set by the topology)",
        ),
        no(
            "93-no_action_in_chroot",
            "the guard acting only on the booted system (system::host): the model is always a booted system",
        ),
        partly(
            "72-slow_postinst_deadline",
            Socket,
            vec![Op::Session],
            vec![Go::Apt {
                preinst_stops: false,
                between: vec![stale()],
            }],
            End::clean(),
            "the dependent package's slow postinst, CONFIGURE_TIMEOUT killing dpkg's process group, dpkg's lock free afterwards",
        ),
        partly(
            "73-conffile_kept",
            Socket,
            vec![Op::Session, Op::Unpack],
            vec![repair()],
            End::clean(),
            "the conffile prompt and --force-confold: the model's dpkg has no conffiles",
        ),
    ]
}

/// Runs a scenario: the end machine and the hooks of the last run.
pub fn run_scenario(topo: Topo, ops: &[Op], runs: &[Go]) -> (World, World, Vec<Hook>) {
    let start = World::built(topo, ops);
    let mut w = start.clone();
    let mut last = Vec::new();
    for g in runs {
        let hooks = match g {
            Go::Repair(f) => vec![hook(&w, Mode::Full, f)],
            Go::Apt {
                preinst_stops,
                between,
            } => apt_run(&w, *preinst_stops, between, &[], &[]),
            Go::Bare => {
                w.clock += 5;
                w.unpack();
                let _ = w.configure();
                vec![]
            }
            Go::Then(op) => {
                w.apply(*op);
                continue;
            }
        };
        if let Some(h) = hooks.last() {
            w = h.after.clone();
            w.served_units = None;
        }
        w.clock += 60;
        last = hooks;
    }
    (start, w, last)
}

/// Where the end differs from what the scenario asserts.
fn compare(start: &World, end: &World, hooks: &[Hook], want: &End) -> Vec<String> {
    let mut bad = Vec::new();
    if want.serves != end.serves_everywhere() {
        bad.push(format!(
            "serves everywhere: want {}, model serves on {:?} of {:?}",
            want.serves,
            end.serving(),
            end.targets()
        ));
    }
    for u in &want.active {
        if !end.unit(u).is_some_and(Unit::is_active) {
            bad.push(format!(
                "{u} should be active: {:?}",
                end.unit(u).map(|u| u.active)
            ));
        }
    }
    for u in &want.inactive {
        if end.unit(u).is_some_and(Unit::is_active) {
            bad.push(format!("{u} should not be active"));
        }
    }
    if let Some(pkg) = want.pkg.filter(|p| *p != end.pkg) {
        bad.push(format!("openssh-server is {}, want {pkg}", end.pkg));
    }
    let stale_left = end.procs.iter().any(|p| end.truly_stale(p));
    if stale_left != want.stale_left {
        bad.push(format!(
            "a stale listener left: {stale_left}, want {}",
            want.stale_left
        ));
    }
    let sessions_gone: Vec<u32> = start
        .procs
        .iter()
        .filter(|p| p.alive && p.kind == Kind::Session)
        .filter(|p| {
            !end.procs
                .iter()
                .any(|q| q.pid == p.pid && q.start_time == p.start_time && q.alive)
        })
        .map(|p| p.pid)
        .collect();
    if want.sessions_kept && !sessions_gone.is_empty() {
        bad.push(format!("sessions gone: {sessions_gone:?}"));
    }
    // Each kept unit's processes (its main process, or those in its
    // cgroup where it has none) are the same ones at the end.
    for u in &want.kept_units {
        let before = start.unit(u).and_then(|u| u.main_pid);
        let after = end.unit(u).and_then(|u| u.main_pid);
        if before != after {
            bad.push(format!("{u}'s main pid {before:?} became {after:?}"));
        }
        let members: Vec<&Proc> = start
            .procs
            .iter()
            .filter(|p| p.alive && p.unit.as_deref() == Some(*u))
            .collect();
        let lost: Vec<u32> = members
            .iter()
            .filter(|p| {
                !end.procs
                    .iter()
                    .any(|q| q.pid == p.pid && q.start_time == p.start_time && q.alive)
            })
            .map(|p| p.pid)
            .collect();
        if members.is_empty() || !lost.is_empty() {
            bad.push(format!(
                "{u}'s processes {:?} at the start; gone at the end: {lost:?}",
                members.iter().map(|p| p.pid).collect::<Vec<_>>()
            ));
        }
    }
    let events: Vec<&(bool, String)> = hooks.iter().flat_map(|h| &h.outcome.events).collect();
    if let Some(h) = hooks.last() {
        // PROBLEM REMAINS: a FAILED line, or a refusal.
        let failed = h.outcome.any_failed() || h.plan.refused.is_some();
        if failed != want.failed {
            bad.push(format!(
                "the last run reported a problem: {failed}, want {}: {:?}",
                want.failed, h.outcome.events
            ));
        }
    }
    if let Some(s) = want.says {
        if !events.iter().any(|(_, l)| l.contains(s)) {
            bad.push(format!("no report line says '{s}': {events:?}"));
        }
    }
    bad
}

#[test]
fn sim_each_e2e_scenario_ends_in_the_model_as_it_asserts() {
    let mut failures = Vec::new();
    for (name, e) in table() {
        let Entry::Model {
            topo,
            ops,
            runs,
            end,
            drift,
            ..
        } = e
        else {
            continue;
        };
        let (start, w, hooks) = run_scenario(topo, &ops, &runs);
        let mut bad = compare(&start, &w, &hooks, &end);
        // The properties hold on each scenario's runs too.
        if let Err(e) = check_run(&hooks) {
            bad.push(format!("property: {}", e.lines().next().unwrap_or("")));
        }
        if let Some(why) = drift {
            if bad.is_empty() {
                failures.push(format!(
                    "{name}: marked as drifting ({why}) but the model now ends as the scenario asserts: remove the mark"
                ));
            }
            continue;
        }
        if !bad.is_empty() {
            failures.push(format!(
                "{name}:\n  {}\n{}",
                bad.join("\n  "),
                super::describe(&start, &hooks)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
fn sim_every_e2e_scenario_has_an_entry() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/e2e/scenarios")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".sh"))
                .map(str::to_string)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "only {} scenarios in {}",
        files.len(),
        dir.display()
    );
    let names: Vec<&str> = table().iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !names.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "e2e scenarios with no entry in src/sim/scenarios.rs (model(...) or no(\"NN-name\", \"why\")): {missing:?}"
    );
    let gone: Vec<&&str> = names
        .iter()
        .filter(|n| !files.iter().any(|f| f == *n))
        .collect();
    assert!(
        gone.is_empty(),
        "entries for scenarios that do not exist: {gone:?}"
    );
    for (name, e) in table() {
        if let Entry::Inexpressible { why } = e {
            assert!(
                why.len() > 20,
                "{name}: say why the model cannot express it"
            );
        }
    }
}
