# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #7: apt is killed with SIGKILL mid-transaction, so its Post-Invoke
# never runs and the marker stays. The leftover marker must be recognised as
# stale: once the dpkg locks are free, `inhibited` returns 1.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no marker to test"
	csh 'echo 8 >/run/e2e-slow-seconds'
	cexec DEBIAN_FRONTEND=noninteractive apt-get -y install e2e-slow >"$C_DIR/apt.out" 2>&1 &
	wait_until 60 "the slow postinst" cexec test -e /run/e2e-slow-started || fail "fixture: e2e-slow postinst never started"
	cexec test -e /run/ssh-upgrade-guard/inhibit || fail "no marker at /run/ssh-upgrade-guard/inhibit while apt runs dpkg"
	run_in "$GUARD_BIN" inhibited -v
	((RC == 0)) || fail "inhibited exited $RC while apt runs (expected 0)"
	csh 'kill -KILL $(pgrep -x apt-get)' || fail "could not kill apt-get"
	# dpkg finishes its postinst on its own; then every lock is free.
	wait_until 60 "dpkg to exit" bash -c "! nsenter -t $C_LEADER -a -- pgrep -x dpkg" || fail "dpkg did not finish"
	cexec test -e /run/ssh-upgrade-guard/inhibit || fail "fixture: the marker is gone although apt's Post-Invoke never ran"
	run_in "$GUARD_BIN" inhibited -v
	((RC == 1)) || fail "inhibited exited $RC with a dead holder's marker and free locks (expected 1)"
	expect_in "$OUT" '[Ss]tale' "inhibited -v (the leftover marker must be called stale)"
	run_in "$GUARD_BIN" status
	((RC != 101)) || fail "status panicked"
}
