# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #8: `dpkg -i` run directly (no apt, so no hooks and no marker):
# `inhibited` must still return 0 while dpkg holds its lock, and 1 after.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no \`inhibited\` to test"
	csh 'echo 8 >/run/e2e-slow-seconds'
	cexec dpkg -i /srv/e2e-repo/e2e-slow_1_all.deb >"$C_DIR/dpkg.out" 2>&1 &
	local dpkg_pid=$!
	wait_until 60 "the slow postinst" cexec test -e /run/e2e-slow-started || fail "fixture: e2e-slow postinst never started"
	! cexec test -e /run/ssh-upgrade-guard/inhibit || fail "fixture: a marker exists although no apt ran"
	run_in "$GUARD_BIN" inhibited -v
	((RC == 0)) || fail "inhibited exited $RC while dpkg -i runs (expected 0)"
	wait "$dpkg_pid" || fail "dpkg -i exited $?"
	run_in "$GUARD_BIN" inhibited -v
	((RC == 1)) || fail "inhibited exited $RC after dpkg finished (expected 1)"
}
