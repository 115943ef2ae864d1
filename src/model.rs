//! The snapshot: everything the guard knows about ssh at one moment, as plain
//! data. Gathered by `system::snapshot`, judged by `plan::decide`, printed by
//! `report`. Field names here are the `status --json` interface.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

mod intent;
mod packaging;

pub use crate::stamp::ProcessStamp;
pub use crate::unit_name::is_unit_name;
pub use intent::{Intent, PolicyRcD, NOT_TO_BE_RUN, POLICY_RC_D};
pub use packaging::{DpkgPrompt, PackagingRecords};

use crate::dpkg::PackageState;
use crate::marker::Marker;
use crate::sshd::{listen_addresses, parse_listen, Endpoint, SshdListen};
use serde::Serialize;

/// The guard's rescue sshd's transient unit: a plain name, so that the
/// plan names it without reaching into system/.
pub const RESCUE_UNIT: &str = "ssh-upgrade-guard-rescue.service";

/// How the admin runs ssh: noble's default is ssh.socket enabled (systemd
/// holds the port, sshd starts on demand); the classic layout runs
/// ssh.service, which binds the port itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// ssh.socket enabled: systemd holds the port.
    SocketActivated,
    /// ssh.service binds the port itself.
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
    /// The unit's name.
    pub name: String,
    /// LoadState (loaded, not-found, ...).
    pub load_state: String,
    /// ActiveState (active, failed, inactive, ...).
    pub active_state: String,
    /// SubState (listening, running, dead, ...).
    pub sub_state: String,
    /// Result of the last run (success, resources, exit-code, ...).
    pub result: String,
    /// UnitFileState (enabled, disabled, ...).
    pub unit_file_state: String,
    /// ssh.service only: systemd's main process, None when 0.
    pub main_pid: Option<u32>,
    /// ssh.socket only: ListenStream addresses as systemd reports them.
    pub listen: Vec<String>,
    /// ssh.socket only: BindIPv6Only (default, both, ipv6-only): whether
    /// its [::] address also takes IPv4 connections.
    pub bind_ipv6_only: String,
    /// ssh.service only: systemd's automatic restarts (Restart=) since the
    /// unit was last started by hand (Service.NRestarts); None when not read.
    pub n_restarts: Option<u32>,
    /// ssh.service only: the units it requires (Unit.Requires); None when
    /// not read.
    pub requires: Option<Vec<String>>,
    /// Whether the unit's start conditions held when systemd last checked
    /// them (Unit.ConditionResult); None when never checked or not read.
    pub condition_result: Option<bool>,
}

/// ActiveState values in which systemd is acting on a unit: the guard waits
/// and looks again rather than act.
pub fn in_transition(active_state: &str) -> bool {
    matches!(
        active_state,
        "activating" | "deactivating" | "reloading" | "refreshing"
    )
}

impl UnitState {
    /// Active or reloading.
    pub fn is_active(&self) -> bool {
        self.active_state == "active" || self.active_state == "reloading"
    }
    /// In the failed state.
    pub fn is_failed(&self) -> bool {
        self.active_state == "failed"
    }
    /// systemd is acting on it (activating, deactivating, reloading).
    pub fn in_transition(&self) -> bool {
        in_transition(&self.active_state)
    }
    /// Enabled (enabled or enabled-runtime).
    pub fn is_enabled(&self) -> bool {
        self.unit_file_state.starts_with("enabled")
    }
    /// Active and sub state, and the result when it is not success.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}", self.active_state, self.sub_state);
        if !self.result.is_empty() && self.result != "success" {
            s.push_str(&format!(" (result {})", self.result));
        }
        s
    }
}

/// systemd's view of both ssh units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Units {
    /// ssh.service (or the configured service).
    pub service: UnitState,
    /// ssh.socket (or the configured socket).
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

/// Who a listener on an ssh port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerClass {
    /// pid 1: systemd's own listening socket (ssh.socket).
    Systemd,
    /// A root sshd a running unit claims (ssh.service, a second sshd under
    /// its own unit, rc-local.service, an init script's unit, a login
    /// session's scope, the guard's rescue): in an active unit's cgroup,
    /// being its main process or descended from it, or in a unit without a
    /// main process; or in a unit in transition (identity::judge).
    Managed,
    /// A root sshd listener no running systemd unit claims: the incident's cause.
    Stale,
    /// Anything else on an ssh port (not a root sshd, another namespace,
    /// a unit that could not be told): reported, never touched.
    Foreign,
}

/// A process holding a LISTEN socket on an ssh port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// Which process (`pid` and `start_time` in status --json).
    #[serde(flatten)]
    pub process: ProcessStamp,
    /// Its user id.
    pub uid: u32,
    /// Its name (/proc/PID/comm).
    pub comm: String,
    /// The /proc/PID/exe link, " (deleted)" included when the file was replaced.
    pub exe: String,
    /// Whether the binary was replaced since it started.
    pub exe_deleted: bool,
    /// Its command line.
    pub cmdline: String,
    /// Its cgroup (which unit, if any, started it).
    pub cgroup: String,
    /// The ssh addresses it listens on.
    pub addresses: Vec<String>,
    /// Who it is.
    pub class: ListenerClass,
    /// The systemd unit whose cgroup it is in (it manages the listener when
    /// `class` is managed); None when in no unit or it cannot be told.
    pub unit: Option<String>,
    /// That unit's ActiveState, when systemd was asked.
    pub unit_state: Option<String>,
    /// Why it has its class, in words.
    pub why: String,
}

impl Listener {
    /// Its unit is activating, deactivating or reloading: systemd is acting.
    pub fn settling(&self) -> bool {
        self.unit_state.as_deref().is_some_and(in_transition)
    }
}

/// True for an sshd by its executable (/proc/PID/exe), never by its comm,
/// which any process can set: the basename `sshd`, with the " (deleted)"
/// the kernel adds once the package replaced it, or a name dpkg gives the
/// same file while it unpacks or diverts it (`sshd.dpkg-new`,
/// `sshd.dpkg-tmp`; Debian's self-divert to `sshd.session-split` during
/// the OpenSSH 9.8 split, FIELD-NOTES section 9). The listener and OpenSSH
/// <= 9.7 sessions run it; >= 9.8 sessions are sshd-session and sshd-auth.
pub fn is_sshd_exe(exe: &str) -> bool {
    let path = exe.strip_suffix(" (deleted)").unwrap_or(exe);
    let base = path.rsplit('/').next().unwrap_or("");
    matches!(
        base,
        "sshd" | "sshd.session-split" | "sshd.dpkg-new" | "sshd.dpkg-tmp"
    )
}

/// True for OpenSSH >= 9.8 session processes (sshd-session, sshd-auth).
pub fn is_sshd_session_name(comm: &str) -> bool {
    comm == "sshd-session" || comm == "sshd-auth"
}

/// The inhibit marker as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct MarkerView {
    /// Its path.
    pub path: String,
    /// Whether something is at that path.
    pub present: bool,
    /// True when the marker holds (its holder runs; same boot; not too old).
    pub live: bool,
    /// Its content, when it could be parsed.
    pub marker: Option<Marker>,
    /// Why it does not hold, or why it could not be read.
    pub problem: Option<String>,
}

/// One of dpkg's locks as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockView {
    /// Its path.
    pub path: String,
    /// The process holding it, None when free (or the file does not exist).
    pub holder_pid: Option<u32>,
    /// The holder's name.
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

/// Everything the guard knows about ssh at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Snapshot {
    /// The package's dpkg state.
    pub package: Option<PackageState>,
    /// Why the dpkg state could not be read.
    pub package_error: Option<String>,
    /// TCP ports treated as ssh ports.
    pub ports: Vec<u16>,
    /// Addresses ssh should answer on (ssh.socket's Listen when socket-activated, else sshd -T).
    pub addresses: Vec<String>,
    /// sshd -T on the installed binary and configuration.
    pub sshd_config: ConfigCheck,
    /// The options ssh.service passes to sshd (SSHD_OPTS from
    /// /etc/default/ssh): used for `sshd -T` and the rescue sshd.
    pub sshd_options: Vec<String>,
    /// systemd's view of the units, when it answered.
    pub units: Option<Units>,
    /// Why systemd did not answer.
    pub systemd_error: Option<String>,
    /// The topology, when systemd answered.
    pub topology: Option<Topology>,
    /// Every process listening on an ssh port.
    pub listeners: Vec<Listener>,
    /// Listening sockets on ssh ports whose process was not found.
    pub unowned_sockets: Vec<String>,
    /// Taken as root. Without root, other users' processes (so the
    /// holders of their sockets) and dpkg's locks cannot be read.
    pub as_root: bool,
    /// sshd session processes (never touched).
    pub sessions: usize,
    /// The inhibit marker.
    pub marker: MarkerView,
    /// dpkg's locks (lock-frontend, lock).
    pub locks: Vec<LockView>,
    /// Problems met while gathering the snapshot (unreadable files, ...).
    pub warnings: Vec<String>,
    /// deb-systemd-helper's records of the ssh units (what the postinst
    /// asks before restarting one).
    pub packaging_records: PackagingRecords,
    /// Where `sshd -T` says sshd listens (sshd_config's Port and
    /// ListenAddress), empty when sshd -T did not answer.
    pub sshd_listen: Vec<String>,
    /// Every address listening on an ssh port, whoever holds it.
    pub listening: Vec<String>,
    /// Whether Ubuntu's sshd-socket-generator is installed (it turns
    /// sshd_config's Port/ListenAddress into ssh.socket's at daemon-reload).
    pub socket_generator: bool,
    /// dpkg waiting for an answer below the holder of its lock (road e).
    pub dpkg_prompt: Option<DpkgPrompt>,
    /// The main process of the guard's rescue sshd, when it runs (road g:
    /// it must run the binaries dpkg unpacked).
    pub rescue_pid: Option<u32>,
    /// What the admin intends beside the units' states: start conditions,
    /// policy-rc.d, what served before this apt run (`intent`).
    pub intent: Intent,
}

impl Snapshot {
    /// Units systemd is acting on right now (the ssh units, the units of
    /// the listeners): a repair waits for them, bounded, and looks again.
    pub fn settling(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(u) = &self.units {
            for st in [&u.service, &u.socket] {
                if st.in_transition() {
                    out.push(format!("{} is {}", st.name, st.active_state));
                }
            }
        }
        for l in self.listeners.iter().filter(|l| l.settling()) {
            let line = format!(
                "{} is {}",
                l.unit.as_deref().unwrap_or("?"),
                l.unit_state.as_deref().unwrap_or("?")
            );
            if !out.contains(&line) {
                out.push(line);
            }
        }
        out
    }
}

/// The ssh ports and the addresses ssh should answer on, from what systemd
/// and `sshd -T` say: ssh.socket's Listen when socket-activated, else
/// sshd's ListenAddress, else each port on the families sshd's
/// AddressFamily allows (see [`crate::sshd::listen_addresses`]: IPv6 scopes
/// kept, "[::]:N" probed over IPv4 too only where a socket unit binds it
/// dual-stack). Ports are sshd's, ssh.socket's and the configured extra
/// ones (22 when none is known).
pub fn ssh_addresses(
    units: Option<&Units>,
    sshd: Option<&SshdListen>,
    extra_ports: &[u16],
) -> (Vec<u16>, Vec<String>) {
    let mut ports: Vec<u16> = Vec::new();
    let socket_addrs: Vec<Endpoint> = units
        .map(|u| {
            u.socket
                .listen
                .iter()
                .filter_map(|a| parse_listen(a))
                .collect()
        })
        .unwrap_or_default();
    if let Some(l) = sshd {
        ports.extend(&l.ports);
    }
    ports.extend(socket_addrs.iter().map(|a| a.addr.port()));
    ports.extend(extra_ports);
    if ports.is_empty() {
        ports.push(22);
    }
    ports.sort_unstable();
    ports.dedup();
    let socket_activated = units.is_some_and(|u| u.topology() == Topology::SocketActivated);
    let bind_ipv6_only = units
        .map(|u| u.socket.bind_ipv6_only.as_str())
        .unwrap_or("");
    let addrs = listen_addresses(
        socket_activated,
        &socket_addrs,
        bind_ipv6_only,
        sshd,
        &ports,
    );
    (ports, addrs.iter().map(|a| a.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn units_in_transition_make_a_repair_wait() {
        let mut s = Snapshot {
            units: Some(Units {
                service: unit("ssh.service", "inactive", "disabled"),
                socket: unit("ssh.socket", "active", "enabled"),
            }),
            ..Default::default()
        };
        assert!(s.settling().is_empty());
        s.units.as_mut().unwrap().service.active_state = "activating".into();
        assert_eq!(s.settling(), vec!["ssh.service is activating"]);
        s.units.as_mut().unwrap().service.active_state = "active".into();
        s.listeners.push(Listener {
            process: ProcessStamp {
                pid: 700,
                start_time: 1,
            },
            uid: 0,
            comm: "sshd".into(),
            exe: "/usr/sbin/sshd".into(),
            exe_deleted: false,
            cmdline: String::new(),
            cgroup: "0::/system.slice/sshd-mgmt.service".into(),
            addresses: vec![],
            class: ListenerClass::Managed,
            unit: Some("sshd-mgmt.service".into()),
            unit_state: Some("deactivating".into()),
            why: String::new(),
        });
        assert_eq!(s.settling(), vec!["sshd-mgmt.service is deactivating"]);
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

    fn socket_units(listen: &[&str]) -> Units {
        let mut socket = unit("ssh.socket", "active", "enabled");
        socket.listen = listen.iter().map(|s| s.to_string()).collect();
        Units {
            service: unit("ssh.service", "inactive", "disabled"),
            socket,
        }
    }

    fn sshd_t(ports: &[u16], addrs: &[&str]) -> SshdListen {
        SshdListen {
            ports: ports.to_vec(),
            addresses: addrs.iter().map(|a| parse_listen(a).unwrap()).collect(),
            address_family: None,
        }
    }

    #[test]
    fn socket_activated_addresses_come_from_the_socket_and_bare_v6_is_dual_stack() {
        let u = socket_units(&["[::]:22"]);
        let (ports, addrs) = ssh_addresses(Some(&u), Some(&sshd_t(&[22], &["0.0.0.0:22"])), &[]);
        assert_eq!(ports, vec![22]);
        assert_eq!(addrs, vec!["[::]:22", "0.0.0.0:22"]);
        // An explicit v4 entry is not added twice; ports are merged.
        let u = socket_units(&["0.0.0.0:2222", "[::]:2222"]);
        let (ports, addrs) = ssh_addresses(Some(&u), Some(&sshd_t(&[22], &[])), &[22, 8022]);
        assert_eq!(ports, vec![22, 2222, 8022]);
        assert_eq!(addrs, vec!["0.0.0.0:2222", "[::]:2222"]);
    }

    #[test]
    fn classic_addresses_come_from_sshd_or_every_address_of_each_port() {
        let classic = Units {
            service: unit("ssh.service", "active", "enabled"),
            socket: unit("ssh.socket", "inactive", "disabled"),
        };
        let (_, addrs) =
            ssh_addresses(Some(&classic), Some(&sshd_t(&[22], &["192.0.2.1:22"])), &[]);
        assert_eq!(addrs, vec!["192.0.2.1:22"]);
        let (ports, addrs) = ssh_addresses(Some(&classic), Some(&sshd_t(&[2222], &[])), &[]);
        assert_eq!(ports, vec![2222]);
        assert_eq!(addrs, vec!["0.0.0.0:2222", "[::]:2222"]);
        // Nothing known at all: port 22 on every address.
        let (ports, addrs) = ssh_addresses(None, None, &[]);
        assert_eq!(ports, vec![22]);
        assert_eq!(addrs, vec!["0.0.0.0:22", "[::]:22"]);
    }
}
