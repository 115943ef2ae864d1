# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11 #5: ssh.service runs `sshd -D $SSHD_OPTS`. Classic topology with
# SSHD_OPTS="-f /etc/ssh/other_config" (Port 2222 there; sshd_config stays
# Debian's, port 22) and a stale listener started with the same options on
# :2222. The guard must find it on :2222, validate other_config (not the
# default file), restore ssh.service and verify :2222; and when other_config
# is the one sshd rejects, it must refuse and leave the listener alone.
SUITE=bookworm
TIMEOUT=240

# listener_on PORT: the pid of a non-pid-1 process listening on PORT.
listener_on() {
	cexec ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | grep -vx 'pid=1' | head -n1 | sed 's/pid=//' | grep .
}

# stale_on_2222 N: an unmanaged sshd with the unit's options, as a cron
# watchdog starts one (see make_stale_listener), from transient unit N.
stale_on_2222() {
	csh 'systemctl stop ssh.service' || fail "cannot stop ssh.service"
	csh "systemd-run --quiet --collect --unit=e2e-cron-watchdog-$1 -p KillMode=process \\
		/bin/sh -c 'mkdir -p /run/sshd && /usr/sbin/sshd -f /etc/ssh/other_config'" ||
		fail "cannot start the stale sshd"
	wait_until 10 "the stale sshd on :2222" listener_on 2222 || fail "the stale sshd did not listen on :2222"
	# Without exec: the script is the unit's main process and ends; the
	# daemon stays behind in its cgroup (see make_stale_listener).
	wait_until 10 "the cron-like unit's script to end" \
		csh "! systemctl is-active -q e2e-cron-watchdog-$1.service" || fail "fixture: the cron-like unit still runs"
	STALE_PID=$(listener_on 2222)
	STALE_START=$(proc_start "$STALE_PID")
	log "stale listener on :2222: pid $STALE_PID"
}

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	csh 'grep -v "^Port" /etc/ssh/sshd_config >/etc/ssh/other_config && echo "Port 2222" >>/etc/ssh/other_config &&
		echo "SSHD_OPTS=\"-f /etc/ssh/other_config\"" >>/etc/default/ssh && systemctl restart ssh.service' ||
		fail "fixture: cannot set SSHD_OPTS"
	wait_until 10 "ssh.service on :2222" listener_on 2222 || fail "fixture: ssh.service does not listen on :2222: $(cexec ss -Hltnp)"
	install_guard
	stale_on_2222 1

	run_in "$GUARD_BIN" status
	expect_in "$OUT" 'STALE +[0-9]+ .*:2222' "status (the stale listener on the unit's port)"
	expect_in "$OUT" 'config +valid \(sshd -T -f /etc/ssh/other_config\)' "status (checked with the unit's options)"

	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC; ssh.service's journal: $(cexec journalctl -u ssh.service -n 20 --no-pager 2>&1 | tr '\n' '|')"
	expect_in "$OUT" 'stopped stale sshd listener' "repair output"
	expect_in "$OUT" 'ssh completed a key exchange with this host.s .* on .*127\.0\.0\.1:2222' "repair output (verified on the unit's port)"
	assert_unit_active ssh.service
	local main b
	main=$(cexec systemctl show -p MainPID --value ssh.service)
	[[ $(listener_on 2222) == "$main" ]] || fail "ssh.service's MainPID $main does not hold :2222: $(cexec ss -Hltnp)"
	b=$(cexec timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2222 && head -c 8 <&3' 2>/dev/null)
	[[ $b == SSH-2.0- ]] || fail "no banner on :2222 after the repair (got '$b')"
	cexec systemctl is-active -q ssh-upgrade-guard-rescue.service && fail "a rescue sshd was started"
	[[ $(proc_start "$STALE_PID") != "$STALE_START" ]] || fail "the stale sshd $STALE_PID still runs"

	# The configuration ssh.service really uses becomes one sshd rejects
	# (sshd_config stays valid): nothing may be stopped.
	stale_on_2222 2
	csh 'echo "NoSuchOption yes" >>/etc/ssh/other_config'
	run_in "$GUARD_BIN" repair
	((RC == 1)) || fail "repair exited $RC with other_config rejected (expected 1: refused)"
	expect_in "$OUT" 'sshd rejects its configuration' "repair output"
	expect_in "$OUT" 'other_config' "repair output (sshd's own words name the file)"
	[[ $(proc_start "$STALE_PID") == "$STALE_START" ]] || fail "the listener was stopped although its configuration is rejected"
}
