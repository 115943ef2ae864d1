//! Reading dpkg's database from its admin directory and running
//! `dpkg --configure`.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::dpkg::{all_states, is_journal_name, package_state, PackageState};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};

fn read_journal(admin: &Path) -> Result<Vec<(String, String)>> {
    let dir = admin.join("updates");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_journal_name(n))
        .collect();
    // dpkg replays in numeric order; names are zero-padded but sort numerically anyway.
    names.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
    let mut out = Vec::new();
    for n in names {
        let p = dir.join(&n);
        match std::fs::read(&p) {
            Ok(b) => out.push((p.display().to_string(), text(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }
    Ok(out)
}

fn read_status(admin: &Path) -> Result<String> {
    let p = admin.join("status");
    let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(text(b))
}

/// The bytes as text without a copy when they are UTF-8 (the fast check);
/// lossily, as before, only when they are not.
fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The package's state with the journal applied, as dpkg-query would report it.
pub fn state(admin: &Path, pkg: &str) -> Result<PackageState> {
    let status = read_status(admin)?;
    let journal = read_journal(admin)?;
    Ok(package_state(&status, &journal, pkg)?)
}

pub fn states(admin: &Path) -> Result<Vec<PackageState>> {
    let status = read_status(admin)?;
    let journal = read_journal(admin)?;
    Ok(all_states(&status, &journal)?)
}

/// `dpkg --configure PKG...` with output going where ours goes (apt's
/// terminal or log), so the admin sees dpkg's own words.
pub fn configure(pkgs: &[String], frontend_locked: bool) -> Result<()> {
    let mut cmd = Command::new("dpkg");
    cmd.arg("--configure").args(pkgs).stdin(Stdio::null());
    if frontend_locked {
        // apt (or we) hold lock-frontend: dpkg must take only its inner lock.
        cmd.env("DPKG_FRONTEND_LOCKED", "true");
    }
    // Maintainer scripts must not ask questions at 3 a.m.
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    let _doing = crate::deadline::doing(format!("running dpkg --configure {}", pkgs.join(" ")));
    let st = cmd.status().context("cannot run dpkg")?;
    if !st.success() {
        bail!("dpkg --configure {} failed ({st})", pkgs.join(" "));
    }
    Ok(())
}

/// Whether we run inside apt's hooks: apt holds lock-frontend and says so
/// in DPKG_FRONTEND_LOCKED.
pub fn inside_apt() -> bool {
    std::env::var_os("DPKG_FRONTEND_LOCKED").is_some()
}
