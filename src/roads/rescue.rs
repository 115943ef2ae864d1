//! Road g: the guard's rescue sshd runs a binary dpkg has since replaced.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use serde::Serialize;

/// The guard's rescue sshd runs a binary dpkg has since replaced: started
/// before dpkg unpacked openssh-server (pre-invoke), it re-executes the new
/// sshd (or, from OpenSSH 9.8, the new sshd-session) with the old
/// listener's state and fails exactly like the stale listener. It is
/// restarted on the unpacked binaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleRescue {
    /// The rescue sshd's main process.
    pub pid: u32,
    /// Its /proc/PID/exe, " (deleted)" included.
    pub exe: String,
}

impl std::fmt::Display for StaleRescue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guard's rescue sshd (pid {}) still runs the replaced binary {}",
            self.pid, self.exe
        )
    }
}

/// Road g from a snapshot: the rescue's main process is a listener whose
/// binary was replaced.
pub fn stale_rescue(s: &crate::model::Snapshot) -> Option<StaleRescue> {
    let pid = s.rescue_pid?;
    let l = s
        .listeners
        .iter()
        .find(|l| l.process.pid == pid && l.exe_deleted)?;
    Some(StaleRescue {
        pid,
        exe: l.exe.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roads::fixtures::listener;

    #[test]
    fn a_rescue_on_a_replaced_binary_is_found_and_nothing_else() {
        use crate::model::ListenerClass::Managed;
        let mut s = crate::model::Snapshot::default();
        let mut l = listener(900, Managed);
        l.exe = "/usr/sbin/sshd (deleted)".into();
        l.exe_deleted = true;
        s.listeners = vec![l, listener(901, Managed)];
        assert_eq!(stale_rescue(&s), None, "no rescue runs");
        s.rescue_pid = Some(901);
        assert_eq!(stale_rescue(&s), None, "the rescue runs the current binary");
        s.rescue_pid = Some(900);
        assert_eq!(
            stale_rescue(&s).unwrap().to_string(),
            "the guard's rescue sshd (pid 900) still runs the replaced binary /usr/sbin/sshd (deleted)"
        );
    }
}
