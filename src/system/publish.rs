//! Writes the repair counters (kept across runs) and the Prometheus textfile
//! for node_exporter, both atomically (temporary file + rename), so the
//! collector never reads half a file.

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

/// Writes the metrics file when the textfile directory exists.
pub fn write_metrics(roots: &Roots, dir: Option<&Path>, o: &Observed, c: &Counters) -> Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    let dir = roots.under(dir);
    if !dir.is_dir() {
        return Ok(());
    }
    let text = metrics::render(o, c, env!("CARGO_PKG_VERSION"), super::now_secs());
    write_atomic(&dir, METRICS_FILE, &text)
}
