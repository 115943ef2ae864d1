# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #2: the stale listener appears while dpkg runs. A fixture apt hook,
# ordered after the guard's own Pre-Invoke, starts it (as a cron watchdog
# firing mid-upgrade would), so the guard's preflight sees a healthy system
# and the maintainer script fails. Post-Invoke must then repair and configure:
# apt's own exit code stays non-zero (dpkg did fail) but the final state is
# clean and the guard's report, in apt's output, says the error is resolved.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	# The hook runs once: later apt runs must not recreate the fault. As in
	# make_stale_listener, the script does not exec sshd: its daemon outlives
	# the unit (an exec'd sshd would be the unit's MainPID, so managed).
	csh 'cat >/usr/local/sbin/e2e-stale-now <<"SH"
#!/bin/sh
[ -e /run/e2e-stale-done ] && exit 0
touch /run/e2e-stale-done
systemctl stop ssh.socket ssh.service
systemd-run --quiet --collect --unit=e2e-cron-watchdog -p KillMode=process \
	/bin/sh -c "mkdir -p /run/sshd && /usr/sbin/sshd"
sleep 1
SH
chmod 755 /usr/local/sbin/e2e-stale-now
echo "DPkg::Pre-Invoke { \"/usr/local/sbin/e2e-stale-now\"; };" >/etc/apt/apt.conf.d/99e2e-stale-listener'
	open_session
	apt_get upgrade
	cexec test -e /run/e2e-stale-done || fail "fixture: the stale-listener hook did not run"
	expect_in "$OUT" 'Could not execute systemctl' "apt output (the postinst must have failed for this scenario to mean anything)"
	# The state first: without the guard, this is where it shows.
	assert_clean_socket_activated
	expect_in "$OUT" 'ssh-upgrade-guard' "apt output (the guard's report)"
	expect_in "$OUT" '[Rr]esolved' "apt output (the report must say the dpkg error is resolved)"
	# dpkg did fail, and apt says so; the guard's report is what tells the reader it is fixed.
	((RC != 0)) || fail "apt-get exited 0 although the postinst failed"
	assert_session "after the repair"
}
