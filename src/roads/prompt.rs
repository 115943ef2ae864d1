//! Road e: dpkg waiting for an answer under the holder of its lock, found in
//! process rows.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::model::DpkgPrompt;

/// One process, as road e needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRow {
    /// The process id.
    pub pid: u32,
    /// Its parent's.
    pub ppid: u32,
    /// Its name (/proc/PID/comm).
    pub comm: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Start, Unix time.
    pub started: u64,
}

/// A conffile prompt that lives longer than this is waiting for someone:
/// ucf merges a file in well under a second when nobody is asked.
pub const PROMPT_AFTER_SECS: u64 = 10;

/// Programs that ask a question during a package's configuration: ucf
/// (openssh-server's sshd_config goes through it), and the dialogs debconf
/// and ucf draw with.
const PROMPTERS: [&str; 3] = ["ucf", "whiptail", "dialog"];

/// Finds a question below the lock holder that has waited at least
/// PROMPT_AFTER_SECS. The oldest asker wins (ucf, under which whiptail
/// runs, names the file).
pub fn dpkg_prompt(rows: &[ProcRow], holder: u32, now: u64) -> Option<DpkgPrompt> {
    use std::collections::{BTreeMap, BTreeSet};
    let holder_row = rows.iter().find(|r| r.pid == holder)?;
    let mut children: BTreeMap<u32, Vec<&ProcRow>> = BTreeMap::new();
    for r in rows {
        children.entry(r.ppid).or_default().push(r);
    }
    // Descendants, breadth first; a pid is visited once (no cycles).
    let mut seen = BTreeSet::from([holder]);
    let mut queue = vec![holder];
    let mut below: Vec<&ProcRow> = Vec::new();
    while let Some(p) = queue.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if seen.insert(c.pid) {
                below.push(c);
                queue.push(c.pid);
            }
        }
    }
    let about = below
        .iter()
        .filter(|r| r.comm == "ucf")
        .filter_map(|r| r.args.last())
        .find(|a| a.starts_with('/'))
        .cloned();
    let asker = below
        .iter()
        .filter(|r| PROMPTERS.contains(&r.comm.as_str()))
        .filter(|r| r.started <= now && now - r.started >= PROMPT_AFTER_SECS)
        .min_by_key(|r| (r.started, r.pid))?;
    Some(DpkgPrompt {
        pid: asker.pid,
        program: asker.comm.clone(),
        about,
        since: asker.started,
        holder_pid: holder,
        holder_comm: holder_row.comm.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, ppid: u32, comm: &str, args: &[&str], started: u64) -> ProcRow {
        ProcRow {
            pid,
            ppid,
            comm: comm.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            started,
        }
    }

    #[test]
    fn ucf_asking_under_apt_is_a_prompt_about_its_file() {
        // 03:12 UTC on some day.
        let t = 1_700_000_000 - 1_700_000_000 % 86_400 + 3 * 3600 + 12 * 60;
        let rows = vec![
            row(1, 0, "systemd", &[], 0),
            row(100, 1, "unattended-upgr", &["/usr/bin/python3"], t - 600),
            row(110, 100, "dpkg", &["/usr/bin/dpkg", "--configure"], t - 5),
            row(120, 110, "openssh-server.", &["/bin/sh", "postinst"], t - 4),
            row(
                130,
                120,
                "ucf",
                &[
                    "/bin/sh",
                    "/usr/bin/ucf",
                    "--three-way",
                    "--debconf-ok",
                    "/tmp/tmp.abc",
                    "/etc/ssh/sshd_config",
                ],
                t,
            ),
            row(140, 130, "whiptail", &["whiptail", "--menu"], t + 1),
            // An unrelated dialog elsewhere is not dpkg's.
            row(200, 1, "whiptail", &["whiptail"], t - 1000),
        ];
        let p = dpkg_prompt(&rows, 100, t + 60).unwrap();
        assert_eq!(p.pid, 130);
        assert_eq!(p.about.as_deref(), Some("/etc/ssh/sshd_config"));
        assert!(p.to_string().starts_with("dpkg waits for an answer about /etc/ssh/sshd_config since 03:12 UTC (ucf pid 130, under unattended-upgr pid 100)"), "{p}");
        // Young: ucf merging quietly is not a prompt yet.
        assert_eq!(dpkg_prompt(&rows, 100, t + 3), None);
        // No holder, or nothing below it.
        assert_eq!(dpkg_prompt(&rows, 999, t + 60), None);
        assert_eq!(dpkg_prompt(&rows, 200, t + 60), None);
    }

    #[test]
    fn a_parent_loop_in_hostile_rows_ends() {
        let rows = vec![row(5, 6, "ucf", &[], 0), row(6, 5, "whiptail", &["x"], 0)];
        let p = dpkg_prompt(&rows, 5, 100).unwrap();
        assert_eq!(p.program, "whiptail");
        assert_eq!(p.about, None);
    }
}
