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
    // Through system::child like every child: its own process group, killed
    // with the hook at its deadline.
    let child = super::child::spawn(
        Command::new(&path)
            .args(["ssh", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
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
        policy_rc_d: policy_rc_d(roots),
        ..fast_facts(roots, Some(marker))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root_with_policy(script: &str) -> (tempfile::TempDir, Roots) {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots::for_test(dir.path());
        let p = roots.under(Path::new(POLICY_RC_D));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, roots)
    }

    #[test]
    fn a_policy_rc_d_that_forbids_ssh_is_read_with_its_answer() {
        let (_d, roots) =
            root_with_policy("#!/bin/sh\n[ \"$1 $2\" = 'ssh start' ] && exit 101\nexit 0\n");
        let i = facts(&roots, &MarkerView::default());
        let p = i.policy_rc_d.unwrap();
        assert_eq!(p.answer, Some(101));
        assert!(p.forbids());
        assert_eq!(i.not_to_be_run, None);
    }

    #[test]
    fn a_policy_rc_d_that_hangs_costs_its_bound_and_no_answer() {
        let (_d, roots) = root_with_policy("#!/bin/sh\nexec sleep 60\n");
        let t = Instant::now();
        let p = facts(&roots, &MarkerView::default()).policy_rc_d.unwrap();
        assert!(
            t.elapsed() < POLICY_TIMEOUT + Duration::from_secs(3),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(p.answer, None);
        assert!(p.error.unwrap().contains("did not answer within 5 s"));
    }

    #[test]
    fn sshd_not_to_be_run_and_what_served_before_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots::for_test(dir.path());
        let f = roots.under(Path::new(NOT_TO_BE_RUN));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "").unwrap();
        let mut marker = MarkerView {
            live: true,
            marker: Some(crate::marker::Marker {
                holder_pid: 9,
                holder_start_time: 1,
                holder_comm: "apt-get".into(),
                boot_id: "b".into(),
                created: 1,
                reason: "r".into(),
                served_units: Some(vec!["ssh.service".into()]),
            }),
            ..Default::default()
        };
        let i = facts(&roots, &marker);
        assert_eq!(i.not_to_be_run.as_deref(), Some(NOT_TO_BE_RUN));
        assert_eq!(i.served_before, Some(vec!["ssh.service".to_string()]));
        assert_eq!(i.policy_rc_d, None);
        // A marker that no longer holds says nothing about this run.
        marker.live = false;
        assert_eq!(facts(&roots, &marker).served_before, None);
    }
}
