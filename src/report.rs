//! What the admin reads: the status table with its verdict line, and the
//! short report a hook prints when it acted. Kept apart from debug logging.

use crate::model::{ListenerClass, Snapshot};
use crate::plan::Plan;
use crate::text::push_line;
use std::fmt::Write;

pub const PREFIX: &str = "ssh-upgrade-guard";

/// One-line verdict for a snapshot and its plan.
pub fn verdict(s: &Snapshot, p: &Plan) -> String {
    if p.findings.is_empty() && p.refused.is_none() {
        if s.units.is_none() {
            return format!(
                "UNKNOWN: {}",
                s.systemd_error
                    .as_deref()
                    .unwrap_or("systemd not reachable")
            );
        }
        return "OK: ssh is healthy".to_string();
    }
    let mut v = format!("PROBLEM: {}", p.findings.join("; "));
    if let Some(r) = &p.refused {
        let _ = write!(v, "; will not repair: {r}");
    }
    v
}

pub fn status_text(s: &Snapshot, p: &Plan) -> String {
    let mut o = String::new();
    push_line(&mut o, &verdict(s, p));
    if !s.as_root {
        push_line(&mut o, "  note        not run as root: other users' processes and dpkg's locks cannot be read (sudo for the full diagnosis)");
    }
    let pkg = match (&s.package, &s.package_error) {
        (Some(pk), _) => {
            let mut t = format!(
                "{} {} ({})",
                pk.qualified_name(),
                pk.version.as_deref().unwrap_or("-"),
                pk.summary()
            );
            if !pk.other_instances.is_empty() {
                let _ = write!(t, "; also {}", pk.other_instances.join(", "));
            }
            t
        }
        (None, Some(e)) => format!("unknown: {e}"),
        _ => "unknown".into(),
    };
    push_line(&mut o, &format!("  package     {pkg}"));
    match &s.units {
        Some(u) => {
            push_line(&mut o, &format!("  topology    {}", u.topology()));
            for unit in [&u.socket, &u.service] {
                let mut line = format!("{} [{}]", unit.describe(), unit.unit_file_state);
                if let Some(pid) = unit.main_pid {
                    let _ = write!(line, " main pid {pid}");
                }
                if !unit.listen.is_empty() {
                    let _ = write!(line, " listen {}", unit.listen.join(" "));
                }
                push_line(&mut o, &format!("  {:<11} {line}", unit.name));
            }
        }
        None => {
            push_line(
                &mut o,
                &format!(
                    "  systemd     unavailable: {}",
                    s.systemd_error.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    let cfg = match (&s.sshd_config.valid, &s.sshd_config.error) {
        (Some(true), _) if s.sshd_options.is_empty() => "valid (sshd -T)".to_string(),
        (Some(true), _) => format!("valid (sshd -T {})", s.sshd_options.join(" ")),
        (Some(false), e) => format!("REJECTED: {}", e.as_deref().unwrap_or("")),
        (None, e) => format!("not checked: {}", e.as_deref().unwrap_or("")),
    };
    push_line(&mut o, &format!("  config      {cfg}"));
    let ports: Vec<String> = s.ports.iter().map(|p| p.to_string()).collect();
    push_line(
        &mut o,
        &format!(
            "  ssh ports   {} ({})",
            ports.join(" "),
            s.addresses.join(" ")
        ),
    );
    if s.listeners.is_empty() {
        push_line(&mut o, "  listeners   none");
    } else {
        push_line(
            &mut o,
            &format!(
                "  listeners   {:<8} {:<8} {:<5} {:<28} EXE",
                "CLASS", "PID", "UID", "ADDRESSES"
            ),
        );
        for l in &s.listeners {
            let class = match l.class {
                ListenerClass::Systemd => "systemd",
                ListenerClass::Managed => "managed",
                ListenerClass::Stale => "STALE",
                ListenerClass::Foreign => "foreign",
            };
            push_line(
                &mut o,
                &format!(
                    "              {:<8} {:<8} {:<5} {:<28} {}",
                    class,
                    l.pid,
                    l.uid,
                    l.addresses.join(","),
                    l.exe
                ),
            );
        }
    }
    for a in &s.unowned_sockets {
        push_line(
            &mut o,
            &format!("              ?        listening socket {a} with no process found"),
        );
    }
    push_line(
        &mut o,
        &format!(
            "  sessions    {} sshd session process(es), never touched",
            s.sessions
        ),
    );
    let m = &s.marker;
    let marker = match (&m.marker, m.live, &m.problem) {
        (Some(mk), true, _) => format!(
            "held by {} (pid {}) since {}: {}",
            mk.holder_comm, mk.holder_pid, mk.created, mk.reason
        ),
        (_, _, Some(p)) => p.clone(),
        _ if !m.present => "none".into(),
        _ => "present".into(),
    };
    push_line(&mut o, &format!("  marker      {marker}"));
    for l in &s.locks {
        let who = match (l.holder_pid, &l.holder_comm, &l.error) {
            (Some(pid), Some(c), _) => format!("held by {c} (pid {pid})"),
            (Some(pid), None, _) => format!("held by pid {pid}"),
            (None, _, Some(e)) => format!("unknown: {e}"),
            (None, _, None) => "free".into(),
        };
        push_line(&mut o, &format!("  dpkg lock   {} {who}", l.path));
    }
    for w in &s.warnings {
        push_line(&mut o, &format!("  warning     {w}"));
    }
    if !p.steps.is_empty() {
        push_line(&mut o, "Repair plan ('ssh-upgrade-guard repair' would do):");
        for (i, st) in p.steps.iter().enumerate() {
            push_line(&mut o, &format!("  {}. {st}", i + 1));
        }
    }
    o
}

pub fn plan_text(p: &Plan) -> String {
    let mut o = String::new();
    for f in &p.findings {
        push_line(&mut o, &format!("found: {f}"));
    }
    for l in &p.left_alone {
        push_line(&mut o, &format!("left alone: {l}"));
    }
    if let Some(r) = &p.refused {
        push_line(&mut o, &format!("refused: {r}"));
    }
    if p.steps.is_empty() {
        push_line(&mut o, "plan: nothing to do");
    }
    for (i, st) in p.steps.iter().enumerate() {
        push_line(&mut o, &format!("step {}: {st}", i + 1));
    }
    o
}

/// Where a repair report appears, which decides its closing line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    /// pre-invoke: the package is left to the dpkg run that follows.
    BeforeDpkg,
    /// post-invoke: apt's output above may hold dpkg's error.
    AfterDpkg,
    /// repair, watchdog.
    Standalone,
}

/// The report a hook, `repair` or the watchdog prints after acting, and
/// whether ssh is healthy now. `events`: what was done (true) or failed
/// (false); `unrelated`: other packages dpkg left not fully installed,
/// named apart: they are not ssh's problem and do not make a repair that
/// worked a failure. `after_plan`: the plan for the state afterwards.
/// Every line is one line: control characters in names are escaped.
pub fn repair_report(
    plan: &Plan,
    events: &[(bool, String)],
    unrelated: &[String],
    after: &Snapshot,
    after_plan: &Plan,
    context: Where,
    package: &str,
) -> (String, bool) {
    let failures: Vec<&str> = events
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, l)| l.as_str())
        .collect();
    let healthy =
        after_plan.steps.is_empty() && after_plan.refused.is_none() && failures.is_empty();
    let mut text = String::new();
    for f in &plan.findings {
        push_line(&mut text, &format!("found: {f}"));
    }
    for (ok, line) in events {
        let kind = if *ok { "did" } else { "FAILED" };
        push_line(&mut text, &format!("{kind}: {line}"));
    }
    for l in &plan.left_alone {
        push_line(&mut text, &format!("left alone: {l}"));
    }
    if !unrelated.is_empty() {
        push_line(
            &mut text,
            &format!(
                "left alone, not related to ssh: {} not fully installed; run 'apt-get install -f' or 'dpkg --configure -a' for those",
                unrelated.join(", ")
            ),
        );
    }
    push_line(&mut text, &format!("now: {}", final_state(after)));
    let pkg_incomplete = after.package.as_ref().is_some_and(|p| p.is_incomplete());
    let was_incomplete = plan
        .findings
        .iter()
        .any(|f| f.contains("not fully installed"));
    match (healthy, context) {
        (true, Where::BeforeDpkg) if pkg_incomplete => push_line(
            &mut text,
            &format!("ssh is healthy; the dpkg run that follows can now configure {package}."),
        ),
        (true, Where::AfterDpkg) if was_incomplete => push_line(
            &mut text,
            &format!(
                "the dpkg error above is resolved: {package} is now fully installed and ssh answers."
            ),
        ),
        (true, _) => push_line(&mut text, "ssh is healthy."),
        (false, _) => {
            let mut left: Vec<String> = after_plan.findings.clone();
            if let Some(r) = &after_plan.refused {
                left.push(r.clone());
            }
            // Never an empty list: what failed is what remains.
            if left.is_empty() {
                left.extend(failures.iter().map(|f| f.to_string()));
            }
            push_line(&mut text, &format!("PROBLEM REMAINS: {}", left.join("; ")));
        }
    }
    (text, healthy)
}

/// One line describing the final state after a repair.
pub fn final_state(s: &Snapshot) -> String {
    let mut parts = Vec::new();
    if let Some(pk) = &s.package {
        parts.push(format!("{} {}", pk.name, pk.summary()));
    }
    if let Some(u) = &s.units {
        parts.push(format!("{} {}", u.socket.name, u.socket.describe()));
        parts.push(format!("{} {}", u.service.name, u.service.describe()));
    }
    let stale = s
        .listeners
        .iter()
        .filter(|l| l.class == ListenerClass::Stale)
        .count();
    parts.push(format!("{stale} stale listener(s)"));
    parts.push(format!("{} session process(es) untouched", s.sessions));
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpkg::PackageState;

    fn installed() -> Snapshot {
        Snapshot {
            package: Some(PackageState {
                name: "openssh-server".into(),
                want: "install".into(),
                eflag: "ok".into(),
                status: "installed".into(),
                version: None,
                architecture: None,
                other_instances: vec![],
                depends: vec![],
            }),
            ..Default::default()
        }
    }

    fn found_incomplete() -> Plan {
        Plan {
            findings: vec![
                "openssh-server is not fully installed (install ok half-configured)".into(),
            ],
            ..Default::default()
        }
    }

    /// An unrelated broken package (dpkg left it half-configured) beside a
    /// successful ssh repair: the repair is reported as the success it is,
    /// and the other package is named apart.
    #[test]
    fn a_successful_ssh_repair_is_reported_as_such_beside_an_unrelated_broken_package() {
        let events = vec![(
            true,
            "configured openssh-server (dpkg --configure)".to_string(),
        )];
        let unrelated = vec!["e2e-broken (half-configured)".to_string()];
        let (text, healthy) = repair_report(
            &found_incomplete(),
            &events,
            &unrelated,
            &installed(),
            &Plan::default(),
            Where::AfterDpkg,
            "openssh-server",
        );
        assert!(healthy, "{text}");
        assert!(!text.contains("PROBLEM REMAINS"), "{text}");
        assert!(text.contains("the dpkg error above is resolved"), "{text}");
        assert!(
            text.contains(
                "left alone, not related to ssh: e2e-broken (half-configured) not fully installed"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_failed_step_is_what_remains_never_an_empty_list() {
        let events = vec![(false, "systemctl start ssh.socket: job failed".to_string())];
        let (text, healthy) = repair_report(
            &Plan::default(),
            &events,
            &[],
            &installed(),
            &Plan::default(),
            Where::Standalone,
            "openssh-server",
        );
        assert!(!healthy);
        assert!(
            text.contains("PROBLEM REMAINS: systemctl start ssh.socket: job failed\n"),
            "{text}"
        );
    }
}
