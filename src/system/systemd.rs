//! systemd over the system D-Bus: unit states, jobs (waited for through the
//! JobRemoved signal, not by sleeping), reset-failed, and a transient rescue
//! sshd when nothing else brings a listener back.

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

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn unit_file_state(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Service {
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Socket",
    default_service = "org.freedesktop.systemd1",
    gen_async = false
)]
trait Socket {
    #[zbus(property)]
    fn listen(&self) -> zbus::Result<Vec<(String, String)>>;
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
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

pub const RESCUE_UNIT: &str = "ssh-upgrade-guard-rescue.service";

impl Systemd {
    pub fn connect() -> Result<Systemd> {
        let conn = zbus::blocking::connection::Builder::system()
            .and_then(|b| b.method_timeout(Duration::from_secs(30)).build())
            .map_err(|e| anyhow!("cannot reach systemd over the system D-Bus: {e}"))?;
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

    /// Unit states through one GetAll per interface, at the unit's object
    /// path (systemd loads the unit on access, as LoadUnit would).
    /// With `detail` false only the Unit interface is read (states and
    /// enablement: all the hooks' healthy path needs), one round trip.
    pub fn unit_state(&self, name: &str, detail: bool) -> Result<UnitState> {
        use std::collections::HashMap;
        use zbus::names::InterfaceName;
        use zbus::zvariant::OwnedValue;
        let path = unit_object_path(name);
        let ctx = || format!("reading {name} from systemd");
        let props = zbus::blocking::fdo::PropertiesProxy::builder(&self.conn)
            .destination("org.freedesktop.systemd1")?
            .path(path.as_str())?
            .cache_properties(CacheProperties::No)
            .build()
            .with_context(ctx)?;
        let all = |iface: &'static str| -> Result<HashMap<String, OwnedValue>> {
            props
                .get_all(InterfaceName::from_static_str_unchecked(iface))
                .with_context(ctx)
        };
        let s = |m: &HashMap<String, OwnedValue>, k: &str| -> String {
            m.get(k)
                .and_then(|v| String::try_from(v.clone()).ok())
                .unwrap_or_default()
        };
        let unit = all("org.freedesktop.systemd1.Unit")?;
        let mut st = UnitState {
            name: name.to_string(),
            load_state: s(&unit, "LoadState"),
            active_state: s(&unit, "ActiveState"),
            sub_state: s(&unit, "SubState"),
            unit_file_state: s(&unit, "UnitFileState"),
            ..Default::default()
        };
        if detail && st.load_state == "loaded" {
            if name.ends_with(".service") {
                let svc = all("org.freedesktop.systemd1.Service")?;
                st.main_pid = svc
                    .get("MainPID")
                    .and_then(|v| u32::try_from(v.clone()).ok())
                    .filter(|p| *p != 0);
                st.result = s(&svc, "Result");
            } else if name.ends_with(".socket") {
                let sock = all("org.freedesktop.systemd1.Socket")?;
                st.result = s(&sock, "Result");
                st.listen = sock
                    .get("Listen")
                    .and_then(|v| <Vec<(String, String)>>::try_from(v.clone()).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| k == "Stream")
                    .map(|(_, a)| a)
                    .collect();
            }
        }
        log::debug!("{:.1} ms: read {name} from systemd", crate::elapsed_ms());
        Ok(st)
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
        let job = queue(&self.mgr).with_context(|| what.to_string())?;
        let job = job.as_str().to_string();
        let deadline = Instant::now() + timeout;
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
            _ => bail!("unknown job {verb}"),
        }
    }

    /// Last resort against a lockout: a transient unit running `sshd -D`
    /// from the installed binary, managed by systemd like any service.
    pub fn start_rescue_sshd(&self, sshd: &str, timeout: Duration) -> Result<()> {
        let _ = self.mgr.reset_failed_unit(RESCUE_UNIT);
        let exec = vec![(
            sshd.to_string(),
            vec![sshd.to_string(), "-D".to_string()],
            false,
        )];
        let props: Vec<(&str, Value<'_>)> = vec![
            (
                "Description",
                Value::from(
                    "ssh-upgrade-guard rescue sshd (ssh.service/ssh.socket could not be restored)",
                ),
            ),
            ("ExecStart", Value::from(exec)),
            ("RuntimeDirectory", Value::from(vec!["sshd".to_string()])),
            ("KillMode", Value::from("process")),
        ];
        self.run_job("starting the rescue sshd", timeout, |m| {
            m.start_transient_unit(RESCUE_UNIT, "replace", &props, &[])
        })
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
