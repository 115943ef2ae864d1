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
}

pub const RESCUE_UNIT: &str = "ssh-upgrade-guard-rescue.service";

impl Systemd {
    pub fn connect() -> Result<Systemd> {
        let conn = zbus::blocking::connection::Builder::system()
            .and_then(|b| b.method_timeout(Duration::from_secs(30)).build())
            .map_err(|e| anyhow!("cannot reach systemd over the system D-Bus: {e}"))?;
        let mgr = ManagerProxy::new(&conn).map_err(|e| anyhow!("systemd manager: {e}"))?;
        Ok(Systemd { conn, mgr })
    }

    fn unit_path(&self, name: &str) -> Result<OwnedObjectPath> {
        self.mgr
            .load_unit(name)
            .with_context(|| format!("systemd LoadUnit {name}"))
    }

    /// systemd's view of a service or socket unit.
    pub fn unit_state(&self, name: &str) -> Result<UnitState> {
        let path = self.unit_path(name)?;
        let ctx = || format!("reading {name} from systemd");
        let unit = UnitProxy::builder(&self.conn)
            .path(path.clone())?
            .cache_properties(CacheProperties::No)
            .build()
            .with_context(ctx)?;
        let mut st = UnitState {
            name: name.to_string(),
            load_state: unit.load_state().with_context(ctx)?,
            active_state: unit.active_state().with_context(ctx)?,
            sub_state: unit.sub_state().with_context(ctx)?,
            unit_file_state: unit.unit_file_state().unwrap_or_default(),
            ..Default::default()
        };
        if st.load_state != "loaded" {
            return Ok(st);
        }
        if name.ends_with(".service") {
            let svc = ServiceProxy::builder(&self.conn)
                .path(path)?
                .cache_properties(CacheProperties::No)
                .build()
                .with_context(ctx)?;
            st.main_pid = Some(svc.main_pid().with_context(ctx)?).filter(|p| *p != 0);
            st.result = svc.result().unwrap_or_default();
        } else if name.ends_with(".socket") {
            let sock = SocketProxy::builder(&self.conn)
                .path(path)?
                .cache_properties(CacheProperties::No)
                .build()
                .with_context(ctx)?;
            st.listen = sock
                .listen()
                .with_context(ctx)?
                .into_iter()
                .filter(|(k, _)| k == "Stream")
                .map(|(_, a)| a)
                .collect();
            st.result = sock.result().unwrap_or_default();
        }
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
        // Subscribe and listen before queueing the job, so its JobRemoved
        // signal cannot be missed.
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

    /// systemctl start|restart UNIT, waiting for the job to finish.
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
