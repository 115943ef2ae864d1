//! Which running systemd unit claims a listener: the facts from /proc (its
//! cgroup, namespaces, ancestors) and the state of its service unit from
//! systemd, judged by `identity::judge`. Used twice: when the snapshot is
//! taken, and again right before a stale listener is signalled.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::procs::{Procfs, RawListener};
use super::systemd::Systemd;
use crate::identity::{judge, service_to_ask, CgroupUnit, Facts, Judgement};
use crate::model::{Listener, ProcessStamp, UnitState};
use anyhow::{bail, Result};
use std::collections::BTreeMap;

fn facts(l: &RawListener) -> Facts<'_> {
    Facts {
        pid: l.process.pid,
        uid: l.uid,
        comm: &l.comm,
        exe: &l.exe,
        other_ns: l.other_ns.as_deref(),
        unit: &l.unit,
        ancestors: &l.ancestors,
    }
}

type Answers = BTreeMap<String, Result<UnitState, String>>;

/// systemd's state of each unit named (state and main process), all in one
/// round trip; or, for each, why systemd could not be asked.
fn ask(sd: Result<&Systemd, &str>, names: &[&str]) -> Answers {
    let mut out = Answers::new();
    if names.is_empty() {
        return out;
    }
    match sd {
        Ok(sd) => {
            for (name, st) in names.iter().zip(sd.unit_states(names, true)) {
                out.insert(name.to_string(), st.map_err(|e| format!("{e:#}")));
            }
        }
        Err(e) => {
            for name in names {
                out.insert(name.to_string(), Err(e.to_string()));
            }
        }
    }
    out
}

fn answer_for<'a>(answers: &'a Answers, f: &Facts) -> Option<Result<&'a UnitState, &'a str>> {
    service_to_ask(f).map(|name| match answers.get(name) {
        Some(Ok(st)) => Ok(st),
        Some(Err(e)) => Err(e.as_str()),
        None => Err("not asked"),
    })
}

/// Classifies every listener; one D-Bus round trip for all their service
/// units (none when no listener needs one: pid 1, non-sshd).
pub fn classify(sd: Result<&Systemd, &str>, raws: Vec<RawListener>) -> Vec<Listener> {
    let mut names: Vec<&str> = raws
        .iter()
        .filter_map(|l| service_to_ask(&facts(l)))
        .collect();
    names.sort_unstable();
    names.dedup();
    let answers = ask(sd, &names);
    raws.iter()
        .map(|l| {
            let f = facts(l);
            let answer = answer_for(&answers, &f);
            let unit_state = match &answer {
                Some(Ok(st)) => Some(st.active_state.clone()),
                _ => None,
            };
            let j = judge(&f, answer);
            Listener {
                class: j.class,
                why: j.why,
                unit: match &l.unit {
                    CgroupUnit::Unit(u) => Some(u.clone()),
                    _ => None,
                },
                unit_state,
                exe_deleted: l.exe.ends_with(" (deleted)"),
                process: l.process,
                uid: l.uid,
                comm: l.comm.clone(),
                exe: l.exe.clone(),
                cmdline: l.cmdline.clone(),
                cgroup: l.cgroup.clone(),
                addresses: l.addresses.iter().map(|a| a.to_string()).collect(),
            }
        })
        .collect()
}

/// The judgement of `pid` now, read afresh (cgroup, namespaces, ancestors,
/// its unit's state and main process), provided it still is the process
/// that was found (same start time and binary).
pub fn rejudge(
    procfs: &Procfs,
    sd: &Systemd,
    process: ProcessStamp,
    exe: &str,
) -> Result<Judgement> {
    if !procfs.still_is(process, exe) {
        bail!(
            "pid {} is no longer the process that was found (start time or binary changed)",
            process.pid
        );
    }
    let pid = process.pid;
    let Some(info) = procfs.info(pid) else {
        bail!("pid {pid} is gone");
    };
    let uid = procfs
        .uid(pid)
        .ok_or_else(|| anyhow::anyhow!("pid {pid}: cannot read its owner"))?;
    let unit = procfs.unit(pid);
    let other_ns = procfs.other_namespace(pid);
    let ancestors = procfs.ancestors(pid);
    let f = Facts {
        pid,
        uid,
        comm: &info.comm,
        exe,
        other_ns: other_ns.as_deref(),
        unit: &unit,
        ancestors: &ancestors,
    };
    let names: Vec<&str> = service_to_ask(&f).into_iter().collect();
    let answers = ask(Ok(sd), &names);
    Ok(judge(&f, answer_for(&answers, &f)))
}
