# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #5: unattended-upgrades (MinimalSteps on, its default) performs the
# upgrade with a stale listener on :22 -> clean end state.
SUITE=bookworm
TIMEOUT=300

run_scenario() {
	start_machine "$SUITE"
	install_guard
	csh 'cat >/etc/apt/apt.conf.d/51e2e-unattended <<"CONF"
Unattended-Upgrade::Origins-Pattern { "origin=e2e"; };
Unattended-Upgrade::MinimalSteps "true";
CONF'
	make_stale_listener
	open_session
	local from
	from=$(pkg_version openssh-server)
	run_in unattended-upgrade -v
	local ulog
	ulog=$(cexec cat /var/log/unattended-upgrades/unattended-upgrades.log /var/log/unattended-upgrades/unattended-upgrades-dpkg.log 2>&1)
	printf '%s\n' "$ulog" | tail -n 40 | sed 's/^/    u-u| /' >&2
	[[ $(pkg_version openssh-server) != "$from" ]] || fail "unattended-upgrades did not upgrade openssh-server ($from)"
	assert_clean_socket_activated
	assert_session "after unattended-upgrades"
}
