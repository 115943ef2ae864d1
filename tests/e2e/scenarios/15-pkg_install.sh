# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 3, package test 1: `apt-get install` of the guard into a booted
# system: its hooks run on the next apt operation (the marker's life cycle is
# visible), the watchdog timer is active and enabled.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: a package test needs the package"
	start_machine "$SUITE"
	install_guard
	assert_pkg_installed ssh-upgrade-guard
	assert_timer_active
	assert_hooks_live
	run_in "$GUARD_BIN" status
	((RC == 0)) || fail "status on a healthy fresh system exited $RC"
}
