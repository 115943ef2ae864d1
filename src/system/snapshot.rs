//! Gathers one Snapshot: the package, systemd's units, sshd's configuration,
//! the listeners on the ssh ports, sessions, the marker and dpkg's locks.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::fast::{dpkg_prompt, packaging_records, socket_generator, units, Detail};
use super::fsx::{Entry, FileId, Refused, RunDir};
use super::procs::Procfs;
use super::systemd::Systemd;
use super::{locks, now_secs, Roots};
use crate::config::Config;
use crate::marker::{self, Holder, Marker};
use crate::model::*;
use crate::sshd::{parse_listen, Endpoint};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub const MARKER_FILE: &str = "inhibit";

/// Whether a diagnosis must run `sshd -T` afresh (it is about to act on
/// sshd) or may reuse the last answer (it only reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    Required,
    MayReuse,
}

/// The lock every writer and remover of the marker holds for the rename or
/// unlink itself, so that a stale marker's removal never takes a fresh one.
pub const MARKER_LOCK: &str = "marker.lock";
const MARKER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Removes the marker only if it still is the file `id` that was judged;
/// says what happened, for the line that reports it.
pub fn remove_marker_if_same(dir: &RunDir, id: Option<FileId>) -> anyhow::Result<bool> {
    let id = id.ok_or_else(|| anyhow::anyhow!("cannot tell which file it was"))?;
    let lock = dir.lock_names(MARKER_LOCK, MARKER_LOCK_WAIT)?;
    dir.remove_if_same(MARKER_FILE, id, &lock)
}

/// Writes the marker under the marker lock (unlocked, with a note at -v,
/// if the lock cannot be had: a marker matters more than that race).
pub fn write_marker(dir: &RunDir, text: &str) -> anyhow::Result<()> {
    let lock = dir.lock_names(MARKER_LOCK, MARKER_LOCK_WAIT);
    if let Err(e) = &lock {
        log::info!("{e:#}; writing the marker without it");
    }
    dir.write_atomic(MARKER_FILE, text, 0o644)
}

fn removal_note(why: &str, r: anyhow::Result<bool>) -> String {
    match r {
        Ok(true) => format!("{why}; removed"),
        Ok(false) => format!("{why}; not removed: a new marker was written meanwhile"),
        Err(e) => format!("{why}; could not remove it: {e:#}"),
    }
}

/// Whether reading the marker removes a stale or unreadable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clean {
    /// Remove it (saying so in `problem`): inhibited, the hooks, watchdog.
    RemoveStale,
    /// Only look: status, check.
    Keep,
}

/// The marker's state. With [`Clean::RemoveStale`], a stale or unreadable
/// marker is removed (with the reason returned in `problem`), never a fresh
/// one written since.
pub fn marker_view(roots: &Roots, cfg: &Config, clean: Clean) -> MarkerView {
    marker_view_id(roots, cfg, clean).0
}

/// As [`marker_view`], with the identity of the file judged, for a later
/// [`remove_marker_if_same`].
pub fn marker_view_id(roots: &Roots, cfg: &Config, clean: Clean) -> (MarkerView, Option<FileId>) {
    let clean = clean == Clean::RemoveStale;
    let path = roots.run_dir.join(MARKER_FILE).display().to_string();
    let mut v = MarkerView {
        path: path.clone(),
        ..Default::default()
    };
    let dir = match RunDir::open(roots, false) {
        Ok(Some(d)) => d,
        Ok(None) => return (v, None),
        Err(e) => {
            v.present = true;
            v.problem = Some(format!("{e:#}"));
            return (v, None);
        }
    };
    let (entry, id) = dir.read_with_id(MARKER_FILE, marker::MAX_MARKER_BYTES);
    let text = match entry {
        Entry::Missing => return (v, None),
        Entry::File(t) => t,
        Entry::Refused(why) => {
            v.present = true;
            v.problem = Some(why.to_string());
            // A directory at the marker path is left alone (remove never
            // removes a directory); anything else refused is removed.
            if clean && !matches!(why, Refused::NotRegular { .. }) {
                v.problem = Some(removal_note(
                    &why.to_string(),
                    remove_marker_if_same(&dir, id),
                ));
            }
            return (v, id);
        }
    };
    v.present = true;
    let procfs = Procfs::new(&roots.proc);
    let stale = match Marker::parse(&text) {
        Err(e) => Some(format!("{path}: unreadable marker ({e})")),
        Ok(m) => {
            let boot = procfs.boot_id().unwrap_or_default();
            let holder = match procfs.stamp(m.holder_pid) {
                Some(now) => Holder::Running {
                    start_time: now.start_time,
                },
                None => Holder::Gone,
            };
            let why =
                marker::staleness(&m, &boot, now_secs(), cfg.marker_max_age.as_secs(), holder);
            v.marker = Some(m);
            why.map(|w| format!("stale marker {path}: {w}"))
        }
    };
    match stale {
        None => v.live = true,
        Some(why) => {
            v.problem = Some(if clean {
                removal_note(&why, remove_marker_if_same(&dir, id))
            } else {
                why
            });
        }
    }
    (v, id)
}

pub fn lock_views(roots: &Roots) -> Vec<LockView> {
    let procfs = Procfs::new(&roots.proc);
    [locks::LOCK_FRONTEND, locks::LOCK]
        .iter()
        .map(|name| {
            let path = roots.dpkg_admin.join(name);
            let mut v = LockView {
                path: path.display().to_string(),
                holder_pid: None,
                holder_comm: None,
                error: None,
            };
            match locks::holder(&path) {
                Ok(Some(Some(pid))) => {
                    v.holder_pid = Some(pid);
                    v.holder_comm = procfs.info(pid).map(|i| i.comm);
                }
                Ok(Some(None)) => {
                    v.holder_pid = Some(0);
                    v.holder_comm = Some("unknown".to_string());
                }
                Ok(None) => {}
                Err(e) => v.error = Some(format!("{e:#}")),
            }
            v
        })
        .collect()
}

/// A full snapshot: one scan of /proc. `sd` is the connection to systemd,
/// or why there is none.
pub fn gather(roots: &Roots, cfg: &Config, fresh: Fresh, sd: Result<&Systemd, String>) -> Snapshot {
    let mut s = Snapshot::default();
    // sshd -T runs while systemd, dpkg and /proc are read, unless a report
    // may reuse the last answer (see system::sshd_cache::cache_key).
    let sshd_t = SshdCheck::start(roots, fresh);
    let procfs = Procfs::new(&roots.proc);
    let (units, (survey, mut survey_warnings, package)) =
        units_and_files(roots, cfg, &procfs, sd.clone());
    match package {
        Ok(p) => s.package = Some(p),
        Err(e) => s.package_error = Some(e),
    }
    s.warnings.append(&mut survey_warnings);
    match units {
        Ok(u) => {
            s.topology = Some(u.topology());
            s.units = Some(u);
        }
        Err(e) => s.systemd_error = Some(e),
    }
    let sd: Option<&Systemd> = sd.ok();
    let (check, listen, options) = sshd_t.finish();
    s.sshd_config = check;
    s.sshd_options = options;
    let (ports, addresses) = ssh_addresses(s.units.as_ref(), listen.as_ref(), &cfg.extra_ports);
    s.ports = ports;
    s.addresses = addresses;

    log::debug!("{:.1} ms: sshd configuration known", crate::elapsed_ms());
    let listening = procfs.listening(&s.ports, &mut s.warnings);
    s.listening = listening.values().map(|a| a.to_string()).collect();
    s.listening.sort();
    s.listening.dedup();
    s.sshd_listen = listen
        .as_ref()
        .map(|l| l.addresses.iter().map(|a| a.to_string()).collect())
        .unwrap_or_default();
    s.socket_generator = socket_generator(roots);
    log::debug!("{:.1} ms: listening sockets read", crate::elapsed_ms());
    let others = survey.others.clone();
    let scan = procfs.scan(&listening, survey);
    log::debug!("{:.1} ms: listeners found", crate::elapsed_ms());
    s.warnings.extend(scan.warnings);
    rescue_unit(roots, sd, &mut s);
    claim_listeners(&mut s, sd, &procfs, &listening, &others, scan.listeners);
    s.unowned_sockets = scan.unowned.iter().map(|a| a.to_string()).collect();
    s.sessions = scan.sessions;
    s.marker = marker_view(roots, cfg, Clean::Keep);
    s.intent = super::intent::facts(roots, &s.marker);
    s.locks = lock_views(roots);
    s.dpkg_prompt = dpkg_prompt(roots, &s.locks);
    s.as_root = nix::unistd::geteuid().is_root();
    s.packaging_records = packaging_records(roots, cfg);
    s
}

/// `sshd -T` for a full snapshot: the last answer while it is still valid
/// and a report may reuse it, else a run started now and finished later.
struct SshdCheck {
    /// The options ssh.service passes (SSHD_OPTS).
    opts: crate::sshd_config::SshdOpts,
    /// What a cached answer must have been given for.
    key: Option<String>,
    /// Where answers are cached, if it can be opened.
    run_dir: Option<RunDir>,
    /// The cached answer, when it may be reused.
    cached: Option<(ConfigCheck, Option<crate::sshd::SshdListen>)>,
    /// The run, when there is no cached answer.
    pending: Option<super::sshd::PendingCheck>,
}

impl SshdCheck {
    /// With the options ssh.service passes (SSHD_OPTS): the configuration
    /// checked and the ports printed are the ones the unit runs with.
    fn start(roots: &Roots, fresh: Fresh) -> SshdCheck {
        let opts = super::sshd::unit_options(roots);
        let key = super::sshd_cache::cache_key(roots, &opts);
        let run_dir = RunDir::open(roots, nix::unistd::geteuid().is_root())
            .ok()
            .flatten();
        let cached = match (fresh, &run_dir, &key) {
            (Fresh::MayReuse, Some(d), Some(k)) => super::sshd_cache::load_cached(d, k),
            _ => None,
        };
        let pending = cached
            .is_none()
            .then(|| super::sshd::start_check(&roots.sshd, &opts.config_args));
        SshdCheck {
            opts,
            key,
            run_dir,
            cached,
            pending,
        }
    }

    /// The answer (stored for the next report when it is new), what
    /// sshd_config says about listening, and the options given.
    fn finish(self) -> (ConfigCheck, Option<crate::sshd::SshdListen>, Vec<String>) {
        let (check, listen) = match (self.cached, self.pending) {
            (Some(c), _) => c,
            (None, Some(p)) => {
                let (check, listen) = p.finish();
                if let (Some(d), Some(key)) = (&self.run_dir, self.key) {
                    super::sshd_cache::store_cached(d, key, &check, &listen);
                }
                (check, listen)
            }
            (None, None) => unreachable!("sshd -T runs whenever there is no cached answer"),
        };
        (check, listen, self.opts.all)
    }
}

/// What a /proc survey and dpkg say, beside systemd's view of the units.
type Files = (
    super::listeners::Survey,
    Vec<String>,
    Result<crate::dpkg::PackageState, String>,
);

/// systemd's answers are awaited on this thread while a second one
/// surveys /proc (one readlink per process) and reads dpkg's status file.
fn units_and_files(
    roots: &Roots,
    cfg: &Config,
    procfs: &Procfs,
    sd: Result<&Systemd, String>,
) -> (Result<Units, String>, Files) {
    let fmt = |e: anyhow::Error| format!("{e:#}");
    std::thread::scope(|scope| {
        let files = scope.spawn(|| {
            let mut w = Vec::new();
            let sv = procfs.survey(&mut w);
            log::debug!("{:.1} ms: /proc surveyed", crate::elapsed_ms());
            let package = super::dpkg::state(&roots.dpkg_admin, &cfg.package).map_err(fmt);
            log::debug!("{:.1} ms: dpkg read", crate::elapsed_ms());
            (sv, w, package)
        });
        let units = sd.and_then(|sd| units(sd, cfg, Detail::Full).map_err(fmt));
        let files = files.join().unwrap_or_else(|_| {
            let why = "surveying /proc and reading dpkg: thread panicked".to_string();
            (Default::default(), vec![why.clone()], Err(why))
        });
        (units, files)
    })
}

/// The guard's rescue unit, when it runs, is said loudly: it is a
/// stopgap. (Its sshd is managed like any service's.)
fn rescue_unit(roots: &Roots, sd: Option<&Systemd>, s: &mut Snapshot) {
    // systemd keeps a transient unit's file under /run/systemd/transient;
    // without it there is no rescue sshd to ask about.
    let rescue_file = roots.systemd_transient().join(super::systemd::RESCUE_UNIT);
    if let Some(sd) = sd.filter(|_| rescue_file.exists()) {
        match sd.unit_state(super::systemd::RESCUE_UNIT, true) {
            Ok(r) if r.is_active() => {
                s.warnings.push(format!(
                    "{} runs (pid {}): the guard's rescue sshd; fix ssh, then stop it",
                    super::systemd::RESCUE_UNIT,
                    r.main_pid.unwrap_or(0)
                ));
                s.rescue_pid = r.main_pid;
            }
            _ => {}
        }
    }
}

/// Who claims each listener: its cgroup's unit, asked of systemd after
/// the scan, so a restart in between shows as a new main process (or a
/// unit in transition), never as an old answer about a new process.
fn claim_listeners(
    s: &mut Snapshot,
    sd: Option<&Systemd>,
    procfs: &Procfs,
    listening: &BTreeMap<u64, SocketAddr>,
    others: &[u32],
    found: Vec<super::procs::RawListener>,
) {
    let no_systemd = s
        .systemd_error
        .clone()
        .unwrap_or_else(|| "systemd was not asked".to_string());
    let ask = || sd.ok_or(no_systemd.as_str());
    s.listeners = super::claims::classify(procfs, ask(), found);
    // Before anything may be signalled, every holder of those sockets must
    // be known, not only the sshd found first.
    if s.listeners.iter().any(|l| l.class == ListenerClass::Stale) {
        let known = s.listeners.iter().map(|l| l.process.pid).collect();
        let more = procfs.other_holders(listening, others, &known);
        log::debug!(
            "{:.1} ms: every process's sockets read",
            crate::elapsed_ms()
        );
        s.listeners
            .extend(super::claims::classify(procfs, ask(), more));
        s.listeners.sort_by_key(|l| l.process.pid);
    }
}

/// The addresses to probe for a banner (IPv6 scopes kept).
pub fn probe_targets(s: &Snapshot) -> Vec<Endpoint> {
    let addrs: Vec<Endpoint> = s.addresses.iter().filter_map(|a| parse_listen(a)).collect();
    crate::sshd::probe_targets(&addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(d: &std::path::Path) -> Roots {
        std::fs::create_dir_all(d.join("run")).unwrap();
        Roots::for_test(d)
    }

    fn marker_text(dir: &RunDir) -> Option<String> {
        match dir.read(MARKER_FILE, 4096) {
            Entry::File(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn removing_a_stale_marker_never_removes_a_fresh_one_written_meanwhile() {
        let d = tempfile::tempdir().unwrap();
        let r = roots(d.path());
        let dir = RunDir::open(&r, true).unwrap().unwrap();
        write_marker(&dir, "old, judged stale\n").unwrap();
        let (_, judged) = dir.read_with_id(MARKER_FILE, 4096);
        assert!(judged.is_some());
        // A pre-invoke places a fresh marker between the judgement and the
        // removal.
        write_marker(&dir, "fresh\n").unwrap();
        assert!(!remove_marker_if_same(&dir, judged).unwrap());
        assert_eq!(marker_text(&dir).as_deref(), Some("fresh\n"));
        // The judged file itself is removed.
        let (_, judged) = dir.read_with_id(MARKER_FILE, 4096);
        assert!(remove_marker_if_same(&dir, judged).unwrap());
        assert_eq!(marker_text(&dir), None);
        // Nothing judged (it could not be stat'ed): nothing removed.
        write_marker(&dir, "x\n").unwrap();
        assert!(remove_marker_if_same(&dir, None).is_err());
        assert!(marker_text(&dir).is_some());
    }

    #[test]
    fn the_marker_lock_keeps_removal_and_writing_apart() {
        let d = tempfile::tempdir().unwrap();
        let r = roots(d.path());
        let dir = RunDir::open(&r, true).unwrap().unwrap();
        let held = dir
            .lock_names(MARKER_LOCK, std::time::Duration::from_millis(10))
            .unwrap();
        // flock locks belong to the open file: a second open waits, then
        // gives up after its bound.
        let t0 = std::time::Instant::now();
        assert!(dir
            .lock_names(MARKER_LOCK, std::time::Duration::from_millis(100))
            .is_err());
        assert!(t0.elapsed() >= std::time::Duration::from_millis(100));
        drop(held);
        assert!(dir
            .lock_names(MARKER_LOCK, std::time::Duration::from_millis(100))
            .is_ok());
    }
}
