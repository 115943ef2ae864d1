# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12, road f: a unit that binds the port itself. ssh.socket is enabled
# (socket activation) but a local copy of the unit lacks
# RequiredBy=ssh.service (as older socket units did), so nothing stops
# ssh.service when the socket restarts; ssh.service was started by hand and
# binds :22 itself. The postinst's `deb-systemd-invoke restart ssh.socket`
# then fails ("ssh.socket: Socket service ssh.service already active,
# refusing."; with the port taken, "Address already in use"), openssh-server
# half-configured. The emulated noble unit has RequiredBy=ssh.service and
# does not fail (FIELD-NOTES §9): the local override is what makes it.
# The guard hands the port back to the socket: stop ssh.service (its
# KillMode=process keeps sessions), start ssh.socket, prove ssh answers;
# before dpkg (pre-invoke), and after dpkg when the preflight is off.
SUITE=bookworm
TIMEOUT=300

# service_binds_port: ssh.socket enabled but stopped, ssh.service listening
# on :22 by itself. Sets SVC_PID.
service_binds_port() {
	csh 'systemctl stop ssh.socket && systemctl start ssh.service' || fail "fixture: cannot start ssh.service by itself"
	SVC_PID=$(cexec systemctl show -p MainPID --value ssh.service)
	cexec ss -Hltnp 'sport = :22' | grep -q "pid=$SVC_PID," || fail "fixture: ssh.service's pid $SVC_PID does not hold :22: $(listeners)"
	[[ $(cexec systemctl is-enabled ssh.socket) == enabled ]] || fail "fixture: ssh.socket is not enabled"
}

# assert_socket_holds_port: ssh.socket listens, ssh.service's own listener is gone.
assert_socket_holds_port() {
	assert_pkg_installed openssh-server
	assert_unit_active ssh.socket
	cexec ss -Hltnp 'sport = :22' | grep -q 'pid=1,' || fail "pid 1 does not hold :22: $(listeners)"
	! cexec ss -Hltnp 'sport = :22' | grep -q "pid=$SVC_PID," || fail "ssh.service's own listener (pid $SVC_PID) still holds :22"
	assert_banner 127.0.0.1 ::1
}

run_scenario() {
	start_machine "$SUITE"
	install_guard
	csh 'cp /lib/systemd/system/ssh.socket /etc/systemd/system/ssh.socket &&
		sed -i /RequiredBy/d /etc/systemd/system/ssh.socket &&
		sed -i "/ssh.service.requires/d" /var/lib/systemd/deb-systemd-helper-enabled/ssh.socket.dsh-also &&
		rm /etc/systemd/system/ssh.service.requires/ssh.socket && systemctl daemon-reload' ||
		fail "fixture: cannot install the local ssh.socket without RequiredBy"
	service_binds_port
	open_session

	if [[ $GUARD != off ]]; then
		run_in "$GUARD_BIN" status --json
		python3 -c '
import json, sys
d = json.load(sys.stdin)["roads"]["service_holds_port"]
assert d["pid"] == int(sys.argv[1]), d' "$SVC_PID" <<<"$OUT" || fail "status --json: no roads.service_holds_port for pid $SVC_PID"
		run_in "$GUARD_BIN" check
		((RC == 2)) || fail "check exited $RC with ssh.service holding ssh.socket's port (expected 2)"
		expect_in "$OUT" "ssh.service \\(pid $SVC_PID\\) listens on 0.0.0.0:22, \\[::\\]:22 itself while ssh is socket-activated" "check's line"
	fi

	# Pre-invoke hands the port back. Its banner check starts ssh.service
	# through the socket (Accept=no), and with this socket unit the
	# postinst's restart of ssh.socket is refused while the service runs:
	# dpkg fails; post-invoke hands the port back again and completes the
	# package before it checks the banner.
	apt_get upgrade
	[[ $GUARD != off ]] || fail "GUARD=off: apt-get upgrade exited $RC: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')$(cexec journalctl -q -u ssh.socket --no-pager | grep -m1 refusing)"
	expect_in "$OUT" "found: ssh.service \\(pid $SVC_PID\\) listens on 0.0.0.0:22, \\[::\\]:22 itself while ssh is socket-activated" "pre-invoke's report"
	expect_in "$OUT" 'did: stopped ssh.service \(sessions kept\)' "the guard's report"
	expect_in "$OUT" 'did: started ssh.socket' "the guard's report"
	expect_in "$OUT" 'did: configured openssh-server \(dpkg --configure\)' "post-invoke's report"
	expect_in "$OUT" 'the dpkg error above is resolved' "post-invoke's report"
	assert_socket_holds_port
	assert_session "after the upgrade"
	local audit
	audit=$(cexec dpkg --audit 2>&1)
	[[ -z $audit ]] || fail "dpkg --audit is not empty: $audit"

	# The latent form: ssh.service (started by the socket) does not
	# require ssh.socket, so the next upgrade fails the same way. A
	# WARNING with the fix; the fix makes the next upgrade clean.
	cexec systemctl is-active -q ssh.service || fail "fixture: ssh.service is not running after the banner checks"
	run_in "$GUARD_BIN" check
	((RC == 1)) || fail "check exited $RC with ssh.service not requiring ssh.socket (expected 1, WARNING)"
	expect_in "$OUT" 'ssh.service does not require ssh.socket' "check's line"
	run_in "$GUARD_BIN" status --json
	local fix
	fix=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["roads"]["socket_not_required"]["fix"])' <<<"$OUT") ||
		fail "status --json: no roads.socket_not_required"
	log "applying: $fix"
	csh "$fix" || fail "the printed fix failed: $fix"
	cexec systemctl is-active -q ssh.service || fail "ssh.service stopped by the fix"
	apt_get install --reinstall openssh-server
	((RC == 0)) || fail "apt-get install --reinstall exited $RC after the printed fix: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	[[ $OUT != *'ssh-upgrade-guard: found:'* ]] || fail "the guard had to repair after the fix: $(grep 'ssh-upgrade-guard:' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	assert_pkg_installed openssh-server
	assert_unit_active ssh.socket
	assert_banner 127.0.0.1 ::1
	assert_session "after the fixed upgrade"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check after the fix exited $RC: $OUT"
}
