//! Golden tests: what the admin and monitoring read (`status --json`, the
//! status table, `repair --dry-run`, the hooks' repair report, `check`'s
//! line) for a fixed set of snapshots, pinned byte for byte in
//! tests/golden/. A refactoring must leave these files unchanged; a
//! deliberate wording change regenerates them with
//! `GOLDEN_UPDATE=1 cargo test golden` and shows up in the diff.
#![allow(clippy::disallowed_methods)] // test-only: reads the environment, writes the golden files
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use super::diagnose::{repair_report, Where};
use super::status::{check_line, status_json, status_text};
use crate::config::Config;
use crate::dpkg::PackageState;
use crate::marker::Marker;
use crate::model::*;
use crate::plan::Finding;
use crate::plan::Mode;
use crate::plan::{decide, Plan};
use crate::system::kex::Serving;
use crate::{repair, report};

fn unit(name: &str, active: &str, file: &str, result: &str) -> UnitState {
    UnitState {
        name: name.into(),
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: match active {
            "active" if name.ends_with(".socket") => "listening".into(),
            "active" => "running".into(),
            "failed" => "failed".into(),
            _ => "dead".into(),
        },
        result: result.into(),
        unit_file_state: file.into(),
        main_pid: None,
        listen: if name.ends_with(".socket") {
            vec!["[::]:22".into()]
        } else {
            vec![]
        },
        bind_ipv6_only: String::new(),
        n_restarts: None,
        requires: None,
        condition_result: None,
    }
}

/// A listener as system::claims classifies it: pid 1 in init.scope, the
/// `managed` pids as ssh.service's main process, any other in cron.service
/// (whose main process, cron, is not its ancestor).
fn listener(pid: u32, comm: &str, exe: &str, uid: u32, managed: &[u32]) -> Listener {
    use crate::identity::{judge, unit_to_ask, CgroupUnit, Facts, Namespaces};
    let (name, main) = match pid {
        1 => ("init.scope", None),
        p if managed.contains(&p) => ("ssh.service", Some(p)),
        _ => ("cron.service", Some(400)),
    };
    let st = UnitState {
        name: name.into(),
        active_state: "active".into(),
        main_pid: main,
        ..Default::default()
    };
    let cg = CgroupUnit::Unit(name.into());
    let ns = Namespaces::default();
    let f = Facts {
        pid,
        uid,
        exe,
        ns: &ns,
        guard_ns: &ns,
        main_mnt: None,
        unit: &cg,
        ancestors: &[],
    };
    let asked = unit_to_ask(&f).is_some();
    let j = judge(&f, asked.then_some(Ok(&st)));
    Listener {
        process: ProcessStamp {
            pid,
            start_time: 7000 + u64::from(pid),
        },
        uid,
        comm: comm.into(),
        exe: exe.into(),
        exe_deleted: exe.ends_with(" (deleted)"),
        cmdline: format!("{comm}: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"),
        cgroup: format!("0::/system.slice/{name}"),
        addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
        class: j.class,
        unit: Some(name.into()),
        unit_state: asked.then(|| "active".into()),
        why: j.why,
    }
}

fn pkg(status: &str) -> PackageState {
    PackageState {
        name: "openssh-server".into(),
        want: "install".into(),
        eflag: "ok".into(),
        status: status.into(),
        version: Some("1:9.6p1-3ubuntu13.5".into()),
        architecture: None,
        other_instances: vec![],
        depends: vec![],
    }
}

fn locks_free() -> Vec<LockView> {
    ["lock-frontend", "lock"]
        .iter()
        .map(|n| LockView {
            path: format!("/var/lib/dpkg/{n}"),
            holder_pid: None,
            holder_comm: None,
            error: None,
        })
        .collect()
}

fn healthy_socket() -> Snapshot {
    Snapshot {
        package: Some(pkg("installed")),
        package_error: None,
        ports: vec![22],
        addresses: vec!["[::]:22".into(), "0.0.0.0:22".into()],
        sshd_config: ConfigCheck {
            valid: Some(true),
            error: None,
        },
        sshd_options: vec![],
        units: Some(Units {
            service: unit("ssh.service", "inactive", "disabled", "success"),
            socket: unit("ssh.socket", "active", "enabled", "success"),
        }),
        systemd_error: None,
        topology: Some(Topology::SocketActivated),
        listeners: vec![listener(1, "systemd", "/usr/lib/systemd/systemd", 0, &[])],
        unowned_sockets: vec![],
        as_root: true,
        sessions: 2,
        marker: MarkerView {
            path: "/run/ssh-upgrade-guard/inhibit".into(),
            ..Default::default()
        },
        locks: locks_free(),
        warnings: vec![],
        packaging_records: Default::default(),
        sshd_listen: vec![],
        listening: vec![],
        socket_generator: false,
        dpkg_prompt: None,
        rescue_pid: None,
        intent: Default::default(),
    }
}

fn healthy_classic() -> Snapshot {
    let mut svc = unit("ssh.service", "active", "enabled", "success");
    svc.main_pid = Some(500);
    let mut sock = unit("ssh.socket", "inactive", "disabled", "success");
    sock.listen.clear();
    Snapshot {
        units: Some(Units {
            service: svc,
            socket: sock,
        }),
        topology: Some(Topology::Service),
        listeners: vec![listener(500, "sshd", "/usr/sbin/sshd", 0, &[500])],
        ..healthy_socket()
    }
}

/// The incident: ssh.socket failed, a stale sshd from the old package holds
/// the port, openssh-server half-configured, apt still running.
fn incident() -> Snapshot {
    let mut s = healthy_socket();
    let u = s.units.as_mut().unwrap();
    u.socket = unit("ssh.socket", "failed", "enabled", "resources");
    u.service = unit("ssh.service", "failed", "disabled", "exit-code");
    s.package = Some(pkg("half-configured"));
    s.listeners = vec![listener(4242, "sshd", "/usr/sbin/sshd (deleted)", 0, &[])];
    s.marker = MarkerView {
        path: "/run/ssh-upgrade-guard/inhibit".into(),
        present: true,
        live: true,
        marker: Some(Marker {
            holder_pid: 900,
            holder_start_time: 12345,
            holder_comm: "apt-get".into(),
            boot_id: "0d3c6a5e-1111-2222-3333-444455556666".into(),
            created: 1_764_370_000,
            reason: "a package manager is running dpkg (DPkg::Pre-Invoke)".into(),
            served_units: None,
        }),
        problem: None,
    };
    s.locks[0].holder_pid = Some(900);
    s.locks[0].holder_comm = Some("apt-get".into());
    s.locks[1].holder_pid = Some(0);
    s.locks[1].holder_comm = Some("unknown".into());
    s.warnings = vec!["cannot read /proc/77/fd: Permission denied".into()];
    s
}

/// Every road that ends in a refusal, and the other findings.
fn cases() -> Vec<(&'static str, Snapshot)> {
    let mut v = vec![
        ("healthy socket-activated", healthy_socket()),
        ("healthy classic", healthy_classic()),
        ("incident", incident()),
    ];
    let mut s = incident();
    s.sshd_config = ConfigCheck {
        valid: Some(false),
        error: Some("/etc/ssh/sshd_config line 3: Bad configuration option: Bogus".into()),
    };
    v.push(("sshd rejects its configuration", s));
    let mut s = incident();
    s.sshd_config = ConfigCheck {
        valid: None,
        error: Some("cannot run /usr/sbin/sshd -T: No such file or directory".into()),
    };
    v.push(("sshd -T did not run", s));
    let mut s = incident();
    s.sshd_config = ConfigCheck {
        valid: None,
        error: None,
    };
    v.push(("sshd -T did not run, no message", s));
    let mut s = incident();
    s.sshd_config.error = Some("sshd -T printed no port and no listenaddress".into());
    v.push(("sshd -T output not understood", s));
    let mut s = incident();
    s.listeners
        .push(listener(999, "nc", "/usr/bin/nc.openbsd", 0, &[]));
    s.listeners
        .push(listener(998, "sshd", "/usr/sbin/sshd", 1000, &[]));
    v.push(("foreign process on the port", s));
    let mut s = healthy_socket();
    s.units.as_mut().unwrap().socket = unit("ssh.socket", "inactive", "enabled", "success");
    s.listeners.clear();
    s.unowned_sockets = vec!["0.0.0.0:22".into(), "[::]:22".into()];
    s.as_root = false;
    s.locks = vec![LockView {
        path: "/var/lib/dpkg/lock-frontend".into(),
        holder_pid: None,
        holder_comm: None,
        error: Some("cannot open /var/lib/dpkg/lock-frontend: EACCES: Permission denied".into()),
    }];
    v.push(("unseen holder, not root", s));
    let mut s = incident();
    s.unowned_sockets = vec!["[::]:22".into()];
    v.push(("unseen holder beside a stale listener, as root", s));
    let mut s = incident();
    s.units = None;
    s.topology = None;
    s.systemd_error =
        Some("cannot reach systemd over the system D-Bus: /var/run/dbus/system_bus_socket: No such file or directory (os error 2)".into());
    v.push(("no systemd", s));
    let mut s = healthy_socket();
    s.units = None;
    s.topology = None;
    s.listeners.clear();
    s.systemd_error = None;
    s.package = None;
    s.package_error =
        Some("cannot read /var/lib/dpkg/status: No such file or directory (os error 2)".into());
    s.marker.present = true;
    s.marker.problem = Some("/run/ssh-upgrade-guard/inhibit is a symlink (not followed)".into());
    v.push(("nothing known", s));
    let mut s = healthy_classic();
    s.listeners = vec![listener(500, "sshd", "/usr/sbin/sshd (deleted)", 0, &[500])];
    v.push(("managed sshd runs the replaced binary", s));
    let mut s = healthy_classic();
    s.units.as_mut().unwrap().service = unit("ssh.service", "inactive", "enabled", "success");
    s.listeners.clear();
    s.sessions = 0;
    v.push(("classic service not running", s));
    let mut s = healthy_classic();
    s.units.as_mut().unwrap().service = unit("ssh.service", "failed", "enabled", "");
    s.listeners = vec![listener(4243, "sshd", "/usr/sbin/sshd", 0, &[])];
    s.marker.present = true;
    s.marker.problem = Some(
        "stale marker /run/ssh-upgrade-guard/inhibit: its holder apt-get (pid 900) is gone".into(),
    );
    v.push(("classic stale listener, failed service without result", s));
    let mut s = healthy_socket();
    s.package = Some(PackageState {
        eflag: "reinstreq".into(),
        ..pkg("half-installed")
    });
    v.push(("package needs reinstalling", s));
    let mut s = healthy_socket();
    s.units.as_mut().unwrap().service = unit("ssh.service", "failed", "enabled", "exit-code");
    s.sshd_config = ConfigCheck {
        valid: Some(false),
        error: Some("sshd: no hostkeys available -- exiting.".into()),
    };
    v.push(("sshd has no host keys", s));
    v
}

/// `status --probe`/`check --probe` on a healthy host: the key exchange
/// proven, and one where ssh answers but completes none.
fn probed() -> Vec<(&'static str, Snapshot, Plan, Serving)> {
    let s = healthy_socket();
    let plan = plan_of(&s, Mode::Full);
    let ok = Serving {
        proof: "key exchange",
        ok: true,
        any: true,
        summary: "ssh completed a key exchange with this host's ed25519 key (SHA256:mWmmFdDj4Rn3Bt0DDYiG1hT3dOVmVvEyCBoRy2Ln4oI) on 127.0.0.1:22, [::1]:22".into(),
        down: Vec::new(),
    };
    let mut bad_plan = plan.clone();
    let bad = Serving {
        proof: "key exchange",
        ok: false,
        any: false,
        summary: "ssh answers on 127.0.0.1:22 but completes no key exchange (Unable to negotiate with 127.0.0.1 port 22: no matching host key type found. Their offer: ssh-rsa)".into(),
        down: Vec::new(),
    };
    bad_plan.findings.push(Finding::NotServing {
        why: bad.summary.clone(),
    });
    vec![
        ("probe: ssh serves", s.clone(), plan, ok),
        ("probe: no key exchange", s, bad_plan, bad),
    ]
}

fn plan_of(s: &Snapshot, mode: Mode) -> Plan {
    decide(s, &Config::default(), mode)
}

fn check_of(s: &Snapshot, plan: &Plan, probe: Option<&Serving>) -> String {
    let ctx = super::Ctx {
        roots: crate::system::Roots::for_test(std::path::Path::new("/nonexistent")),
        cfg: Config::default(),
    };
    check_line(&ctx, s, plan, probe).1
}

fn compare(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("GOLDEN_UPDATE").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (GOLDEN_UPDATE=1 writes it)", path.display()));
    if golden != actual {
        let line = golden
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(golden.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from this build's output, first at line {}:\n golden: {:?}\n actual: {:?}",
            path.display(),
            line + 1,
            golden.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn golden_status_json_is_unchanged() {
    let mut out = String::new();
    for (name, s) in cases() {
        let plan = plan_of(&s, Mode::Full);
        out.push_str(&format!("=== {name}\n"));
        out.push_str(&status_json(&s, &plan, None).unwrap());
        out.push('\n');
    }
    for (name, s, plan, probe) in probed() {
        out.push_str(&format!("=== {name}\n"));
        out.push_str(&status_json(&s, &plan, Some(&probe)).unwrap());
        out.push('\n');
    }
    compare("status.json.txt", &out);
}

#[test]
fn golden_status_text_dry_run_and_check_are_unchanged() {
    let mut out = String::new();
    for (name, s) in cases() {
        let plan = plan_of(&s, Mode::Full);
        out.push_str(&format!("=== {name}: status\n"));
        out.push_str(&report::status_text(&s, &plan));
        out.push_str(&format!("=== {name}: repair --dry-run\n"));
        out.push_str(&report::plan_text(&plan));
        out.push_str(&format!(
            "=== {name}: check\n{}\n",
            check_of(&s, &plan, None)
        ));
        let pre = plan_of(&s, Mode::Preflight);
        out.push_str(&format!("=== {name}: preflight plan\n"));
        out.push_str(&report::plan_text(&pre));
        if let Some(r) = &plan.refused {
            // post-invoke's and the watchdog's one line when refused.
            out.push_str(&format!(
                "=== {name}: refused line\n{}; {r}\n",
                report::join(&plan.findings, "; ")
            ));
        }
    }
    for (name, s, plan, probe) in probed() {
        out.push_str(&format!("=== {name}: status --probe\n"));
        out.push_str(&status_text(&s, &plan, Some(&probe)));
        out.push_str(&format!(
            "=== {name}: check --probe\n{}\n",
            check_of(&s, &plan, Some(&probe))
        ));
    }
    compare("status.txt", &out);
}

#[test]
fn golden_repair_reports_are_unchanged() {
    let cfg = Config::default();
    let before = incident();
    let plan = plan_of(&before, Mode::Full);
    let ok = repair::Outcome {
        events: vec![
            (true, "reset the failed state of ssh.service".into()),
            (
                true,
                "stopped stale sshd listener pid 4242 (/usr/sbin/sshd (deleted)) with SIGTERM"
                    .into(),
            ),
            (true, "started ssh.socket".into()),
            (
                true,
                "ssh answers with an SSH-2.0 banner on [::1]:22, 127.0.0.1:22".into(),
            ),
        ],
        unrelated: vec![],
    };
    let failed = repair::Outcome {
        events: vec![
            (true, "started ssh.socket".into()),
            (
                false,
                "ssh does not answer after the repair: [::1]:22: connection refused".into(),
            ),
        ],
        unrelated: vec![],
    };
    let mut fixed = healthy_socket();
    fixed.sessions = 3;
    let mut pkg_left = fixed.clone();
    pkg_left.package = Some(pkg("half-configured"));
    let still_broken = incident();
    let mut out = String::new();
    for (oname, outcome) in [("ok", &ok), ("failed step", &failed)] {
        for (aname, after) in [
            ("fixed", &fixed),
            ("package left to dpkg", &pkg_left),
            ("still broken", &still_broken),
        ] {
            for (wname, w) in [
                ("pre-invoke", Where::BeforeDpkg),
                ("post-invoke", Where::AfterDpkg),
                ("repair", Where::Standalone),
            ] {
                let (text, healthy) = repair_report(&plan, outcome, after, &cfg, w);
                out.push_str(&format!(
                    "=== outcome {oname}, after {aname}, {wname}: healthy {healthy}\n{text}"
                ));
            }
        }
    }
    compare("repair-report.txt", &out);
}
