//! The fast view: what the hooks' and the watchdog's healthy paths read
//! without a full snapshot (systemd's view of both units in one round
//! trip, and the roads they check on the way: b from the units, d and e
//! when asked), and the few reads a full snapshot shares with them.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::fsx::RunDir;
use super::procs::Procfs;
use super::systemd::Systemd;
use super::{now_secs, Roots};
use crate::config::Config;
use crate::model::*;
use crate::sshd::{parse_listen, Endpoint};
use std::path::Path;

/// How much of a unit's state to read from systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// What the healthy-path check needs: states and enablement.
    Brief,
    /// Also MainPID, Result and Listen: a full diagnosis.
    Full,
}

/// Reads systemd's view of both ssh units, in as much `detail` as needed.
pub fn units(sd: &Systemd, cfg: &Config, detail: Detail) -> anyhow::Result<Units> {
    let detail = detail == Detail::Full;
    // Both units in one round trip: D-Bus round trips are most of the
    // hooks' time.
    let mut states = sd
        .unit_states(&[&cfg.ssh_service, &cfg.ssh_socket], detail)
        .into_iter();
    let mut next = || {
        states
            .next()
            .unwrap_or_else(|| Err(anyhow::anyhow!("systemd: no answer")))
    };
    let (service, socket) = (next(), next());
    Ok(Units {
        service: service?,
        socket: socket?,
    })
}

/// Road d outside a full snapshot (the watchdog's healthy path, every few
/// minutes, so that the metric a fleet alerts on stays true): the last
/// `sshd -T` answer while nothing it depends on changed (else sshd -T
/// afresh), ssh.socket's Listen, and one sock_diag dump of the listening
/// sockets. Socket-activated topology only.
pub fn socket_drift_now(
    roots: &Roots,
    cfg: &Config,
    sd: &Systemd,
    units: &Units,
) -> Option<crate::roads::SocketDrift> {
    if units.topology() != Topology::SocketActivated {
        return None;
    }
    // With the options ssh.service passes (SSHD_OPTS), as in a full
    // snapshot: the addresses compared are the ones the unit runs with.
    let opts = super::sshd::unit_options(roots);
    let key = super::sshd_cache::cache_key(roots, &opts);
    let run_dir = RunDir::open(roots, nix::unistd::geteuid().is_root())
        .ok()
        .flatten();
    let cached = match (&run_dir, &key) {
        (Some(d), Some(k)) => super::sshd_cache::load_cached(d, k),
        _ => None,
    };
    let (_, listen) = match cached {
        Some(c) => c,
        None => {
            let (check, listen) = super::sshd::check_config(&roots.sshd, &opts.config_args);
            if let (Some(d), Some(key)) = (&run_dir, key) {
                super::sshd_cache::store_cached(d, key, &check, &listen);
            }
            (check, listen)
        }
    };
    let sshd: Vec<Endpoint> = listen.map(|l| l.addresses).unwrap_or_default();
    let socket = sd.unit_state(&cfg.ssh_socket, true).ok()?;
    let mut ports: Vec<u16> = sshd.iter().map(|a| a.addr.port()).collect();
    ports.extend(
        socket
            .listen
            .iter()
            .filter_map(|a| parse_listen(a))
            .map(|a| a.addr.port()),
    );
    ports.sort_unstable();
    ports.dedup();
    let listening: Vec<Endpoint> = Procfs::new(&roots.proc)
        .listening(&ports, &mut Vec::new())
        .into_values()
        .map(|a| parse_listen(&a.to_string()).unwrap_or_else(|| Endpoint::new(a)))
        .collect();
    let units = Units {
        service: units.service.clone(),
        socket,
    };
    crate::roads::socket_drift(&units, &sshd, &listening, socket_generator(roots))
}

/// Road e: a question below the holder of dpkg's lock. Reads /proc only
/// when a lock is held.
pub fn dpkg_prompt(roots: &Roots, locks: &[LockView]) -> Option<crate::model::DpkgPrompt> {
    let holders: Vec<u32> = locks
        .iter()
        .filter_map(|l| l.holder_pid)
        .filter(|p| *p > 1)
        .collect();
    if holders.is_empty() {
        return None;
    }
    let rows = super::prompt::process_rows(&roots.proc);
    let now = now_secs();
    holders
        .iter()
        .find_map(|h| crate::roads::dpkg_prompt(&rows, *h, now))
}

/// Road b from the units the caller already read: the packaging's records
/// are read only when a unit is masked (LoadState is read on every path).
pub fn blocked_restart_now(
    roots: &Roots,
    cfg: &Config,
    units: &Units,
) -> Option<crate::roads::BlockedRestart> {
    if !crate::roads::any_masked(units) {
        return None;
    }
    crate::roads::blocked_restart(units, &packaging_records(roots, cfg))
}

/// Ubuntu's generator that turns sshd_config's Port/ListenAddress into
/// ssh.socket's ListenStream at daemon-reload (openssh-server >= 1:9.0 on
/// Ubuntu >= 22.10).
pub fn socket_generator(roots: &Roots) -> bool {
    [
        "/usr/lib/systemd/system-generators/sshd-socket-generator",
        "/lib/systemd/system-generators/sshd-socket-generator",
    ]
    .iter()
    .any(|p| roots.under(Path::new(p)).exists())
}

/// deb-systemd-helper's was-enabled for both ssh units (two small files).
pub fn packaging_records(roots: &Roots, cfg: &Config) -> crate::model::PackagingRecords {
    crate::model::PackagingRecords {
        socket_was_enabled: super::dsh::was_enabled(roots, &cfg.ssh_socket),
        service_was_enabled: super::dsh::was_enabled(roots, &cfg.ssh_service),
    }
}
