//! The neighbouring roads to a broken openssh-server upgrade (issue 12 §2):
//! how each one shows in what the guard already knows, as plain data that
//! the plan, `status --json`, `check` and the metrics share. Pure: no
//! system call; the facts come in from `system`, a verdict goes out.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

pub use crate::model::{DpkgPrompt, PackagingRecords};
use crate::model::{Topology, UnitState, Units};
use crate::sshd::Endpoint;
use serde::Serialize;

// ---------------------------------------------------------------- road a

/// systemd refused to start a unit because it was started too often: a
/// restart storm (needrestart after every unattended-upgrades step, a cron
/// watchdog) leaves ssh down with "Start request repeated too quickly".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartLimit {
    /// The unit.
    pub unit: String,
    /// systemd's Result: `start-limit-hit` (the unit's own start limit),
    /// `trigger-limit-hit` (a socket triggered too often) or
    /// `service-start-limit-hit` (a socket whose service hit its limit).
    pub result: String,
    /// ssh.service's automatic restarts (Service.NRestarts), when read.
    /// Restarts by hand (`systemctl restart`) are not counted by systemd.
    pub n_restarts: Option<u32>,
}

/// The Results systemd gives a unit that hit a start or trigger limit.
pub const LIMIT_RESULTS: [&str; 3] = [
    "start-limit-hit",
    "trigger-limit-hit",
    "service-start-limit-hit",
];

impl StartLimit {
    /// What systemd's journal says for this result, so the admin can
    /// match it with what they saw.
    pub fn journal_text(&self) -> &'static str {
        match self.result.as_str() {
            "trigger-limit-hit" => "Trigger limit hit, refusing further activation",
            _ => "Start request repeated too quickly",
        }
    }
}

impl std::fmt::Display for StartLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Starts with the wording of any failed unit ("X failed (result
        // R)"), then says what systemd's journal says about it.
        write!(
            f,
            "{} failed (result {}): \"{}\"",
            self.unit,
            self.result,
            self.journal_text()
        )?;
        if let Some(n) = self.n_restarts {
            write!(f, "; {n} automatic restart(s) since it was last started")?;
        }
        Ok(())
    }
}

/// One unit's start limit, if it is failed with one.
fn start_limit(u: &UnitState) -> Option<StartLimit> {
    (u.is_failed() && LIMIT_RESULTS.contains(&u.result.as_str())).then(|| StartLimit {
        unit: u.name.clone(),
        result: u.result.clone(),
        n_restarts: u.n_restarts,
    })
}

/// Units that are failed because they hit a start or trigger limit (the
/// Result is read only off the healthy path: a unit that looks healthy is
/// not failed, so nothing is missed there).
pub fn start_limits(units: &Units) -> Vec<StartLimit> {
    [&units.socket, &units.service]
        .into_iter()
        .filter_map(start_limit)
        .collect()
}

/// The guard's own starts are never the storm: at most this many starts
/// (or restarts) of one unit by the guard within [`GUARD_START_WINDOW`]
/// seconds, across runs (the hooks run many times in one unattended-upgrades
/// run, and the guard's reset-failed clears systemd's own counter), and
/// never more than one per unit in one run. Below systemd's default burst
/// (5 in 10 s) even if every run came at once.
pub const GUARD_START_BURST: usize = 3;
/// The window of [`GUARD_START_BURST`], in seconds.
pub const GUARD_START_WINDOW: u64 = 600;

/// The guard's start ledger: one "UNIXTIME UNIT" line per start it made.
/// Garbage lines are ignored (the file is the guard's own, under /run).
pub fn ledger_starts(ledger: &str, unit: &str, now: u64) -> usize {
    ledger
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(t, u)| {
            *u == unit
                && t.parse::<u64>()
                    .is_ok_and(|t| now.saturating_sub(t) < GUARD_START_WINDOW && t <= now)
        })
        .count()
}

/// The ledger with `unit` started at `now` added and old entries dropped.
pub fn ledger_add(ledger: &str, unit: &str, now: u64) -> String {
    let mut out: String = ledger
        .lines()
        .filter(|l| {
            l.split_once(' ').is_some_and(|(t, u)| {
                !u.is_empty()
                    && !u.contains(char::is_whitespace)
                    && t.parse::<u64>()
                        .is_ok_and(|t| t <= now && now - t < GUARD_START_WINDOW)
            })
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{now} {unit}\n"));
    out
}

/// Why the guard must not start these units now, or None. `units`: the
/// units a plan would start or restart, in order.
pub fn start_budget(ledger: &str, units: &[&str], now: u64) -> Option<String> {
    for (i, u) in units.iter().enumerate() {
        if units[..i].contains(u) {
            return Some(format!(
                "the plan starts {u} twice; the guard starts a unit at most once per run"
            ));
        }
        let n = ledger_starts(ledger, u, now);
        if n >= GUARD_START_BURST {
            return Some(format!(
                "the guard already started {u} {n} times in the last {} minutes and will not start it again (it would be a restart storm); nothing was changed. See why with 'journalctl -u {u}'; 'systemctl start {u}' starts it by hand",
                GUARD_START_WINDOW / 60
            ));
        }
    }
    None
}

// ---------------------------------------------------------------- road b

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

// ---------------------------------------------------------------- road d

/// Socket-activation drift: the three places that say where ssh listens
/// disagree. On Ubuntu sshd_config's Port/ListenAddress reach ssh.socket
/// only through `sshd-socket-generator` at `daemon-reload`, and a changed
/// ssh.socket listens on its new addresses only once restarted; an admin
/// who changes the port and the firewall in between locks themselves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketDrift {
    /// What `sshd -T` says (sshd_config).
    pub sshd_config: Vec<String>,
    /// ssh.socket's ListenStream, as systemd has loaded it.
    pub socket_listen: Vec<String>,
    /// What is really listening on the ssh ports.
    pub listening: Vec<String>,
    /// Which pair disagrees: `config-not-applied` (sshd_config vs
    /// ssh.socket) or `socket-not-restarted` (ssh.socket vs the sockets).
    pub kind: String,
    /// The commands that apply the change (the guard never runs them).
    pub apply: String,
}

impl std::fmt::Display for SocketDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let j = |v: &[String]| v.join(", ");
        match self.kind.as_str() {
            "config-not-applied" => write!(
                f,
                "sshd_config says ssh listens on {}, but ssh.socket listens on {} (socket activation: sshd's Port and ListenAddress do not reach ssh.socket by themselves); apply it with: {}",
                j(&self.sshd_config),
                j(&self.socket_listen),
                self.apply
            ),
            _ => write!(
                f,
                "ssh.socket is set to listen on {}, but what listens is {} (ssh.socket was not restarted after the change); apply it with: {}",
                j(&self.socket_listen),
                j(&self.listening),
                self.apply
            ),
        }
    }
}

/// One address in a comparison: the socket address without a numeric
/// scope id, and the scope as named (`eth0`, or the kernel's index).
type Reach = (std::net::SocketAddr, Option<String>);

/// A set of listening addresses as a client sees it: a wildcard `[::]:P`
/// without `0.0.0.0:P` beside it is dual-stack (systemd's and sshd's
/// default), so it also serves IPv4; not where `dual_stack` is false
/// (a socket unit with `BindIPv6Only=ipv6-only`).
fn reach(addrs: &[Endpoint], dual_stack: bool) -> std::collections::BTreeSet<Reach> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let key = |e: &Endpoint| -> Reach {
        let mut a = e.addr;
        if let SocketAddr::V6(v6) = &mut a {
            v6.set_scope_id(0);
        }
        (a, e.scope.clone())
    };
    let mut out: std::collections::BTreeSet<Reach> = addrs.iter().map(key).collect();
    for a in addrs {
        let v4 = Endpoint::new(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            a.addr.port(),
        ));
        if dual_stack && a.addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && !addrs.contains(&v4) {
            out.insert(key(&v4));
        }
    }
    out
}

/// [`reach`] without scopes: the kernel names a link-local address's
/// interface by index, systemd and sshd by name, so whether the socket's
/// addresses are up is judged on address and port.
fn unscoped(
    set: &std::collections::BTreeSet<Reach>,
) -> std::collections::BTreeSet<std::net::SocketAddr> {
    set.iter().map(|(a, _)| *a).collect()
}

/// Addresses as sorted, distinct strings (for reports and JSON; IPv6
/// scopes kept).
fn render(addrs: &[Endpoint]) -> Vec<String> {
    let mut v: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// The commands that bring ssh.socket in line with sshd_config: Ubuntu's
/// generator when it is installed, else a drop-in with the addresses
/// (systemd spells an IPv6 scope after the port: `[fe80::1]:22%eth0`).
pub fn apply_commands(socket: &str, sshd: &[Endpoint], generator: bool) -> String {
    if generator {
        return format!("systemctl daemon-reload && systemctl restart {socket}");
    }
    let mut listen: Vec<String> = sshd
        .iter()
        .map(|e| match &e.scope {
            Some(z) => format!("{}%{z}", e.addr),
            None => e.addr.to_string(),
        })
        .collect();
    listen.sort();
    listen.dedup();
    let mut lines = String::from("[Socket]\\nListenStream=\\n");
    for a in listen {
        lines.push_str(&format!("ListenStream={a}\\n"));
    }
    format!(
        "mkdir -p /etc/systemd/system/{socket}.d && printf '{lines}' >/etc/systemd/system/{socket}.d/listen.conf && systemctl daemon-reload && systemctl restart {socket}"
    )
}

/// Compares the three truths; only for a socket-activated ssh whose socket
/// is active (a failed or stopped socket is another finding). `sshd`: the
/// addresses `sshd -T` prints (empty when sshd -T did not answer: no
/// verdict); `listening`: every address listening on the ssh ports.
pub fn socket_drift(
    units: &Units,
    sshd: &[Endpoint],
    listening: &[Endpoint],
    generator: bool,
) -> Option<SocketDrift> {
    if units.topology() != Topology::SocketActivated || !units.socket.is_active() || sshd.is_empty()
    {
        return None;
    }
    let socket: Vec<Endpoint> = units
        .socket
        .listen
        .iter()
        .filter_map(|a| crate::sshd::parse_listen(a))
        .collect();
    if socket.is_empty() {
        return None;
    }
    let socket_dual_stack = units.socket.bind_ipv6_only != "ipv6-only";
    let (s, k, r) = (
        reach(sshd, true),
        reach(&socket, socket_dual_stack),
        reach(listening, socket_dual_stack),
    );
    let kind = if s != k {
        "config-not-applied"
    } else if !unscoped(&r).is_superset(&unscoped(&k)) {
        // Something else may listen on an ssh port too (reported
        // elsewhere); what matters is that the socket's addresses are up.
        "socket-not-restarted"
    } else {
        return None;
    };
    let apply = if kind == "config-not-applied" {
        apply_commands(&units.socket.name, sshd, generator)
    } else {
        format!("systemctl restart {}", units.socket.name)
    };
    Some(SocketDrift {
        sshd_config: render(sshd),
        socket_listen: render(&socket),
        listening: render(listening),
        kind: kind.to_string(),
        apply,
    })
}

// ---------------------------------------------------------------- road f

/// ssh.service binds the ssh port itself while ssh is socket-activated:
/// ssh.socket cannot listen ("Failed to create listening socket
/// ([::]:22): Address already in use", Result: resources). It happens
/// where ssh.socket does not declare RequiredBy=ssh.service (older socket
/// units, local overrides), so restarting the socket does not stop the
/// service first; the postinst's restart of ssh.socket then fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceHoldsPort {
    /// The service unit.
    pub service: String,
    /// The socket unit.
    pub socket: String,
    /// The service's main process.
    pub pid: u32,
    /// The addresses it holds.
    pub addresses: Vec<String>,
}

impl std::fmt::Display for ServiceHoldsPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {}) listens on {} itself while ssh is socket-activated, so {} cannot listen there (Address already in use)",
            self.service,
            self.pid,
            self.addresses.join(", "),
            self.socket
        )
    }
}

/// Road f's latent form: ssh.socket does not stop ssh.service when it is
/// restarted (ssh.service does not require it: the socket unit lacks
/// RequiredBy=ssh.service and its link). While ssh.service runs (it does
/// from the first connection on, Accept=no), openssh-server's
/// `deb-systemd-invoke restart ssh.socket` is refused: "Socket service
/// ssh.service already active, refusing.", and the package is left
/// half-configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketNotRequired {
    /// The service unit.
    pub service: String,
    /// The socket unit.
    pub socket: String,
    /// The commands that make the service require the socket.
    pub fix: String,
}

impl std::fmt::Display for SocketNotRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{s} does not require {k} (the socket unit lacks RequiredBy={s}), so restarting {k} while {s} runs is refused (\"Socket service {s} already active, refusing.\"): openssh-server's postinst does exactly that; fix: {fix}",
            s = self.service,
            k = self.socket,
            fix = self.fix
        )
    }
}

/// Road f's latent form from the units (Requires is read in full detail).
pub fn socket_not_required(units: &Units) -> Option<SocketNotRequired> {
    let requires = units.service.requires.as_ref()?;
    if units.topology() != Topology::SocketActivated
        || units.service.load_state != "loaded"
        || requires.contains(&units.socket.name)
    {
        return None;
    }
    let (s, k) = (&units.service.name, &units.socket.name);
    Some(SocketNotRequired {
        service: s.clone(),
        socket: k.clone(),
        fix: format!(
            "mkdir -p /etc/systemd/system/{s}.d && printf '[Unit]\\nRequires={k}\\nAfter={k}\\n' >/etc/systemd/system/{s}.d/requires-socket.conf && systemctl daemon-reload"
        ),
    })
}

/// Road f from a snapshot: socket-activated topology, ssh.socket not
/// active, and ssh.service's main process (a managed listener, not pid 1)
/// holding an ssh address. A socket-activated sshd holds the same sockets
/// as pid 1, so an active socket never matches.
pub fn service_holds_port(
    units: &Units,
    listeners: &[crate::model::Listener],
) -> Option<ServiceHoldsPort> {
    if units.topology() != Topology::SocketActivated
        || units.socket.is_active()
        || !units.service.is_active()
    {
        return None;
    }
    let main = units.service.main_pid?;
    let l = listeners
        .iter()
        .find(|l| l.process.pid == main && l.class == crate::model::ListenerClass::Managed)?;
    Some(ServiceHoldsPort {
        service: units.service.name.clone(),
        socket: units.socket.name.clone(),
        pid: main,
        addresses: l.addresses.clone(),
    })
}

// ---------------------------------------------------------------- road e

/// One process, as road e needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRow {
    /// The process id.
    pub pid: u32,
    /// Its parent's.
    pub ppid: u32,
    /// Its name (/proc/PID/comm).
    pub comm: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Start, Unix time.
    pub started: u64,
}

/// A conffile prompt that lives longer than this is waiting for someone:
/// ucf merges a file in well under a second when nobody is asked.
pub const PROMPT_AFTER_SECS: u64 = 10;

/// Programs that ask a question during a package's configuration: ucf
/// (openssh-server's sshd_config goes through it), and the dialogs debconf
/// and ucf draw with.
const PROMPTERS: [&str; 3] = ["ucf", "whiptail", "dialog"];

/// Finds a question below the lock holder that has waited at least
/// PROMPT_AFTER_SECS. The oldest asker wins (ucf, under which whiptail
/// runs, names the file).
pub fn dpkg_prompt(rows: &[ProcRow], holder: u32, now: u64) -> Option<DpkgPrompt> {
    use std::collections::{BTreeMap, BTreeSet};
    let holder_row = rows.iter().find(|r| r.pid == holder)?;
    let mut children: BTreeMap<u32, Vec<&ProcRow>> = BTreeMap::new();
    for r in rows {
        children.entry(r.ppid).or_default().push(r);
    }
    // Descendants, breadth first; a pid is visited once (no cycles).
    let mut seen = BTreeSet::from([holder]);
    let mut queue = vec![holder];
    let mut below: Vec<&ProcRow> = Vec::new();
    while let Some(p) = queue.pop() {
        for c in children.get(&p).into_iter().flatten() {
            if seen.insert(c.pid) {
                below.push(c);
                queue.push(c.pid);
            }
        }
    }
    let about = below
        .iter()
        .filter(|r| r.comm == "ucf")
        .filter_map(|r| r.args.last())
        .find(|a| a.starts_with('/'))
        .cloned();
    let asker = below
        .iter()
        .filter(|r| PROMPTERS.contains(&r.comm.as_str()))
        .filter(|r| r.started <= now && now - r.started >= PROMPT_AFTER_SECS)
        .min_by_key(|r| (r.started, r.pid))?;
    Some(DpkgPrompt {
        pid: asker.pid,
        program: asker.comm.clone(),
        about,
        since: asker.started,
        holder_pid: holder,
        holder_comm: holder_row.comm.clone(),
    })
}

// ---------------------------------------------------------------- road g

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

/// What every road found in one snapshot: the `roads` object of
/// `status --json` (fields are only ever added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Roads {
    /// Road a: units failed with a start or trigger limit.
    pub start_limit: Vec<StartLimit>,
    /// Road b: the unit the postinst restarts is masked and running (with
    /// the commands that fix it), or null.
    pub postinst_restart_blocked: Option<BlockedRestart>,
    /// Road d: sshd_config, ssh.socket and the listening sockets disagree
    /// (a WARNING: ssh still answers where the socket listens), or null.
    pub socket_drift: Option<SocketDrift>,
    /// Road f's latent form: ssh.socket's restart would be refused while
    /// ssh.service runs (a WARNING), or null.
    pub socket_not_required: Option<SocketNotRequired>,
    /// Road e: dpkg waits for an answer under the lock holder, or null.
    pub dpkg_prompt: Option<DpkgPrompt>,
    /// Road g: the rescue sshd runs a replaced binary, or null.
    pub stale_rescue: Option<StaleRescue>,
    /// Road f: ssh.service holds the port ssh.socket should, or null.
    pub service_holds_port: Option<ServiceHoldsPort>,
}

impl Roads {
    /// What every road shows in this snapshot.
    pub fn of(s: &crate::model::Snapshot) -> Roads {
        let units = s.units.as_ref();
        Roads {
            start_limit: units.map(start_limits).unwrap_or_default(),
            postinst_restart_blocked: units.and_then(|u| blocked_restart(u, &s.packaging_records)),
            socket_drift: units.and_then(|u| {
                let p = |v: &[String]| -> Vec<Endpoint> {
                    v.iter()
                        .filter_map(|a| crate::sshd::parse_listen(a))
                        .collect()
                };
                socket_drift(u, &p(&s.sshd_listen), &p(&s.listening), s.socket_generator)
            }),
            service_holds_port: units.and_then(|u| service_holds_port(u, &s.listeners)),
            dpkg_prompt: s.dpkg_prompt.clone(),
            socket_not_required: units.and_then(socket_not_required),
            stale_rescue: stale_rescue(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, active: &str, result: &str) -> UnitState {
        UnitState {
            name: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            result: result.into(),
            unit_file_state: "enabled".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_restart_storm_is_named_with_systemds_words() {
        // What systemd showed after 6 restarts of ssh.service in 10 s on
        // the noble fixture: the socket fails with the service.
        let mut service = unit("ssh.service", "failed", "start-limit-hit");
        service.n_restarts = Some(0);
        let units = Units {
            service,
            socket: unit("ssh.socket", "failed", "service-start-limit-hit"),
        };
        let found = start_limits(&units);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].to_string(),
            "ssh.socket failed (result service-start-limit-hit): \"Start request repeated too quickly\""
        );
        assert_eq!(
            found[1].to_string(),
            "ssh.service failed (result start-limit-hit): \"Start request repeated too quickly\"; 0 automatic restart(s) since it was last started"
        );
        let t = start_limit(&unit("ssh.socket", "failed", "trigger-limit-hit")).unwrap();
        assert!(t
            .to_string()
            .contains("Trigger limit hit, refusing further activation"));
    }

    #[test]
    fn other_failures_and_healthy_units_are_not_start_limits() {
        for (active, result) in [
            ("failed", "resources"),
            ("failed", "exit-code"),
            ("failed", ""),
            // A unit that recovered keeps no failed state.
            ("active", "success"),
            // Result lingers only on failed units; never trust it alone.
            ("inactive", "start-limit-hit"),
        ] {
            assert!(
                start_limit(&unit("ssh.service", active, result)).is_none(),
                "{active} {result}"
            );
        }
        assert_eq!(
            Roads::of(&crate::model::Snapshot::default()),
            Roads::default()
        );
    }

    #[test]
    fn the_guards_own_starts_are_bounded_across_runs() {
        let mut ledger = String::new();
        let t0 = 1_700_000_000;
        for i in 0..GUARD_START_BURST as u64 {
            assert_eq!(start_budget(&ledger, &["ssh.socket"], t0 + i), None);
            ledger = ledger_add(&ledger, "ssh.socket", t0 + i);
        }
        let why = start_budget(&ledger, &["ssh.socket"], t0 + 5).unwrap();
        assert!(why.contains("already started ssh.socket 3 times"), "{why}");
        // Another unit has its own budget; the window ends.
        assert_eq!(start_budget(&ledger, &["ssh.service"], t0 + 5), None);
        assert_eq!(
            start_budget(&ledger, &["ssh.socket"], t0 + GUARD_START_WINDOW + 2),
            None
        );
        // Old entries are dropped when the ledger is written.
        let later = ledger_add(&ledger, "ssh.socket", t0 + GUARD_START_WINDOW + 1);
        assert_eq!(later.lines().count(), 2, "{later}");
        // Twice in one plan is refused before anything is done.
        assert!(start_budget("", &["ssh.socket", "ssh.socket"], t0)
            .unwrap()
            .contains("at most once per run"));
    }

    #[test]
    fn a_garbage_ledger_counts_nothing_and_is_cleaned() {
        let g = "x ssh.socket\n\n1700000000\n 1700000000 ssh.socket\n99999999999999999999999 ssh.socket\n1700000000 a b\n";
        assert_eq!(ledger_starts(g, "ssh.socket", 1_700_000_001), 0);
        assert_eq!(
            ledger_add(g, "ssh.socket", 1_700_000_001),
            "1700000001 ssh.socket\n"
        );
        // A clock that went backwards does not block forever.
        assert_eq!(
            ledger_starts("1800000000 ssh.socket\n", "ssh.socket", 1_700_000_000),
            0
        );
    }

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

    fn socket_units(listen: &[&str]) -> Units {
        let mut socket = unit("ssh.socket", "active", "");
        socket.unit_file_state = "enabled".into();
        socket.listen = listen.iter().map(|s| s.to_string()).collect();
        Units {
            service: unit("ssh.service", "inactive", ""),
            socket,
        }
    }

    fn addrs(v: &[&str]) -> Vec<Endpoint> {
        v.iter()
            .map(|a| crate::sshd::parse_listen(a).unwrap())
            .collect()
    }

    #[test]
    fn a_port_changed_in_sshd_config_only_is_drift_with_the_commands() {
        let u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        let sshd = addrs(&["0.0.0.0:2222", "[::]:2222"]);
        let now = addrs(&["0.0.0.0:22", "[::]:22"]);
        let d = socket_drift(&u, &sshd, &now, true).unwrap();
        assert_eq!(d.kind, "config-not-applied");
        assert_eq!(
            d.apply,
            "systemctl daemon-reload && systemctl restart ssh.socket"
        );
        assert!(d.to_string().starts_with("sshd_config says ssh listens on 0.0.0.0:2222, [::]:2222, but ssh.socket listens on 0.0.0.0:22, [::]:22"), "{d}");
        // Without Ubuntu's generator: a drop-in, addresses spelled out.
        let d = socket_drift(&u, &sshd, &now, false).unwrap();
        assert_eq!(d.apply, "mkdir -p /etc/systemd/system/ssh.socket.d && printf '[Socket]\\nListenStream=\\nListenStream=0.0.0.0:2222\\nListenStream=[::]:2222\\n' >/etc/systemd/system/ssh.socket.d/listen.conf && systemctl daemon-reload && systemctl restart ssh.socket");
    }

    #[test]
    fn a_reloaded_but_not_restarted_socket_is_drift() {
        let u = socket_units(&["0.0.0.0:2222", "[::]:2222"]);
        let sshd = addrs(&["0.0.0.0:2222", "[::]:2222"]);
        let d = socket_drift(&u, &sshd, &addrs(&["0.0.0.0:22", "[::]:22"]), true).unwrap();
        assert_eq!(d.kind, "socket-not-restarted");
        assert_eq!(d.apply, "systemctl restart ssh.socket");
    }

    #[test]
    fn agreeing_truths_are_not_drift_whatever_the_spelling() {
        // Debian's ListenStream=22 is one dual-stack [::]:22; sshd -T
        // prints both wildcards for the default.
        let u = socket_units(&["[::]:22"]);
        let sshd = addrs(&["[::]:22", "0.0.0.0:22"]);
        assert_eq!(socket_drift(&u, &sshd, &addrs(&["[::]:22"]), true), None);
        let u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        assert_eq!(
            socket_drift(
                &u,
                &sshd,
                &addrs(&["0.0.0.0:22", "[::]:22", "127.0.0.1:22"]),
                true
            ),
            None
        );
        // No verdict without sshd -T, without a socket, or for the service
        // topology (sshd binds what sshd_config says itself).
        assert_eq!(socket_drift(&u, &[], &[], true), None);
        let mut classic = u.clone();
        classic.socket.unit_file_state = "disabled".into();
        assert_eq!(
            socket_drift(&classic, &addrs(&["[::]:2222"]), &[], true),
            None
        );
        let mut failed = u.clone();
        failed.socket.active_state = "failed".into();
        assert_eq!(
            socket_drift(&failed, &addrs(&["[::]:2222"]), &[], true),
            None
        );
    }

    #[test]
    fn scopes_and_bind_ipv6_only_are_judged_as_the_kernel_and_systemd_do() {
        // sshd and systemd name a link-local address's interface, the
        // kernel its index: the same socket, no drift.
        let u = socket_units(&["[fe80::1]:22%eth0"]);
        let sshd = addrs(&["[fe80::1%eth0]:22"]);
        assert_eq!(
            socket_drift(&u, &sshd, &addrs(&["[fe80::1%2]:22"]), false),
            None
        );
        // Another interface in sshd_config is drift, and the drop-in
        // spells the scope as systemd does.
        let d = socket_drift(&u, &addrs(&["[fe80::1%eth1]:22"]), &[], false).unwrap();
        assert_eq!(d.kind, "config-not-applied");
        assert!(
            d.apply.contains("ListenStream=[fe80::1]:22%eth1\\n"),
            "{}",
            d.apply
        );
        // A socket bound ipv6-only does not serve the IPv4 wildcard sshd's
        // default asks for.
        let mut u = socket_units(&["[::]:22"]);
        let sshd = addrs(&["[::]:22", "0.0.0.0:22"]);
        assert_eq!(socket_drift(&u, &sshd, &addrs(&["[::]:22"]), true), None);
        u.socket.bind_ipv6_only = "ipv6-only".into();
        let d = socket_drift(&u, &sshd, &addrs(&["[::]:22"]), true).unwrap();
        assert_eq!(d.kind, "config-not-applied");
    }

    fn listener(pid: u32, class: crate::model::ListenerClass) -> crate::model::Listener {
        crate::model::Listener {
            process: crate::model::ProcessStamp { pid, start_time: 1 },
            uid: 0,
            comm: "sshd".into(),
            exe: "/usr/sbin/sshd".into(),
            exe_deleted: false,
            cmdline: "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups".into(),
            cgroup: "0::/system.slice/ssh.service".into(),
            addresses: vec!["0.0.0.0:22".into(), "[::]:22".into()],
            class,
            unit: None,
            unit_state: None,
            why: String::new(),
        }
    }

    #[test]
    fn a_service_holding_the_sockets_port_is_found_only_then() {
        use crate::model::ListenerClass::*;
        let mut u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        u.socket.active_state = "failed".into();
        u.socket.result = "resources".into();
        u.service.active_state = "active".into();
        u.service.main_pid = Some(700);
        let ls = vec![listener(700, Managed)];
        let f = service_holds_port(&u, &ls).unwrap();
        assert_eq!(f.to_string(), "ssh.service (pid 700) listens on 0.0.0.0:22, [::]:22 itself while ssh is socket-activated, so ssh.socket cannot listen there (Address already in use)");
        // Socket-activated sshd shares pid 1's sockets: socket active.
        let mut ok = u.clone();
        ok.socket.active_state = "active".into();
        assert_eq!(
            service_holds_port(&ok, &[listener(1, Systemd), listener(700, Managed)]),
            None
        );
        // A stale listener is another road; the classic topology is fine.
        assert_eq!(service_holds_port(&u, &[listener(800, Stale)]), None);
        let mut classic = u.clone();
        classic.socket.unit_file_state = "disabled".into();
        assert_eq!(service_holds_port(&classic, &ls), None);
    }

    fn row(pid: u32, ppid: u32, comm: &str, args: &[&str], started: u64) -> ProcRow {
        ProcRow {
            pid,
            ppid,
            comm: comm.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            started,
        }
    }

    #[test]
    fn ucf_asking_under_apt_is_a_prompt_about_its_file() {
        // 03:12 UTC on some day.
        let t = 1_700_000_000 - 1_700_000_000 % 86_400 + 3 * 3600 + 12 * 60;
        let rows = vec![
            row(1, 0, "systemd", &[], 0),
            row(100, 1, "unattended-upgr", &["/usr/bin/python3"], t - 600),
            row(110, 100, "dpkg", &["/usr/bin/dpkg", "--configure"], t - 5),
            row(120, 110, "openssh-server.", &["/bin/sh", "postinst"], t - 4),
            row(
                130,
                120,
                "ucf",
                &[
                    "/bin/sh",
                    "/usr/bin/ucf",
                    "--three-way",
                    "--debconf-ok",
                    "/tmp/tmp.abc",
                    "/etc/ssh/sshd_config",
                ],
                t,
            ),
            row(140, 130, "whiptail", &["whiptail", "--menu"], t + 1),
            // An unrelated dialog elsewhere is not dpkg's.
            row(200, 1, "whiptail", &["whiptail"], t - 1000),
        ];
        let p = dpkg_prompt(&rows, 100, t + 60).unwrap();
        assert_eq!(p.pid, 130);
        assert_eq!(p.about.as_deref(), Some("/etc/ssh/sshd_config"));
        assert!(p.to_string().starts_with("dpkg waits for an answer about /etc/ssh/sshd_config since 03:12 UTC (ucf pid 130, under unattended-upgr pid 100)"), "{p}");
        // Young: ucf merging quietly is not a prompt yet.
        assert_eq!(dpkg_prompt(&rows, 100, t + 3), None);
        // No holder, or nothing below it.
        assert_eq!(dpkg_prompt(&rows, 999, t + 60), None);
        assert_eq!(dpkg_prompt(&rows, 200, t + 60), None);
    }

    #[test]
    fn a_parent_loop_in_hostile_rows_ends() {
        let rows = vec![row(5, 6, "ucf", &[], 0), row(6, 5, "whiptail", &["x"], 0)];
        let p = dpkg_prompt(&rows, 5, 100).unwrap();
        assert_eq!(p.program, "whiptail");
        assert_eq!(p.about, None);
    }

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

    #[test]
    fn a_service_that_does_not_require_its_socket_is_a_warning_with_the_fix() {
        let mut u = socket_units(&["0.0.0.0:22", "[::]:22"]);
        u.service.load_state = "loaded".into();
        assert_eq!(socket_not_required(&u), None, "not read: no verdict");
        u.service.requires = Some(vec!["sysinit.target".into(), "system.slice".into()]);
        let w = socket_not_required(&u).unwrap();
        assert!(
            w.to_string()
                .contains("\"Socket service ssh.service already active, refusing.\""),
            "{w}"
        );
        assert_eq!(w.fix, "mkdir -p /etc/systemd/system/ssh.service.d && printf '[Unit]\\nRequires=ssh.socket\\nAfter=ssh.socket\\n' >/etc/systemd/system/ssh.service.d/requires-socket.conf && systemctl daemon-reload");
        // Noble's unit: RequiredBy=ssh.service, so the service requires it.
        u.service.requires = Some(vec!["ssh.socket".into(), "sysinit.target".into()]);
        assert_eq!(socket_not_required(&u), None);
        // The classic topology does not restart the socket.
        u.service.requires = Some(vec![]);
        u.socket.unit_file_state = "disabled".into();
        assert_eq!(socket_not_required(&u), None);
    }

    proptest::proptest! {
        #[test]
        fn ledger_never_panics(text in "\\PC*", unit in "[a-z.]{1,12}", now in 0u64..u64::MAX) {
            let _ = ledger_starts(&text, &unit, now);
            let _ = start_budget(&text, &[&unit], now);
            let l = ledger_add(&text, &unit, now);
            proptest::prop_assert!(ledger_starts(&l, &unit, now) >= 1);
        }
    }
}
