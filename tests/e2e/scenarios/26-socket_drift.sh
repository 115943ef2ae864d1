# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12, road d: socket-activation drift. The admin changes Port in
# sshd_config (as Ansible roles do) and relies on it; with ssh.socket
# holding the port, sshd never binds what sshd_config says: ssh still
# answers on :22 only, and a firewall opened for 2222 alone locks everyone
# out. The guard compares sshd -T, ssh.socket's Listen and the sockets really
# listening, says WARNING in status, check and the metrics with the commands
# that apply the change, and never changes an address itself; the printed
# commands do apply it, sessions kept. Then the other drift: ssh.socket
# reloaded with new addresses but not restarted.
SUITE=bookworm
TIMEOUT=300

metric() { cexec cat /var/lib/prometheus/node-exporter/ssh_upgrade_guard.prom 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'; }
banner_on() { cexec timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2 && head -c 8 <&3" 2>/dev/null; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	open_session
	csh 'echo "Port 2222" >>/etc/ssh/sshd_config' || fail "fixture: cannot edit sshd_config"
	csh 'mkdir -p /run/sshd && sshd -T' | grep -x 'port 2222' >/dev/null || fail "fixture: sshd -T does not say port 2222: $(csh 'sshd -T 2>&1 | head -n 2')"
	[[ $(banner_on 127.0.0.1 2222) != SSH-2.0- ]] || fail "fixture: ssh already answers on :2222"
	[[ $GUARD != off ]] || fail "GUARD=off: sshd_config says Port 2222, ssh answers on :22 only and nothing says so: a firewall opened for 2222 alone locks everyone out"

	run_in "$GUARD_BIN" status
	((RC == 0)) || fail "status exited $RC (ssh works; drift is a warning)"
	expect_in "$OUT" '^WARNING: sshd_config says ssh listens on 0.0.0.0:2222, \[::\]:2222, but ssh.socket listens on 0.0.0.0:22, \[::\]:22' "status's verdict"
	run_in "$GUARD_BIN" check
	((RC == 1)) || fail "check exited $RC with drift (expected 1, WARNING)"
	expect_in "$OUT" '^SSH-UPGRADE-GUARD WARNING - WARNING: sshd_config says' "check's line"
	run_in "$GUARD_BIN" status --json
	local apply
	apply=$(python3 -c '
import json, sys
d = json.load(sys.stdin)["roads"]["socket_drift"]
assert d["kind"] == "config-not-applied", d
print(d["apply"])' <<<"$OUT") || fail "status --json has no roads.socket_drift: $OUT"
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	[[ $(metric ssh_upgrade_guard_socket_drift) == 1 ]] || fail "after the watchdog, ssh_upgrade_guard_socket_drift is '$(metric ssh_upgrade_guard_socket_drift)' (expected 1)"
	[[ $(banner_on 127.0.0.1 2222) != SSH-2.0- ]] || fail "the guard changed where ssh listens"

	# The admin applies the printed commands.
	log "applying: $apply"
	csh "$apply" || fail "the printed commands failed: $apply"
	wait_until 10 "ssh on :2222" test "$(banner_on 127.0.0.1 2222)" = SSH-2.0- || fail "ssh does not answer on :2222 after the printed commands"
	[[ $(banner_on ::1 2222) == SSH-2.0- ]] || fail "ssh does not answer on [::1]:2222 after the printed commands"
	assert_session "after applying the change"
	run_in "$GUARD_BIN" status
	expect_in "$OUT" '^OK: ssh is healthy' "status after the change"
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	[[ $(metric ssh_upgrade_guard_socket_drift) == 0 ]] || fail "after the change, ssh_upgrade_guard_socket_drift is '$(metric ssh_upgrade_guard_socket_drift)' (expected 0)"

	# Back to 22 in both places, but only daemon-reload: the socket still
	# listens on the old addresses.
	csh 'sed -i "/^Port 2222$/d" /etc/ssh/sshd_config && rm -f /etc/systemd/system/ssh.socket.d/listen.conf && systemctl daemon-reload'
	run_in "$GUARD_BIN" status --json
	python3 -c '
import json, sys
d = json.load(sys.stdin)["roads"]["socket_drift"]
assert d["kind"] == "socket-not-restarted", d
assert d["apply"] == "systemctl restart ssh.socket", d' <<<"$OUT" || fail "status --json: no socket-not-restarted drift after a daemon-reload without restart: $(grep -A8 socket_drift <<<"$OUT" | tr -s ' \n' ' ')"
	csh 'systemctl restart ssh.socket'
	assert_banner 127.0.0.1 ::1
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check after the restart exited $RC: $OUT"
	assert_session "at the end"
}
