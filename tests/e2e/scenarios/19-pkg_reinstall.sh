# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 3, package test 5: install again after a purge: everything is back
# (conffiles, timer, hooks).
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: a package test needs the package"
	start_machine "$SUITE"
	install_guard
	apt_get purge ssh-upgrade-guard
	((RC == 0)) || fail "apt-get purge exited $RC"
	apt_get install ssh-upgrade-guard
	((RC == 0)) || fail "reinstall after purge exited $RC"
	assert_pkg_installed ssh-upgrade-guard
	local f
	for f in $(cexec dpkg-query -W -f='${Conffiles}\n' ssh-upgrade-guard | awk 'NF { print $1 }'); do
		cexec test -e "$f" || fail "conffile $f missing after reinstall"
	done
	assert_timer_active
	assert_hooks_live
}
