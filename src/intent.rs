//! What the admin and systemd intend for ssh, as plain data, and the one
//! rule over it: should ssh serve?
//!
//! The seed incident's root cause was a watchdog that acted against what
//! was going on. The guard restores what the admin and systemd intend and
//! never more: ssh that was turned off (disabled, masked, a start condition
//! such as `/etc/ssh/sshd_not_to_be_run`) stays off. The facts come from
//! systemd (LoadState, UnitFileState, ConditionResult), two files, and the
//! record pre-invoke leaves beside the inhibit marker of what served before
//! dpkg ran (`marker::Marker::served_units`); [`should_serve`] is the rule
//! every repair obeys (plan::work and plan::steps start units, and the
//! rescue, only when it says so).
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

pub use crate::model::{Intent, PolicyRcD, NOT_TO_BE_RUN, POLICY_RC_D};
use crate::model::{UnitState, Units};
use serde::Serialize;

/// Whether ssh should serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum ShouldServe {
    /// A unit is enabled, runs, or served before this apt run, and nothing
    /// says no: the guard may start it (and the rescue).
    Serve {
        /// The units that make it so, with the reason for each.
        because: Vec<String>,
    },
    /// The admin (or a tool on the admin's behalf) turned ssh off: the
    /// guard starts nothing, and says so calmly.
    Off {
        /// Why, in the admin's words.
        because: Vec<OffReason>,
    },
}

impl Default for ShouldServe {
    /// No unit known: the old rules decide (see [`should_serve`]).
    fn default() -> Self {
        ShouldServe::Serve {
            because: Vec::new(),
        }
    }
}

impl ShouldServe {
    /// ssh should serve.
    pub fn serves(&self) -> bool {
        matches!(self, ShouldServe::Serve { .. })
    }
}

impl std::fmt::Display for ShouldServe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShouldServe::Serve { because } => {
                write!(f, "ssh should serve: {}", because.join(", "))
            }
            ShouldServe::Off { because } => {
                write!(f, "ssh is off by the admin's choice: ")?;
                let parts: Vec<String> = because.iter().map(|r| r.to_string()).collect();
                f.write_str(&parts.join("; "))
            }
        }
    }
}

/// One reason ssh is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OffReason {
    /// No ssh unit is enabled, none runs, none served before this apt run.
    NotEnabled {
        /// "ssh.service disabled", "ssh.socket static", ...
        units: Vec<String>,
    },
    /// The unit is masked (`systemctl mask`).
    Masked {
        /// The unit.
        unit: String,
    },
    /// [`NOT_TO_BE_RUN`] exists (both units' `ConditionPathExists=!`).
    NotToBeRun {
        /// Its path.
        path: String,
    },
    /// systemd checked the unit's start conditions and one said no.
    ConditionFailed {
        /// The unit.
        unit: String,
    },
}

impl std::fmt::Display for OffReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffReason::NotEnabled { units } => f.write_str(&units.join(", ")),
            OffReason::Masked { unit } => write!(f, "{unit} masked"),
            OffReason::NotToBeRun { path } => {
                write!(f, "{path} exists (systemd skips ssh's start while it does)")
            }
            OffReason::ConditionFailed { unit } => write!(
                f,
                "{unit}'s start condition says no (systemctl status {unit} says which)"
            ),
        }
    }
}

/// Enabled in the sense of "the admin wants it started at boot":
/// `systemctl enable` (or its runtime form), a generator's unit (an init
/// script), or a unit linked into place.
fn enabled(st: &UnitState) -> bool {
    matches!(
        st.unit_file_state.as_str(),
        "enabled" | "enabled-runtime" | "generated" | "linked" | "linked-runtime" | "transient"
    )
}

/// Masked, by its load state or its unit file state.
pub fn masked(st: &UnitState) -> bool {
    st.load_state == "masked" || st.unit_file_state.starts_with("masked")
}

/// The rule: ssh should serve when a unit is enabled, runs, or served
/// before this apt run, and neither a mask nor a start condition says no.
/// ssh.service masked says no for both units (ssh.socket starts it).
pub fn should_serve(units: &Units, intent: &Intent) -> ShouldServe {
    let before = intent.served_before.as_deref().unwrap_or(&[]);
    let mut because = Vec::new();
    let mut off = Vec::new();
    if let Some(path) = &intent.not_to_be_run {
        off.push(OffReason::NotToBeRun { path: path.clone() });
    }
    if masked(&units.service) {
        off.push(OffReason::Masked {
            unit: units.service.name.clone(),
        });
    }
    let mut not_enabled = Vec::new();
    // A unit that wanted to serve and was refused by a mask or a condition.
    let mut refused = false;
    let mut running = false;
    for u in [&units.service, &units.socket] {
        let reason = if u.is_active() || u.in_transition() {
            Some("running")
        } else if before.contains(&u.name) {
            Some("it served before this apt run")
        } else if enabled(u) {
            Some("enabled")
        } else {
            None
        };
        // A unit that runs serves now, whatever a mask or a condition says
        // about starting it again (a mask without --now leaves it running:
        // road b's concern, not an admin's "off").
        if reason == Some("running") {
            because.push(format!("{} running", u.name));
            running = true;
            continue;
        }
        let Some(reason) = reason else {
            if masked(u) {
                let m = OffReason::Masked {
                    unit: u.name.clone(),
                };
                if !off.contains(&m) {
                    off.push(m);
                }
            } else if u.load_state == "loaded" {
                not_enabled.push(format!(
                    "{} {}",
                    u.name,
                    if u.unit_file_state.is_empty() {
                        "not enabled"
                    } else {
                        u.unit_file_state.as_str()
                    }
                ));
            }
            continue;
        };
        if masked(u) {
            refused = true;
            if !off.contains(&OffReason::Masked {
                unit: u.name.clone(),
            }) {
                off.push(OffReason::Masked {
                    unit: u.name.clone(),
                });
            }
            continue;
        }
        // ConditionResult is only meaningful once systemd checked it.
        if u.condition_result == Some(false) && !u.is_active() {
            refused = true;
            off.push(OffReason::ConditionFailed {
                unit: u.name.clone(),
            });
            continue;
        }
        because.push(format!("{} {reason}", u.name));
    }
    let blocked_for_all = off
        .iter()
        .any(|r| matches!(r, OffReason::NotToBeRun { .. }))
        || masked(&units.service);
    if running || (!because.is_empty() && !blocked_for_all) {
        return ShouldServe::Serve { because };
    }
    // Neither unit is known to systemd (openssh-server not installed, or
    // other unit names configured): nothing to start; today's rules (and
    // their "not installed" answers) apply unchanged.
    let none_known = [&units.service, &units.socket]
        .iter()
        .all(|u| u.load_state != "loaded" && !masked(u));
    if none_known && off.is_empty() {
        return ShouldServe::Serve { because };
    }
    // Nothing wants ssh: the disabled units are the reason, named first.
    if because.is_empty() && !not_enabled.is_empty() && !blocked_for_all && !refused {
        off.insert(0, OffReason::NotEnabled { units: not_enabled });
    }
    ShouldServe::Off { because: off }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, active: &str, file: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: if file == "masked" { "masked" } else { "loaded" }.into(),
            active_state: active.into(),
            unit_file_state: file.into(),
            ..Default::default()
        }
    }

    fn units(service: (&str, &str), socket: (&str, &str)) -> Units {
        Units {
            service: unit("ssh.service", service.0, service.1),
            socket: unit("ssh.socket", socket.0, socket.1),
        }
    }

    fn off(v: &ShouldServe) -> String {
        match v {
            ShouldServe::Off { .. } => v.to_string(),
            ShouldServe::Serve { .. } => panic!("expected off, got {v}"),
        }
    }

    #[test]
    fn a_disabled_stopped_service_stays_off() {
        let u = units(("inactive", "disabled"), ("inactive", "disabled"));
        assert_eq!(
            off(&should_serve(&u, &Intent::default())),
            "ssh is off by the admin's choice: ssh.service disabled, ssh.socket disabled"
        );
    }

    #[test]
    fn an_enabled_unit_should_serve_even_when_stopped() {
        let u = units(("inactive", "enabled"), ("inactive", "disabled"));
        assert!(should_serve(&u, &Intent::default()).serves());
        // noble's default: the socket enabled, the service disabled.
        let u = units(("inactive", "disabled"), ("failed", "enabled"));
        assert!(should_serve(&u, &Intent::default()).serves());
    }

    #[test]
    fn a_masked_stopped_socket_beside_a_disabled_service_names_both() {
        let u = units(("inactive", "disabled"), ("inactive", "masked"));
        assert_eq!(
            off(&should_serve(&u, &Intent::default())),
            "ssh is off by the admin's choice: ssh.service disabled; ssh.socket masked"
        );
    }

    #[test]
    fn a_failed_enabled_unit_should_serve() {
        let u = units(("failed", "enabled"), ("inactive", "disabled"));
        assert!(should_serve(&u, &Intent::default()).serves());
    }

    #[test]
    fn what_served_before_dpkg_should_serve_again_though_disabled() {
        // Started by hand (never enabled), stopped by the package's preinst.
        let u = units(("inactive", "disabled"), ("inactive", "disabled"));
        let i = Intent {
            served_before: Some(vec!["ssh.service".into()]),
            ..Default::default()
        };
        match should_serve(&u, &i) {
            ShouldServe::Serve { because } => {
                assert_eq!(because, vec!["ssh.service it served before this apt run"])
            }
            v => panic!("{v}"),
        }
    }

    #[test]
    fn masked_units_stay_off_even_if_they_served_before() {
        let u = units(("inactive", "masked"), ("inactive", "masked"));
        let i = Intent {
            served_before: Some(vec!["ssh.service".into(), "ssh.socket".into()]),
            ..Default::default()
        };
        assert_eq!(
            off(&should_serve(&u, &i)),
            "ssh is off by the admin's choice: ssh.service masked; ssh.socket masked"
        );
    }

    #[test]
    fn a_masked_socket_beside_an_enabled_service_serves_through_the_service() {
        // The hardening roles' layout: socket masked, service enabled.
        let u = units(("inactive", "enabled"), ("inactive", "masked"));
        match should_serve(&u, &Intent::default()) {
            ShouldServe::Serve { because } => assert_eq!(because, vec!["ssh.service enabled"]),
            v => panic!("{v}"),
        }
    }

    #[test]
    fn a_masked_unit_that_still_runs_serves() {
        // `systemctl mask` without --now (road b): it runs, so ssh serves.
        let u = units(("inactive", "disabled"), ("active", "masked"));
        assert!(should_serve(&u, &Intent::default()).serves());
    }

    #[test]
    fn a_masked_service_stops_the_socket_too() {
        let u = units(("inactive", "masked"), ("inactive", "enabled"));
        assert_eq!(
            off(&should_serve(&u, &Intent::default())),
            "ssh is off by the admin's choice: ssh.service masked"
        );
    }

    #[test]
    fn sshd_not_to_be_run_keeps_even_enabled_units_off() {
        let u = units(("inactive", "enabled"), ("inactive", "disabled"));
        let i = Intent {
            not_to_be_run: Some(NOT_TO_BE_RUN.into()),
            ..Default::default()
        };
        assert_eq!(
            off(&should_serve(&u, &i)),
            "ssh is off by the admin's choice: /etc/ssh/sshd_not_to_be_run exists (systemd skips ssh's start while it does)"
        );
    }

    #[test]
    fn a_start_condition_that_said_no_keeps_the_unit_off() {
        let mut u = units(("inactive", "enabled"), ("inactive", "disabled"));
        u.service.condition_result = Some(false);
        assert_eq!(
            off(&should_serve(&u, &Intent::default())),
            "ssh is off by the admin's choice: ssh.service's start condition says no (systemctl status ssh.service says which)"
        );
        // Never checked (None) or passed: no objection.
        u.service.condition_result = None;
        assert!(should_serve(&u, &Intent::default()).serves());
    }

    #[test]
    fn a_running_unit_counts_whatever_its_enablement() {
        let u = units(("active", "disabled"), ("inactive", "disabled"));
        assert!(should_serve(&u, &Intent::default()).serves());
        // Generated (an init script) and static-but-running.
        let u = units(("inactive", "generated"), ("inactive", "static"));
        assert!(should_serve(&u, &Intent::default()).serves());
    }

    #[test]
    fn no_known_unit_leaves_the_old_rules_in_charge() {
        let mut u = Units::default();
        u.service.name = "ssh.service".into();
        u.service.load_state = "not-found".into();
        u.socket.name = "ssh.socket".into();
        u.socket.load_state = "not-found".into();
        assert!(should_serve(&u, &Intent::default()).serves());
    }

    #[test]
    fn policy_rc_d_forbidding_is_named_with_its_consequence() {
        let p = PolicyRcD {
            path: POLICY_RC_D.into(),
            answer: Some(101),
            error: None,
        };
        assert!(p.forbids());
        assert!(p.to_string().contains("forbids maintainer scripts"));
        let p = PolicyRcD {
            answer: Some(104),
            ..p
        };
        assert!(!p.forbids());
    }
}
