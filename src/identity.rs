//! Who runs a listener: systemd's answer, read from the process's cgroup.
//!
//! systemd puts every process it starts in its unit's cgroup, and the kernel
//! keeps a process (and its children) there until something moves it, so
//! `/proc/PID/cgroup` names the unit without a D-Bus round trip per process
//! (systemd's own GetUnitByPID reads the same file: cg_pid_get_unit). The
//! cgroup alone is not enough: a daemon that outlived its unit (cron.service
//! with KillMode=process, a finished transient unit) stays in that unit's
//! cgroup. So a listener counts as managed only when its unit is an active
//! service whose main process is the listener or one of its ancestors.
//!
//! Pure: the facts come from `system::claims`, the rules are tested here.
#![forbid(unsafe_code)]

use crate::model::{in_transition, is_sshd_name, ListenerClass, UnitState};

/// The unit a process belongs to, from the text of /proc/PID/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupUnit {
    /// Inside this unit: "ssh.service", "session-3.scope", "init.scope".
    Unit(String),
    /// In no unit: the root cgroup or a slice.
    NoUnit,
    /// Cannot be told; the text says why.
    Unknown(String),
}

/// Unit types systemd can put processes into (and the others, so that a
/// name is recognised as a unit name).
const UNIT_TYPES: &[&str] = &[
    "service",
    "scope",
    "socket",
    "mount",
    "swap",
    "slice",
    "target",
    "device",
    "automount",
    "timer",
    "path",
];

/// systemd's unit_name_is_valid, for names found in cgroup paths: at most
/// 255 bytes of [A-Za-z0-9:_.\\@-], a non-empty prefix and a known type.
pub fn is_unit_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
    {
        return false;
    }
    match name.rsplit_once('.') {
        Some((prefix, ty)) => !prefix.is_empty() && UNIT_TYPES.contains(&ty),
        None => false,
    }
}

/// The unit named by a cgroup path ("/system.slice/ssh.service/sub" ->
/// ssh.service), as systemd's cg_path_get_unit: slices are skipped, the
/// first other component is the unit.
fn unit_of_path(path: &str) -> CgroupUnit {
    if !path.starts_with('/') {
        return CgroupUnit::Unknown(format!("cgroup path {path:?} is not absolute"));
    }
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    if path.split('/').any(|p| p == "..") {
        // The kernel shows a cgroup outside our cgroup namespace relative
        // to it ("/../.."): its unit is not one our systemd runs.
        return CgroupUnit::Unknown("its cgroup lies outside the guard's cgroup namespace".into());
    }
    for part in parts.by_ref() {
        // cg_escape prefixes '_' to names that could clash with the
        // kernel's own files ("_cpu.service").
        let name = part.strip_prefix('_').unwrap_or(part);
        if name.ends_with(".slice") && is_unit_name(name) {
            continue;
        }
        if is_unit_name(name) {
            return CgroupUnit::Unit(name.to_string());
        }
        let shown: String = part
            .chars()
            .take(64)
            .flat_map(char::escape_default)
            .collect();
        return CgroupUnit::Unknown(format!("its cgroup {shown:?} is not a systemd unit's"));
    }
    CgroupUnit::NoUnit
}

/// Parses /proc/PID/cgroup: the unified hierarchy's line ("0::PATH"), else
/// systemd's own v1 hierarchy ("N:name=systemd:PATH").
pub fn unit_of_cgroup(text: &str) -> CgroupUnit {
    let mut v1 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            return unit_of_path(path);
        }
        if controllers == "name=systemd" {
            v1 = Some(path);
        }
    }
    match v1 {
        Some(p) => unit_of_path(p),
        None => CgroupUnit::Unknown("no systemd cgroup line in /proc/PID/cgroup".into()),
    }
}

/// What is known about a process holding a listening socket.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub pid: u32,
    pub uid: u32,
    pub comm: &'a str,
    pub exe: &'a str,
    /// Why its namespaces are not the guard's (another PID or mount
    /// namespace, or unreadable), None when they are the same.
    pub other_ns: Option<&'a str>,
    pub unit: &'a CgroupUnit,
    /// Its ancestors, parent first (a bounded walk).
    pub ancestors: &'a [u32],
}

/// systemd's answer about the listener's service unit: its state, or why it
/// could not be asked.
pub type UnitAnswer<'a> = Result<&'a UnitState, &'a str>;

/// A classification and the reason for it, in words for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub class: ListenerClass,
    pub why: String,
    /// Its unit is in transition (activating, deactivating, reloading).
    pub settling: bool,
}

fn judged(class: ListenerClass, why: String) -> Judgement {
    Judgement {
        class,
        why,
        settling: false,
    }
}

/// The service unit whose state `judge` needs, if any: only a root sshd
/// inside a service's cgroup is asked about.
pub fn service_to_ask<'a>(f: &Facts<'a>) -> Option<&'a str> {
    match f.unit {
        CgroupUnit::Unit(u)
            if f.pid != 1
                && f.uid == 0
                && is_sshd_name(f.comm, f.exe)
                && u.ends_with(".service") =>
        {
            Some(u.as_str())
        }
        _ => None,
    }
}

/// Classifies a listener. Only `Stale` may ever be signalled: a root sshd
/// in the guard's namespaces that no running service claims.
/// `unit`: systemd's answer for `service_to_ask(f)`, None when there is
/// nothing to ask.
///
/// A running service claims its main process and that process's
/// descendants in whatever namespaces they are (a sandboxed unit runs in a
/// mount namespace of its own): that is checked first. Only then does
/// another PID or mount namespace (a container sharing the host's network)
/// make a listener foreign rather than stale.
pub fn judge(f: &Facts, unit: Option<UnitAnswer>) -> Judgement {
    use ListenerClass::*;
    if f.pid == 1 {
        return judged(Systemd, "systemd's own listening socket".into());
    }
    if f.uid != 0 || !is_sshd_name(f.comm, f.exe) {
        return judged(Foreign, "not a root sshd".into());
    }
    let foreign_ns = |j: Judgement| match f.other_ns {
        Some(ns) if j.class == Stale => judged(
            Foreign,
            format!("{ns} (a container sharing the host's network?)"),
        ),
        _ => j,
    };
    let name = match f.unit {
        CgroupUnit::Unknown(why) => {
            return judged(Foreign, format!("in no unit the guard can tell ({why})"))
        }
        CgroupUnit::NoUnit => {
            return foreign_ns(judged(Stale, "in no systemd unit's cgroup".into()));
        }
        CgroupUnit::Unit(u) if !u.ends_with(".service") => {
            return foreign_ns(judged(
                Stale,
                format!("in {u}, which is not a service (started from a session or a scope)"),
            ));
        }
        CgroupUnit::Unit(u) => u,
    };
    let st = match unit {
        Some(Ok(st)) => st,
        Some(Err(e)) => {
            return judged(
                Foreign,
                format!("in {name}, which systemd could not be asked about ({e})"),
            )
        }
        None => {
            return judged(
                Foreign,
                format!("in {name}, which systemd was not asked about"),
            )
        }
    };
    if in_transition(&st.active_state) {
        return Judgement {
            class: Managed,
            why: format!("in {name}, which is {}", st.active_state),
            settling: true,
        };
    }
    let main = st.main_pid.filter(|_| st.active_state == "active");
    foreign_ns(match main {
        Some(m) if m == f.pid => judged(Managed, format!("main process of {name}")),
        Some(m) if f.ancestors.contains(&m) => judged(
            Managed,
            format!("started by pid {m}, the main process of {name}"),
        ),
        Some(m) => judged(
            Stale,
            format!(
                "left over in {name}: its main process (pid {m}) is neither it nor an ancestor"
            ),
        ),
        None => judged(
            Stale,
            format!(
                "left over in {name} ({}), which has no main process",
                st.describe()
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ListenerClass::*;

    #[test]
    fn cgroup_v2_paths_name_the_unit() {
        let u = |s: &str| unit_of_cgroup(s);
        assert_eq!(
            u("0::/system.slice/ssh.service\n"),
            CgroupUnit::Unit("ssh.service".into())
        );
        assert_eq!(
            u("0::/system.slice/system-sshd.slice/sshd@mgmt.service"),
            CgroupUnit::Unit("sshd@mgmt.service".into())
        );
        // A sub-cgroup of a unit (Delegate=yes) is still that unit's.
        assert_eq!(
            u("0::/system.slice/foo.service/payload/x"),
            CgroupUnit::Unit("foo.service".into())
        );
        assert_eq!(
            u("0::/user.slice/user-0.slice/session-3.scope"),
            CgroupUnit::Unit("session-3.scope".into())
        );
        assert_eq!(u("0::/init.scope"), CgroupUnit::Unit("init.scope".into()));
        assert_eq!(
            u("0::/system.slice/_cpu.service"),
            CgroupUnit::Unit("cpu.service".into())
        );
        assert_eq!(
            u("0::/system.slice/system-foo\\x2dbar.slice/a\\x2db.service"),
            CgroupUnit::Unit("a\\x2db.service".into())
        );
        assert_eq!(u("0::/"), CgroupUnit::NoUnit);
        assert_eq!(u("0::/system.slice"), CgroupUnit::NoUnit);
    }

    #[test]
    fn cgroup_v1_uses_systemds_named_hierarchy() {
        let text = "12:pids:/system.slice/cron.service\n\
                    3:cpu,cpuacct:/\n\
                    1:name=systemd:/system.slice/ssh.service\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("ssh.service".into()));
        // Hybrid: the unified line wins.
        let text = "1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("b.service".into()));
    }

    #[test]
    fn hostile_or_foreign_cgroup_paths_are_unknown_never_a_unit() {
        for text in [
            "",
            "garbage",
            "0::relative/ssh.service",
            "0::/../../system.slice/ssh.service",
            "0::/system.slice/../ssh.service",
            "0::/docker/0123abcd",
            "0::/system.slice/ssh service",
            "0::/system.slice/.service",
            "0::/system.slice/ssh.nothing",
            "0::/system.slice/ssh.service\u{0}",
            "2:cpu:/system.slice/ssh.service",
        ] {
            assert!(
                matches!(unit_of_cgroup(text), CgroupUnit::Unknown(_)),
                "{text:?} -> {:?}",
                unit_of_cgroup(text)
            );
        }
        let long = format!("0::/system.slice/{}.service", "a".repeat(300));
        assert!(matches!(unit_of_cgroup(&long), CgroupUnit::Unknown(_)));
    }

    fn svc(name: &str, active: &str, main: Option<u32>) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: "running".into(),
            main_pid: main,
            ..Default::default()
        }
    }

    fn facts<'a>(pid: u32, unit: &'a CgroupUnit, ancestors: &'a [u32]) -> Facts<'a> {
        Facts {
            pid,
            uid: 0,
            comm: "sshd",
            exe: "/usr/sbin/sshd",
            other_ns: None,
            unit,
            ancestors,
        }
    }

    fn unit(name: &str) -> CgroupUnit {
        CgroupUnit::Unit(name.into())
    }

    #[test]
    fn an_sshd_that_is_the_main_process_of_any_active_service_is_managed() {
        for name in [
            "ssh.service",
            "sshd-mgmt.service",
            "sshd@eth1.service",
            "ssh-upgrade-guard-rescue.service",
        ] {
            let u = unit(name);
            let f = facts(700, &u, &[1]);
            let st = svc(name, "active", Some(700));
            assert_eq!(service_to_ask(&f), Some(name));
            let j = judge(&f, Some(Ok(&st)));
            assert_eq!(j.class, Managed, "{name}: {j:?}");
            assert!(j.why.contains(name), "{j:?}");
            assert!(!j.settling);
        }
    }

    #[test]
    fn an_sshd_whose_ancestor_is_the_main_process_is_managed() {
        let u = unit("vendor-ssh.service");
        let st = svc("vendor-ssh.service", "active", Some(650));
        let j = judge(&facts(700, &u, &[690, 650, 1]), Some(Ok(&st)));
        assert_eq!(j.class, Managed, "{j:?}");
    }

    #[test]
    fn leftovers_stay_stale() {
        // cron.service runs, but the daemonized sshd was reparented to pid
        // 1: cron is not its ancestor.
        let cron = unit("cron.service");
        let st = svc("cron.service", "active", Some(400));
        assert_eq!(judge(&facts(700, &cron, &[1]), Some(Ok(&st))).class, Stale);
        // A unit whose main process is gone (KillMode=process leftovers).
        let gone = unit("ssh.service");
        for st in [
            svc("ssh.service", "inactive", None),
            svc("ssh.service", "failed", None),
            // MainPID of a unit that is not active does not count.
            svc("ssh.service", "inactive", Some(700)),
            // A finished transient unit that systemd no longer knows.
            UnitState {
                load_state: "not-found".into(),
                active_state: "inactive".into(),
                ..Default::default()
            },
        ] {
            let j = judge(&facts(700, &gone, &[1]), Some(Ok(&st)));
            assert_eq!(j.class, Stale, "{st:?}: {j:?}");
        }
        // ssh.service restarted: a new main process, the old listener left.
        let st = svc("ssh.service", "active", Some(800));
        assert_eq!(judge(&facts(700, &gone, &[1]), Some(Ok(&st))).class, Stale);
        // From a shell (a session scope), or in no unit at all.
        let scope = unit("session-4.scope");
        assert_eq!(service_to_ask(&facts(700, &scope, &[])), None);
        assert_eq!(judge(&facts(700, &scope, &[600]), None).class, Stale);
        assert_eq!(
            judge(&facts(700, &CgroupUnit::NoUnit, &[]), None).class,
            Stale
        );
    }

    #[test]
    fn a_unit_in_transition_claims_its_processes_and_asks_to_wait() {
        for state in ["activating", "deactivating", "reloading"] {
            let u = unit("ssh.service");
            let st = svc("ssh.service", state, Some(999));
            let j = judge(&facts(700, &u, &[1]), Some(Ok(&st)));
            assert_eq!(j.class, Managed, "{state}");
            assert!(j.settling, "{state}");
        }
    }

    #[test]
    fn another_namespace_or_an_unknown_unit_is_foreign() {
        // A container on the host's network: its sshd in a scope, or left
        // over in a service, is never stale.
        let ns = Some("in another PID namespace than the guard's");
        let u = unit("ssh.service");
        let st = svc("ssh.service", "active", Some(1));
        let mut f = facts(700, &u, &[]);
        f.other_ns = ns;
        assert_eq!(judge(&f, Some(Ok(&st))).class, Foreign);
        let scope = unit("docker-0123.scope");
        let mut f = facts(700, &scope, &[]);
        f.other_ns = ns;
        assert_eq!(judge(&f, None).class, Foreign);
        let mut f = facts(700, &CgroupUnit::NoUnit, &[]);
        f.other_ns = ns;
        assert_eq!(judge(&f, None).class, Foreign);
        // A sandboxed service (its own mount namespace) still manages its
        // sshd.
        let mgmt = unit("sshd-mgmt.service");
        let st = svc("sshd-mgmt.service", "active", Some(700));
        let mut f = facts(700, &mgmt, &[]);
        f.other_ns = Some("in another mount namespace than the guard's");
        assert_eq!(judge(&f, Some(Ok(&st))).class, Managed);
        let unknown = CgroupUnit::Unknown("x".into());
        assert_eq!(judge(&facts(700, &unknown, &[]), None).class, Foreign);
        // systemd could not be asked: never stale.
        assert_eq!(
            judge(&facts(700, &u, &[]), Some(Err("no bus"))).class,
            Foreign
        );
        assert_eq!(judge(&facts(700, &u, &[]), None).class, Foreign);
    }

    #[test]
    fn pid_1_is_systemd_and_non_sshd_or_non_root_is_foreign() {
        let u = unit("init.scope");
        let mut f = facts(1, &u, &[]);
        f.comm = "systemd";
        f.exe = "/usr/lib/systemd/systemd";
        assert_eq!(judge(&f, None).class, Systemd);
        let u = unit("nginx.service");
        let mut f = facts(70, &u, &[]);
        f.comm = "nginx";
        f.exe = "/usr/sbin/nginx";
        assert_eq!(service_to_ask(&f), None);
        assert_eq!(judge(&f, None).class, Foreign);
        let mut f = facts(70, &CgroupUnit::NoUnit, &[]);
        f.uid = 1000;
        assert_eq!(judge(&f, None).class, Foreign);
        // A renamed comm, but the sshd binary: still sshd.
        let mut f = facts(70, &CgroupUnit::NoUnit, &[]);
        f.comm = "x";
        f.exe = "/usr/sbin/sshd (deleted)";
        assert_eq!(judge(&f, None).class, Stale);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_cgroup_text_never_panics_and_yields_only_valid_unit_names(
            text in "[0-9a-z:=/._@\\\\ -]{0,120}(\n[0-9a-z:=/._@ -]{0,60}){0,3}",
        ) {
            if let CgroupUnit::Unit(u) = unit_of_cgroup(&text) {
                proptest::prop_assert!(is_unit_name(&u), "{u:?}");
                proptest::prop_assert!(!u.ends_with(".slice"));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = unit_of_cgroup(&String::from_utf8_lossy(&bytes));
        }
    }
}
