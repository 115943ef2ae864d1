//! Reading dpkg's database from its admin directory and running
//! `dpkg --configure`.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use crate::dpkg::{all_states, is_journal_name, package_state, PackageState};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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
///
/// - `--force-confdef --force-confold`, as unattended-upgrades passes: a
///   locally modified conffile (/etc/pam.d/sshd) keeps the admin's version
///   instead of a prompt that, with stdin /dev/null, fails the configure
///   ("end of file on stdin at conffile prompt") on every run.
/// - The package names after `--`: a name can never be read as an option.
/// - Bounded by `timeout` (CONFIGURE_TIMEOUT) through system::child, in a
///   process group of its own: at the bound dpkg and its maintainer
///   scripts are killed, so none of them outlives the guard holding dpkg's
///   lock after apt has let go.
pub fn configure(pkgs: &[String], frontend_locked: bool, timeout: Duration) -> Result<()> {
    let mut cmd = Command::new("dpkg");
    cmd.args(configure_args(pkgs)).stdin(Stdio::null());
    if frontend_locked {
        // apt (or we) hold lock-frontend: dpkg must take only its inner lock.
        cmd.env("DPKG_FRONTEND_LOCKED", "true");
    }
    // Maintainer scripts must not ask questions at 3 a.m.
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    let what = format!("dpkg --configure {}", pkgs.join(" "));
    let _doing = crate::deadline::doing(format!("running {what}"));
    let child = super::child::spawn(&mut cmd).context("cannot run dpkg")?;
    match super::child::output_until(child, crate::deadline::after(timeout)) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => bail!("{what} failed ({})", out.status),
        Err(super::child::Error::TimedOut) => bail!(
            "{what} did not finish within {} s (CONFIGURE_TIMEOUT): stopped, with its maintainer scripts; run 'dpkg --configure -a' when it can finish",
            timeout.as_secs()
        ),
        Err(super::child::Error::Io(e)) => Err(anyhow::Error::from(e).context(what)),
    }
}

/// dpkg's arguments for [`configure`].
fn configure_args(pkgs: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["--force-confdef", "--force-confold", "--configure", "--"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(pkgs.iter().cloned());
    args
}

/// Whether we run inside apt's hooks: apt holds lock-frontend and says so
/// in DPKG_FRONTEND_LOCKED.
pub fn inside_apt() -> bool {
    std::env::var_os("DPKG_FRONTEND_LOCKED").is_some()
}

#[cfg(test)]
mod tests {
    #[test]
    fn configure_keeps_the_admins_conffiles_and_never_reads_a_name_as_an_option() {
        assert_eq!(
            super::configure_args(&["openssh-server:amd64".into(), "-x".into()]),
            [
                "--force-confdef",
                "--force-confold",
                "--configure",
                "--",
                "openssh-server:amd64",
                "-x"
            ]
        );
    }
}
