// The command line, kept free of crate-internal imports: build.rs includes this
// file to generate the man page and the bash completion from the same
// definitions as --help, so the three cannot drift apart.

use clap::{ArgAction, Args, Parser, Subcommand};

const EXIT_CODES_HOOK: &str = "\
Exit status:
  0  always: an apt hook must never fail apt. Whatever goes wrong in the guard
     itself is reported in one line starting with 'ssh-upgrade-guard: warning:'.";

const EXIT_CODES_INHIBITED: &str = "\
Exit status:
  0  watchdogs must wait: a live inhibit marker, or a dpkg lock is held
     (also when the state cannot be read: when in doubt, wait)
  1  nothing inhibits: a watchdog may act
  2  usage error

Example, the one-line fix for an existing cron watchdog:
  ssh-upgrade-guard inhibited || systemctl restart ssh";

const EXIT_CODES_STATUS: &str = "\
Exit status:
  0  healthy: openssh-server fully installed, ssh units as intended, no stale listener
  1  a problem was found (the verdict line says which)
  2  usage error
  3  the diagnosis itself failed (the message says why)";

const EXIT_CODES_REPAIR: &str = "\
Exit status:
  0  ssh is healthy now (repaired, or there was nothing to do);
     with --dry-run: the plan was printed
  1  a problem remains: the repair was refused (e.g. sshd rejects its
     configuration) or did not succeed; the message says what is left
  2  usage error
  3  the guard could not run (e.g. no D-Bus, not root)";

const EXIT_CODES_CHECK: &str = "\
Exit status (monitoring-plugin conventions):
  0  OK: openssh-server fully installed, ssh up as intended, no stale listener
  1  WARNING: a problem while a package manager runs (it may still fix it)
  2  CRITICAL: openssh-server not fully installed, ssh down, or a stale listener
  3  UNKNOWN: systemd could not be asked
With --npd (node-problem-detector): 0 OK, 1 problem (WARNING or CRITICAL), 2 unknown.";

const EXIT_CODES_WATCHDOG: &str = "\
Exit status:
  0  ssh answers, or a repair succeeded, or action is inhibited (apt/dpkg running)
  1  a repair was attempted and did not succeed
  2  usage error
  3  the guard could not run
  4  gave up: the repair limit per hour is reached; nothing was done";

/// Keeps unattended openssh-server upgrades from ending half-configured, and
/// never locks anyone out while repairing them.
///
/// Installed as apt's DPkg::Pre-Invoke and DPkg::Post-Invoke hooks, it marks the
/// dpkg run so that watchdogs wait, repairs an sshd listener that systemd no
/// longer manages (the cause of "Could not execute systemctl" in
/// openssh-server's postinst), and completes the package configuration.
#[derive(Debug, Parser)]
#[command(name = "ssh-upgrade-guard", version, propagate_version = true)]
#[command(
    after_help = "Settings are read from /etc/default/ssh-upgrade-guard (see the comments there).\n\
Run 'ssh-upgrade-guard <command> --help' for a command's details and exit status."
)]
pub struct Cli {
    /// More detail on standard error (-v: info, -vv: debug, -vvv: trace)
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors and warnings (overrides -v)
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Settings file (KEY=value lines)
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "/etc/default/ssh-upgrade-guard"
    )]
    pub config: std::path::PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// apt's DPkg::Pre-Invoke hook: place the inhibit marker, repair an already broken ssh
    ///
    /// Writes /run/ssh-upgrade-guard/inhibit, recording the package manager that
    /// runs dpkg, so that watchdogs leave sshd alone until dpkg is done. If ssh is
    /// already broken (a stale listener holds an ssh port, ssh.socket or
    /// ssh.service failed, openssh-server half-configured), repairs it first so
    /// that the maintainer scripts about to run succeed. Quiet when all is well.
    #[command(after_help = EXIT_CODES_HOOK)]
    PreInvoke(HookArgs),

    /// apt's DPkg::Post-Invoke hook: verify openssh-server and ssh, repair, release the marker
    ///
    /// Runs after every dpkg batch, also when dpkg failed. Checks that
    /// openssh-server is fully installed and ssh is up as systemd intends;
    /// otherwise repairs (see 'repair') and reports what it found and did.
    /// Removes the marker placed by pre-invoke. Quiet when all is well.
    #[command(after_help = EXIT_CODES_HOOK)]
    PostInvoke(HookArgs),

    /// Tell a watchdog whether it must wait (exit 0) or may act (exit 1)
    ///
    /// Inhibited while a live marker exists (its package manager process still
    /// runs, same boot, younger than MARKER_MAX_AGE) or while any process holds
    /// /var/lib/dpkg/lock or /var/lib/dpkg/lock-frontend. A stale marker is
    /// removed with a warning. -v says why.
    #[command(after_help = EXIT_CODES_INHIBITED)]
    Inhibited,

    /// Show openssh-server's dpkg state, the ssh units, every listener on the ssh ports
    ///
    /// One snapshot: the package state, ports and addresses in force, systemd's
    /// view of ssh.service and ssh.socket, every process listening on an ssh port
    /// (classified systemd, managed, stale or foreign), sshd sessions, the
    /// inhibit marker and the dpkg locks. The first line is the verdict.
    /// Run it as root: without root, root's processes (so who holds a
    /// socket) and dpkg's locks cannot be read, and it says so.
    #[command(after_help = EXIT_CODES_STATUS)]
    Status(StatusArgs),

    /// Repair ssh without locking anyone out
    ///
    /// Checks the configuration with 'sshd -t' before stopping anything, stops
    /// only stale sshd listeners (never a session), restores ssh.socket or
    /// ssh.service through systemd, proves ssh serves on every configured
    /// address (an SSH-2.0 banner, then a key exchange with this host's key),
    /// then completes openssh-server's configuration with
    /// dpkg. Runs are serialized; on a healthy system nothing changes.
    #[command(after_help = EXIT_CODES_REPAIR)]
    Repair(RepairArgs),

    /// One watchdog check: repair ssh if it does not answer and nothing inhibits
    ///
    /// Meant for the shipped systemd timer (or cron) in place of a home-made
    /// watchdog. A listening ssh.socket counts as healthy without starting sshd.
    /// Waits while apt or dpkg runs. At most WATCHDOG_MAX_REPAIRS repairs per
    /// hour, then stops trying and says so.
    #[command(after_help = EXIT_CODES_WATCHDOG)]
    Watchdog,

    /// Monitoring plugin: one status line with perfdata, Nagios/Icinga exit codes
    ///
    /// The same diagnosis as 'status', for Nagios, Icinga, Sensu, monit and
    /// (with --npd) Kubernetes node-problem-detector. Changes nothing.
    #[command(after_help = EXIT_CODES_CHECK)]
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct HookArgs {}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Exit codes for Kubernetes node-problem-detector's custom plugin
    /// monitor: 0 OK, 1 problem, 2 unknown
    #[arg(long)]
    pub npd: bool,

    /// Also prove that ssh serves: a banner and a key exchange with this
    /// host's key (/etc/ssh/ssh_host_*_key.pub) on every address; starts sshd
    /// where ssh.socket activates it
    #[arg(long)]
    pub probe: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Machine-readable output (field names are a stable interface, see ssh-upgrade-guard-status-json(7))
    #[arg(long)]
    pub json: bool,

    /// Also prove that ssh serves: a banner and a key exchange with this
    /// host's key (/etc/ssh/ssh_host_*_key.pub) on every address; starts sshd
    /// where ssh.socket activates it
    #[arg(long)]
    pub probe: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Print the plan and change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}
