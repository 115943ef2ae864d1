//! What the admin reads: the status table with its verdict line, and the
//! short report a hook prints when it acted. Kept apart from debug logging.
#![forbid(unsafe_code)]

use crate::model::{ListenerClass, LockView, MarkerView, Snapshot};
use crate::plan::{LeftAlone, Plan};
use crate::text::push_line;
use std::fmt::Write;

pub const PREFIX: &str = "ssh-upgrade-guard";

/// The items' `Display` texts joined by `sep`.
pub fn join<T: std::fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// One-line verdict for a snapshot and its plan.
pub fn verdict(s: &Snapshot, p: &Plan) -> String {
    // Roads d and e: ssh may work, but something needs the admin.
    let roads = crate::roads::Roads::of(s);
    let warnings: Vec<String> = roads
        .dpkg_prompt
        .iter()
        .map(|w| w.to_string())
        .chain(roads.socket_drift.iter().map(|w| w.to_string()))
        .chain(roads.socket_not_required.iter().map(|w| w.to_string()))
        .collect();
    if p.findings.is_empty() && p.refused.is_none() {
        if s.units.is_none() {
            return format!(
                "UNKNOWN: {}",
                s.systemd_error
                    .as_deref()
                    .unwrap_or("systemd not reachable")
            );
        }
        if let Some(stale) = p
            .left_alone
            .iter()
            .find(|l| matches!(l, LeftAlone::StaleWhileOff { .. }))
        {
            return format!("WARNING: {}; {stale}", p.intent);
        }
        if !warnings.is_empty() {
            return format!("WARNING: {}", warnings.join("; "));
        }
        if !p.intent.serves() {
            return format!("OK: {}", p.intent);
        }
        return "OK: ssh is healthy".to_string();
    }
    let mut v = format!("PROBLEM: {}", join(&p.findings, "; "));
    if let Some(r) = &p.refused {
        let _ = write!(v, "; will not repair: {r}");
    }
    for w in &warnings {
        let _ = write!(v, "; {w}");
    }
    v
}

pub fn status_text(s: &Snapshot, p: &Plan) -> String {
    let mut o = String::new();
    push_line(&mut o, &verdict(s, p));
    if !s.as_root {
        push_line(&mut o, "  note        not run as root: other users' processes and dpkg's locks cannot be read (sudo for the full diagnosis)");
    }
    push_line(&mut o, &format!("  package     {}", package_text(s)));
    push_units(&mut o, s);
    push_line(&mut o, &format!("  config      {}", config_text(s)));
    let ports: Vec<String> = s.ports.iter().map(|p| p.to_string()).collect();
    push_line(
        &mut o,
        &format!(
            "  ssh ports   {} ({})",
            ports.join(" "),
            s.addresses.join(" ")
        ),
    );
    push_listeners(&mut o, s);
    push_line(
        &mut o,
        &format!(
            "  sessions    {} sshd session process(es), never touched",
            s.sessions
        ),
    );
    push_line(&mut o, &format!("  marker      {}", marker_text(&s.marker)));
    for l in &s.locks {
        push_line(
            &mut o,
            &format!("  dpkg lock   {} {}", l.path, lock_text(l)),
        );
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

/// The package line: name, version, dpkg's state.
fn package_text(s: &Snapshot) -> String {
    match (&s.package, &s.package_error) {
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
    }
}

/// The topology and one line per unit, or why systemd is unavailable.
fn push_units(o: &mut String, s: &Snapshot) {
    match &s.units {
        Some(u) => {
            push_line(o, &format!("  topology    {}", u.topology()));
            for unit in [&u.socket, &u.service] {
                let mut line = format!("{} [{}]", unit.describe(), unit.unit_file_state);
                if let Some(pid) = unit.main_pid {
                    let _ = write!(line, " main pid {pid}");
                }
                if !unit.listen.is_empty() {
                    let _ = write!(line, " listen {}", unit.listen.join(" "));
                }
                push_line(o, &format!("  {:<11} {line}", unit.name));
            }
        }
        None => {
            push_line(
                o,
                &format!(
                    "  systemd     unavailable: {}",
                    s.systemd_error.as_deref().unwrap_or("?")
                ),
            );
        }
    }
}

/// What `sshd -T` said of the configuration.
fn config_text(s: &Snapshot) -> String {
    match (&s.sshd_config.valid, &s.sshd_config.error) {
        (Some(true), _) if s.sshd_options.is_empty() => "valid (sshd -T)".to_string(),
        (Some(true), _) => format!("valid (sshd -T {})", s.sshd_options.join(" ")),
        (Some(false), e) => format!("REJECTED: {}", e.as_deref().unwrap_or("")),
        (None, e) => format!("not checked: {}", e.as_deref().unwrap_or("")),
    }
}

/// The listeners' table and the listening sockets no process was found for.
fn push_listeners(o: &mut String, s: &Snapshot) {
    if s.listeners.is_empty() {
        push_line(o, "  listeners   none");
    } else {
        push_line(
            o,
            &format!(
                "  listeners   {:<8} {:<8} {:<5} {:<28} {:<24} EXE",
                "CLASS", "PID", "UID", "ADDRESSES", "UNIT"
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
                o,
                &format!(
                    "              {:<8} {:<8} {:<5} {:<28} {:<24} {}",
                    class,
                    l.process.pid,
                    l.uid,
                    l.addresses.join(","),
                    l.unit.as_deref().unwrap_or("-"),
                    l.exe
                ),
            );
            let _ = writeln!(o, "              {:<8} {}", "", l.why);
        }
    }
    for a in &s.unowned_sockets {
        push_line(
            o,
            &format!("              ?        listening socket {a} with no process found"),
        );
    }
}

/// The inhibit marker as found.
fn marker_text(m: &MarkerView) -> String {
    match (&m.marker, m.live, &m.problem) {
        (Some(mk), true, _) => format!(
            "held by {} (pid {}) since {}: {}",
            mk.holder_comm, mk.holder_pid, mk.created, mk.reason
        ),
        (_, _, Some(p)) => p.clone(),
        _ if !m.present => "none".into(),
        _ => "present".into(),
    }
}

/// Who holds one of dpkg's locks.
fn lock_text(l: &LockView) -> String {
    match (l.holder_pid, &l.holder_comm, &l.error) {
        (Some(pid), Some(c), _) => format!("held by {c} (pid {pid})"),
        (Some(pid), None, _) => format!("held by pid {pid}"),
        (None, _, Some(e)) => format!("unknown: {e}"),
        (None, _, None) => "free".into(),
    }
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
