# shellcheck shell=bash
# An extra sshd that a unit without a main process owns (rc-local.service,
# an init script's generated unit: issue 16 #3), beside the incident's stale
# listener. Sourced by the scenarios that use it; they set EXTRA_UNIT,
# EXTRA_PORT (declared in EXTRA_PORTS) and EXTRA_PIDFILE (the sshd's
# PidFile=, since systemd knows no main process) and start the unit.

# The extra sshd's pid, from its own pid file (systemd has no main process).
extra_pid() { cexec cat "$EXTRA_PIDFILE" 2>/dev/null; }

# assert_extra WHEN: the same process (pid + start time), in its unit's
# cgroup, and an SSH-2.0 banner on its port.
assert_extra() {
	local pid b
	pid=$(extra_pid)
	[[ $pid == "$EXTRA_PID" && $(proc_start "$pid") == "$EXTRA_START" ]] ||
		fail "the sshd of $EXTRA_UNIT ($1): pid ${pid:-none} (start $(proc_start "$pid")), was $EXTRA_PID (start $EXTRA_START)"
	assert_unit_active "$EXTRA_UNIT"
	b=$(cexec timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$EXTRA_PORT && head -c 8 <&3" 2>/dev/null)
	[[ $b == SSH-2.0- ]] || fail "the sshd of $EXTRA_UNIT ($1): no SSH-2.0- banner on :$EXTRA_PORT (got '$b')"
}

# extra_sshd_started: the unit is active with MainPID 0 and holds the sshd.
extra_sshd_started() {
	wait_until 10 "an sshd on :$EXTRA_PORT" csh "ss -Hltn 'sport = :$EXTRA_PORT' | grep -q LISTEN" ||
		fail "fixture: nothing listens on :$EXTRA_PORT ($(cexec systemctl status --no-pager "$EXTRA_UNIT" 2>&1 | tail -n 5 | tr '\n' ' '))"
	EXTRA_PID=$(extra_pid)
	[[ -n $EXTRA_PID ]] || fail "fixture: no pid in $EXTRA_PIDFILE"
	EXTRA_START=$(proc_start "$EXTRA_PID")
	local main cg
	main=$(cexec systemctl show -p MainPID --value "$EXTRA_UNIT")
	[[ $main == 0 ]] || fail "fixture: $EXTRA_UNIT has MainPID $main (expected 0)"
	cg=$(cexec cat "/proc/$EXTRA_PID/cgroup")
	[[ $cg == *"/$EXTRA_UNIT"* ]] || fail "fixture: sshd $EXTRA_PID is not in $EXTRA_UNIT's cgroup: $cg"
	log "$EXTRA_UNIT: active, MainPID 0, sshd pid $EXTRA_PID on :$EXTRA_PORT"
}

# status_row PID: "class unit" of that listener in status --json.
status_row() {
	run_in "$GUARD_BIN" status --json
	python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(" ".join(str(l.get(k)) for l in s["snapshot"]["listeners"] if l["pid"] == int(sys.argv[2]) for k in ("class", "unit")))
' "$OUT" "$1" || fail "status --json is not JSON"
}

# extra_beside_stale: a healthy host with the extra sshd is OK; then the
# incident's stale listener on :22: only that one is stopped.
extra_beside_stale() {
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC on a healthy host with an sshd from $EXTRA_UNIT: $OUT ($(cgroup_story "$EXTRA_PID"))"
	expect_in "$OUT" 'OK - ssh is healthy' "check on a healthy host"
	local row
	row=$(status_row "$EXTRA_PID")
	[[ $row == "managed $EXTRA_UNIT" ]] || fail "status --json: the sshd of $EXTRA_UNIT (pid $EXTRA_PID) is '$row' (expected 'managed $EXTRA_UNIT'; $(cgroup_story "$EXTRA_PID"))"

	make_stale_listener
	run_in "$GUARD_BIN" status
	expect_in "$OUT" "STALE +$STALE_PID" "status calls the cron-started sshd stale"
	expect_in "$OUT" "managed +$EXTRA_PID .*$EXTRA_UNIT" "status: the sshd of $EXTRA_UNIT is managed ($(cgroup_story "$EXTRA_PID"))"
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC: $(tail -n 5 <<<"$OUT")"
	expect_in "$OUT" "stopped stale sshd listener pid $STALE_PID" "the repair stops the stale listener"
	[[ $OUT != *"listener pid $EXTRA_PID "* ]] || fail "the repair acted on the sshd of $EXTRA_UNIT: $OUT"
	assert_clean_socket_activated
	assert_extra "after the repair"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC after the repair: $OUT"
}
