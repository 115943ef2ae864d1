"""apport package hook for ssh-upgrade-guard.

Installed as /usr/share/apport/package-hooks/ssh-upgrade-guard.py. A report
about the guard is actionable with what it sees now (status --json), its
settings and what it did recently (its journal), so those are attached.
Nothing secret: no host private keys, no sshd_config, no environment; every
command runs with a time bound, a bounded output and only PATH and the
locale in its environment. reportbug gets the same set from
/usr/share/bug/ssh-upgrade-guard/script.
"""

import os
import subprocess

try:
    from apport.hookutils import attach_related_packages
except ImportError:  # outside apport (a test run of this file)
    attach_related_packages = None

GUARD = "/usr/sbin/ssh-upgrade-guard"
SETTINGS = "/etc/default/ssh-upgrade-guard"
TERM_LOG = "/var/log/apt/term.log"
MAX_BYTES = 256 * 1024
# Only what the commands need: the reporter's environment stays out.
CHILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


def _run(argv, seconds):
    """argv's output (bounded in time and size) and a note on how it ended."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=CHILD_ENV,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "", "%s did not finish within %d s" % (argv[0], seconds)
    except OSError as e:
        return "", "%s could not run: %s" % (argv[0], e)
    note = "exit status %d" % done.returncode
    if os.geteuid() != 0:
        note += "; run without root: only what a user may see"
    err = done.stderr[:MAX_BYTES].decode("utf-8", "replace").strip()
    if err:
        note += "; stderr: " + err
    return done.stdout[:MAX_BYTES].decode("utf-8", "replace"), note


def _attach(report, key, argv, seconds):
    """report[key] is the output, report[key + "Note"] how the run ended."""
    report[key], report[key + "Note"] = _run(argv, seconds)


def _settings():
    """The settings file without its comments (it holds no secrets)."""
    try:
        with open(SETTINGS, "rb") as f:
            raw = f.read(64 * 1024)
    except OSError as e:
        return "(%s: %s)" % (SETTINGS, e.strerror)
    lines = raw.decode("utf-8", "replace").splitlines()
    return "\n".join(
        l for l in lines if l.strip() and not l.lstrip().startswith("#")
    )


def _hook_lines():
    """The hooks' own lines in apt's log of its runs (the last 100)."""
    try:
        with open(TERM_LOG, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * 1024 * 1024))
            raw = f.read()
    except OSError as e:
        return "(%s: %s)" % (TERM_LOG, e.strerror)
    lines = raw.decode("utf-8", "replace").splitlines()
    return "\n".join(
        [l for l in lines if l.startswith("ssh-upgrade-guard: ")][-100:]
    )


def add_info(report, ui=None):
    """apport calls this for a report against ssh-upgrade-guard."""
    _attach(report, "SshUpgradeGuardVersion", [GUARD, "--version"], 10)
    # Pure JSON (exit status 1 only says a problem was found).
    _attach(report, "SshUpgradeGuardStatusJson", [GUARD, "status", "--json"], 30)
    report["SshUpgradeGuardSettings"] = _settings()
    journal = [
        "journalctl", "--no-pager", "-q", "-o", "short-iso",
        "--since=-7d", "-n", "150",
    ]
    _attach(
        report,
        "SshUpgradeGuardWatchdogJournal",
        journal + ["-u", "ssh-upgrade-guard-watchdog.service"],
        15,
    )
    _attach(report, "SshUpgradeGuardJournal", journal + ["-t", "ssh-upgrade-guard"], 15)
    report["SshUpgradeGuardAptLog"] = _hook_lines()
    if attach_related_packages is not None:
        attach_related_packages(report, ["openssh-server", "openssh-client"])
