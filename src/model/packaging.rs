//! What the snapshot knows about the package manager beside dpkg's state:
//! deb-systemd-helper's records of the ssh units and a question dpkg waits
//! on. Plain data with its wording, below the rules (`roads`) that judge it.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

use serde::Serialize;

/// What Debian's packaging records say about the ssh units
/// (`deb-systemd-helper was-enabled`); None where it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct PackagingRecords {
    /// `deb-systemd-helper was-enabled` for ssh.socket.
    pub socket_was_enabled: Option<bool>,
    /// `deb-systemd-helper was-enabled` for ssh.service.
    pub service_was_enabled: Option<bool>,
}

/// dpkg waiting for an answer (mvo5/unattended-upgrades#168): a locally
/// modified sshd_config under a run nobody watches leaves ucf asking, while
/// the package manager holds dpkg's lock. The guard never answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpkgPrompt {
    /// The process that asks (ucf, whiptail, dialog).
    pub pid: u32,
    /// Its name.
    pub program: String,
    /// The file the question is about, when known (ucf's destination).
    pub about: Option<String>,
    /// Unix time the question was asked (the asking process's start).
    pub since: u64,
    /// The package manager holding dpkg's lock.
    pub holder_pid: u32,
    /// Its name.
    pub holder_comm: String,
}

/// "03:12" (UTC) for a Unix time.
pub fn hhmm_utc(t: u64) -> String {
    let day = t % 86_400;
    format!("{:02}:{:02}", day / 3600, (day % 3600) / 60)
}

impl std::fmt::Display for DpkgPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dpkg waits for an answer")?;
        if let Some(a) = &self.about {
            write!(f, " about {a}")?;
        }
        write!(
            f,
            " since {} UTC ({} pid {}, under {} pid {}); the guard stays inhibited and never answers for you: answer it where {} runs, or stop it and run 'dpkg --configure -a' yourself",
            hhmm_utc(self.since),
            self.program,
            self.pid,
            self.holder_comm,
            self.holder_pid,
            self.holder_comm
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_time_reads_as_utc_hours_and_minutes() {
        assert_eq!(hhmm_utc(0), "00:00");
        assert_eq!(hhmm_utc(86_399), "23:59");
    }
}
