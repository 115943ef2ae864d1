//! The facts of the admin's intent beside systemd's unit states: plain data
//! the snapshot holds, below the rule that reads it (`crate::intent`).
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use serde::Serialize;

/// The file both Debian ssh units name in `ConditionPathExists=!`: while it
/// exists systemd skips their start quietly (snapd uses it on purpose).
pub const NOT_TO_BE_RUN: &str = "/etc/ssh/sshd_not_to_be_run";

/// Debian's policy layer for maintainer scripts (invoke-rc.d and
/// deb-systemd-invoke ask it before starting or stopping a service).
pub const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// policy-rc.d's exit status for "action forbidden".
pub const POLICY_FORBIDDEN: i32 = 101;

/// The facts of intent beside systemd's unit states (those live in
/// [`Units`]: LoadState, UnitFileState, ConditionResult).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Intent {
    /// [`NOT_TO_BE_RUN`] when it exists.
    pub not_to_be_run: Option<String>,
    /// A policy-rc.d, when one is installed, and what it answers for ssh.
    pub policy_rc_d: Option<PolicyRcD>,
    /// The ssh units that were active when this apt run's pre-invoke
    /// looked (from its live marker); None outside an apt run.
    pub served_before: Option<Vec<String>>,
}

/// A policy-rc.d and its answer to `policy-rc.d ssh start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRcD {
    /// Where it is.
    pub path: String,
    /// Its exit status (101: forbidden; 104: allowed); None when it could
    /// not be run within its bound.
    pub answer: Option<i32>,
    /// Why there is no answer.
    pub error: Option<String>,
}

impl PolicyRcD {
    /// It forbids maintainer scripts to start ssh.
    pub fn forbids(&self) -> bool {
        self.answer == Some(POLICY_FORBIDDEN)
    }
}

impl std::fmt::Display for PolicyRcD {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.answer, &self.error) {
            (Some(POLICY_FORBIDDEN), _) => write!(
                f,
                "{} forbids maintainer scripts to start or stop ssh (exit {POLICY_FORBIDDEN}): deb-systemd-invoke skips them and says nothing; it is often left behind by an image build",
                self.path
            ),
            (Some(code), _) => write!(f, "{} answers {code} for ssh", self.path),
            (None, Some(e)) => write!(f, "{} could not be asked: {e}", self.path),
            (None, None) => write!(f, "{} could not be asked", self.path),
        }
    }
}
