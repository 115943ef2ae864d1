//! Road b: the unit openssh-server's postinst restarts is masked and still
//! running, predicted from systemd's view and deb-systemd-helper's records.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use crate::model::{PackagingRecords, Units};
use serde::Serialize;

/// deb-systemd-helper's was-enabled from its state file's text: every link
/// listed (one absolute path per line) must still be a symlink.
pub fn was_enabled_from(state: &str, is_symlink: impl Fn(&str) -> bool) -> bool {
    // As deb-systemd-helper: lines are taken as they are (an empty line
    // names no link, so it is missing), a missing file lists nothing.
    state
        .lines()
        .all(|l| l.starts_with('/') && !l.split('/').any(|c| c == "..") && is_symlink(l))
}

/// Road b: the unit openssh-server's postinst will restart is masked and
/// still running. Noble's postinst restarts ssh.socket when
/// deb-systemd-helper says it was enabled (else ssh.service);
/// deb-systemd-invoke skips a unit that is neither enabled nor running,
/// but restarts a running one, and systemctl refuses a masked unit:
/// "Failed to restart ssh.socket: Unit ssh.socket is masked.", then "Could
/// not execute systemctl:" and the package stays half-configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedRestart {
    /// The unit the postinst will restart.
    pub unit: String,
    /// The other ssh unit (ssh.service when `unit` is ssh.socket).
    pub other: String,
    /// The commands that fix it, each a choice the admin makes: keep the
    /// unit (unmask it), or keep it masked and tell the packaging so.
    pub fixes: Vec<String>,
}

impl std::fmt::Display for BlockedRestart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{u} is masked but still running, and openssh-server's postinst restarts it (deb-systemd-helper still records it as enabled): 'systemctl restart {u}' fails with \"Unit {u} is masked.\" and openssh-server stays half-configured",
            u = self.unit
        )
    }
}

impl BlockedRestart {
    /// The advice line: what to run, as choices; the guard never unmasks.
    pub fn advice(&self) -> String {
        format!(
            "the guard does not unmask or re-enable units (your decision). Either {}",
            self.fixes.join("; or ")
        )
    }
}

/// Predicts road b from what systemd says about both units (LoadState and
/// ActiveState, which the hooks read anyway) and the packaging's records.
pub fn blocked_restart(units: &Units, rec: &PackagingRecords) -> Option<BlockedRestart> {
    let (unit, other) = match (rec.socket_was_enabled, rec.service_was_enabled) {
        (Some(true), _) => (&units.socket, &units.service),
        (Some(false), Some(true)) => (&units.service, &units.socket),
        _ => return None,
    };
    let masked = unit.load_state == "masked" || unit.unit_file_state.starts_with("masked");
    if !masked || !unit.is_active() {
        return None;
    }
    let (u, o) = (unit.name.as_str(), other.name.as_str());
    let mut fixes = vec![format!("keep {u}: 'systemctl unmask {u}'")];
    if u.ends_with(".socket") {
        // Disable while unmasked, so that systemd removes the enable links
        // ([Install]) the packaging reads; then mask it again.
        fixes.push(format!(
            "keep {u} masked and run {o} instead: 'systemctl unmask {u} && systemctl disable --now {u} && systemctl enable --now {o} && systemctl mask {u}'"
        ));
    }
    Some(BlockedRestart {
        unit: u.to_string(),
        other: o.to_string(),
        fixes,
    })
}

/// Whether predicting road b needs the packaging's records at all: only
/// when a unit is masked (nearly free: LoadState is read on every path).
pub fn any_masked(units: &Units) -> bool {
    [&units.socket, &units.service]
        .iter()
        .any(|u| u.load_state == "masked" || u.unit_file_state.starts_with("masked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UnitState;
    use crate::roads::fixtures::unit;

    fn masked(name: &str, active: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "masked".into(),
            active_state: active.into(),
            unit_file_state: "masked".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_masked_running_socket_the_postinst_restarts_is_predicted() {
        // Reproduced on the noble fixture: `systemctl mask ssh.socket`
        // (without --now), then apt-get upgrade fails in the postinst.
        let units = Units {
            service: unit("ssh.service", "inactive", ""),
            socket: masked("ssh.socket", "active"),
        };
        let rec = PackagingRecords {
            socket_was_enabled: Some(true),
            service_was_enabled: Some(false),
        };
        let b = blocked_restart(&units, &rec).unwrap();
        assert_eq!(b.unit, "ssh.socket");
        assert!(
            b.to_string().contains("\"Unit ssh.socket is masked.\""),
            "{b}"
        );
        assert_eq!(b.fixes.len(), 2);
        assert_eq!(b.fixes[0], "keep ssh.socket: 'systemctl unmask ssh.socket'");
        assert!(b.fixes[1].contains("systemctl unmask ssh.socket && systemctl disable --now ssh.socket && systemctl enable --now ssh.service && systemctl mask ssh.socket"));
        assert!(b.advice().starts_with("the guard does not unmask"));
        assert!(any_masked(&units));
    }

    #[test]
    fn what_deb_systemd_invoke_skips_is_not_predicted() {
        let rec = PackagingRecords {
            socket_was_enabled: Some(true),
            service_was_enabled: Some(true),
        };
        // Masked and stopped: "is a disabled or a static unit not running,
        // not starting it" (the field notes' measurement: apt exits 0).
        let units = Units {
            service: unit("ssh.service", "active", "enabled"),
            socket: masked("ssh.socket", "inactive"),
        };
        assert_eq!(blocked_restart(&units, &rec), None);
        // Not recorded as enabled: the postinst restarts ssh.service.
        let units = Units {
            service: unit("ssh.service", "active", "enabled"),
            socket: masked("ssh.socket", "active"),
        };
        let rec2 = PackagingRecords {
            socket_was_enabled: Some(false),
            service_was_enabled: Some(true),
        };
        assert_eq!(blocked_restart(&units, &rec2), None);
        // Unknown records: no prediction rather than a wrong one.
        assert_eq!(blocked_restart(&units, &PackagingRecords::default()), None);
        // A masked running ssh.service the postinst restarts is predicted,
        // with only the unmask choice.
        let units = Units {
            service: masked("ssh.service", "active"),
            socket: unit("ssh.socket", "inactive", "disabled"),
        };
        let b = blocked_restart(&units, &rec2).unwrap();
        assert_eq!(b.unit, "ssh.service");
        assert_eq!(b.fixes.len(), 1);
    }

    #[test]
    fn was_enabled_reads_like_deb_systemd_helper() {
        let links = ["/etc/systemd/system/sockets.target.wants/ssh.socket"];
        let present = |l: &str| links.contains(&l);
        assert!(was_enabled_from(
            "/etc/systemd/system/sockets.target.wants/ssh.socket\n",
            present
        ));
        assert!(!was_enabled_from(
            "/etc/systemd/system/sockets.target.wants/ssh.socket\n/etc/systemd/system/ssh.service.requires/ssh.socket\n",
            present
        ));
        // An empty (or missing) state file lists nothing: enabled, as in
        // deb-systemd-helper.
        assert!(was_enabled_from("", present));
        // Relative or climbing paths are not links the packaging made.
        assert!(!was_enabled_from("etc/x\n", |_| true));
        assert!(!was_enabled_from("/etc/../x\n", |_| true));
        assert!(!was_enabled_from("/a\n\n/b\n", |_| true));
    }
}
