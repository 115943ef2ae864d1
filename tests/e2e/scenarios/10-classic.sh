# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #10: classic topology (ssh.service enabled, ssh.socket disabled)
# with a stale listener: the upgrade (noble's postinst then restarts
# ssh.service) completes and ssh.service runs the new binary on :22.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable --now ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	assert_unit_active ssh.service
	install_guard
	make_stale_listener
	open_session
	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade exited $RC: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	assert_pkg_installed openssh-server
	assert_unit_active ssh.service
	local main exe
	main=$(cexec systemctl show -p MainPID --value ssh.service)
	exe=$(cexec readlink "/proc/$main/exe")
	[[ $exe == /usr/sbin/sshd ]] || fail "ssh.service's MainPID $main runs '$exe'"
	cexec ss -Hltnp 'sport = :22' | grep -q "pid=$main," || fail "ssh.service's MainPID $main does not hold :22: $(listeners)"
	[[ $(cexec systemctl is-enabled ssh.socket) != enabled ]] || fail "the guard changed the topology: ssh.socket is enabled"
	assert_banner 127.0.0.1 ::1
	assert_no_stale
	assert_session "after the upgrade"
}
