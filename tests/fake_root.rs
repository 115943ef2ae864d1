//! Integration tests: the real binary against a fake root (proc, dpkg admin
//! dir, run dir) given through SSH_UPGRADE_GUARD_TEST_ROOT, which only test
//! builds honour (cargo feature fake-root, on under `cargo test`). No root, no
//! network, no systemd needed. Named after the behaviour they pin.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BOOT: &str = "0d3c6a5e-1111-2222-3333-444455556666";

struct Root {
    dir: tempfile::TempDir,
}

fn stat_line(pid: u32, comm: &str, ppid: u32, start: u64) -> String {
    // 52 fields; field 22 is the start time. The comm may hold spaces and ')'.
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

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Root { dir };
        fs::create_dir_all(r.p("proc/sys/kernel/random")).unwrap();
        fs::write(r.p("proc/sys/kernel/random/boot_id"), format!("{BOOT}\n")).unwrap();
        fs::create_dir_all(r.p("var/lib/dpkg/updates")).unwrap();
        fs::write(
            r.p("var/lib/dpkg/status"),
            "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\n",
        )
        .unwrap();
        fs::create_dir_all(r.p("run")).unwrap();
        // The test process itself is the "package manager" parent of the binary.
        r.add_proc(std::process::id(), "apt-get", 1, 4242);
        r
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn add_proc(&self, pid: u32, comm: &str, ppid: u32, start: u64) {
        let d = self.p(&format!("proc/{pid}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("stat"), stat_line(pid, comm, ppid, start)).unwrap();
        fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
            .args(["--config", "/nonexistent"])
            .args(args)
            .env("SSH_UPGRADE_GUARD_TEST_ROOT", self.dir.path())
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
            .output()
            .expect("run binary")
    }

    /// The run directory as the guard creates it: 0755, owned by us.
    fn make_run_dir(&self) {
        fs::create_dir_all(self.p("run/ssh-upgrade-guard")).unwrap();
        fs::set_permissions(
            self.p("run/ssh-upgrade-guard"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }

    fn marker(&self) -> PathBuf {
        self.p("run/ssh-upgrade-guard/inhibit")
    }

    fn write_marker(&self, pid: u32, start: u64, boot: &str, created: u64) {
        self.make_run_dir();
        fs::write(
            self.marker(),
            format!("version=1\nholder_pid={pid}\nholder_start_time={start}\nholder_comm=apt-get\nboot_id={boot}\ncreated={created}\nreason=test\n"),
        )
        .unwrap();
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn inhibited_is_1_on_a_quiet_machine() {
    let r = Root::new();
    let o = r.run(&["-v", "inhibited"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not inhibited"));
}

#[test]
fn marker_life_cycle_pre_invoke_inhibits_post_invoke_releases() {
    let r = Root::new();
    let o = r.run(&["pre-invoke"]);
    assert_eq!(code(&o), 0);
    let text = fs::read_to_string(r.marker()).expect("marker written");
    assert!(
        text.contains(&format!("holder_pid={}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("holder_start_time=4242"));
    assert!(text.contains(&format!("boot_id={BOOT}")));
    let mode = fs::metadata(r.p("run/ssh-upgrade-guard"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // Without systemd the preflight says so in one line, and apt goes on.
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    let o = r.run(&["-v", "inhibited"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("held by apt-get"), "{}", stderr(&o));

    let o = r.run(&["post-invoke"]);
    assert_eq!(code(&o), 0);
    assert!(!r.marker().exists(), "post-invoke releases its own marker");
    assert_eq!(code(&r.run(&["inhibited"])), 1);
}

#[test]
fn stale_marker_of_a_gone_holder_is_ignored_and_removed() {
    let r = Root::new();
    r.write_marker(999_999, 1, BOOT, now());
    let o = r.run(&["inhibited"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is gone"), "{}", stderr(&o));
    assert!(stderr(&o).contains("removed"));
    assert!(!r.marker().exists());
}

#[test]
fn pid_reuse_makes_a_marker_stale() {
    let r = Root::new();
    r.add_proc(31337, "bash", 1, 9000);
    r.write_marker(31337, 1234, BOOT, now());
    let o = r.run(&["inhibited"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("another process"), "{}", stderr(&o));
}

#[test]
fn marker_from_another_boot_or_too_old_is_stale() {
    let r = Root::new();
    r.add_proc(31337, "apt-get", 1, 9000);
    r.write_marker(31337, 9000, "other-boot", now());
    assert_eq!(code(&r.run(&["inhibited"])), 1);
    r.write_marker(31337, 9000, BOOT, now() - 7 * 3600);
    let o = r.run(&["inhibited"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("MARKER_MAX_AGE"), "{}", stderr(&o));
    r.write_marker(31337, 9000, BOOT, now());
    assert_eq!(code(&r.run(&["inhibited"])), 0);
}

#[test]
fn symlink_planted_at_the_marker_path_is_not_followed() {
    let r = Root::new();
    r.make_run_dir();
    let secret = r.p("shadow");
    fs::write(&secret, "root:secret\n").unwrap();
    symlink(&secret, r.marker()).unwrap();
    let o = r.run(&["inhibited"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&r.marker().display().to_string()),
        "the message names the path"
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root:secret\n");

    // pre-invoke replaces a symlink rather than writing through it.
    symlink(&secret, r.marker()).unwrap();
    assert_eq!(code(&r.run(&["pre-invoke"])), 0);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root:secret\n");
    assert!(!fs::symlink_metadata(r.marker())
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn directory_or_garbage_at_the_marker_path_never_breaks_the_hooks() {
    let r = Root::new();
    fs::create_dir_all(r.marker()).unwrap();
    fs::set_permissions(
        r.p("run/ssh-upgrade-guard"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let o = r.run(&["pre-invoke"]);
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&r.marker().display().to_string()));
    assert_eq!(code(&r.run(&["post-invoke"])), 0);
    assert_eq!(code(&r.run(&["inhibited"])), 1);
    fs::remove_dir(r.marker()).unwrap();

    fs::write(r.marker(), b"\xff\xfe garbage \x00").unwrap();
    let o = r.run(&["inhibited"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("removed"), "{}", stderr(&o));
    assert!(!r.marker().exists());
}

#[test]
fn unsafe_run_directory_is_refused_and_named() {
    let r = Root::new();
    // A symlinked run directory.
    fs::create_dir_all(r.p("elsewhere")).unwrap();
    symlink(r.p("elsewhere"), r.p("run/ssh-upgrade-guard")).unwrap();
    let o = r.run(&["pre-invoke"]);
    assert_eq!(code(&o), 0, "a hook never fails apt");
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    assert!(
        fs::read_dir(r.p("elsewhere")).unwrap().next().is_none(),
        "nothing written through it"
    );
    fs::remove_file(r.p("run/ssh-upgrade-guard")).unwrap();

    // A world-writable run directory.
    fs::create_dir_all(r.p("run/ssh-upgrade-guard")).unwrap();
    fs::set_permissions(
        r.p("run/ssh-upgrade-guard"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let o = r.run(&["pre-invoke"]);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("writable by group or others"),
        "{}",
        stderr(&o)
    );
    assert!(!r.marker().exists());
}

fn hold_lock(path: &Path) -> fs::File {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: zeroed flock is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    nix::fcntl::fcntl(f.as_fd(), nix::fcntl::FcntlArg::F_SETLK(&fl)).unwrap();
    f
}

#[test]
fn inhibited_while_a_dpkg_lock_is_held() {
    for lock in ["lock", "lock-frontend"] {
        let r = Root::new();
        let held = hold_lock(&r.p(&format!("var/lib/dpkg/{lock}")));
        let o = r.run(&["-v", "inhibited"]);
        assert_eq!(code(&o), 0, "{lock}: {}", stderr(&o));
        assert!(stderr(&o).contains(lock), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("pid {}", std::process::id())),
            "{}",
            stderr(&o)
        );
        drop(held);
        assert_eq!(code(&r.run(&["inhibited"])), 1);
    }
}

#[test]
fn an_unreadable_dpkg_lock_is_unknown_not_free() {
    let r = Root::new();
    // A symlink at the lock path is never followed: its state is unknown.
    std::os::unix::fs::symlink("/etc/shadow", r.p("var/lib/dpkg/lock")).unwrap();
    let o = r.run(&["status"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("dpkg lock") && l.contains("/var/lib/dpkg/lock "))
        .unwrap_or_default();
    assert!(line.contains("unknown: cannot open"), "{text}");
    assert!(!text.contains("var/lib/dpkg/lock free"), "{text}");
    let o = r.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let lock = &v["snapshot"]["locks"][1];
    assert!(lock["path"]
        .as_str()
        .unwrap()
        .ends_with("/var/lib/dpkg/lock"));
    assert!(lock["holder_pid"].is_null());
    assert!(
        lock["error"].as_str().unwrap().contains("cannot open"),
        "{lock}"
    );
    // Watchdogs wait while the locks cannot be read.
    let o = r.run(&["-v", "inhibited"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("waiting to be safe"), "{}", stderr(&o));
}

#[test]
fn pre_invoke_records_the_lock_frontend_holder() {
    let r = Root::new();
    let _held = hold_lock(&r.p("var/lib/dpkg/lock-frontend"));
    assert_eq!(code(&r.run(&["pre-invoke"])), 0);
    let text = fs::read_to_string(r.marker()).unwrap();
    assert!(
        text.contains(&format!("holder_pid={}", std::process::id())),
        "{text}"
    );
}

#[test]
fn status_json_has_the_documented_fields() {
    let r = Root::new();
    fs::write(
        r.p("var/lib/dpkg/updates/0001"),
        "Package: openssh-server\nStatus: install ok half-configured\nVersion: 1:9.2p1-3\n",
    )
    .unwrap();
    let o = r.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["schema"], 1);
    assert_eq!(
        v["snapshot"]["package"]["status"], "half-configured",
        "the journal is applied"
    );
    assert_eq!(v["healthy"], false);
    for k in [
        "ports",
        "addresses",
        "sshd_config",
        "units",
        "listeners",
        "sessions",
        "marker",
        "locks",
        "as_root",
    ] {
        assert!(v["snapshot"].get(k).is_some(), "missing {k}");
    }
    assert_eq!(code(&o), 1);
}

#[test]
fn bad_setting_names_the_key_and_keeps_going() {
    let r = Root::new();
    let cfg = r.p("default");
    fs::write(&cfg, "MARKER_MAX_AGE=forever\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
        .args(["--config", cfg.to_str().unwrap(), "inhibited"])
        .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("MARKER_MAX_AGE"), "{}", stderr(&o));
}

#[test]
fn every_command_has_help_with_exit_codes() {
    for c in [
        "pre-invoke",
        "post-invoke",
        "inhibited",
        "status",
        "repair",
        "watchdog",
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
            .args([c, "--help"])
            .output()
            .unwrap();
        assert_eq!(code(&o), 0);
        let t = String::from_utf8_lossy(&o.stdout);
        assert!(t.contains("Exit status:"), "{c}: {t}");
    }
}

#[test]
fn check_is_unknown_without_systemd_in_both_conventions() {
    let r = Root::new();
    let o = r.run(&["check"]);
    assert_eq!(code(&o), 3, "monitoring-plugin UNKNOWN");
    let line = String::from_utf8_lossy(&o.stdout);
    assert!(line.starts_with("SSH-UPGRADE-GUARD UNKNOWN - "), "{line}");
    assert!(line.contains(" | package_ok=1 "), "{line}");
    assert_eq!(line.lines().count(), 1);
    assert_eq!(
        code(&r.run(&["check", "--npd"])),
        2,
        "node-problem-detector unknown"
    );
}

#[test]
fn status_reuses_sshd_t_until_its_inputs_change() {
    let r = Root::new();
    r.make_run_dir();
    fs::create_dir_all(r.p("usr/sbin")).unwrap();
    fs::create_dir_all(r.p("etc/ssh/sshd_config.d")).unwrap();
    fs::write(r.p("etc/ssh/sshd_config"), "Port 22\n").unwrap();
    let runs = r.p("sshd-runs");
    fs::write(
        r.p("usr/sbin/sshd"),
        format!(
            "#!/bin/sh\necho run >>{}\necho 'port 22'\necho 'listenaddress 0.0.0.0:22'\n",
            runs.display()
        ),
    )
    .unwrap();
    fs::set_permissions(r.p("usr/sbin/sshd"), fs::Permissions::from_mode(0o755)).unwrap();
    let count = || {
        fs::read_to_string(&runs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };

    let v: serde_json::Value =
        serde_json::from_slice(&r.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(v["snapshot"]["sshd_config"]["valid"], true);
    assert_eq!(count(), 1);
    r.run(&["status", "--json"]);
    r.run(&["check"]);
    assert_eq!(count(), 1, "reports reuse the answer while nothing changed");
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(r.p("etc/ssh/sshd_config.d/x.conf"), "Port 2222\n").unwrap();
    r.run(&["status", "--json"]);
    assert_eq!(count(), 2, "a new drop-in invalidates it");
    fs::write(r.p("etc/ssh/sshd_config"), "Port 22\n#changed\n").unwrap();
    r.run(&["status", "--json"]);
    assert_eq!(count(), 3, "a changed sshd_config invalidates it");
}

/// A pipe whose reading end is already closed: every write to it fails with
/// EPIPE (Rust ignores SIGPIPE), as when apt's or cron's reader went away.
fn broken_pipe() -> std::process::Stdio {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    std::process::Stdio::from(w)
}

#[test]
fn hooks_exit_0_with_stdout_and_stderr_on_a_broken_pipe() {
    for panic_at in [None, Some("run-dir")] {
        for hook in ["pre-invoke", "post-invoke"] {
            let r = Root::new();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"));
            cmd.args(["--config", "/nonexistent", "-vv", hook])
                .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
                .stdout(broken_pipe())
                .stderr(broken_pipe());
            if let Some(p) = panic_at {
                cmd.env("SSH_UPGRADE_GUARD_TEST_PANIC", p);
            }
            let st = cmd.status().unwrap();
            assert_eq!(st.code(), Some(0), "{hook}, panic at {panic_at:?}");
        }
    }
}

#[test]
fn hooks_exit_0_with_stdout_and_stderr_closed() {
    for hook in ["pre-invoke", "post-invoke"] {
        let r = Root::new();
        let st = Command::new("/bin/sh")
            .args([
                "-c",
                "exec \"$0\" --config /nonexistent -vv \"$1\" >&- 2>&-",
            ])
            .arg(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
            .arg(hook)
            .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(0), "{hook}");
    }
}

#[test]
fn a_panic_is_one_line_and_a_hook_still_exits_0() {
    let r = Root::new();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
            .args(["--config", "/nonexistent"])
            .args(args)
            .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
            .env("SSH_UPGRADE_GUARD_TEST_PANIC", "run-dir")
            .output()
            .unwrap()
    };
    let o = run(&["pre-invoke"]);
    assert_eq!(code(&o), 0);
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("ssh-upgrade-guard: warning: pre-invoke: ")
            && e.contains("internal error: fail point run-dir reached at src/system/fsx.rs:")
            && e.contains("(apt continues)"),
        "{e}"
    );
    let o = run(&["status"]);
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("ssh-upgrade-guard: internal error: fail point run-dir reached at "),
        "{e}"
    );
}

/// Runs the binary with `args`, failing the test if it takes longer than
/// `limit` (it is killed then).
fn run_bounded(
    r: &Root,
    args: &[&str],
    limit: std::time::Duration,
) -> (Output, std::time::Duration) {
    let t = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
        .args(args)
        .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), t.elapsed())
}

#[test]
fn a_fifo_or_dev_zero_at_the_settings_path_never_hangs_a_hook() {
    let r = Root::new();
    let fifo = r.p("settings-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        for hook in ["pre-invoke", "post-invoke"] {
            let (o, _) = run_bounded(
                &r,
                &["--config", path, hook],
                std::time::Duration::from_secs(20),
            );
            assert_eq!(code(&o), 0);
            let e = stderr(&o);
            assert!(
                e.contains(&format!(
                    "not reading {path}: not a regular file; using defaults"
                )),
                "{e}"
            );
        }
    }
}

#[test]
fn a_bad_byte_in_the_settings_costs_that_line_only() {
    let r = Root::new();
    let cfg = r.p("default");
    fs::write(&cfg, b"PREFLIGHT=\xff\nMARKER_MAX_AGE=forever\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
        .args(["--config", cfg.to_str().unwrap(), "inhibited"])
        .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(e.contains("default:1: not valid UTF-8, ignored"), "{e}");
    assert!(e.contains("default:2: MARKER_MAX_AGE"), "{e}");
}

#[test]
fn a_hung_sshd_t_is_stopped_and_status_and_check_say_why() {
    let r = Root::new();
    r.make_run_dir();
    fs::create_dir_all(r.p("usr/sbin")).unwrap();
    fs::write(r.p("usr/sbin/sshd"), "#!/bin/sh\nexec sleep 600\n").unwrap();
    fs::set_permissions(r.p("usr/sbin/sshd"), fs::Permissions::from_mode(0o755)).unwrap();
    let bound = std::time::Duration::from_secs(25);
    let (o, took) = run_bounded(&r, &["--config", "/nonexistent", "status"], bound);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("sshd -T did not answer within 10 s (stopped)"),
        "{out}"
    );
    assert!(took >= std::time::Duration::from_secs(9), "{took:?}");
    let (o, _) = run_bounded(&r, &["--config", "/nonexistent", "check"], bound);
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stdout));
    // No sleeping child outlives the guard.
    let left = Command::new("pgrep")
        .args(["-f", &format!("{} ", r.p("usr/sbin/sshd").display())])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(left.trim().is_empty(), "sshd -T left running: {left}");
}

#[test]
fn a_hook_gives_up_at_its_deadline_in_one_line_and_exits_0() {
    let r = Root::new();
    // dpkg's status file as a FIFO nobody writes: reading it blocks, as a
    // hung disk or mount would.
    fs::remove_file(r.p("var/lib/dpkg/status")).unwrap();
    nix::unistd::mkfifo(
        &r.p("var/lib/dpkg/status"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let cfg = r.p("default");
    fs::write(&cfg, "HOOK_DEADLINE=1s\n").unwrap();
    r.write_marker(std::process::id(), 4242, BOOT, now());
    let (o, took) = run_bounded(
        &r,
        &["--config", cfg.to_str().unwrap(), "post-invoke"],
        std::time::Duration::from_secs(20),
    );
    assert_eq!(code(&o), 0);
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with(
            "ssh-upgrade-guard: warning: post-invoke: gave up after 1 s (HOOK_DEADLINE) while "
        ) && e.contains("apt continues"),
        "{e}"
    );
    // The marker is left for apt's exit to make stale, as the contract says.
    assert!(r.marker().exists());
}
