# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #6: the watchdog waits while apt holds the lock. A fixture package
# whose postinst sleeps keeps apt busy; meanwhile ssh is stopped (as during an
# upgrade). The watchdog (its real systemd unit) must do nothing then; once apt
# is done, ssh answers again, and a watchdog run after a later outage restores
# ssh by itself.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no watchdog to test"
	csh 'echo 20 >/run/e2e-slow-seconds'
	cexec DEBIAN_FRONTEND=noninteractive apt-get -y install e2e-slow >"$C_DIR/apt.out" 2>&1 &
	local apt_pid=$!
	wait_until 60 "the slow postinst" cexec test -e /run/e2e-slow-started || fail "fixture: e2e-slow postinst never started"
	csh 'systemctl stop ssh.socket ssh.service'
	run_in "$GUARD_BIN" inhibited -v
	((RC == 0)) || fail "inhibited exited $RC while apt runs a postinst (expected 0)"
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	local st
	st=$(cexec systemctl is-active ssh.socket)
	[[ $st != active ]] || fail "the watchdog acted while apt held the lock (ssh.socket is $st)"
	[[ -z $(cexec ss -Hltn 'sport = :22') ]] || fail "something listens on :22 while the watchdog should be inhibited: $(listeners)"
	wait "$apt_pid" || fail "apt-get install e2e-slow exited $?: $(tail -n 5 "$C_DIR/apt.out")"
	sed 's/^/    apt| /' "$C_DIR/apt.out" >&2
	assert_banner 127.0.0.1 ::1
	run_in "$GUARD_BIN" inhibited -v
	((RC == 1)) || fail "inhibited exited $RC after apt finished (expected 1)"
	# A later outage, no package manager running: the watchdog repairs it.
	csh 'systemctl stop ssh.socket ssh.service'
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	assert_clean_socket_activated
}
