# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #4: cron-apt performs the upgrade (configured to install, as the
# field's servers are) with a stale listener on :22 -> clean end state, and the
# guard's report is in cron-apt's log (which is what the admins read).
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	csh 'printf "%s\n" "MAILON=never" "SYSLOGON=never" "DEBUG=verbose" >>/etc/cron-apt/config
		echo "dist-upgrade -y -o APT::Get::Show-Upgraded=true" >/etc/cron-apt/action.d/5-install'
	make_stale_listener
	open_session
	# What /etc/cron.d/cron-apt runs, minus the random sleep.
	run_in cron-apt -i
	local logtext
	logtext=$(cexec cat /var/log/cron-apt/log 2>&1)
	printf '%s\n' "$logtext" | sed 's/^/    log| /' >&2
	expect_in "$logtext" 'Setting up openssh-server' "cron-apt log (the upgrade must have run)"
	# The state first: without the guard, this is where it shows.
	assert_clean_socket_activated
	expect_in "$logtext" 'ssh-upgrade-guard' "cron-apt log (the guard's report)"
	assert_session "after cron-apt"
}
