//! Writes the repair counters (kept across runs) and the Prometheus textfile
//! for node_exporter, both atomically (temporary file + rename), so the
//! collector never reads half a file.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::fsx::RunDir;
use super::Roots;
use crate::metrics::{self, Counters, Observed};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

const COUNTERS: &str = "counters";
pub const METRICS_FILE: &str = "ssh_upgrade_guard.prom";

fn write_atomic(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", dir.join(name).display()))
}

pub fn load_counters(roots: &Roots) -> Counters {
    std::fs::read_to_string(roots.state_dir.join(COUNTERS))
        .map(|t| Counters::parse(&t))
        .unwrap_or_default()
}

pub fn save_counters(roots: &Roots, c: &Counters) -> Result<()> {
    std::fs::create_dir_all(&roots.state_dir)
        .with_context(|| format!("cannot create {}", roots.state_dir.display()))?;
    write_atomic(&roots.state_dir, COUNTERS, &c.render())
}

/// Whether node_exporter's textfile directory exists (metrics are written
/// only then).
pub fn metrics_dir_exists(roots: &Roots, dir: &Path) -> bool {
    roots.under(dir).is_dir()
}

/// Writes the metrics file when the textfile directory exists, through a
/// handle on the directory (see RunDir::open_foreign).
pub fn write_metrics(roots: &Roots, dir: Option<&Path>, o: &Observed, c: &Counters) -> Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    let Some(dir) = RunDir::open_foreign(roots, roots.under(dir))? else {
        return Ok(());
    };
    let text = metrics::render(o, c, env!("CARGO_PKG_VERSION"), super::now_secs());
    dir.write_atomic(METRICS_FILE, &text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn roots(dir: &Path) -> Roots {
        Roots::for_test(dir)
    }

    fn observed() -> Observed {
        Observed {
            package: "openssh-server".into(),
            package_ok: true,
            ssh_up: true,
            off_by_choice: false,
            stale_listeners: 0,
            inhibited: false,
            roads: Default::default(),
        }
    }

    const DIR: &str = "/var/lib/prometheus/node-exporter";

    #[test]
    fn metrics_written_only_where_the_collector_directory_exists() {
        let t = tempfile::tempdir().unwrap();
        let r = roots(t.path());
        write_metrics(&r, Some(Path::new(DIR)), &observed(), &Counters::default()).unwrap();
        assert!(
            !t.path().join("var/lib/prometheus").exists(),
            "nothing created"
        );
        std::fs::create_dir_all(t.path().join(&DIR[1..])).unwrap();
        write_metrics(&r, Some(Path::new(DIR)), &observed(), &Counters::default()).unwrap();
        let text = std::fs::read_to_string(t.path().join(&DIR[1..]).join(METRICS_FILE)).unwrap();
        assert!(text.contains("ssh_upgrade_guard_ssh_up 1"));
        let leftovers: Vec<_> = std::fs::read_dir(t.path().join(&DIR[1..]))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        write_metrics(&r, None, &observed(), &Counters::default()).unwrap();
    }

    #[test]
    fn symlinked_collector_directory_is_refused_and_nothing_written_through_it() {
        let t = tempfile::tempdir().unwrap();
        let r = roots(t.path());
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::create_dir_all(t.path().join("var/lib/prometheus")).unwrap();
        symlink(&elsewhere, t.path().join(&DIR[1..])).unwrap();
        let e =
            write_metrics(&r, Some(Path::new(DIR)), &observed(), &Counters::default()).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    }

    #[test]
    fn counters_survive_runs() {
        let t = tempfile::tempdir().unwrap();
        let r = roots(t.path());
        assert_eq!(load_counters(&r), Counters::default());
        let c = Counters {
            success: 3,
            ..Default::default()
        };
        save_counters(&r, &c).unwrap();
        assert_eq!(load_counters(&r), c);
    }
}
