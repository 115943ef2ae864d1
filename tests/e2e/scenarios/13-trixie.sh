# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #13: scenario 1 on Debian trixie (OpenSSH 10: sessions are
# sshd-session processes, the listener stays sshd).
SUITE=trixie
# shellcheck source=01-seed_incident.sh
. "$(dirname "${BASH_SOURCE[0]}")/01-seed_incident.sh"
SUITE=trixie
eval "seed_$(declare -f run_scenario)"

run_scenario() {
	seed_run_scenario
	# The session that survived is OpenSSH 10's split process, so this really
	# exercised the sshd-session case of the listener/session distinction.
	[[ -n $(cexec pgrep -x sshd-session) ]] || fail "no sshd-session process: is this OpenSSH >= 9.8?"
}
