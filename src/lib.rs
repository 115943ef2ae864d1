//! ssh-upgrade-guard keeps unattended openssh-server upgrades from ending
//! half-configured and repairs ssh without ever locking anyone out.
//!
//!
//! Layout (ARCHITECTURE.md): `model`, `plan`, and the parsers (`dpkg`,
//! `sshd`, `marker`, `config`, `metrics`, `identity`, `hostkeys`) are pure; everything that touches
//! the OS is under `system`; `commands` holds the entry points that tie them
//! together. Only [`main`] is exported: every module is private to the
//! crate, so the compiler finds what nothing uses. Every module forbids
//! unsafe code except `system::signal` and `system::locks` (pidfd syscalls,
//! a C struct), where each block carries a SAFETY comment.

#![deny(missing_docs)]

// cli.rs is also include!d by build.rs, where an inner attribute cannot be.
#[forbid(unsafe_code)]
mod cli;
mod commands;
mod config;
mod dpkg;
mod hostkeys;
mod identity;
mod marker;
mod metrics;
mod model;
mod plan;
mod repair;
mod report;
mod roads;
mod sshd;
mod sshd_config;
mod system;
mod text;

use cli::Cli;

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Milliseconds since the program started, for -vv timing lines.
pub(crate) fn elapsed_ms() -> f64 {
    STARTED
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1000.0
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) | (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    // No timestamps: journald and apt's log add their own.
    env_logger::Builder::new()
        .filter_module("ssh_upgrade_guard", level)
        .format(|buf, rec| {
            use std::io::Write;
            // One line per message, whatever names it carries.
            writeln!(
                buf,
                "{}: {}: {}",
                report::PREFIX,
                rec.level().as_str().to_lowercase(),
                text::esc(&rec.args().to_string())
            )
        })
        .init();
}

/// Parses the command line, loads the settings and runs the command.
/// Returns the process exit status.
// The settings file is read here, before anything else exists to read it.
#[allow(clippy::disallowed_methods)]
pub fn main() -> i32 {
    use clap::Parser;
    let _ = elapsed_ms();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let (cfg, warnings) = match std::fs::read_to_string(&cli.config) {
        Ok(text) => config::parse(&text, &cli.config.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (config::Config::default(), Vec::new())
        }
        Err(e) => (
            config::Config::default(),
            vec![format!(
                "cannot read {}: {e}; using defaults",
                cli.config.display()
            )],
        ),
    };
    for w in warnings {
        log::warn!("{w}");
    }
    let ctx = commands::Ctx {
        roots: system::Roots::from_env(),
        cfg,
    };
    let code = commands::run(&ctx, cli.command);
    log::debug!("{:.1} ms: done, exit status {code}", elapsed_ms());
    code
}
