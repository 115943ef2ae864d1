//! ssh-upgrade-guard keeps unattended openssh-server upgrades from ending
//! half-configured and repairs ssh without ever locking anyone out.
//!
//! Layout: `model`, `plan`, and the parsers (`dpkg`, `sshd`, `marker`,
//! `config`) are pure; everything that touches the OS is under `system`;
//! `commands` holds the entry points that tie them together.
pub mod cli;
pub mod commands;
pub mod config;
pub mod deadline;
pub mod dpkg;
pub mod marker;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod repair;
pub mod report;
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

static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
static IN_HOOK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The last panic's message and place, in one line, if there was one.
pub fn last_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|p| p.clone())
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
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}: internal error: {line}",
                report::PREFIX
            );
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
    // The hooks run under HOOK_DEADLINE (see deadline.rs): apt goes on
    // whatever hangs underneath.
    let limit = ctx.cfg.hook_deadline;
    let code = match cli.command {
        Command::PreInvoke(_) => {
            IN_HOOK.store(true, std::sync::atomic::Ordering::SeqCst);
            deadline::hook("pre-invoke", limit, "", move || commands::pre_invoke(&ctx))
        }
        Command::PostInvoke(_) => {
            IN_HOOK.store(true, std::sync::atomic::Ordering::SeqCst);
            deadline::hook(
                "post-invoke",
                limit,
                "the inhibit marker is left to lapse when apt exits; ",
                move || commands::post_invoke(&ctx),
            )
        }
        Command::Inhibited => commands::inhibited(&ctx),
        Command::Status(a) => commands::status(&ctx, a.json),
        Command::Repair(a) => commands::repair(&ctx, a.dry_run),
        Command::Watchdog => commands::watchdog(&ctx),
        Command::Check(a) => commands::check(&ctx, a.npd),
    };
    log::debug!("{:.1} ms: done, exit status {code}", elapsed_ms());
    code
}
