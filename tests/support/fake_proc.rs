//! A fake /proc for tests, shared by src/system/'s unit tests and
//! tests/fake_root.rs (included by path in both): /proc/PID/stat lines and
//! whole process directories, hostile names allowed.
#![allow(dead_code)] // each user takes what it needs

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// The header line of /proc/net/tcp and tcp6.
pub const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

/// A /proc/PID/stat line: 52 fields; field 22 is the start time. The comm
/// may hold spaces and ')'.
pub fn stat_line(pid: u32, comm: &str, ppid: u32, start: u64) -> String {
    let mut f: Vec<String> = vec![
        pid.to_string(),
        format!("({comm})"),
        "S".into(),
        ppid.to_string(),
    ];
    for i in 5..=52 {
        f.push(if i == 22 {
            start.to_string()
        } else {
            "0".into()
        });
    }
    f.join(" ") + "\n"
}

/// Writes /proc/PID/stat and comm under `proc`.
pub fn add_process(proc: &Path, pid: u32, comm: &str, ppid: u32, start: u64) {
    let d = proc.join(pid.to_string());
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("stat"), stat_line(pid, comm, ppid, start)).unwrap();
    fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
}

/// A root process (uid 0) run from `exe` in cron.service's cgroup, with
/// `comm -D` as its command line and the socket inodes `sockets` among its
/// open files (fd 3 on).
pub fn add_root_process(proc: &Path, pid: u32, comm: &str, start: u64, exe: &str, sockets: &[u64]) {
    add_process(proc, pid, comm, 1, start);
    let d = proc.join(pid.to_string());
    fs::create_dir_all(d.join("fd")).unwrap();
    fs::write(
        d.join("status"),
        "Name:\tx\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
    )
    .unwrap();
    fs::write(d.join("cmdline"), format!("{comm}\0-D\0")).unwrap();
    fs::write(d.join("cgroup"), "0::/system.slice/cron.service\n").unwrap();
    symlink(exe, d.join("exe")).unwrap();
    for (i, s) in sockets.iter().enumerate() {
        symlink(
            format!("socket:[{s}]"),
            d.join("fd").join((i + 3).to_string()),
        )
        .unwrap();
    }
}

/// /proc/net/tcp under `proc`: the listening socket 1001 on 0.0.0.0:22 and
/// a connection to it, 1002.
pub fn listening_tcp(proc: &Path) {
    fs::create_dir_all(proc.join("net")).unwrap();
    fs::write(
        proc.join("net/tcp"),
        format!(
            "{TCP_HEADER}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n   \
             1: 0100007F:0016 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n"
        ),
    )
    .unwrap();
}

/// A fake /proc: pid 1 (systemd) and a stale sshd both holding the
/// listening socket 1001 on :22, a session, and an unrelated process.
pub fn listening_proc() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    listening_tcp(r);
    fs::write(
        r.join("net/tcp6"),
        format!("{TCP_HEADER}   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0\n"),
    )
    .unwrap();
    for (pid, comm, exe, sockets) in [
        (
            1u32,
            "systemd",
            "/usr/lib/systemd/systemd",
            vec![1001u64, 1003],
        ),
        (200, "sshd", "/usr/sbin/sshd (deleted)", vec![1001, 1003]),
        (300, "sshd", "/usr/sbin/sshd (deleted)", vec![1002]),
        (400, "bash", "/usr/bin/bash", vec![]),
    ] {
        add_root_process(r, pid, comm, 1000 + u64::from(pid), exe, &sockets);
    }
    d
}
