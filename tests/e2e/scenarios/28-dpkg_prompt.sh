# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12, road e: dpkg waiting for an answer. openssh-server's
# sshd_config goes through ucf; with the file modified locally and a new
# upstream default in the package, ucf asks what to do ("What do you want
# to do about modified configuration file sshd_config?") and, in a run
# nobody watches (unattended-upgrades#168), waits for ever while the package
# manager holds dpkg's lock. Here a debconf teletype frontend reading a pipe
# that never delivers stands in for that run. The guard must say so in
# status, check and the metrics ("dpkg waits for an answer about
# /etc/ssh/sshd_config since HH:MM UTC"), stay inhibited, and never answer.
SUITE=bookworm
TIMEOUT=300

metric() { cexec cat /var/lib/prometheus/node-exporter/ssh_upgrade_guard.prom 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	# shellcheck disable=SC2016  # expanded inside the container
	# A package whose sshd_config template changed (the noble2 fixture
	# repacked as noble3), and the admin's own change to sshd_config.
	csh 'set -e; d=$(ls /srv/e2e-repo/openssh-server_*noble2*_amd64.deb); rm -rf /tmp/re
		dpkg-deb -R "$d" /tmp/re
		sed -i "s/^Version: \(.*\)noble2$/Version: \1noble3/" /tmp/re/DEBIAN/control
		echo "# a new upstream default" >>/tmp/re/usr/share/openssh/sshd_config
		dpkg-deb -b /tmp/re /srv/e2e-repo/openssh-server_noble3_amd64.deb >/dev/null; rm -rf /tmp/re' ||
		fail "fixture: cannot build openssh-server noble3"
	repo_refresh
	csh 'echo "# the admin was here" >>/etc/ssh/sshd_config'
	cexec bash -c 'sleep 600 | DEBIAN_FRONTEND=teletype apt-get -y -o Dpkg::Use-Pty=0 upgrade >/tmp/apt.out 2>&1' &
	wait_until 90 "ucf asking about sshd_config" cexec pgrep -x ucf || fail "fixture: ucf never ran: $(cexec tail -n 5 /tmp/apt.out)"
	local ucf
	ucf=$(cexec pgrep -o -x ucf)
	sleep 12
	cexec grep -q 'What do you want to do about modified configuration file sshd_config' /tmp/apt.out ||
		fail "fixture: ucf does not ask: $(cexec tail -n 3 /tmp/apt.out)"
	cexec test -d "/proc/$ucf" || fail "fixture: ucf stopped asking"
	[[ $GUARD != off ]] || fail "GUARD=off: dpkg waits for an answer about /etc/ssh/sshd_config (ucf pid $ucf) under apt-get holding dpkg's lock, and nothing reports it"

	local since_re='dpkg waits for an answer about /etc/ssh/sshd_config since [0-2][0-9]:[0-5][0-9] UTC \(ucf pid '"$ucf"', under apt-get pid [0-9]+\)'
	run_in "$GUARD_BIN" status
	expect_in "$OUT" "$since_re" "status"
	run_in "$GUARD_BIN" check
	((RC == 1)) || fail "check exited $RC while dpkg waits for an answer (expected 1, WARNING)"
	expect_in "$OUT" "^SSH-UPGRADE-GUARD WARNING - .*$since_re" "check's line"
	run_in "$GUARD_BIN" status --json
	python3 -c '
import json, sys, time
p = json.load(sys.stdin)["roads"]["dpkg_prompt"]
assert p["about"] == "/etc/ssh/sshd_config", p
assert p["program"] == "ucf", p
assert 0 < time.time() - p["since"] < 300, p' <<<"$OUT" || fail "status --json: roads.dpkg_prompt is not ucf about /etc/ssh/sshd_config"
	run_in "$GUARD_BIN" inhibited
	((RC == 0)) || fail "inhibited exited $RC while dpkg waits (expected 0: stay inhibited)"
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	expect_in "$OUT" "$since_re" "the watchdog's journal"
	local m
	m=$(metric ssh_upgrade_guard_dpkg_prompt_since_timestamp_seconds)
	[[ -n $m && $m != 0 ]] || fail "ssh_upgrade_guard_dpkg_prompt_since_timestamp_seconds is '${m:-absent}' while dpkg waits"
	[[ $(metric ssh_upgrade_guard_inhibited) == 1 ]] || fail "ssh_upgrade_guard_inhibited is not 1 while dpkg waits"
	# Nobody answered: ucf still asks, the admin's line is still there.
	cexec test -d "/proc/$ucf" || fail "ucf (pid $ucf) is gone: someone answered"
	cexec grep -q '# the admin was here' /etc/ssh/sshd_config || fail "sshd_config lost the admin's change"
	assert_banner 127.0.0.1 ::1
}
