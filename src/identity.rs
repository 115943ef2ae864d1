//! Who runs a listener: systemd's answer, read from the process's cgroup.
//!
//! systemd puts every process it starts in its unit's cgroup, and the kernel
//! keeps a process (and its children) there until something moves it, so
//! `/proc/PID/cgroup` names the unit without a D-Bus round trip per process
//! (systemd's own GetUnitByPID reads the same file: cg_pid_get_unit).
//!
//! Ownership follows systemd's rules: an active unit owns every process in
//! its cgroup (stopping the unit would stop them), with or without a main
//! process: rc-local.service, the units systemd-sysv-generator writes for
//! init scripts, `Type=oneshot` with `RemainAfterExit=yes` and
//! `Type=forking` without `PIDFile=` are active with MainPID 0, and a scope
//! (a login session, a container runtime's scope) never has one. A listener
//! is stale only when no running unit claims it:
//! - it is in no unit's cgroup;
//! - its unit is inactive or failed (a daemon that outlived its unit:
//!   KillMode=process, a finished transient unit), or it is a session scope
//!   systemd-logind abandoned (the session ended; what is left in it is
//!   nobody's, and `loginctl terminate-session` would not stop it either);
//! - its unit has a main process that is neither it nor one of its
//!   ancestors: cron.service runs, but the sshd a cron job started and that
//!   daemonized was reparented away from cron's main process (the field's
//!   watchdog); a restarted ssh.service with an old listener left over.
//!
//! A consequence worth knowing: an sshd started by hand from a root shell
//! is owned by that shell's session scope while the session lasts, so the
//! guard leaves it alone until the admin logs out.
//!
//! Namespaces: a process in another PID namespace is a container's (on the
//! host's network), whatever unit holds it: foreign. Another mount namespace
//! alone is what a sandboxed unit gives its processes (PrivateTmp=,
//! ProtectSystem=, ...), so it is compared with the unit's own main process,
//! not with the guard's (see `judge`).
//!
//! Pure: the facts come from `system::claims`, the rules are tested here.
#![forbid(unsafe_code)]

use crate::model::{in_transition, is_sshd_exe, is_unit_name, ListenerClass, UnitState};

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

/// The lines of /proc/PID/cgroup that systemd tracks units in: the unified
/// hierarchy's ("0::PATH") and systemd's named v1 hierarchy's
/// ("N:name=systemd:PATH"). None for a hierarchy that has no line; Err when
/// a hierarchy has two lines (the kernel writes one per hierarchy: such a
/// text is not the kernel's).
fn systemd_lines(text: &str) -> Result<(Option<&str>, Option<&str>), String> {
    let (mut named, mut unified) = (None, None);
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let slot = if id == "0" && controllers.is_empty() {
            &mut unified
        } else if controllers == "name=systemd" {
            &mut named
        } else {
            continue;
        };
        if slot.replace(path).is_some() {
            return Err("two lines for one cgroup hierarchy in /proc/PID/cgroup".into());
        }
    }
    Ok((named, unified))
}

/// Parses /proc/PID/cgroup, under every hierarchy layout systemd runs:
/// - unified (cgroup v2): one "0::PATH" line;
/// - hybrid: "N:name=systemd:PATH" beside a "0::PATH" line; systemd tracks
///   units in name=systemd (cg_pid_get_path with SYSTEMD_CGROUP_CONTROLLER
///   reads it whenever the host is not fully unified);
/// - legacy (v1): name=systemd, and a "0::/" line the kernel may show for
///   every process, which must not read as "in no unit".
///
/// So name=systemd wins when the two disagree, with one exception: a
/// name=systemd that says "no unit" while the unified line names one. That
/// is a named v1 hierarchy mounted on a unified host for old containers,
/// which the host's systemd does not track (everything sits at its root
/// there); and reading "no unit" there would make ssh.service's own sshd
/// stale, the one mistake that matters. Taking the unit is the safe side.
pub fn unit_of_cgroup(text: &str) -> CgroupUnit {
    let (named, unified) = match systemd_lines(text) {
        Ok(lines) => lines,
        Err(e) => return CgroupUnit::Unknown(e),
    };
    match (named.map(unit_of_path), unified.map(unit_of_path)) {
        (Some(CgroupUnit::NoUnit), Some(u @ CgroupUnit::Unit(_))) => u,
        (Some(n), _) => n,
        (None, Some(u)) => u,
        (None, None) => CgroupUnit::Unknown("no systemd cgroup line in /proc/PID/cgroup".into()),
    }
}

/// The line of /proc/PID/cgroup that `unit_of_cgroup` read, for `status`.
pub fn systemd_cgroup_line(text: &str) -> Option<&str> {
    let (named, unified) = systemd_lines(text).ok()?;
    let chosen = match (named.map(unit_of_path), unified) {
        (Some(CgroupUnit::NoUnit), Some(u)) if matches!(unit_of_path(u), CgroupUnit::Unit(_)) => {
            unified
        }
        (Some(_), _) => named,
        (None, _) => unified,
    }?;
    text.lines().find(|l| {
        let mut f = l.splitn(3, ':');
        let (_, c, p) = (f.next(), f.next(), f.next());
        p == Some(chosen) && (c == Some("") || c == Some("name=systemd"))
    })
}

/// A process's namespaces as /proc/PID/ns shows them ("pid:[4026531836]",
/// "mnt:[4026531841]"); None where the link cannot be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: Option<String>,
    pub mnt: Option<String>,
}

/// How one namespace of a process compares with another process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Same,
    Other,
    /// Its link cannot be read (gone, or the guard is not root) while the
    /// other's can: nothing unknown is ever taken for the same.
    Unreadable,
}

fn compare(its: Option<&str>, other: Option<&str>) -> Ns {
    match (its, other) {
        (None, Some(_)) => Ns::Unreadable,
        (a, b) if a == b => Ns::Same,
        _ => Ns::Other,
    }
}

/// What is known about a process holding a listening socket.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub pid: u32,
    pub uid: u32,
    /// Its /proc/PID/exe: what makes it an sshd (`model::is_sshd_exe`).
    pub exe: &'a str,
    /// Its namespaces.
    pub ns: &'a Namespaces,
    /// The guard's own.
    pub guard_ns: &'a Namespaces,
    /// The mount namespace of its unit's main process, when systemd named
    /// one and its link could be read.
    pub main_mnt: Option<&'a str>,
    pub unit: &'a CgroupUnit,
    /// Its ancestors, parent first (a bounded walk).
    pub ancestors: &'a [u32],
}

/// systemd's answer about the listener's unit: its state, or why it could
/// not be asked.
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

/// The unit whose state `judge` needs, if any: a root sshd of the guard's
/// PID namespace inside a unit's cgroup (a service, a scope, any unit that
/// holds processes).
pub fn unit_to_ask<'a>(f: &Facts<'a>) -> Option<&'a str> {
    match f.unit {
        CgroupUnit::Unit(u)
            if f.pid != 1
                && f.uid == 0
                && is_sshd_exe(f.exe)
                && compare(f.ns.pid.as_deref(), f.guard_ns.pid.as_deref()) == Ns::Same =>
        {
            Some(u.as_str())
        }
        _ => None,
    }
}

/// A container sharing the host's network, the likeliest reason for a
/// namespace of its own.
const CONTAINER: &str = "a container sharing the host's network?";

/// Classifies a listener. Only `Stale` may ever be signalled: a root sshd
/// of the guard's PID namespace that no running unit claims.
/// `unit`: systemd's answer for `unit_to_ask(f)`, None when there is
/// nothing to ask.
///
/// Another PID namespace is a container's, whatever unit holds it: foreign.
/// A running unit claims its processes in whatever mount namespace they
/// are (a sandboxed unit runs in one of its own). Where no running unit
/// claims it, another mount namespace than the guard's decides:
/// - left over in a service's cgroup whose unit is inactive or failed: a
///   sandboxed service's leftover (nothing of the unit runs to compare
///   with; a container's processes are never in a host service's cgroup
///   and its PID namespace): stale;
/// - in an active unit's cgroup but not descended from its main process:
///   stale when it shares that main process's mount namespace (a leftover of
///   the sandbox that runs now), foreign otherwise;
/// - anywhere else (no unit, a scope): foreign, to be safe.
pub fn judge(f: &Facts, unit: Option<UnitAnswer>) -> Judgement {
    use ListenerClass::*;
    if f.pid == 1 {
        return judged(Systemd, "systemd's own listening socket".into());
    }
    if f.uid != 0 || !is_sshd_exe(f.exe) {
        return judged(Foreign, "not a root sshd".into());
    }
    match compare(f.ns.pid.as_deref(), f.guard_ns.pid.as_deref()) {
        Ns::Same => {}
        Ns::Other => {
            return judged(
                Foreign,
                format!("in another PID namespace than the guard's ({CONTAINER})"),
            )
        }
        Ns::Unreadable => return judged(Foreign, "its PID namespace cannot be read".into()),
    }
    let its_mnt = f.ns.mnt.as_deref();
    let mnt = compare(its_mnt, f.guard_ns.mnt.as_deref());
    let cautious = |why: String| match mnt {
        Ns::Same => judged(Stale, why),
        Ns::Other => judged(
            Foreign,
            format!("{why}, in another mount namespace than the guard's ({CONTAINER})"),
        ),
        Ns::Unreadable => judged(
            Foreign,
            format!("{why}; its mount namespace cannot be read"),
        ),
    };
    let name = match f.unit {
        CgroupUnit::Unknown(why) => {
            return judged(Foreign, format!("in no unit the guard can tell ({why})"))
        }
        CgroupUnit::NoUnit => return cautious("in no systemd unit's cgroup".into()),
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
    let is_service = name.ends_with(".service");
    if st.active_state != "active" {
        let why = format!("left over in {name} ({})", st.describe());
        // A sandboxed service's leftover: its unit's own mount namespace
        // went with its last process; nothing is left to compare with.
        if is_service && mnt == Ns::Other {
            return judged(
                Stale,
                format!("{why}, in the mount namespace of a sandboxed run of that service"),
            );
        }
        return cautious(why);
    }
    if name.ends_with(".scope") && st.sub_state == "abandoned" {
        return cautious(format!(
            "left over in {name}, which systemd-logind abandoned: its session ended"
        ));
    }
    match st.main_pid {
        None if is_service => judged(
            Managed,
            format!("in {name} (active, no main process): systemd owns it"),
        ),
        None => judged(
            Managed,
            format!("in {name} (active): systemd owns its processes"),
        ),
        Some(m) if m == f.pid => judged(Managed, format!("main process of {name}")),
        Some(m) if f.ancestors.contains(&m) => judged(
            Managed,
            format!("started by pid {m}, the main process of {name}"),
        ),
        Some(m) => {
            let why = format!(
                "left over in {name}: its main process (pid {m}) is neither it nor an ancestor"
            );
            match (mnt, compare(its_mnt, f.main_mnt)) {
                (Ns::Other, Ns::Same) => {
                    judged(Stale, format!("{why}, in that main process's sandbox"))
                }
                (Ns::Other, _) => judged(
                    Foreign,
                    format!(
                        "{why}, in another mount namespace than the guard's and than pid {m}'s ({CONTAINER})"
                    ),
                ),
                _ => cautious(why),
            }
        }
    }
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
        assert_eq!(
            systemd_cgroup_line(text),
            Some("1:name=systemd:/system.slice/ssh.service")
        );
    }

    #[test]
    fn hybrid_hierarchy_prefers_name_systemd() {
        // Hybrid: systemd tracks units in name=systemd; when the unified
        // line says otherwise, name=systemd is systemd's answer.
        let text = "12:memory:/system.slice/a.service\n\
                    1:name=systemd:/system.slice/a.service\n\
                    0::/system.slice/b.service\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("a.service".into()));
        assert_eq!(
            systemd_cgroup_line(text),
            Some("1:name=systemd:/system.slice/a.service")
        );
        // When they agree, either line says the same.
        let text = "1:name=systemd:/system.slice/ssh.service\n0::/system.slice/ssh.service\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("ssh.service".into()));
    }

    #[test]
    fn legacy_hierarchy_0_root_line_is_not_no_unit() {
        // Pure v1: the kernel shows "0::/" for every process.
        let text = "5:cpu,cpuacct:/system.slice/ssh.service\n\
                    1:name=systemd:/system.slice/ssh.service\n\
                    0::/\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("ssh.service".into()));
        let text = "1:name=systemd:/\n0::/\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::NoUnit);
    }

    #[test]
    fn a_named_hierarchy_systemd_does_not_track_never_hides_the_unit() {
        // A unified host with a name=systemd hierarchy mounted for old
        // containers: the host's processes sit at its root. Reading "no
        // unit" there would make ssh.service's own sshd stale.
        let text = "1:name=systemd:/\n0::/system.slice/ssh.service\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("ssh.service".into()));
        assert_eq!(
            systemd_cgroup_line(text),
            Some("0::/system.slice/ssh.service")
        );
    }

    #[test]
    fn hostile_cgroup_lines_are_unknown_or_ignored() {
        // Two lines for one hierarchy: not the kernel's text.
        for text in [
            "0::/system.slice/a.service\n0::/system.slice/b.service\n",
            "1:name=systemd:/system.slice/a.service\n2:name=systemd:/\n",
        ] {
            assert!(
                matches!(unit_of_cgroup(text), CgroupUnit::Unknown(_)),
                "{text:?}"
            );
            assert_eq!(systemd_cgroup_line(text), None);
        }
        // A hostile name=systemd path is not rescued by the unified line.
        let text = "1:name=systemd:/../../system.slice/x.service\n0::/system.slice/ssh.service\n";
        assert!(matches!(unit_of_cgroup(text), CgroupUnit::Unknown(_)));
        // Lines of other hierarchies, however odd, are not read.
        let text = "3:name=systemdx:/\n4::/\n0::/system.slice/ssh.service\n";
        assert_eq!(unit_of_cgroup(text), CgroupUnit::Unit("ssh.service".into()));
        let text = "1:name=systemd:/system.slice/ssh.service:extra\n";
        assert!(matches!(unit_of_cgroup(text), CgroupUnit::Unknown(_)));
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
            sub_state: match active {
                "active" => "running",
                "failed" => "failed",
                _ => "dead",
            }
            .into(),
            main_pid: main,
            ..Default::default()
        }
    }

    fn ns(pid: &str, mnt: &str) -> Namespaces {
        Namespaces {
            pid: Some(pid.into()),
            mnt: Some(mnt.into()),
        }
    }

    /// The guard's own namespaces in these tests.
    fn host() -> &'static Namespaces {
        static HOST: std::sync::OnceLock<Namespaces> = std::sync::OnceLock::new();
        HOST.get_or_init(|| ns("pid:[1]", "mnt:[2]"))
    }

    fn facts<'a>(pid: u32, unit: &'a CgroupUnit, ancestors: &'a [u32]) -> Facts<'a> {
        Facts {
            pid,
            uid: 0,
            exe: "/usr/sbin/sshd",
            ns: host(),
            guard_ns: host(),
            main_mnt: None,
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
            assert_eq!(unit_to_ask(&f), Some(name));
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
    fn sshd_in_rc_local_is_owned() {
        // rc-local.service: Type=forking, GuessMainPID=no: active, MainPID 0.
        let u = unit("rc-local.service");
        let f = facts(700, &u, &[]);
        assert_eq!(unit_to_ask(&f), Some("rc-local.service"));
        let st = svc("rc-local.service", "active", None);
        let j = judge(&f, Some(Ok(&st)));
        assert_eq!(j.class, Managed, "{j:?}");
        assert_eq!(
            j.why,
            "in rc-local.service (active, no main process): systemd owns it"
        );
    }

    #[test]
    fn active_units_without_a_main_process_own_their_sshd() {
        // An init script's unit from systemd-sysv-generator, a oneshot with
        // RemainAfterExit, a forking unit without PIDFile: all MainPID 0.
        for (name, sub) in [
            ("ssh-second.service", "exited"),
            ("start-sshd.service", "exited"),
            ("forking-sshd.service", "running"),
        ] {
            let u = unit(name);
            let mut st = svc(name, "active", None);
            st.sub_state = sub.into();
            let j = judge(&facts(700, &u, &[]), Some(Ok(&st)));
            assert_eq!(j.class, Managed, "{name}: {j:?}");
        }
    }

    #[test]
    fn sshd_in_an_active_scope_is_owned_until_the_session_is_abandoned() {
        let u = unit("session-4.scope");
        let f = facts(700, &u, &[600]);
        assert_eq!(unit_to_ask(&f), Some("session-4.scope"));
        let st = svc("session-4.scope", "active", None);
        let j = judge(&f, Some(Ok(&st)));
        assert_eq!(j.class, Managed, "{j:?}");
        assert!(j.why.contains("session-4.scope"), "{j:?}");
        let mut st = st;
        st.sub_state = "abandoned".into();
        let j = judge(&f, Some(Ok(&st)));
        assert_eq!(j.class, Stale, "{j:?}");
        assert!(j.why.contains("abandoned"), "{j:?}");
        for active in ["inactive", "failed"] {
            let st = svc("session-4.scope", active, None);
            assert_eq!(judge(&f, Some(Ok(&st))).class, Stale, "{active}");
        }
    }

    #[test]
    fn leftovers_stay_stale() {
        // cron.service runs, but the daemonized sshd was reparented to pid
        // 1: cron is not its ancestor.
        let cron = unit("cron.service");
        let st = svc("cron.service", "active", Some(400));
        let j = judge(&facts(700, &cron, &[1]), Some(Ok(&st)));
        assert_eq!(j.class, Stale, "{j:?}");
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
        // In no unit at all.
        assert_eq!(
            judge(&facts(700, &CgroupUnit::NoUnit, &[]), None).class,
            Stale
        );
    }

    #[test]
    fn a_unit_in_transition_claims_its_processes_and_asks_to_wait() {
        for state in ["activating", "deactivating", "reloading"] {
            for name in ["ssh.service", "session-2.scope"] {
                let u = unit(name);
                let st = svc(name, state, Some(999));
                let j = judge(&facts(700, &u, &[1]), Some(Ok(&st)));
                assert_eq!(j.class, Managed, "{state}");
                assert!(j.settling, "{state}");
            }
        }
    }

    #[test]
    fn another_pid_namespace_is_foreign_whatever_its_unit() {
        // A container on the host's network: its sshd in a scope (active:
        // the runtime's scope), or left over in a service, is never stale
        // and never owned by the host's rules.
        let theirs = ns("pid:[9]", "mnt:[9]");
        let scope = unit("docker-0123.scope");
        let mut f = facts(700, &scope, &[]);
        f.ns = &theirs;
        assert_eq!(unit_to_ask(&f), None, "nothing to ask systemd");
        let j = judge(&f, None);
        assert_eq!(j.class, Foreign, "{j:?}");
        assert!(j.why.contains("PID namespace"), "{j:?}");
        for u in [unit("ssh.service"), CgroupUnit::NoUnit] {
            let mut f = facts(700, &u, &[]);
            f.ns = &theirs;
            let st = svc("ssh.service", "inactive", None);
            assert_eq!(judge(&f, Some(Ok(&st))).class, Foreign, "{u:?}");
        }
        // Unreadable: never taken for ours.
        let unreadable = Namespaces::default();
        let mut f = facts(700, &CgroupUnit::NoUnit, &[]);
        f.ns = &unreadable;
        let j = judge(&f, None);
        assert_eq!(j.class, Foreign);
        assert!(j.why.contains("cannot be read"), "{j:?}");
    }

    #[test]
    fn sandboxed_leftover_is_stale_not_foreign() {
        // ssh.service with PrivateTmp=/ProtectSystem=: its sshd has a mount
        // namespace of its own. Stopped with KillMode=process, the listener
        // stays in the unit's cgroup, the unit inactive or failed.
        let sandbox = ns("pid:[1]", "mnt:[77]");
        let u = unit("ssh.service");
        for active in ["inactive", "failed"] {
            let mut f = facts(700, &u, &[]);
            f.ns = &sandbox;
            assert_eq!(unit_to_ask(&f), Some("ssh.service"));
            let st = svc("ssh.service", active, None);
            let j = judge(&f, Some(Ok(&st)));
            assert_eq!(j.class, Stale, "{active}: {j:?}");
            assert!(j.why.contains("sandboxed"), "{j:?}");
        }
    }

    #[test]
    fn a_sandboxed_service_still_owns_its_sshd() {
        let sandbox = ns("pid:[1]", "mnt:[77]");
        let mgmt = unit("sshd-mgmt.service");
        let st = svc("sshd-mgmt.service", "active", Some(700));
        let mut f = facts(700, &mgmt, &[]);
        f.ns = &sandbox;
        assert_eq!(judge(&f, Some(Ok(&st))).class, Managed);
        // Without a main process too (an init script with PrivateTmp).
        let st = svc("sshd-mgmt.service", "active", None);
        assert_eq!(judge(&f, Some(Ok(&st))).class, Managed);
    }

    #[test]
    fn another_mount_namespace_is_compared_with_the_units_main_process() {
        // In an active unit, not descended from its main process.
        let sandbox = ns("pid:[1]", "mnt:[77]");
        let u = unit("ssh.service");
        let st = svc("ssh.service", "active", Some(800));
        let mut f = facts(700, &u, &[]);
        f.ns = &sandbox;
        // Same sandbox as the main process: a leftover of this run.
        f.main_mnt = Some("mnt:[77]");
        let j = judge(&f, Some(Ok(&st)));
        assert_eq!(j.class, Stale, "{j:?}");
        // Neither the guard's nor the main process's: cautious.
        for main_mnt in [Some("mnt:[78]"), Some("mnt:[2]"), None] {
            f.main_mnt = main_mnt;
            let j = judge(&f, Some(Ok(&st)));
            assert_eq!(j.class, Foreign, "{main_mnt:?}: {j:?}");
            assert!(j.why.contains("mount namespace"), "{j:?}");
        }
        // The guard's mount namespace: today's rule, whatever the main's.
        f.ns = host();
        f.main_mnt = Some("mnt:[78]");
        assert_eq!(judge(&f, Some(Ok(&st))).class, Stale);
    }

    #[test]
    fn another_mount_namespace_outside_a_service_is_foreign() {
        let other = ns("pid:[1]", "mnt:[9]");
        let mut f = facts(700, &CgroupUnit::NoUnit, &[]);
        f.ns = &other;
        let j = judge(&f, None);
        assert_eq!(j.class, Foreign, "{j:?}");
        assert!(j.why.contains("mount namespace"), "{j:?}");
        // An abandoned scope or one that ended: nothing to compare with.
        let scope = unit("session-9.scope");
        let mut st = svc("session-9.scope", "active", None);
        st.sub_state = "abandoned".into();
        let mut f = facts(700, &scope, &[]);
        f.ns = &other;
        assert_eq!(judge(&f, Some(Ok(&st))).class, Foreign);
        let st = svc("session-9.scope", "inactive", None);
        assert_eq!(judge(&f, Some(Ok(&st))).class, Foreign);
        // Its mount namespace unreadable: never stale.
        let half = Namespaces {
            pid: Some("pid:[1]".into()),
            mnt: None,
        };
        let u = unit("ssh.service");
        let mut f = facts(700, &u, &[]);
        f.ns = &half;
        let st = svc("ssh.service", "inactive", None);
        assert_eq!(judge(&f, Some(Ok(&st))).class, Foreign);
    }

    #[test]
    fn an_unknown_unit_or_an_unanswered_question_is_foreign() {
        let unknown = CgroupUnit::Unknown("x".into());
        assert_eq!(judge(&facts(700, &unknown, &[]), None).class, Foreign);
        // systemd could not be asked: never stale.
        for name in ["ssh.service", "session-1.scope"] {
            let u = unit(name);
            assert_eq!(
                judge(&facts(700, &u, &[]), Some(Err("no bus"))).class,
                Foreign
            );
            assert_eq!(judge(&facts(700, &u, &[]), None).class, Foreign);
        }
    }

    #[test]
    fn pid_1_is_systemd_and_non_root_is_foreign() {
        let u = unit("init.scope");
        let mut f = facts(1, &u, &[]);
        f.exe = "/usr/lib/systemd/systemd";
        assert_eq!(unit_to_ask(&f), None);
        assert_eq!(judge(&f, None).class, Systemd);
        let u = unit("nginx.service");
        let mut f = facts(70, &u, &[]);
        f.exe = "/usr/sbin/nginx";
        assert_eq!(unit_to_ask(&f), None);
        assert_eq!(judge(&f, None).class, Foreign);
        let mut f = facts(70, &CgroupUnit::NoUnit, &[]);
        f.uid = 1000;
        assert_eq!(judge(&f, None).class, Foreign);
    }

    #[test]
    fn python_named_sshd_is_foreign() {
        // Its comm says sshd (prctl, or a script called sshd); its
        // executable is python's.
        let mut f = facts(70, &CgroupUnit::NoUnit, &[]);
        for exe in [
            "/usr/bin/python3.11",
            "/tmp/sshd.py",
            "/usr/sbin/sshd-session",
            "/usr/sbin/sshd.bak",
            "?",
            "",
        ] {
            f.exe = exe;
            let j = judge(&f, None);
            assert_eq!(j.class, Foreign, "{exe}: {j:?}");
            assert_eq!(j.why, "not a root sshd");
        }
    }

    #[test]
    fn an_sshd_binary_deleted_or_diverted_is_an_sshd() {
        for exe in [
            "/usr/sbin/sshd",
            "/usr/sbin/sshd (deleted)",
            // Debian's self-divert during the OpenSSH 9.8 split.
            "/usr/sbin/sshd.session-split",
            "/usr/sbin/sshd.session-split (deleted)",
            // dpkg's names for the file while it unpacks.
            "/usr/sbin/sshd.dpkg-new",
            "/usr/sbin/sshd.dpkg-tmp (deleted)",
            "/opt/openssh/sbin/sshd",
        ] {
            assert!(is_sshd_exe(exe), "{exe}");
            let f = Facts {
                exe,
                ..facts(70, &CgroupUnit::NoUnit, &[])
            };
            assert_eq!(judge(&f, None).class, Stale, "{exe}");
        }
        for exe in [
            "/usr/sbin/sshd (deleted) (deleted)x",
            "/usr/sbin/xsshd",
            "sshd/x",
        ] {
            assert!(!is_sshd_exe(exe), "{exe}");
        }
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
