//! What systemd, sshd and dpkg do to the simulated machine when asked: unit
//! jobs with their dependencies, start conditions, start limits and
//! KillMode=process; sshd binding its addresses; the postinst's restart;
//! a signal to a listener, after the re-check `repair::Machine` makes.
#![forbid(unsafe_code)]

use super::world::*;
use crate::model::{ListenerClass, ProcessStamp};
use crate::system::signal::Stopped;

fn err<T>(s: impl Into<String>) -> Result<T, String> {
    Err(s.into())
}

fn sshd_proc(unit: &str, holds: Vec<String>) -> Proc {
    Proc {
        pid: 0,
        start_time: 0,
        uid: 0,
        comm: "sshd".into(),
        exe: SSHD.into(),
        deleted: false,
        unit: Some(unit.into()),
        parent: 1,
        other_ns: false,
        kind: Kind::Listener,
        holds,
        works: true,
        dies: Dies::OnTerm,
        alive: true,
        child_lingers: None,
        exit_at: None,
    }
}

impl World {
    fn fail_unit(&mut self, name: &str, result: &'static str) {
        if let Some(u) = self.unit_mut(name) {
            u.active = Active::Failed;
            u.result = result;
            u.main_pid = None;
        }
    }

    /// Counts a start against systemd's start limit; Err when it is hit.
    fn start_rate(&mut self, name: &str) -> Result<(), String> {
        let clock = self.clock;
        let Some(u) = self.unit(name) else {
            return err(format!("Unit {name} not found."));
        };
        if self.recent_starts(u) >= START_BURST {
            self.fail_unit(name, "start-limit-hit");
            return err(format!(
                "Job for {name} failed: Start request repeated too quickly (result start-limit-hit)"
            ));
        }
        if let Some(u) = self.unit_mut(name) {
            u.starts.push(clock);
        }
        Ok(())
    }

    fn start_socket(&mut self) -> Result<(), String> {
        if self.socket.masked() {
            return err("Unit ssh.socket is masked.");
        }
        if self.socket.is_active() {
            return Ok(());
        }
        self.socket.condition = Some(!self.not_to_be_run);
        if self.not_to_be_run {
            // A start condition that says no: the job is done, nothing runs.
            return Ok(());
        }
        self.start_rate(SOCKET)?;
        if self.socket.broken {
            self.fail_unit(SOCKET, "exit-code");
            return err("start ssh.socket: job failed (result exit-code)");
        }
        let listen = self.socket.listen.clone();
        if let Some(a) = listen.iter().find(|a| self.holder_of(a).is_some()) {
            self.fail_unit(SOCKET, "resources");
            return err(format!(
                "start ssh.socket: job failed (result resources): Failed to create listening socket ({a}): Address already in use"
            ));
        }
        self.socket.active = Active::Active;
        self.socket.result = "success";
        if let Some(p1) = self.procs.iter_mut().find(|p| p.pid == 1) {
            p1.holds = listen;
        }
        Ok(())
    }

    fn start_service(&mut self) -> Result<(), String> {
        if self.service.masked() {
            return err("Unit ssh.service is masked.");
        }
        if self.service.is_active() {
            return Ok(());
        }
        self.service.condition = Some(!self.not_to_be_run);
        if self.not_to_be_run {
            return Ok(());
        }
        if self.socket_required {
            if let Err(e) = self.start_socket() {
                self.fail_unit(SERVICE, "dependency");
                return err(format!(
                    "start ssh.service: job failed (result dependency): {e}"
                ));
            }
        }
        self.start_rate(SERVICE)?;
        if self.service.broken || self.sshd.state != ConfigState::Valid {
            self.fail_unit(SERVICE, "exit-code");
            return err("start ssh.service: job failed (result exit-code)");
        }
        let holds = if self.socket.is_active() {
            // The socket's file descriptors, shared with pid 1.
            self.socket.listen.clone()
        } else {
            let want = self.sshd_binds();
            let free: Vec<String> = want
                .into_iter()
                .filter(|a| self.holder_of(a).is_none())
                .collect();
            if free.is_empty() {
                // "Cannot bind any address.": sshd exits 255.
                self.fail_unit(SERVICE, "exit-code");
                return err("start ssh.service: job failed (result exit-code)");
            }
            free
        };
        let pid = self.spawn(sshd_proc(SERVICE, holds));
        self.service.active = Active::Active;
        self.service.result = "success";
        self.service.main_pid = Some(pid);
        if self.service.flaky {
            // The first attempt failed and Restart= brought it up: the job
            // says failed, the unit runs.
            self.service.flaky = false;
            self.service.n_restarts += 1;
            return err("start ssh.service: job failed (result exit-code)");
        }
        Ok(())
    }

    /// The rescue sshd as a transient unit (Type=simple: the job is done
    /// once sshd runs, whether it binds anything or not).
    pub fn start_rescue(&mut self) -> Result<(), String> {
        if self.rescue.is_active() {
            return err(format!("Unit {RESCUE} already exists."));
        }
        self.rescue.active = Active::Inactive;
        self.rescue.starts.clear();
        let free: Vec<String> = self
            .sshd_binds()
            .into_iter()
            .filter(|a| self.holder_of(a).is_none())
            .collect();
        if free.is_empty() || self.sshd.state != ConfigState::Valid {
            self.fail_unit(RESCUE, "exit-code");
            return Ok(());
        }
        let pid = self.spawn(sshd_proc(RESCUE, free));
        self.rescue.active = Active::Active;
        self.rescue.result = "success";
        self.rescue.main_pid = Some(pid);
        Ok(())
    }

    pub fn start(&mut self, name: &str) -> Result<(), String> {
        match name {
            SOCKET => self.start_socket(),
            SERVICE => self.start_service(),
            RESCUE => self.start_rescue(),
            other => err(format!("Unit {other} not found.")),
        }
    }

    /// KillMode=process: only the main process is signalled; the rest of
    /// the cgroup (sessions, a forked child) stays.
    fn stop_main(&mut self, name: &str) {
        let main = self.unit(name).and_then(|u| u.main_pid);
        if let Some(u) = self.unit_mut(name) {
            u.main_pid = None;
            u.active = Active::Inactive;
        }
        if let Some(m) = main {
            self.kill(m);
        }
    }

    pub fn stop(&mut self, name: &str) -> Result<(), String> {
        match name {
            SOCKET => {
                if self.socket_required && self.service.is_active() {
                    self.stop_main(SERVICE);
                }
                self.socket.active = Active::Inactive;
                if let Some(p1) = self.procs.iter_mut().find(|p| p.pid == 1) {
                    p1.holds.clear();
                }
                Ok(())
            }
            SERVICE | RESCUE => {
                self.stop_main(name);
                Ok(())
            }
            other => match self.unit(other) {
                Some(_) => {
                    self.stop_main(other);
                    Ok(())
                }
                None => err(format!("Unit {other} not loaded.")),
            },
        }
    }

    pub fn restart(&mut self, name: &str) -> Result<(), String> {
        if self.unit(name).is_some_and(Unit::masked) {
            return err(format!("Unit {name} is masked."));
        }
        if name == SOCKET && !self.socket_required && self.service.is_active() {
            // The restart's stop part runs (ssh.service, which does not
            // require the socket, keeps the listening sockets it was
            // passed); its start is refused. So the socket ends inactive
            // and ssh.service holds the port itself (scenario 27's
            // post-invoke: "ssh.socket is not running").
            let _ = self.stop(SOCKET);
            return err("restart ssh.socket: Socket service ssh.service already active, refusing.");
        }
        self.stop(name)?;
        self.start(name)
    }

    /// A restart whose start part fails: the unit is left stopped.
    pub fn restart_fails(&mut self, name: &str) -> Result<(), String> {
        let _ = self.stop(name);
        if name != RESCUE {
            self.fail_unit(name, "exit-code");
        }
        err(format!("restart {name}: job failed (result exit-code)"))
    }

    pub fn reset_failed(&mut self, name: &str) -> Result<(), String> {
        match self.unit_mut(name) {
            Some(u) => {
                if u.active == Active::Failed {
                    u.active = Active::Inactive;
                    u.result = "success";
                }
                // reset-failed also clears the start-rate counter.
                u.starts.clear();
                Ok(())
            }
            None => err(format!("Unit {name} not loaded.")),
        }
    }

    /// What a connection to each target does: through ssh.socket it starts
    /// ssh.service (Accept=no) when it can.
    pub fn connect(&mut self, target: &str) {
        let via_socket = self
            .reached(target)
            .is_some_and(|p| p.kind == Kind::Systemd);
        if via_socket && !self.service.is_active() {
            if self.service_can_start() {
                let _ = self.start_service();
            } else if self.recent_starts(&self.service) >= START_BURST {
                // systemd refuses to start the service and fails the
                // socket, which lets go of the port.
                let _ = self.stop(SOCKET);
                self.socket.active = Active::Failed;
                self.socket.result = "service-start-limit-hit";
            }
        }
    }

    /// deb-systemd-invoke restart UNIT: skipped when the unit is neither
    /// enabled nor running (exit 0); else systemctl restart, whose failure
    /// fails the postinst (`set -e`).
    fn invoke_restart(&mut self, name: &str) -> Result<(), String> {
        let Some(u) = self.unit(name) else {
            return Ok(());
        };
        if u.file != "enabled" && !u.is_active() {
            return Ok(());
        }
        self.restart(name)
    }

    /// dpkg --configure openssh-server: noble's postinst restart step.
    pub fn configure(&mut self) -> Result<(), String> {
        if self.pkg == "installed" {
            return err("dpkg: package openssh-server is already installed and configured");
        }
        let r = if self.was_enabled.0 {
            self.invoke_restart(SOCKET)
        } else if self.was_enabled.1 {
            self.invoke_restart(SERVICE)
        } else {
            Ok(())
        };
        match r {
            Ok(()) => {
                self.pkg = "installed";
                Ok(())
            }
            Err(e) => {
                self.pkg = "half-configured";
                err(format!(
                    "dpkg --configure openssh-server: {e}; installed openssh-server package post-installation script subprocess returned error exit status 1"
                ))
            }
        }
    }

    /// dpkg unpacks a new openssh-server: every running sshd now runs a
    /// deleted binary.
    pub fn unpack(&mut self) {
        for p in self
            .procs
            .iter_mut()
            .filter(|p| p.alive && p.comm == "sshd")
        {
            p.deleted = true;
        }
        self.pkg = "unpacked";
    }

    /// `repair::Machine::stop_stale`: the same process (start time,
    /// binary) and still stale by the guard's own rules, read afresh; then
    /// SIGTERM, SIGKILL after `stop_timeout`. Returns the outcome and, when
    /// a signal was sent, the process it went to.
    pub fn stop_stale(
        &mut self,
        process: ProcessStamp,
        exe: &str,
        stop_timeout: u64,
    ) -> (Result<Stopped, String>, Option<Proc>) {
        let Some(p) = self.proc(process.pid).cloned() else {
            return (Ok(Stopped::AlreadyGone), None);
        };
        if p.start_time != process.start_time || p.exe_shown() != exe {
            return (
                err(format!(
                    "pid {} is no longer the process that was found (start time or binary changed)",
                    p.pid
                )),
                None,
            );
        }
        let j = self.judge(&p);
        if j.class != ListenerClass::Stale {
            return (
                err(format!(
                    "pid {} is no longer a stale listener ({}); not signalled",
                    p.pid, j.why
                )),
                None,
            );
        }
        let r = match p.dies {
            Dies::OnTerm => {
                self.kill(p.pid);
                Ok(Stopped::Term)
            }
            Dies::OnKill => {
                self.clock += stop_timeout;
                self.kill(p.pid);
                Ok(Stopped::Kill)
            }
            Dies::Never => {
                self.clock += stop_timeout + 5;
                err(format!("pid {} was not reaped after SIGKILL", p.pid))
            }
        };
        (r, Some(p))
    }
}
