# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11 #5: an IPv6 link-local ListenAddress keeps its scope. Classic
# topology, `ListenAddress fe80::1%lo` (on lo: the container's only interface) beside
# 0.0.0.0, a stale listener: the repair must name and probe
# [fe80::1%lo]:22 (without the scope no socket can connect there, and the
# verification failed forever), and succeed with no rescue.
SUITE=bookworm
TIMEOUT=240

# scoped_listener: the pid of a non-pid-1 process listening on fe80::1.
scoped_listener() {
	cexec ss -Hltnp 'sport = :22' | awk '$4 ~ /^\[fe80::1/' | grep -o 'pid=[0-9]*' | grep -vx 'pid=1' | head -n1 | sed 's/pid=//' | grep .
}

run_scenario() {
	start_machine "$SUITE"
	csh 'ip -6 addr add fe80::1/64 dev lo nodad' ||
		fail "fixture: cannot give lo a link-local address"
	csh 'systemctl disable --now ssh.socket && systemctl enable ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	csh 'printf "ListenAddress 0.0.0.0\nListenAddress fe80::1%%lo\n" >/etc/ssh/sshd_config.d/e2e-scope.conf && systemctl restart ssh.service' ||
		fail "fixture: cannot listen on fe80::1%lo"
	wait_until 10 "ssh.service on fe80::1%lo" scoped_listener || fail "fixture: nothing on fe80::1: $(listeners)"
	install_guard
	csh 'systemctl stop ssh.service' || fail "cannot stop ssh.service"
	csh 'systemd-run --quiet --collect --unit=e2e-cron-watchdog -p KillMode=process \
		/bin/sh -c "mkdir -p /run/sshd && /usr/sbin/sshd"' || fail "cannot start the stale sshd"
	wait_until 10 "the stale sshd on fe80::1" scoped_listener || fail "the stale sshd did not listen"
	# Without exec: the script is the unit's main process and ends; the
	# daemon stays behind in its cgroup (see make_stale_listener).
	wait_until 10 "the cron-like unit's script to end" \
		csh "! systemctl is-active -q e2e-cron-watchdog.service" || fail "fixture: the cron-like unit still runs"
	STALE_PID=$(scoped_listener)
	STALE_START=$(proc_start "$STALE_PID")

	run_in "$GUARD_BIN" status
	expect_in "$OUT" 'ssh ports +22 \(.*\[fe80::1%lo\]:22' "status (the scope is kept)"
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC"
	expect_in "$OUT" 'stopped stale sshd listener' "repair output"
	expect_in "$OUT" 'ssh answers with an SSH-2.0 banner on .*\[fe80::1%lo\]:22' "repair output (verified on the scoped address)"
	cexec systemctl is-active -q ssh-upgrade-guard-rescue.service && fail "a rescue sshd was started"
	assert_unit_active ssh.service
	[[ $(proc_start "$STALE_PID") != "$STALE_START" ]] || fail "the stale sshd $STALE_PID still runs"
}
