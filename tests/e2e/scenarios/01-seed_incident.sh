# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #1: the seed incident, prevented. A stale sshd (started outside
# systemd by a cron-style watchdog, running the binary the upgrade replaces)
# holds :22 before `apt-get upgrade` of openssh-server. With the guard the
# upgrade completes: apt exits 0, the package is installed, ssh.socket
# listens, a banner answers on v4 and v6, the stale process is gone and an SSH
# session opened beforehand still works.
SUITE=${SUITE:-bookworm}
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	local from
	from=$(pkg_version openssh-server)
	make_stale_listener
	open_session
	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade exited $RC: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	[[ $(pkg_version openssh-server) != "$from" ]] || fail "openssh-server was not upgraded ($from)"
	assert_clean_socket_activated
	assert_session "after the upgrade"
}
