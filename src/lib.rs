//! ssh-upgrade-guard keeps unattended openssh-server upgrades from ending
//! half-configured and repairs ssh without ever locking anyone out.
//!
//! Layout: `model`, `plan`, and the parsers (`dpkg`, `sshd`, `marker`,
//! `config`) are pure; everything that touches the OS is under `system`;
//! `commands` holds the entry points that tie them together.
pub mod cli;
pub mod commands;
pub mod config;
pub mod dpkg;
pub mod marker;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod repair;
pub mod report;
pub mod roads;
pub mod sshd;
pub mod system;

use cli::{Cli, Command};

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Milliseconds since the program started, for -vv timing lines.
pub fn elapsed_ms() -> f64 {
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
            writeln!(
                buf,
                "{}: {}: {}",
                report::PREFIX,
                rec.level().as_str().to_lowercase(),
                rec.args()
            )
        })
        .init();
}

/// Parses the command line, loads the settings and runs the command.
/// Returns the process exit status.
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
    let code = match cli.command {
        Command::PreInvoke(_) => commands::pre_invoke(&ctx),
        Command::PostInvoke(_) => commands::post_invoke(&ctx),
        Command::Inhibited => commands::inhibited(&ctx),
        Command::Status(a) => commands::status(&ctx, a.json),
        Command::Repair(a) => commands::repair(&ctx, a.dry_run),
        Command::Watchdog => commands::watchdog(&ctx),
        Command::Check(a) => commands::check(&ctx, a.npd),
    };
    log::debug!("{:.1} ms: done, exit status {code}", elapsed_ms());
    code
}
