# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 3, package test 3: `apt-get remove` (not purge) keeps the conffiles and
# removes the binary; the apt hook lines left in the kept conffile must not
# break apt: `apt-get install` and `apt-get upgrade` still succeed.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: a package test needs the package"
	start_machine "$SUITE"
	install_guard
	local conffiles f
	conffiles=$(cexec dpkg-query -W -f='${Conffiles}\n' ssh-upgrade-guard | awk 'NF { print $1 }')
	grep -q '^/etc/apt/apt.conf.d/' <<<"$conffiles" || fail "no apt.conf.d conffile in the package: $conffiles"
	apt_get remove ssh-upgrade-guard
	((RC == 0)) || fail "apt-get remove exited $RC"
	[[ $(pkg_status ssh-upgrade-guard) == rc ]] || fail "status after remove is '$(pkg_status ssh-upgrade-guard)', expected rc"
	for f in $conffiles; do
		cexec test -e "$f" || fail "conffile $f is gone after remove (only purge may delete it)"
	done
	! cexec test -e "$GUARD_BIN" || fail "$GUARD_BIN still exists after remove"
	[[ $(cexec systemctl is-active "$WATCHDOG_TIMER") != active ]] || fail "$WATCHDOG_TIMER still active after remove"
	apt_get install e2e-slow
	((RC == 0)) || fail "apt-get install after remove exited $RC: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "the kept hook lines fail apt: $(grep 'Problem executing' <<<"$OUT")"
	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade after remove exited $RC: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "the kept hook lines fail apt: $(grep 'Problem executing' <<<"$OUT")"
	assert_pkg_installed openssh-server
}
