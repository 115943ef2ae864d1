//! Integration tests: the real binary against a fake root (proc, dpkg admin
//! dir, run dir) given through SSH_UPGRADE_GUARD_TEST_ROOT, which only test
//! builds honour (cargo feature fake-root, on under `cargo test`). No root, no
//! network, no systemd needed. Named after the behaviour they pin.
// Building a fake root and running the binary is what these tests are for.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "support/fake_proc.rs"]
mod fake_proc;

const BOOT: &str = "0d3c6a5e-1111-2222-3333-444455556666";

struct Root {
    dir: tempfile::TempDir,
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
        // systemd is PID 1 here (sd_booted: /run/systemd/system exists);
        // without it the hooks do nothing (booted.rs).
        fs::create_dir_all(r.p("run/systemd/system")).unwrap();
        // The test process itself is the "package manager" parent of the binary.
        r.add_proc(std::process::id(), "apt-get", 1, 4242);
        r
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn add_proc(&self, pid: u32, comm: &str, ppid: u32, start: u64) {
        fake_proc::add_process(&self.p("proc"), pid, comm, ppid, start);
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

    /// Runs the binary under `umask` (set by a shell that then execs it).
    fn run_umask(&self, umask: &str, args: &[&str]) -> Output {
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
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

/// In a chroot or an image build (no systemd as PID 1 for this root) the
/// hooks do nothing, in one line, exit 0: no marker, no diagnosis.
#[test]
fn hooks_do_nothing_where_systemd_is_not_pid_1() {
    let r = Root::new();
    fs::remove_dir(r.p("run/systemd/system")).unwrap();
    for hook in ["pre-invoke", "post-invoke"] {
        let o = r.run(&[hook]);
        assert_eq!(code(&o), 0);
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains(&format!(
                "{hook}: not acting: systemd is not running as PID 1 here"
            )),
            "{out}"
        );
        assert!(!r.marker().exists(), "{hook} placed no marker");
    }
}

/// `/` that is not PID 1's root (a chroot on a booted host): the same.
#[test]
fn hooks_do_nothing_in_a_chroot_of_a_booted_host() {
    let r = Root::new();
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir_all(r.p("proc/1")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), r.p("proc/1/root")).unwrap();
    let o = r.run(&["pre-invoke"]);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(
        out.contains("not acting: / is not the root of PID 1 (a chroot)"),
        "{out}"
    );
    assert!(!r.marker().exists());
    // PID 1's root is this root: the hook acts (places its marker).
    fs::remove_file(r.p("proc/1/root")).unwrap();
    std::os::unix::fs::symlink(r.dir.path(), r.p("proc/1/root")).unwrap();
    assert_eq!(code(&r.run(&["pre-invoke"])), 0);
    assert!(r.marker().exists());
}

/// `DPKG_ROOT` pointing elsewhere, and an apt run whose dpkg does nothing
/// (`-o Debug::pkgDPkgPM=1`, read from the package manager's command line).
#[test]
fn hooks_do_nothing_for_dpkg_on_another_root_or_a_dpkg_that_does_nothing() {
    let r = Root::new();
    let o = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
        .args(["--config", "/nonexistent", "pre-invoke"])
        .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .env("DPKG_ROOT", "/srv/image")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(out.contains("DPKG_ROOT is /srv/image"), "{out}");
    assert!(!r.marker().exists());
    // The test process stands in for apt-get: its command line says what apt runs with.
    fs::write(
        r.p(&format!("proc/{}/cmdline", std::process::id())),
        "apt-get\0-o\0Debug::pkgDPkgPM=1\0install\0x\0",
    )
    .unwrap();
    let o = r.run(&["post-invoke"]);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(
        out.contains("prints dpkg's calls instead of running them"),
        "{out}"
    );
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

#[test]
fn run_dir_and_marker_modes_do_not_depend_on_umask() {
    for umask in ["027", "077"] {
        let r = Root::new();
        let o = r.run_umask(umask, &["pre-invoke"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(r.p("run/ssh-upgrade-guard")), 0o755, "umask {umask}");
        assert_eq!(mode(r.marker()), 0o644, "umask {umask}");
    }
}

impl Root {
    /// A root process `pid` listening on 0.0.0.0:22 through socket `inode`,
    /// with the given comm and binary (the /proc/PID/exe link's target),
    /// started from a shell.
    fn add_listener(&self, pid: u32, comm: &str, exe: &str, inode: u64) {
        self.add_proc(pid, comm, 1, 5000 + u64::from(pid));
        let d = self.p(&format!("proc/{pid}"));
        fs::create_dir_all(d.join("fd")).unwrap();
        fs::write(
            d.join("status"),
            "Name:\tx\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
        )
        .unwrap();
        fs::write(d.join("cmdline"), format!("{comm}\0-D\0")).unwrap();
        // In no unit (moved to the root cgroup): stale without asking
        // systemd (a session scope is a unit whose state systemd gives);
        // in the guard's own namespaces.
        fs::write(d.join("cgroup"), "0::/\n").unwrap();
        symlink(exe, d.join("exe")).unwrap();
        symlink(format!("socket:[{inode}]"), d.join("fd/3")).unwrap();
        for dir in [self.p("proc/self/ns"), d.join("ns")] {
            fs::create_dir_all(&dir).unwrap();
            let _ = symlink("pid:[1]", dir.join("pid"));
            let _ = symlink("mnt:[2]", dir.join("mnt"));
        }
        fs::create_dir_all(self.p("proc/net")).unwrap();
        fs::write(
            self.p("proc/net/tcp"),
            format!("{TCP_HEADER}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0 100 0 0 10 0\n"),
        )
        .unwrap();
    }
}

/// A hostile process name and binary path (a newline, an escape sequence)
/// on a stale listener: `check` stays one line, and no line of `status` or
/// `repair --dry-run` starts with text the process chose.
#[test]
fn control_characters_in_process_names_never_split_an_output_line() {
    let r = Root::new();
    r.add_listener(
        777,
        "sshd",
        "/opt/x\nSSH-UPGRADE-GUARD OK - ssh is healthy\u{1b}[2J/sshd",
        9001,
    );
    let o = r.run(&["check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("/opt/x\\nSSH-UPGRADE-GUARD OK"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out}");
    for args in [&["status"][..], &["repair", "--dry-run"][..]] {
        let o = r.run(args);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("777"),
            "{args:?}: the listener is reported: {out}"
        );
        for line in out.lines() {
            assert!(
                !line.starts_with("SSH-UPGRADE-GUARD") && !line.starts_with("OK"),
                "{args:?}: {out}"
            );
        }
        assert!(!out.contains('\u{1b}'), "{args:?}: {out}");
    }
}

impl Root {
    /// A fake /usr/sbin/sshd: logs its arguments (one run per line) to
    /// `sshd-runs`, rejects the configuration when any file under etc/ssh or
    /// srv holds the word BAD, and prints `port 2222` when given `-p 2222`.
    fn fake_sshd(&self) -> PathBuf {
        fs::create_dir_all(self.p("usr/sbin")).unwrap();
        fs::create_dir_all(self.p("etc/ssh/sshd_config.d")).unwrap();
        let runs = self.p("sshd-runs");
        let root = self.dir.path().display().to_string();
        fs::write(
            self.p("usr/sbin/sshd"),
            format!(
                "#!/bin/sh\necho \"$*\" >>{runs}\n\
                 if grep -rqs BAD {root}/etc/ssh {root}/srv; then echo 'line 1: Bad configuration option: BAD' >&2; exit 255; fi\n\
                 case \"$*\" in *'-p 2222'*) echo 'port 2222';; *) echo 'port 22';; esac\n\
                 echo 'listenaddress 0.0.0.0:22'\n",
                runs = runs.display()
            ),
        )
        .unwrap();
        fs::set_permissions(self.p("usr/sbin/sshd"), fs::Permissions::from_mode(0o755)).unwrap();
        runs
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.run(&["status", "--json"]).stdout).expect("valid JSON")
    }
}

fn lines_of(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// The cached `sshd -T` answer covers every file sshd reads: Include
/// targets anywhere (absolute, relative to /etc/ssh, globbed, nested), not
/// only sshd_config.d; so `status` never says "valid" for a configuration
/// sshd rejects.
#[test]
fn sshd_t_cache_follows_every_include_so_status_never_calls_a_rejected_config_valid() {
    let r = Root::new();
    r.make_run_dir();
    let runs = r.fake_sshd();
    fs::create_dir_all(r.p("srv/ssh/nested")).unwrap();
    fs::write(
        r.p("etc/ssh/sshd_config"),
        "Include /etc/ssh/sshd_config.d/*.conf\nInclude local.conf\nMatch User x\n  Include /srv/ssh/site.conf\n",
    )
    .unwrap();
    fs::write(r.p("etc/ssh/local.conf"), "# local\n").unwrap();
    fs::write(r.p("srv/ssh/site.conf"), "Include /srv/ssh/nested/*.conf\n").unwrap();
    let count = || lines_of(&runs).len();
    assert_eq!(r.status_json()["snapshot"]["sshd_config"]["valid"], true);
    r.status_json();
    assert_eq!(count(), 1, "reused while nothing changed");
    let pause = || std::thread::sleep(std::time::Duration::from_millis(20));

    pause();
    fs::write(r.p("srv/ssh/nested/50-x.conf"), "BAD\n").unwrap();
    let v = r.status_json();
    assert_eq!(
        count(),
        2,
        "a new file matching a nested glob invalidates it"
    );
    assert_eq!(v["snapshot"]["sshd_config"]["valid"], false, "{v}");
    fs::remove_file(r.p("srv/ssh/nested/50-x.conf")).unwrap();
    r.status_json();
    assert_eq!(count(), 3);

    pause();
    fs::write(r.p("etc/ssh/local.conf"), "BAD\n").unwrap();
    let v = r.status_json();
    assert_eq!(count(), 4, "a relative Include (under /etc/ssh) is covered");
    assert_eq!(v["snapshot"]["sshd_config"]["valid"], false);

    // A wildcard in a directory name cannot be covered: no cache at all.
    fs::write(r.p("etc/ssh/local.conf"), "Include /srv/*/x.conf\n").unwrap();
    r.status_json();
    r.status_json();
    assert_eq!(count(), 6, "sshd -T runs every time");
}

/// ssh.service runs `sshd -D $SSHD_OPTS` (/etc/default/ssh): the check
/// runs with the same options, so the ports and the configuration file are
/// the unit's, and a change of the options or of that file is seen.
#[test]
fn sshd_t_runs_with_the_options_ssh_service_passes() {
    let r = Root::new();
    r.make_run_dir();
    let runs = r.fake_sshd();
    fs::create_dir_all(r.p("etc/default")).unwrap();
    fs::write(
        r.p("etc/default/ssh"),
        "# Default settings for openssh-server.\nSSHD_OPTS=\"-p 2222 -f /etc/ssh/other_config\"\n",
    )
    .unwrap();
    fs::write(r.p("etc/ssh/other_config"), "Port 2222\n").unwrap();
    let v = r.status_json();
    assert_eq!(
        lines_of(&runs),
        vec!["-T -p 2222 -f /etc/ssh/other_config"],
        "sshd -T gets the unit's options"
    );
    assert!(
        v["snapshot"]["ports"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(2222)),
        "{v}"
    );
    assert_eq!(
        v["snapshot"]["sshd_options"],
        serde_json::json!(["-p", "2222", "-f", "/etc/ssh/other_config"])
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(r.p("etc/ssh/other_config"), "BAD\n").unwrap();
    let v = r.status_json();
    assert_eq!(
        lines_of(&runs).len(),
        2,
        "the -f file is part of the cache key"
    );
    assert_eq!(v["snapshot"]["sshd_config"]["valid"], false);
    fs::write(r.p("etc/ssh/other_config"), "Port 2222\n").unwrap();
    fs::write(r.p("etc/default/ssh"), "SSHD_OPTS=\n").unwrap();
    let v = r.status_json();
    assert_eq!(lines_of(&runs).last().map(String::as_str), Some("-T"));
    assert_eq!(v["snapshot"]["ports"], serde_json::json!([22]));
}

/// sshd -T's `[fe80::1%eth0]:22` keeps its scope, and under
/// `AddressFamily inet6` its `[::]:22` is not also taken for 0.0.0.0:22
/// (sshd binds IPv6 sockets v6-only): the addresses ssh must answer on are
/// exactly sshd's.
#[test]
fn ipv6_scope_and_address_family_inet6_are_kept_in_the_addresses_to_verify() {
    let r = Root::new();
    fs::create_dir_all(r.p("usr/sbin")).unwrap();
    fs::write(
        r.p("usr/sbin/sshd"),
        "#!/bin/sh\necho 'port 22'\necho 'addressfamily inet6'\necho 'listenaddress [fe80::1%eth0]:22'\necho 'listenaddress [::]:22'\n",
    )
    .unwrap();
    fs::set_permissions(r.p("usr/sbin/sshd"), fs::Permissions::from_mode(0o755)).unwrap();
    let v = r.status_json();
    assert_eq!(
        v["snapshot"]["addresses"],
        serde_json::json!(["[fe80::1%eth0]:22", "[::]:22"]),
        "{v}"
    );
}

/// Two stanzas of openssh-server (multi-arch): i386 left in config-files
/// comes first in the status file, amd64 is installed. The installed one
/// decides; the first one no longer wins.
#[test]
fn every_stanza_of_a_multi_arch_package_counts_the_installed_one_decides() {
    let r = Root::new();
    fs::write(
        r.p("var/lib/dpkg/status"),
        "Package: openssh-server\nStatus: deinstall ok config-files\nArchitecture: i386\nVersion: 1:9.2p1-1\n\n\
         Package: openssh-server\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:9.2p1-2\n",
    )
    .unwrap();
    let v = r.status_json();
    let p = &v["snapshot"]["package"];
    assert_eq!(p["status"], "installed", "{v}");
    assert_eq!(p["architecture"], "amd64");
    assert_eq!(
        p["other_instances"],
        serde_json::json!(["openssh-server:i386 deinstall ok config-files"])
    );
    let o = r.run(&["-v", "post-invoke"]);
    assert!(
        !stderr(&o).contains("not installed: nothing to guard"),
        "{}",
        stderr(&o)
    );
}

// ------------------------------------------------ who holds a listening socket

use fake_proc::TCP_HEADER;

impl Root {
    /// Listening sockets on :22: inode 1001 on 0.0.0.0, 1002 on [::]. The
    /// guard's own namespaces are pid:[1] and mnt:[2].
    fn listening_22(&self) {
        fs::create_dir_all(self.p("proc/net")).unwrap();
        fs::write(
            self.p("proc/net/tcp"),
            format!("{TCP_HEADER}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n"),
        )
        .unwrap();
        fs::write(
            self.p("proc/net/tcp6"),
            format!("{TCP_HEADER}   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n"),
        )
        .unwrap();
        fs::create_dir_all(self.p("proc/self/ns")).unwrap();
        symlink("pid:[1]", self.p("proc/self/ns/pid")).unwrap();
        symlink("mnt:[2]", self.p("proc/self/ns/mnt")).unwrap();
    }

    /// A root process holding `sockets`, in `cgroup`, in the namespaces
    /// `ns` (pid, mnt).
    fn add_holder(
        &self,
        pid: u32,
        comm: &str,
        exe: &str,
        sockets: &[u64],
        cgroup: &str,
        ns: (&str, &str),
    ) {
        self.add_proc(pid, comm, 1, 5000 + u64::from(pid));
        let d = self.p(&format!("proc/{pid}"));
        fs::write(
            d.join("status"),
            format!("Name:\t{comm}\nUid:\t0\t0\t0\t0\n"),
        )
        .unwrap();
        fs::write(d.join("cmdline"), format!("{exe}\0")).unwrap();
        fs::write(d.join("cgroup"), format!("{cgroup}\n")).unwrap();
        symlink(exe, d.join("exe")).unwrap();
        fs::create_dir_all(d.join("fd")).unwrap();
        for (i, s) in sockets.iter().enumerate() {
            symlink(
                format!("socket:[{s}]"),
                d.join("fd").join((i + 3).to_string()),
            )
            .unwrap();
        }
        fs::create_dir_all(d.join("ns")).unwrap();
        symlink(ns.0, d.join("ns/pid")).unwrap();
        symlink(ns.1, d.join("ns/mnt")).unwrap();
    }

    fn listeners(&self) -> Vec<serde_json::Value> {
        let o = self.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
        v["snapshot"]["listeners"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn listener(ls: &[serde_json::Value], pid: u32) -> &serde_json::Value {
    ls.iter()
        .find(|l| l["pid"] == pid)
        .unwrap_or_else(|| panic!("no listener {pid} in {ls:?}"))
}

#[test]
fn a_non_sshd_process_sharing_a_stale_listeners_socket_is_found_and_foreign() {
    let r = Root::new();
    r.listening_22();
    let ours = ("pid:[1]", "mnt:[2]");
    // In no unit: stale without asking systemd.
    let session = "0::/user.slice/user-0.slice";
    r.add_holder(
        200,
        "sshd",
        "/usr/sbin/sshd (deleted)",
        &[1001, 1002],
        session,
        ours,
    );
    // Holds the same sockets (a fork that kept them, an fd passed on).
    r.add_holder(
        400,
        "python3",
        "/usr/bin/python3.11",
        &[1001],
        session,
        ours,
    );
    let ls = r.listeners();
    assert_eq!(listener(&ls, 200)["class"], "stale", "{ls:?}");
    assert_eq!(
        listener(&ls, 200)["unit"],
        serde_json::Value::Null,
        "{ls:?}"
    );
    let other = listener(&ls, 400);
    assert_eq!(other["class"], "foreign", "{other}");
    assert_eq!(other["addresses"][0], "0.0.0.0:22", "{other}");
    let o = r.run(&["repair", "--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("stop stale"), "never a blind stop: {text}");
}

#[test]
fn an_sshd_in_another_pid_or_mount_namespace_is_foreign_never_stale() {
    for (ns, cgroup, why) in [
        // A container on the host's network: its sshd in a scope.
        (
            ("pid:[9]", "mnt:[9]"),
            "0::/system.slice/docker-0123.scope",
            "PID namespace",
        ),
        // Only its mount namespace differs, in no unit: cautious.
        (("pid:[1]", "mnt:[9]"), "0::/", "mount namespace"),
        // In a scope systemd cannot be asked about (none under a test root).
        (
            ("pid:[1]", "mnt:[9]"),
            "0::/system.slice/docker-0123.scope",
            "docker-0123.scope",
        ),
    ] {
        let r = Root::new();
        r.listening_22();
        r.add_holder(300, "sshd", "/usr/sbin/sshd", &[1001, 1002], cgroup, ns);
        let ls = r.listeners();
        let l = listener(&ls, 300);
        assert_eq!(l["class"], "foreign", "{ns:?}: {l}");
        assert!(l["why"].as_str().unwrap().contains(why), "{why}: {l}");
    }
}

#[test]
fn hybrid_hierarchy_names_the_unit_systemd_tracks() {
    // Legacy and hybrid hosts: a "0::/" line beside name=systemd must not
    // make ssh.service's own sshd "in no unit", hence stale.
    for cgroup in [
        "5:cpu,cpuacct:/system.slice/ssh.service\n1:name=systemd:/system.slice/ssh.service\n0::/",
        "1:name=systemd:/system.slice/ssh.service\n0::/system.slice/other.service",
    ] {
        let r = Root::new();
        r.listening_22();
        r.add_holder(
            300,
            "sshd",
            "/usr/sbin/sshd",
            &[1001, 1002],
            cgroup,
            ("pid:[1]", "mnt:[2]"),
        );
        let ls = r.listeners();
        let l = listener(&ls, 300);
        assert_eq!(l["unit"], "ssh.service", "{cgroup:?}: {l}");
        assert_eq!(l["class"], "foreign", "systemd's word is needed: {l}");
        assert_eq!(
            l["cgroup"], "1:name=systemd:/system.slice/ssh.service",
            "{l}"
        );
    }
}

#[test]
fn a_python_process_named_sshd_on_port_22_is_foreign() {
    let r = Root::new();
    r.listening_22();
    r.add_holder(
        300,
        "sshd",
        "/usr/bin/python3.11",
        &[1001, 1002],
        "0::/",
        ("pid:[1]", "mnt:[2]"),
    );
    let ls = r.listeners();
    let l = listener(&ls, 300);
    assert_eq!(l["class"], "foreign", "{l}");
    assert_eq!(l["why"], "not a root sshd", "{l}");
    let o = r.run(&["repair", "--dry-run"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("stop stale"), "{text}");
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
fn status_names_the_unit_of_each_listener() {
    let r = Root::new();
    r.listening_22();
    r.add_holder(
        200,
        "sshd",
        "/usr/sbin/sshd",
        &[1001, 1002],
        "0::/system.slice/sshd-mgmt.service",
        ("pid:[1]", "mnt:[2]"),
    );
    let ls = r.listeners();
    let l = listener(&ls, 200);
    assert_eq!(l["unit"], "sshd-mgmt.service", "{l}");
    // Without systemd nobody can say whether that unit still runs it: the
    // guard never calls it stale then.
    assert_eq!(l["class"], "foreign", "{l}");
    let o = r.run(&["status"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("sshd-mgmt.service"), "{text}");
}

/// `status` and `status --json` on one fixed fake machine (a stale sshd
/// listener, an sshd session, a live marker, a half-configured package,
/// a fake sshd -T), pinned byte for byte in tests/golden/ (the temporary
/// root is written as <ROOT>). `GOLDEN_UPDATE=1 cargo test golden`
/// rewrites the files after a deliberate change.
#[test]
fn golden_status_of_a_fixed_fake_machine() {
    let r = Root::new();
    r.make_run_dir();
    fs::write(
        r.p("var/lib/dpkg/updates/0001"),
        "Package: openssh-server\nStatus: install ok half-configured\nVersion: 1:9.2p1-3\n",
    )
    .unwrap();
    fs::create_dir_all(r.p("usr/sbin")).unwrap();
    fs::write(
        r.p("usr/sbin/sshd"),
        "#!/bin/sh\necho 'port 22'\necho 'listenaddress 0.0.0.0:22'\n",
    )
    .unwrap();
    fs::set_permissions(r.p("usr/sbin/sshd"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(r.p("proc/net")).unwrap();
    fs::write(
        r.p("proc/net/tcp"),
        format!("{}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n", fake_proc::TCP_HEADER),
    )
    .unwrap();
    for (pid, comm, exe, sockets) in [
        (4242u32, "sshd", "/usr/sbin/sshd (deleted)", &[1001u64][..]),
        (4300, "sshd-session", "/usr/lib/openssh/sshd-session", &[]),
    ] {
        fake_proc::add_root_process(
            &r.p("proc"),
            pid,
            comm,
            10_000 + u64::from(pid),
            exe,
            sockets,
        );
    }
    // In no unit's cgroup, the one place where no unit's state is needed
    // to call it stale (a sshd in a unit's cgroup needs systemd's word,
    // and a fake root has no systemd).
    fs::write(r.p("proc/4242/cgroup"), "0::/user.slice\n").unwrap();
    r.write_marker(std::process::id(), 4242, "an-earlier-boot", 1_764_370_000);
    let root = r.dir.path().display().to_string();
    let normalize = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .replace(&root, "<ROOT>")
            .replace(&format!("pid {}", std::process::id()), "pid <TEST>")
            .replace(
                &format!("\"holder_pid\": {}", std::process::id()),
                "\"holder_pid\": <TEST>",
            )
            // Run as root or not: the one field and note that depend on it.
            .replace("\"as_root\": false", "\"as_root\": true")
            .lines()
            .filter(|l| !l.starts_with("  note        not run as root"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    // The marker is from another boot, so it reads as stale; the status
    // does not remove it.
    let json = r.run(&["status", "--json"]);
    assert_eq!(code(&json), 1, "{}", stderr(&json));
    let text = r.run(&["status"]);
    assert_eq!(code(&text), 1, "{}", stderr(&text));
    let dry = r.run(&["repair", "--dry-run"]);
    assert_eq!(code(&dry), 0, "{}", stderr(&dry));
    for (name, out) in [
        ("fake-root-status.json", normalize(&json)),
        (
            "fake-root-status.txt",
            normalize(&text) + "=== repair --dry-run\n" + &normalize(&dry),
        ),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("GOLDEN_UPDATE").is_some() {
            fs::write(&path, &out).unwrap();
            continue;
        }
        let golden = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (GOLDEN_UPDATE=1 writes it)", path.display()));
        assert!(
            golden == out,
            "{} differs from this build's output:\n{out}",
            path.display()
        );
    }
}

/// `status | head -0` and a cron job whose mail pipe broke: writing to a
/// closed stdout must never panic the guard or change its exit status.
#[test]
fn a_closed_stdout_changes_nothing_but_the_text() {
    let r = Root::new();
    let cases: [(&[&str], i32); 4] = [
        (&["status"], 3),
        (&["status", "--json"], 3),
        (&["check"], 3),
        (&["repair", "--dry-run"], 0),
    ];
    for (args, want) in cases {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let o = Command::new(env!("CARGO_BIN_EXE_ssh-upgrade-guard"))
            .args(["--config", "/nonexistent"])
            .args(args)
            .env("SSH_UPGRADE_GUARD_TEST_ROOT", r.dir.path())
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert_eq!(code(&o), want, "{args:?}: {}", stderr(&o));
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
