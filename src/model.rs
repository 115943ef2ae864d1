//! The snapshot: everything the guard knows about ssh at one moment, as plain
//! data. Gathered by `system::snapshot`, judged by `plan::decide`, printed by
//! `report`. Field names here are the `status --json` interface.

use crate::dpkg::PackageState;
use crate::marker::Marker;
use serde::Serialize;

/// How the admin runs ssh: noble's default is ssh.socket enabled (systemd
/// holds the port, sshd starts on demand); the classic layout runs
/// ssh.service, which binds the port itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    SocketActivated,
    Service,
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Topology::SocketActivated => "socket-activated",
            Topology::Service => "service",
        })
    }
}

/// systemd's view of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct UnitState {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub unit_file_state: String,
    /// ssh.service only: systemd's main process, None when 0.
    pub main_pid: Option<u32>,
    /// ssh.socket only: ListenStream addresses as systemd reports them.
    pub listen: Vec<String>,
    /// ssh.service only: systemd's automatic restarts (Restart=) since the
    /// unit was last started by hand (Service.NRestarts); None when not read.
    pub n_restarts: Option<u32>,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        self.active_state == "active" || self.active_state == "reloading"
    }
    pub fn is_failed(&self) -> bool {
        self.active_state == "failed"
    }
    pub fn is_enabled(&self) -> bool {
        self.unit_file_state.starts_with("enabled")
    }
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.active_state, self.sub_state);
        if !self.result.is_empty() && self.result != "success" {
            s.push_str(&format!(" (result {})", self.result));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Units {
    pub service: UnitState,
    pub socket: UnitState,
}

impl Units {
    /// Socket-activated when ssh.socket is enabled, else the service layout.
    pub fn topology(&self) -> Topology {
        if self.socket.load_state == "loaded" && self.socket.is_enabled() {
            Topology::SocketActivated
        } else {
            Topology::Service
        }
    }

    /// The cheap health check the hooks start with: the unit that should hold
    /// the port is active and nothing is failed. Says nothing about stray
    /// processes; it is enough because a stale listener on the ssh port keeps
    /// ssh.socket (or ssh.service) from being active in the first place.
    pub fn look_healthy(&self) -> bool {
        let holder = match self.topology() {
            Topology::SocketActivated => &self.socket,
            Topology::Service => &self.service,
        };
        holder.is_active() && !self.service.is_failed() && !self.socket.is_failed()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerClass {
    /// pid 1: systemd's own listening socket (ssh.socket).
    Systemd,
    /// The main process of an active ssh.service.
    Managed,
    /// A root sshd listener systemd does not manage: the incident's cause.
    Stale,
    /// Anything else on an ssh port: reported, never touched.
    Foreign,
}

/// A process holding a LISTEN socket on an ssh port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat: with the pid, identifies the process.
    pub start_time: u64,
    pub uid: u32,
    pub comm: String,
    /// The /proc/PID/exe link, " (deleted)" included when the file was replaced.
    pub exe: String,
    pub exe_deleted: bool,
    pub cmdline: String,
    pub cgroup: String,
    pub addresses: Vec<String>,
    pub class: ListenerClass,
}

/// True for the sshd family by process name or binary: the listener and
/// OpenSSH <= 9.7 sessions are "sshd"; >= 9.8 sessions are sshd-session and
/// (10.0) sshd-auth.
pub fn is_sshd_name(comm: &str, exe: &str) -> bool {
    let base = exe
        .trim_end_matches(" (deleted)")
        .rsplit('/')
        .next()
        .unwrap_or("");
    comm == "sshd" || base == "sshd"
}

pub fn is_sshd_session_name(comm: &str) -> bool {
    comm == "sshd-session" || comm == "sshd-auth"
}

/// Classifies a listener. `managed`: main processes of active units that
/// run sshd (ssh.service, the guard's rescue unit). Only `Stale` may ever be
/// signalled.
pub fn classify(pid: u32, uid: u32, comm: &str, exe: &str, managed: &[u32]) -> ListenerClass {
    if pid == 1 {
        ListenerClass::Systemd
    } else if !is_sshd_name(comm, exe) || uid != 0 {
        ListenerClass::Foreign
    } else if managed.contains(&pid) {
        ListenerClass::Managed
    } else {
        ListenerClass::Stale
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct MarkerView {
    pub path: String,
    pub present: bool,
    /// True when the marker holds (its holder runs; same boot; not too old).
    pub live: bool,
    pub marker: Option<Marker>,
    /// Why it does not hold, or why it could not be read.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockView {
    pub path: String,
    /// The process holding it, None when free (or the file does not exist).
    pub holder_pid: Option<u32>,
    pub holder_comm: Option<String>,
    /// Why the lock's state is unknown (it could not be read): then
    /// holder_pid None does not mean free.
    pub error: Option<String>,
}

/// The result of `sshd -t` on the installed binary and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
pub struct ConfigCheck {
    /// None when sshd could not be run at all.
    pub valid: Option<bool>,
    /// sshd's own words when it rejects the configuration, or why it could not run.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Snapshot {
    pub package: Option<PackageState>,
    pub package_error: Option<String>,
    /// TCP ports treated as ssh ports.
    pub ports: Vec<u16>,
    /// Addresses ssh should answer on (ssh.socket's Listen when socket-activated, else sshd -T).
    pub addresses: Vec<String>,
    pub sshd_config: ConfigCheck,
    pub units: Option<Units>,
    pub systemd_error: Option<String>,
    pub topology: Option<Topology>,
    pub listeners: Vec<Listener>,
    /// Listening sockets on ssh ports whose process was not found.
    pub unowned_sockets: Vec<String>,
    /// Taken as root. Without root, other users' processes (so the
    /// holders of their sockets) and dpkg's locks cannot be read.
    pub as_root: bool,
    /// sshd session processes (never touched).
    pub sessions: usize,
    pub marker: MarkerView,
    pub locks: Vec<LockView>,
    /// Problems met while gathering the snapshot (unreadable files, ...).
    pub warnings: Vec<String>,
    /// deb-systemd-helper's records of the ssh units (what the postinst
    /// asks before restarting one).
    pub packaging_records: crate::roads::PackagingRecords,
    /// Where `sshd -T` says sshd listens (sshd_config's Port and
    /// ListenAddress), empty when sshd -T did not answer.
    pub sshd_listen: Vec<String>,
    /// Every address listening on an ssh port, whoever holds it.
    pub listening: Vec<String>,
    /// Whether Ubuntu's sshd-socket-generator is installed (it turns
    /// sshd_config's Port/ListenAddress into ssh.socket's at daemon-reload).
    pub socket_generator: bool,
    /// dpkg waiting for an answer below the holder of its lock (road e).
    pub dpkg_prompt: Option<crate::roads::DpkgPrompt>,
    /// The main process of the guard's rescue sshd, when it runs (road g:
    /// it must run the binaries dpkg unpacked).
    pub rescue_pid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let d = "/usr/sbin/sshd (deleted)";
        assert_eq!(
            classify(1, 0, "systemd", "/usr/lib/systemd/systemd", &[]),
            ListenerClass::Systemd
        );
        assert_eq!(classify(10, 0, "sshd", d, &[]), ListenerClass::Stale);
        assert_eq!(
            classify(10, 0, "sshd", "/usr/sbin/sshd", &[11]),
            ListenerClass::Stale
        );
        assert_eq!(
            classify(10, 0, "sshd", "/usr/sbin/sshd", &[10]),
            ListenerClass::Managed
        );
        assert_eq!(
            classify(10, 1000, "sshd", "/usr/sbin/sshd", &[]),
            ListenerClass::Foreign
        );
        assert_eq!(
            classify(10, 0, "nginx", "/usr/sbin/nginx", &[]),
            ListenerClass::Foreign
        );
        // A renamed comm but the sshd binary is still sshd.
        assert_eq!(
            classify(10, 0, "x", "/usr/sbin/sshd (deleted)", &[]),
            ListenerClass::Stale
        );
    }

    fn unit(name: &str, active: &str, file: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            unit_file_state: file.into(),
            ..Default::default()
        }
    }

    #[test]
    fn topology_and_fast_health() {
        let u = Units {
            service: unit("ssh.service", "inactive", "disabled"),
            socket: unit("ssh.socket", "active", "enabled"),
        };
        assert_eq!(u.topology(), Topology::SocketActivated);
        assert!(u.look_healthy());
        let u = Units {
            service: unit("ssh.service", "inactive", "disabled"),
            socket: unit("ssh.socket", "failed", "enabled"),
        };
        assert!(!u.look_healthy());
        let u = Units {
            service: unit("ssh.service", "active", "enabled"),
            socket: unit("ssh.socket", "inactive", "disabled"),
        };
        assert_eq!(u.topology(), Topology::Service);
        assert!(u.look_healthy());
        let u = Units {
            service: unit("ssh.service", "active", "enabled"),
            socket: unit("ssh.socket", "failed", "disabled"),
        };
        assert!(!u.look_healthy());
    }
}
