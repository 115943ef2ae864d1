# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11 #1: a second sshd that systemd runs under its own unit (a
# management instance on port 2222, which the admin told the guard is an
# ssh port) is managed, not stale: on a healthy host `check` says OK and
# `status` names its unit; with ssh.socket down, and again with the
# incident's stale listener present, the watchdog restores ssh and the
# second sshd keeps running (same pid) and answering.
SUITE=bookworm
TIMEOUT=300

MGMT_UNIT=sshd-mgmt.service

mgmt_pid() { cexec systemctl show -p MainPID --value "$MGMT_UNIT"; }

# assert_mgmt WHEN: the second sshd is the same process and answers on :2222.
assert_mgmt() {
	local pid b
	pid=$(mgmt_pid)
	[[ $pid == "$MGMT_PID" && $(proc_start "$pid") == "$MGMT_START" ]] ||
		fail "$MGMT_UNIT ($1): its sshd is pid ${pid:-none} (start $(proc_start "$pid")), was $MGMT_PID (start $MGMT_START)"
	assert_unit_active "$MGMT_UNIT"
	b=$(cexec timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2222 && head -c 8 <&3' 2>/dev/null)
	[[ $b == SSH-2.0- ]] || fail "$MGMT_UNIT ($1): no SSH-2.0- banner on :2222 (got '$b')"
}

run_watchdog() {
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
}

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	csh 'echo EXTRA_PORTS=2222 >>/etc/default/ssh-upgrade-guard'
	csh "cat >/etc/systemd/system/$MGMT_UNIT" <<-'UNIT' || fail "fixture: cannot write $MGMT_UNIT"
		[Unit]
		Description=management sshd on port 2222
		[Service]
		ExecStartPre=/usr/bin/mkdir -p /run/sshd
		ExecStart=/usr/sbin/sshd -D -p 2222 -o PidFile=none
		KillMode=process
		Restart=on-failure
	UNIT
	csh "systemctl daemon-reload && systemctl start $MGMT_UNIT" || fail "fixture: cannot start $MGMT_UNIT"
	wait_until 10 "$MGMT_UNIT on :2222" csh "ss -Hltn 'sport = :2222' | grep -q LISTEN" ||
		fail "fixture: $MGMT_UNIT does not listen on :2222"
	MGMT_PID=$(mgmt_pid)
	MGMT_START=$(proc_start "$MGMT_PID")
	log "$MGMT_UNIT: sshd pid $MGMT_PID"
	assert_mgmt "at the start"

	# A healthy host: OK, and status names the unit of each listener.
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC on a healthy host with a second sshd: $OUT ($(cgroup_story "$MGMT_PID"))"
	expect_in "$OUT" 'OK - ssh is healthy' "check on a healthy host"
	run_in "$GUARD_BIN" status
	expect_in "$OUT" "managed +$MGMT_PID .*$MGMT_UNIT" "status names $MGMT_UNIT ($(cgroup_story "$MGMT_PID"))"
	run_in "$GUARD_BIN" status --json
	local row
	row=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(" ".join(str(l.get(k)) for l in s["snapshot"]["listeners"] if l["pid"] == int(sys.argv[2]) for k in ("class", "unit", "unit_state")))
' "$OUT" "$MGMT_PID") || fail "status --json is not JSON"
	[[ $row == "managed $MGMT_UNIT active" ]] || fail "status --json: listener $MGMT_PID is '$row' (expected 'managed $MGMT_UNIT active')"

	# ssh down: the watchdog brings ssh.socket back, the second sshd stays.
	csh 'systemctl stop ssh.socket ssh.service'
	run_watchdog
	assert_unit_active ssh.socket
	assert_banner 127.0.0.1 ::1
	assert_mgmt "after the watchdog restored ssh"

	# The incident's stale listener beside it: only that one is stopped.
	make_stale_listener
	run_in "$GUARD_BIN" status
	expect_in "$OUT" "STALE +$STALE_PID" "status calls the cron-started sshd stale"
	run_watchdog
	assert_clean_socket_activated
	assert_mgmt "after the watchdog stopped the stale listener"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC after the repair: $OUT"
}
