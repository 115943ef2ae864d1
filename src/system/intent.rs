//! The facts of intent that are files and programs rather than unit
//! states: `/etc/ssh/sshd_not_to_be_run`, a `policy-rc.d` and what it
//! answers for ssh (run with a bound, like every child), and what served
//! before this apt run (from the live marker pre-invoke wrote).
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use super::Roots;
use crate::intent::{Intent, PolicyRcD, NOT_TO_BE_RUN, POLICY_RC_D};
use crate::model::MarkerView;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long policy-rc.d may take to answer.
const POLICY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether something is at `p` (a file, a symlink, anything: systemd's
/// ConditionPathExists follows symlinks, but a dangling one is still the
/// admin's statement).
fn present(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// `policy-rc.d ssh start`, bounded; None when there is no policy-rc.d.
fn policy_rc_d(roots: &Roots) -> Option<PolicyRcD> {
    let path = roots.under(Path::new(POLICY_RC_D));
    if !present(&path) {
        return None;
    }
    let shown = POLICY_RC_D.to_string();
    let _doing = crate::deadline::doing(format!("asking {shown} about ssh"));
    let child = Command::new(&path)
        .args(["ssh", "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let (answer, error) = match child {
        Err(e) => (None, Some(format!("cannot run it: {e}"))),
        Ok(c) => match super::child::output_until(c, Instant::now() + POLICY_TIMEOUT) {
            Ok(out) => match out.status.code() {
                Some(code) => (Some(code), None),
                None => (None, Some("killed by a signal".to_string())),
            },
            Err(super::child::Error::TimedOut) => (
                None,
                Some(format!(
                    "it did not answer within {} s",
                    POLICY_TIMEOUT.as_secs()
                )),
            ),
            Err(super::child::Error::Io(e)) => (None, Some(format!("{e}"))),
        },
    };
    Some(PolicyRcD {
        path: shown,
        answer,
        error,
    })
}

/// The facts of intent; `marker`: the inhibit marker as found (its
/// `served_units`, when it holds, are what served before this apt run).
pub fn facts(roots: &Roots, marker: &MarkerView) -> Intent {
    Intent {
        not_to_be_run: present(&roots.under(Path::new(NOT_TO_BE_RUN)))
            .then(|| NOT_TO_BE_RUN.to_string()),
        policy_rc_d: policy_rc_d(roots),
        served_before: marker
            .marker
            .as_ref()
            .filter(|_| marker.live)
            .and_then(|m| m.served_units.clone()),
    }
}

/// Only the cheap facts (no child, policy-rc.d not asked): for the hooks'
/// and the watchdog's quick paths. `marker`: as in [`facts`], when read.
pub fn fast_facts(roots: &Roots, marker: Option<&MarkerView>) -> Intent {
    Intent {
        not_to_be_run: present(&roots.under(Path::new(NOT_TO_BE_RUN)))
            .then(|| NOT_TO_BE_RUN.to_string()),
        policy_rc_d: None,
        served_before: marker
            .filter(|m| m.live)
            .and_then(|m| m.marker.as_ref())
            .and_then(|m| m.served_units.clone()),
    }
}
