# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12, road g: the rescue sshd must run the binaries dpkg has
# unpacked. ssh.socket cannot start (a drop-in makes it fail), so a repair
# ends with the guard's rescue sshd, started from the installed (old)
# binary. The next upgrade replaces /usr/sbin/sshd under it: a listener on
# a replaced binary is what the incident is made of (OpenSSH 9.8+ cannot
# even serve new connections then). Post-invoke must restart the rescue on
# the unpacked binary, say so, and keep the session.
SUITE=bookworm
TIMEOUT=300

rescue_exe() {
	local pid
	pid=$(cexec systemctl show -p MainPID --value ssh-upgrade-guard-rescue.service)
	[[ -n $pid && $pid != 0 ]] || return 1
	cexec readlink "/proc/$pid/exe"
}

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no rescue sshd without the guard"
	open_session
	csh 'mkdir -p /etc/systemd/system/ssh.socket.d &&
		printf "[Socket]\nExecStartPre=/bin/false\n" >/etc/systemd/system/ssh.socket.d/e2e-broken.conf &&
		systemctl daemon-reload && systemctl stop ssh.socket' || fail "fixture: cannot break ssh.socket"
	csh 'echo BANNER_TIMEOUT=3s >>/etc/default/ssh-upgrade-guard'
	run_in "$GUARD_BIN" repair
	expect_in "$OUT" 'rescue sshd' "repair output (the rescue must start)"
	[[ $(rescue_exe) == /usr/sbin/sshd ]] || fail "fixture: the rescue runs '$(rescue_exe)'"
	local before
	before=$(cexec systemctl show -p MainPID --value ssh-upgrade-guard-rescue.service)

	apt_get upgrade
	# (pre-invoke has already tried the socket again, issue 18: the rescue
	# came back under another pid, on the binary dpkg then replaced.)
	expect_in "$OUT" "found: the guard's rescue sshd \\(pid [0-9]+\\) still runs the replaced binary /usr/sbin/sshd \\(deleted\\)" "post-invoke's report"
	expect_in "$OUT" 'did: restarted ssh-upgrade-guard-rescue.service' "post-invoke's report"
	cexec systemctl is-active -q ssh-upgrade-guard-rescue.service || fail "the rescue unit is not active after the upgrade"
	[[ $(rescue_exe) == /usr/sbin/sshd ]] || fail "after the upgrade the rescue runs '$(rescue_exe)', not the unpacked /usr/sbin/sshd"
	[[ $(cexec systemctl show -p MainPID --value ssh-upgrade-guard-rescue.service) != "$before" ]] || fail "the rescue was not restarted"
	assert_banner 127.0.0.1 ::1
	assert_session "after the upgrade"
}
