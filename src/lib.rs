//! ssh-upgrade-guard keeps unattended openssh-server upgrades from ending
//! half-configured and repairs ssh without ever locking anyone out.
//!
//!
//! Layout (ARCHITECTURE.md): `model`, `plan`, and the parsers (`dpkg`,
//! `sshd`, `marker`, `config`, `metrics`, `identity`, `hostkeys`) are pure; everything that touches
//! the OS is under `system`; `commands` holds the entry points that tie them
//! together; `deadline` bounds the hooks in time. Only [`main`] is
//! exported: every module is private to the crate, so the compiler finds
//! what nothing uses. Every module forbids
//! unsafe code except `system::signal` and `system::locks` (pidfd syscalls,
//! a C struct), where each block carries a SAFETY comment.

#![deny(missing_docs)]

// cli.rs is also include!d by build.rs, where an inner attribute cannot be.
mod booted;
#[forbid(unsafe_code)]
mod cli;
mod commands;
mod config;
mod deadline;
mod dpkg;
mod hostkeys;
mod identity;
mod intent;
mod marker;
mod metrics;
mod model;
mod plan;
mod repair;
mod report;
mod roads;
#[cfg(test)]
mod sim;
mod sshd;
mod sshd_config;
mod stamp;
mod system;
mod text;
mod unit_name;

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

static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
static IN_HOOK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The last panic's message and place, in one line, if there was one.
pub(crate) fn last_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|p| p.clone())
}

/// From now on a panic's line is left to the hook's warning line.
pub(crate) fn enter_hook() {
    IN_HOOK.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A panic is a bug; it is reported in one line, never Rust's multi-line
/// message (apt's output and cron mail show it as is). Inside a hook the
/// line is left to the hook, which adds that apt continues: one line in all.
/// Writing it never panics (stderr may be a closed pipe).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("{msg}{place}").replace('\n', " ");
        if let Ok(mut p) = LAST_PANIC.lock() {
            *p = Some(line.clone());
        }
        if !IN_HOOK.load(std::sync::atomic::Ordering::SeqCst) {
            commands::internal_error_line(&line);
        }
    }));
}

/// Parses the command line, loads the settings and runs the command.
/// Returns the process exit status.
pub fn main() -> i32 {
    use clap::Parser;
    let _ = elapsed_ms();
    install_panic_hook();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let (cfg, warnings) = match system::settings::read(&cli.config) {
        Ok(Some(bytes)) => config::parse_bytes(&bytes, &cli.config.display().to_string()),
        Ok(None) => (config::Config::default(), Vec::new()),
        Err(e) => (
            config::Config::default(),
            vec![format!("{e}; using defaults")],
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
    // A SIGINT/SIGHUP/SIGTERM held off while a repair restored ssh ends the
    // process now that the report is out (system::signal).
    system::signal::honour_held();
    code
}
