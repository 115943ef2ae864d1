# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11 #5: the watchdog re-checks inhibition under the repair lock. ssh
# is down and nothing inhibits when the watchdog starts, but another repair
# holds the lock; while it waits, a package manager takes dpkg's lock. Once
# the lock is free the watchdog must see that and leave ssh alone; a later
# run, with dpkg's lock free, restores ssh.
SUITE=bookworm
TIMEOUT=240

watchdog_state() { cexec systemctl is-active ssh-upgrade-guard-watchdog.service; }
watchdog_running() { [[ $(watchdog_state) == activating ]]; }
watchdog_done() { [[ $(watchdog_state) != activating ]]; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no watchdog to test"
	csh 'systemctl stop ssh.socket ssh.service'
	# Another repair in progress: the repair lock held (flock, as the guard takes it).
	csh 'install -d -m 0755 /run/ssh-upgrade-guard &&
		systemd-run --quiet --unit=e2e-repair-lock flock /run/ssh-upgrade-guard/repair.lock sleep 600' ||
		fail "fixture: cannot hold the repair lock"
	wait_until 10 "the repair lock held" cexec systemctl is-active -q e2e-repair-lock.service ||
		fail "fixture: the lock holder did not start"
	run_in "$GUARD_BIN" inhibited
	((RC == 1)) || fail "inhibited exited $RC before the package manager started (expected 1)"
	csh 'systemctl start --no-block ssh-upgrade-guard-watchdog.service'
	wait_until 10 "the watchdog waiting for the lock" watchdog_running ||
		fail "the watchdog is not running"
	sleep 1
	# A package manager starts: dpkg's frontend lock (fcntl, as apt takes it).
	csh 'systemd-run --quiet --unit=e2e-dpkg-lock python3 -c "
import fcntl, time
f = open(\"/var/lib/dpkg/lock-frontend\", \"w\")
fcntl.lockf(f, fcntl.LOCK_EX)
time.sleep(600)"' || fail "fixture: cannot hold dpkg's lock"
	wait_until 10 "dpkg's lock held" cexec "$GUARD_BIN" inhibited ||
		fail "fixture: inhibited does not see dpkg's lock held"
	watchdog_running ||
		fail "fixture: the watchdog finished before the package manager started"
	csh 'systemctl stop e2e-repair-lock.service'
	wait_until 20 "the watchdog to finish" watchdog_done ||
		fail "the watchdog did not finish after the repair lock was released"
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	local st
	st=$(cexec systemctl is-active ssh.socket)
	[[ $st != active ]] || fail "the watchdog repaired ssh while a package manager held dpkg's lock (ssh.socket is $st)"
	[[ -z $(cexec ss -Hltn 'sport = :22') ]] || fail "something listens on :22 although the watchdog was inhibited: $(listeners)"
	# The package manager is done: the next watchdog run restores ssh.
	csh 'systemctl stop e2e-dpkg-lock.service'
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	assert_clean_socket_activated
}
