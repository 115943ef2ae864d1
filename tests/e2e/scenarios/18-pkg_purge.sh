# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 3, package test 4: `apt-get purge` leaves no file of ours: the file
# list after purge equals the one before install (apt/dpkg bookkeeping and
# logs aside), after the guard has been used (hooks, watchdog run).
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: a package test needs the package"
	start_machine "$SUITE"
	publish_guard
	# The fixture package the hook check uses is not ours: install it first.
	apt_get install e2e-slow
	file_list >"$C_DIR/before"
	install_guard
	assert_hooks_live
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	apt_get purge ssh-upgrade-guard
	((RC == 0)) || fail "apt-get purge exited $RC"
	[[ -z $(pkg_status ssh-upgrade-guard) || $(pkg_status ssh-upgrade-guard) == un ]] ||
		fail "status after purge is '$(pkg_status ssh-upgrade-guard)'"
	file_list >"$C_DIR/after"
	local left
	left=$(comm -13 "$C_DIR/before" "$C_DIR/after")
	[[ -z $left ]] || fail "left after purge: $(tr '\n' ' ' <<<"$left")"
	apt_get install e2e-slow
	((RC == 0)) || fail "apt-get after purge exited $RC"
}
