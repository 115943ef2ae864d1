//! Which running systemd unit claims a listener: the facts from /proc (its
//! cgroup, namespaces, ancestors, and the mount namespace of its unit's main
//! process) and the state of its unit from systemd, judged by
//! `identity::judge`. Used twice: when the snapshot is taken, and again
//! right before a stale listener is signalled.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::procs::{Procfs, RawListener};
use super::systemd::Systemd;
use crate::identity::{judge, unit_to_ask, CgroupUnit, Facts, Judgement, Namespaces};
use crate::model::{Listener, ProcessStamp, UnitState};
use anyhow::{bail, Result};
use std::collections::BTreeMap;

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
    unit_to_ask(f).map(|name| match answers.get(name) {
        Some(Ok(st)) => Ok(st),
        Some(Err(e)) => Err(e.as_str()),
        None => Err("not asked"),
    })
}

/// What one process is, as read from /proc, ready to be judged.
struct Read<'a> {
    pid: u32,
    uid: u32,
    exe: &'a str,
    ns: &'a Namespaces,
    unit: &'a CgroupUnit,
    ancestors: &'a [u32],
}

impl<'a> Read<'a> {
    fn facts(&self, guard_ns: &'a Namespaces, main_mnt: Option<&'a str>) -> Facts<'a> {
        Facts {
            pid: self.pid,
            uid: self.uid,
            exe: self.exe,
            ns: self.ns,
            guard_ns,
            main_mnt,
            unit: self.unit,
            ancestors: self.ancestors,
        }
    }

    /// The judgement, given systemd's answers; reads the mount namespace
    /// of the unit's main process when judge may compare with it.
    fn judge(&self, procfs: &Procfs, guard_ns: &'a Namespaces, answers: &Answers) -> Judged {
        let bare = self.facts(guard_ns, None);
        let answer = answer_for(answers, &bare);
        let main = match &answer {
            Some(Ok(st)) => st.main_pid.filter(|m| *m != self.pid),
            _ => None,
        };
        let main_mnt = main.and_then(|m| procfs.namespaces(&m.to_string()).mnt);
        let j = judge(&self.facts(guard_ns, main_mnt.as_deref()), answer);
        Judged {
            j,
            unit_state: match answer {
                Some(Ok(st)) => Some(st.active_state.clone()),
                _ => None,
            },
        }
    }
}

struct Judged {
    j: Judgement,
    unit_state: Option<String>,
}

fn read(l: &RawListener) -> Read<'_> {
    Read {
        pid: l.process.pid,
        uid: l.uid,
        exe: &l.exe,
        ns: &l.ns,
        unit: &l.unit,
        ancestors: &l.ancestors,
    }
}

/// Classifies every listener; one D-Bus round trip for all their units
/// (none when no listener needs one: pid 1, non-sshd, a container's).
pub fn classify(
    procfs: &Procfs,
    sd: Result<&Systemd, &str>,
    raws: Vec<RawListener>,
) -> Vec<Listener> {
    let guard_ns = procfs.namespaces("self");
    let mut names: Vec<&str> = raws
        .iter()
        .filter_map(|l| unit_to_ask(&read(l).facts(&guard_ns, None)))
        .collect();
    names.sort_unstable();
    names.dedup();
    let answers = ask(sd, &names);
    raws.iter()
        .map(|l| {
            let Judged { j, unit_state } = read(l).judge(procfs, &guard_ns, &answers);
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

/// Whether `pid` holds one of the listening TCP sockets on `ports` now.
/// A freshly forked pre-authentication child of an OpenSSH <= 9.7 listener
/// holds the listening sockets for a moment, then closes them and becomes a
/// session: a process found holding them is signalled only while it still
/// does.
fn still_listens(procfs: &Procfs, pid: u32, ports: &[u16]) -> Result<()> {
    let mut warnings = Vec::new();
    let listening = procfs.listening(ports, &mut warnings);
    let Some(held) = procfs.socket_inodes(pid) else {
        bail!("pid {pid}: cannot read its open files; not signalled");
    };
    if listening.keys().any(|ino| held.contains(ino)) {
        return Ok(());
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut why = format!(
        "pid {pid} no longer holds a listening socket on an ssh port ({}): \
         not a listener now (a session, or a listener's fork); not signalled",
        ports.join(", ")
    );
    if !warnings.is_empty() {
        why.push_str(&format!(" ({})", warnings.join("; ")));
    }
    bail!(why)
}

/// The judgement of `pid` now, read afresh (cgroup, namespaces, ancestors,
/// its unit's state and main process), provided it still is the process
/// that was found (same start time and binary) and still holds a listening
/// socket on one of the ssh `ports`.
pub fn rejudge(
    procfs: &Procfs,
    sd: &Systemd,
    process: ProcessStamp,
    exe: &str,
    ports: &[u16],
) -> Result<Judgement> {
    if !procfs.still_is(process, exe) {
        bail!(
            "pid {} is no longer the process that was found (start time or binary changed)",
            process.pid
        );
    }
    let pid = process.pid;
    still_listens(procfs, pid, ports)?;
    let uid = procfs
        .uid(pid)
        .ok_or_else(|| anyhow::anyhow!("pid {pid}: cannot read its owner"))?;
    let unit = procfs.unit(pid);
    let ns = procfs.namespaces(&pid.to_string());
    let guard_ns = procfs.namespaces("self");
    let ancestors = procfs.ancestors(pid);
    let r = Read {
        pid,
        uid,
        exe,
        ns: &ns,
        unit: &unit,
        ancestors: &ancestors,
    };
    let names: Vec<&str> = unit_to_ask(&r.facts(&guard_ns, None)).into_iter().collect();
    let answers = ask(Ok(sd), &names);
    Ok(r.judge(procfs, &guard_ns, &answers).j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake_proc::{add_root_process, listening_tcp};

    /// A fake /proc: a listening socket 1001 on :22 and a connection 1002.
    fn fake_proc() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        listening_tcp(d.path());
        d
    }

    #[test]
    fn recheck_accepts_a_process_that_still_listens() {
        let d = fake_proc();
        add_root_process(d.path(), 200, "sshd", 1200, "/usr/sbin/sshd", &[1001]);
        let p = Procfs::new(d.path());
        still_listens(&p, 200, &[22]).unwrap();
    }

    #[test]
    fn recheck_refuses_a_process_that_no_longer_listens() {
        // The pre-authentication child of an OpenSSH <= 9.7 listener, found
        // holding the listening socket, has closed it: a session now.
        let d = fake_proc();
        add_root_process(d.path(), 300, "sshd", 1300, "/usr/sbin/sshd", &[1002]);
        // And one holding a listener on a port that is not an ssh port.
        add_root_process(d.path(), 301, "sshd", 1301, "/usr/sbin/sshd", &[1001]);
        let p = Procfs::new(d.path());
        let e = still_listens(&p, 300, &[22]).unwrap_err().to_string();
        assert!(
            e.contains("pid 300 no longer holds a listening socket on an ssh port (22)"),
            "{e}"
        );
        assert!(e.contains("not signalled"), "{e}");
        let e = still_listens(&p, 301, &[2222]).unwrap_err().to_string();
        assert!(e.contains("(2222)"), "{e}");
        // Gone, or its fd table unreadable: refused too.
        let e = still_listens(&p, 999, &[22]).unwrap_err().to_string();
        assert!(e.contains("cannot read its open files"), "{e}");
    }

    #[test]
    fn classify_without_systemd_never_calls_a_unit_member_stale() {
        let d = fake_proc();
        add_root_process(d.path(), 200, "sshd", 1200, "/usr/sbin/sshd", &[1001]);
        let p = Procfs::new(d.path());
        let raws = p
            .scan(
                &p.listening(&[22], &mut Vec::new()),
                p.survey(&mut Vec::new()),
            )
            .listeners;
        assert_eq!(raws.len(), 1);
        let ls = classify(&p, Err("no bus"), raws);
        assert_eq!(ls[0].class, crate::model::ListenerClass::Foreign);
        assert!(ls[0].why.contains("cron.service"), "{:?}", ls[0]);
        assert!(ls[0].why.contains("no bus"), "{:?}", ls[0]);
    }
}
