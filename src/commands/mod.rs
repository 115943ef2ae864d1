//! The commands: pre-invoke and post-invoke (hooks), inhibited, status,
//! check, repair and watchdog. Each gathers what it needs (cheaply on the
//! healthy path), asks `plan::decide`, acts through `repair::execute`, and
//! returns an [`Outcome`]: what to tell, what to record, how to exit.
//! [`output::emit`] is the one place that turns an outcome into text on
//! stdout/stderr, metrics and the exit status.
#![forbid(unsafe_code)]
#![deny(clippy::missing_docs_in_private_items)]

mod diagnose;
mod hooks;
mod output;
mod record;
mod repair;
mod roads;
mod status;
mod watchdog;

#[cfg(test)]
mod golden;

use crate::cli::Command;
use crate::config::Config;
use crate::model::Snapshot;
use crate::plan::{decide, Mode, Plan};
use crate::system::systemd::Systemd;
use crate::system::Roots;
use anyhow::{anyhow, Result};

pub(crate) use output::internal_error_line;

/// Exit statuses shared by the commands (see each command's --help).
pub mod exit {
    /// Healthy, done, or (hooks) always.
    pub const OK: i32 = 0;
    /// A problem remains (or, for `inhibited`, not inhibited).
    pub const PROBLEM: i32 = 1;
    /// The guard itself failed.
    pub const INTERNAL: i32 = 3;
    /// The watchdog reached its repair limit.
    pub const GAVE_UP: i32 = 4;
}

/// What every command runs with.
#[derive(Clone)]
pub struct Ctx {
    /// Where everything lives.
    pub roots: Roots,
    /// The settings.
    pub cfg: Config,
}

impl Ctx {
    /// The connection to systemd; never under a test root.
    fn systemd(&self) -> Result<Systemd> {
        if self.roots.test_root.is_some() {
            return Err(anyhow!("systemd is not consulted under a test root"));
        }
        Systemd::connect()
    }

    /// The plan for a snapshot with this run's settings.
    fn plan(&self, s: &Snapshot, mode: Mode) -> Plan {
        decide(s, &self.cfg, mode)
    }
}

/// `--probe` as [`status::Probe`].
fn probe(asked: bool) -> status::Probe {
    if asked {
        status::Probe::KeyExchange
    } else {
        status::Probe::Off
    }
}

/// Runs one command and returns the process exit status.
pub fn run(ctx: &Ctx, command: Command) -> i32 {
    let outcome = match command {
        // The hooks run under HOOK_DEADLINE: apt goes on whatever hangs
        // underneath (deadline.rs).
        Command::PreInvoke(_) => return hooks::bounded(ctx, hooks::Hook::Pre),
        Command::PostInvoke(_) => return hooks::bounded(ctx, hooks::Hook::Post),
        Command::Inhibited => status::inhibited(ctx),
        Command::Status(a) => status::status(
            ctx,
            if a.json {
                status::Format::Json
            } else {
                status::Format::Text
            },
            probe(a.probe),
        ),
        Command::Repair(a) => repair::repair(
            ctx,
            if a.dry_run {
                diagnose::Act::DryRun
            } else {
                diagnose::Act::Repair
            },
        ),
        Command::Watchdog => watchdog::watchdog(ctx),
        Command::Check(a) => status::check(
            ctx,
            if a.npd {
                status::Convention::NodeProblemDetector
            } else {
                status::Convention::MonitoringPlugin
            },
            probe(a.probe),
        ),
    };
    output::emit(ctx, outcome)
}
