# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #13: scenario 1 on Debian trixie (OpenSSH 10: sessions are
# sshd-session processes, the listener stays sshd).
SUITE=trixie
# shellcheck source=01-seed_incident.sh
. "$(dirname "${BASH_SOURCE[0]}")/01-seed_incident.sh"
SUITE=trixie
