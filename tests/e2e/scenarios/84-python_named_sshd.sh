# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 #3: a listener is an sshd by its executable, not its name. A root
# python3 that calls itself "sshd" (prctl PR_SET_NAME) listens on an ssh port
# (2222, in EXTRA_PORTS), left over by a finished unit exactly as the
# incident's stale sshd: `status` calls it foreign, and `repair` never
# signals it. 0.1 took the comm for an sshd: stale, and stopped it.
SUITE=bookworm
TIMEOUT=240

PORT=2222

py_pid() { cexec ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	csh "echo EXTRA_PORTS=$PORT >>/etc/default/ssh-upgrade-guard"
	csh "cat >/root/fake-sshd.py" <<-EOF || fail "fixture: cannot write the python listener"
		import ctypes, socket, time
		ctypes.CDLL(None).prctl(15, b"sshd", 0, 0, 0)  # PR_SET_NAME
		s = socket.socket(socket.AF_INET6)
		s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
		s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		s.bind(("::", $PORT))
		s.listen()
		while True:
		    time.sleep(3600)
	EOF
	csh 'systemd-run --quiet --collect --unit=e2e-py-sshd -p KillMode=process \
		/bin/sh -c "python3 /root/fake-sshd.py </dev/null >/dev/null 2>&1 &"' || fail "fixture: cannot start the python listener"
	wait_until 10 "the python listener on :$PORT" py_pid || fail "fixture: nothing listens on :$PORT"
	local pid start comm exe
	pid=$(py_pid)
	start=$(proc_start "$pid")
	comm=$(cexec cat "/proc/$pid/comm")
	exe=$(cexec readlink "/proc/$pid/exe")
	[[ $comm == sshd && $exe == */python3* ]] || fail "fixture: pid $pid is comm '$comm', exe '$exe'"
	wait_until 10 "the unit's script to end" csh '! systemctl is-active -q e2e-py-sshd.service' ||
		fail "fixture: e2e-py-sshd.service still runs"
	log "python listener: pid $pid, comm $comm, exe $exe"

	run_in "$GUARD_BIN" status --json
	local row
	row=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(" ".join(str(l.get(k)) for l in s["snapshot"]["listeners"] if l["pid"] == int(sys.argv[2]) for k in ("class", "why")))
' "$OUT" "$pid") || fail "status --json is not JSON"
	[[ $row == "foreign not a root sshd" ]] || fail "status --json: the python listener $pid is '$row' (expected 'foreign not a root sshd')"
	run_in "$GUARD_BIN" repair
	[[ $OUT != *"listener pid $pid "* ]] || fail "the repair acted on the python listener: $OUT"
	[[ $(proc_start "$pid") == "$start" ]] || fail "the python listener $pid is gone after the repair"
	assert_unit_active ssh.socket
	assert_banner 127.0.0.1 ::1
}
