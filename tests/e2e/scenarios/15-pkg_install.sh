# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 3, package test 1: `apt-get install` of the guard into a booted
# system: its hooks run on the next apt operation (the marker's life cycle is
# visible), the watchdog timer is active and enabled. Issue 11: the package's
# binary has no test seam: SSH_UPGRADE_GUARD_TEST_ROOT (the integration
# tests' fake root) changes nothing.
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
	assert_no_test_seam
}

# assert_no_test_seam: a fake root whose usr/sbin/sshd leaves a trace if
# anything runs it. A binary honouring the variable runs it as root for
# `status`, `check` and `repair --dry-run`, reports on the empty fake root
# (no systemd: UNKNOWN) and places the hooks' marker under it; the package's
# binary must do none of that.
assert_no_test_seam() {
	csh 'mkdir -p /tmp/seam/usr/sbin /tmp/seam/var/lib/dpkg /tmp/seam/run &&
		printf "#!/bin/sh\ntouch /tmp/seam-sshd-ran\necho port 22\n" >/tmp/seam/usr/sbin/sshd &&
		chmod 755 /tmp/seam/usr/sbin/sshd && rm -f /run/ssh-upgrade-guard/sshd-T.json' ||
		fail "fixture: cannot build the fake root"
	local cmd
	for cmd in status check "repair --dry-run"; do
		# shellcheck disable=SC2086  # cmd is a command and its flag
		run_in env SSH_UPGRADE_GUARD_TEST_ROOT=/tmp/seam "$GUARD_BIN" $cmd
		((RC == 0)) || fail "$cmd with SSH_UPGRADE_GUARD_TEST_ROOT set exited $RC on a healthy system"
	done
	run_in env SSH_UPGRADE_GUARD_TEST_ROOT=/tmp/seam "$GUARD_BIN" check
	expect_in "$OUT" '^SSH-UPGRADE-GUARD OK - ' "check with SSH_UPGRADE_GUARD_TEST_ROOT set"
	run_in bash -c 'export SSH_UPGRADE_GUARD_TEST_ROOT=/tmp/seam
		/usr/sbin/ssh-upgrade-guard pre-invoke || exit 1
		test -f /run/ssh-upgrade-guard/inhibit || { echo "no marker in /run"; exit 1; }
		/usr/sbin/ssh-upgrade-guard post-invoke || exit 1
		test ! -e /run/ssh-upgrade-guard/inhibit || { echo "marker not released"; exit 1; }'
	((RC == 0)) || fail "the hooks with SSH_UPGRADE_GUARD_TEST_ROOT set did not mark and release /run/ssh-upgrade-guard/inhibit: $OUT"
	! cexec test -e /tmp/seam-sshd-ran || fail "the guard ran \$SSH_UPGRADE_GUARD_TEST_ROOT/usr/sbin/sshd: the test seam ships"
	! cexec test -e /tmp/seam/run/ssh-upgrade-guard || fail "the guard wrote under \$SSH_UPGRADE_GUARD_TEST_ROOT: the test seam ships"
}
