//! Road e's facts: the processes below the holder of dpkg's lock, read from
//! /proc only when a package manager holds the lock (never on the hooks'
//! healthy path). One pass over /proc; a process that vanishes mid-scan is
//! skipped.

// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::roads::ProcRow;
use std::path::Path;

/// At most this many processes are read (a bounded scan whatever /proc holds).
const MAX_PROCS: usize = 100_000;

/// Every process's pid, ppid, name, arguments and start (Unix time).
pub fn process_rows(proc: &Path) -> Vec<ProcRow> {
    let Some(boot) = boot_time(proc) else {
        return Vec::new();
    };
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    let Ok(dir) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let procfs = super::procs::Procfs::new(proc);
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .take(MAX_PROCS)
        .filter_map(|pid| {
            let info = procfs.info(pid)?;
            let args = std::fs::read(proc.join(pid.to_string()).join("cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|a| !a.is_empty())
                        .take(64)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default();
            Some(ProcRow {
                pid,
                ppid: info.ppid,
                comm: info.comm,
                args,
                started: boot + info.process.start_time / ticks,
            })
        })
        .collect()
}

/// btime from /proc/stat: the boot's Unix time.
fn boot_time(proc: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc.join("stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}
