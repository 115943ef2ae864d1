//! systemd over the system D-Bus: unit states, jobs (waited for through the
//! JobRemoved signal, not by sleeping), reset-failed, and a transient rescue
//! sshd when nothing else brings a listener back.
// The OS boundary: this module may use what clippy.toml keeps out of the rest.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![forbid(unsafe_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zbus::blocking::Connection;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, Value};

use crate::model::UnitState;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_async = false
)]
trait Manager {
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn subscribe(&self) -> zbus::Result<()>;
    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: zbus::zvariant::ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

pub struct Systemd {
    conn: Connection,
    mgr: ManagerProxy<'static>,
    /// JobRemoved signals (job path, result), once subscribed.
    jobs: std::sync::OnceLock<std::sync::Mutex<mpsc::Receiver<(String, String)>>>,
}

/// systemd's object path for a unit: every byte that is not [A-Za-z0-9]
/// becomes _XX (sd_bus_path_encode).
pub fn unit_object_path(name: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    if name.is_empty() {
        p.push('_');
    }
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() && !(i == 0 && b.is_ascii_digit()) {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// The system bus's socket when DBUS_SYSTEM_BUS_ADDRESS is not set (the
/// D-Bus specification's default).
const SYSTEM_BUS_SOCKET: &str = "/var/run/dbus/system_bus_socket";

pub use crate::model::RESCUE_UNIT;

/// Connecting and authenticating to the system bus: a live bus answers in
/// a millisecond; both hooks together stay far under the 30 s the guard may
/// add to an apt run when the bus is frozen.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Every D-Bus call. systemd answers property reads and job requests at
/// once (a job's completion is waited for separately, through JobRemoved,
/// with its own timeout).
pub const METHOD_TIMEOUT: Duration = Duration::from_secs(10);

impl Systemd {
    pub fn connect() -> Result<Systemd> {
        use crate::deadline::{run_within, Outcome};
        use std::os::unix::net::UnixStream;
        let _doing = crate::deadline::doing("connecting to systemd over the system D-Bus");
        let unreachable =
            |e: &dyn std::fmt::Display| anyhow!("cannot reach systemd over the system D-Bus: {e}");
        // zbus bounds method calls (method_timeout) but not the connection
        // itself: with dbus-daemon frozen, connect() succeeds into the
        // listen backlog and the authentication waits forever. So the
        // connection is made on a thread and waited for at most
        // CONNECT_TIMEOUT; then the socket is shut down, which ends the
        // handshake (and the thread) with an error.
        // The socket is connected here rather than by zbus, which would
        // start a thread for it; DBUS_SYSTEM_BUS_ADDRESS, when set, is
        // still honoured through zbus (its thread is then abandoned).
        let from_env = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some();
        let (sock_tx, sock_rx) = mpsc::channel::<UnixStream>();
        let attempt = run_within(CONNECT_TIMEOUT, move || -> Result<Connection, String> {
            let builder = if from_env {
                zbus::blocking::connection::Builder::system().map_err(|e| e.to_string())?
            } else {
                let stream = UnixStream::connect(SYSTEM_BUS_SOCKET)
                    .map_err(|e| format!("{SYSTEM_BUS_SOCKET}: {e}"))?;
                if let Ok(clone) = stream.try_clone() {
                    let _ = sock_tx.send(clone);
                }
                zbus::blocking::connection::Builder::unix_stream(stream)
            };
            builder
                .method_timeout(METHOD_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        });
        let conn = match attempt {
            Outcome::Done(Ok(conn)) => conn,
            Outcome::Done(Err(e)) => return Err(unreachable(&e)),
            Outcome::TimedOut => {
                if let Ok(s) = sock_rx.try_recv() {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
                return Err(unreachable(&format!(
                    "no answer within {} s (is dbus-daemon frozen?)",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Outcome::Panicked => return Err(unreachable(&"the connection attempt failed")),
        };
        let mgr = ManagerProxy::new(&conn).map_err(|e| anyhow!("systemd manager: {e}"))?;
        log::debug!("{:.1} ms: connected to the system bus", crate::elapsed_ms());
        Ok(Systemd {
            conn,
            mgr,
            jobs: std::sync::OnceLock::new(),
        })
    }

    /// Subscribes to systemd's job signals, once per connection. A repair
    /// calls it before it stops anything, so that no round trip but the
    /// start request itself lies between a stale listener's exit and
    /// systemd listening again (fewer refused connections).
    pub fn prepare_jobs(&self) -> Result<()> {
        if self.jobs.get().is_some() {
            return Ok(());
        }
        let _ = self.mgr.subscribe();
        let stream = self
            .mgr
            .receive_job_removed()
            .context("subscribing to systemd job signals")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for sig in stream {
                if let Ok(a) = sig.args() {
                    if tx.send((a.job.to_string(), a.result.to_string())).is_err() {
                        break;
                    }
                }
            }
        });
        let _ = self.jobs.set(std::sync::Mutex::new(rx));
        Ok(())
    }

    /// One unit's state; see [`Systemd::unit_states`].
    pub fn unit_state(&self, name: &str, detail: bool) -> Result<UnitState> {
        self.unit_states(&[name], detail)
            .pop()
            .unwrap_or_else(|| Err(anyhow!("reading {name} from systemd: no answer")))
    }

    /// Unit states, one `Properties.Get` per property the guard uses, all
    /// sent at once over the one connection and answered in a single
    /// round trip's time (at the unit's object path: systemd loads the unit
    /// on access, as LoadUnit would). With `detail` false only the Unit
    /// interface is read (states and enablement: all the hooks' healthy
    /// path needs). Per-property Gets, not GetAll: a Service GetAll makes
    /// systemd read the unit's cgroup accounting files and serialise some
    /// 250 properties the guard never looks at.
    pub fn unit_states(&self, names: &[&str], detail: bool) -> Vec<Result<UnitState>> {
        use futures_util::future::join_all;
        use zbus::names::InterfaceName;
        use zbus::zvariant::OwnedValue;
        const UNIT: &str = "org.freedesktop.systemd1.Unit";
        const UNIT_PROPS: [&str; 4] = ["LoadState", "ActiveState", "SubState", "UnitFileState"];
        // (unit index, interface, property) for every Get, in order.
        let calls: Vec<(usize, &'static str, &'static str)> = names
            .iter()
            .enumerate()
            .flat_map(|(i, name)| {
                UNIT_PROPS.iter().map(move |p| (i, UNIT, *p)).chain(
                    detail_props(detail, name)
                        .iter()
                        .map(move |(f, p)| (i, *f, *p)),
                )
            })
            .collect();
        let paths: Vec<String> = names.iter().map(|n| unit_object_path(n)).collect();
        let conn = self.conn.inner();
        let get = |(i, iface, prop): (usize, &'static str, &'static str)| {
            let path = paths[i].as_str();
            async move {
                let proxy = zbus::fdo::PropertiesProxy::builder(conn)
                    .destination("org.freedesktop.systemd1")?
                    .path(path)?
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await?;
                proxy
                    .get(InterfaceName::from_static_str_unchecked(iface), prop)
                    .await
                    .map_err(zbus::Error::from)
            }
        };
        let _doing = crate::deadline::doing(format!("reading {} from systemd", names.join(", ")));
        let answers: Vec<zbus::Result<OwnedValue>> =
            zbus::block_on(join_all(calls.iter().copied().map(get)));

        let mut out: Vec<Result<UnitState>> = names
            .iter()
            .map(|n| {
                Ok(UnitState {
                    name: n.to_string(),
                    ..Default::default()
                })
            })
            .collect();
        // Errors on the detail interfaces count only for a loaded unit: a
        // unit that is not found has no Service or Socket interface.
        let mut detail_errors: Vec<Option<anyhow::Error>> = names.iter().map(|_| None).collect();
        // ConditionResult counts only once systemd checked the conditions
        // (a timestamp); before that it reads false.
        let mut condition: Vec<(Option<bool>, Option<u64>)> =
            names.iter().map(|_| (None, None)).collect();
        for ((i, iface, prop), answer) in calls.into_iter().zip(answers) {
            let Ok(st) = out[i].as_mut() else { continue };
            let v = match answer {
                Ok(v) => v,
                Err(e) => {
                    let e = anyhow!(e).context(format!("reading {} from systemd", names[i]));
                    if iface == UNIT {
                        out[i] = Err(e);
                    } else {
                        detail_errors[i].get_or_insert(e);
                    }
                    continue;
                }
            };
            set_property(st, &mut condition[i], prop, v);
        }
        for (slot, (result, checked)) in out.iter_mut().zip(condition) {
            if let Ok(st) = slot {
                st.condition_result = result.filter(|_| checked.is_some_and(|t| t > 0));
            }
        }
        for (slot, err) in out.iter_mut().zip(detail_errors) {
            if let (Ok(st), Some(e)) = (&*slot, err) {
                if st.load_state == "loaded" {
                    *slot = Err(e);
                }
            }
        }
        for name in names {
            log::debug!("{:.1} ms: read {name} from systemd", crate::elapsed_ms());
        }
        out
    }

    pub fn reset_failed(&self, unit: &str) -> Result<()> {
        self.mgr
            .reset_failed_unit(unit)
            .with_context(|| format!("systemctl reset-failed {unit}"))
    }

    /// Queues a job with `queue` and waits for systemd to finish it.
    fn run_job(
        &self,
        what: &str,
        timeout: Duration,
        queue: impl FnOnce(&ManagerProxy<'static>) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<()> {
        // Subscribed before the job is queued, so its JobRemoved signal
        // cannot be missed.
        self.prepare_jobs()?;
        let rx = self
            .jobs
            .get()
            .ok_or_else(|| anyhow!("{what}: not subscribed to systemd job signals"))?
            .lock()
            .map_err(|_| anyhow!("{what}: job signal channel poisoned"))?;
        let _doing = crate::deadline::doing(format!("waiting for {what}"));
        let job = queue(&self.mgr).with_context(|| what.to_string())?;
        let job = job.as_str().to_string();
        let deadline = crate::deadline::after(timeout);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok((j, result)) if j == job => {
                    return if result == "done" {
                        Ok(())
                    } else {
                        Err(anyhow!("{what}: job {result}"))
                    };
                }
                Ok(_) => continue,
                Err(_) => bail!(
                    "{what}: no answer from systemd within {} s",
                    timeout.as_secs()
                ),
            }
        }
    }

    /// systemctl start|restart UNIT, waiting for the job to finish. The
    /// caller resets the unit's failed state and start-rate counter first
    /// (repair::execute does it before stopping anything).
    pub fn job(&self, verb: &str, unit: &str, timeout: Duration) -> Result<()> {
        let what = format!("systemctl {verb} {unit}");
        match verb {
            "start" => self.run_job(&what, timeout, |m| m.start_unit(unit, "replace")),
            "restart" => self.run_job(&what, timeout, |m| m.restart_unit(unit, "replace")),
            // Road f: handing the port back to ssh.socket. ssh.service's
            // KillMode=process stops only its main process: sessions stay.
            "stop" => self.run_job(&what, timeout, |m| m.stop_unit(unit, "replace")),
            _ => bail!("unknown job {verb}"),
        }
    }

    /// Last resort against a lockout: a transient unit running `sshd -D`
    /// from the installed binary, managed by systemd like any service.
    /// `opts`: the options ssh.service passes (SSHD_OPTS), after `-D`.
    pub fn start_rescue_sshd(&self, sshd: &str, opts: &[String], timeout: Duration) -> Result<()> {
        let _ = self.mgr.reset_failed_unit(RESCUE_UNIT);
        let mut argv = vec![sshd.to_string(), "-D".to_string()];
        argv.extend(opts.iter().cloned());
        let exec = vec![(sshd.to_string(), argv, false)];
        let props: Vec<(&str, Value<'_>)> = vec![
            (
                "Description",
                Value::from(
                    "ssh-upgrade-guard rescue sshd (ssh.service/ssh.socket could not be restored)",
                ),
            ),
            ("ExecStart", Value::from(exec)),
            ("RuntimeDirectory", Value::from(vec!["sshd".to_string()])),
            // /run/sshd is shared with ssh.service, whose listener (or the
            // sessions it re-executes) needs it as its privilege-separation
            // directory: without this, a rescue that fails or is stopped
            // makes systemd delete /run/sshd under ssh.service's listener,
            // and every new login then fails ("Missing privilege separation
            // directory").
            ("RuntimeDirectoryPreserve", Value::from("yes")),
            ("KillMode", Value::from("process")),
        ];
        self.run_job("starting the rescue sshd", timeout, |m| {
            m.start_transient_unit(RESCUE_UNIT, "replace", &props, &[])
        })
    }
}

/// The detail properties read for a unit of `name`'s type (with `detail`).
fn detail_props(detail: bool, name: &str) -> &'static [(&'static str, &'static str)] {
    match (detail, name.rsplit_once('.').map(|(_, t)| t)) {
        (true, Some("service")) => &[
            // Whether a start condition said no (intent: systemd
            // skips the start quietly), and whether it was ever checked.
            ("org.freedesktop.systemd1.Unit", "ConditionResult"),
            (
                "org.freedesktop.systemd1.Unit",
                "ConditionTimestampMonotonic",
            ),
            ("org.freedesktop.systemd1.Service", "MainPID"),
            ("org.freedesktop.systemd1.Service", "Result"),
            // Restarts systemd made by itself (Restart=): a unit
            // that dies and comes back is a storm in the making.
            ("org.freedesktop.systemd1.Service", "NRestarts"),
            // Whether restarting ssh.socket stops the service first
            // (road f: without it the restart is refused).
            ("org.freedesktop.systemd1.Unit", "Requires"),
        ],
        (true, Some("socket")) => &[
            ("org.freedesktop.systemd1.Unit", "ConditionResult"),
            (
                "org.freedesktop.systemd1.Unit",
                "ConditionTimestampMonotonic",
            ),
            ("org.freedesktop.systemd1.Socket", "Listen"),
            ("org.freedesktop.systemd1.Socket", "Result"),
            ("org.freedesktop.systemd1.Socket", "BindIPv6Only"),
        ],
        _ => &[],
    }
}

/// Stores one property's value in the unit's state (the condition's
/// result and timestamp apart: they count only together).
fn set_property(
    st: &mut UnitState,
    condition: &mut (Option<bool>, Option<u64>),
    prop: &str,
    v: zbus::zvariant::OwnedValue,
) {
    let text = || String::try_from(v.clone()).unwrap_or_default();
    match prop {
        "LoadState" => st.load_state = text(),
        "ActiveState" => st.active_state = text(),
        "SubState" => st.sub_state = text(),
        "UnitFileState" => st.unit_file_state = text(),
        "Result" => st.result = text(),
        "BindIPv6Only" => st.bind_ipv6_only = text(),
        "MainPID" => st.main_pid = u32::try_from(v).ok().filter(|p| *p != 0),
        "NRestarts" => st.n_restarts = u32::try_from(v).ok(),
        "ConditionResult" => condition.0 = bool::try_from(v).ok(),
        "ConditionTimestampMonotonic" => condition.1 = u64::try_from(v).ok(),
        "Requires" => st.requires = <Vec<String>>::try_from(v).ok(),
        "Listen" => {
            st.listen = <Vec<(String, String)>>::try_from(v)
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k == "Stream")
                .map(|(_, a)| a)
                .collect()
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_paths_like_sd_bus() {
        assert_eq!(
            super::unit_object_path("ssh.service"),
            "/org/freedesktop/systemd1/unit/ssh_2eservice"
        );
        assert_eq!(
            super::unit_object_path("ssh.socket"),
            "/org/freedesktop/systemd1/unit/ssh_2esocket"
        );
        assert_eq!(
            super::unit_object_path("getty@tty1.service"),
            "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice"
        );
        assert_eq!(
            super::unit_object_path("1x.service"),
            "/org/freedesktop/systemd1/unit/_31x_2eservice"
        );
    }
}
