# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12, road a: systemd's start limits. A restart storm (needrestart after
# each unattended-upgrades step, a cron watchdog) restarts ssh.service more
# than 5 times in 10 s: ssh.service fails with 'start-limit-hit' ("Start
# request repeated too quickly"), ssh.socket with 'service-start-limit-hit',
# and nothing listens on :22 any more. The next apt run (hooks), and the
# watchdog, must bring ssh back; status, check and the metrics must name the
# start limit; and the guard's own starts must never be the storm: it starts
# a unit at most 3 times in 10 minutes, then refuses before stopping anything.
SUITE=bookworm
TIMEOUT=300

# storm: what needrestart or a cron watchdog does, seven times in a row.
storm() {
	local i
	for i in 1 2 3 4 5 6 7; do cexec systemctl restart ssh.service >/dev/null 2>&1; done
	local r
	r=$(cexec systemctl show -p Result --value ssh.service)
	[[ $r == start-limit-hit ]] || fail "fixture: 7 restarts did not hit the start limit (ssh.service Result=$r)"
	[[ -z $(cexec ss -Hltn 'sport = :22') ]] || fail "fixture: something still listens on :22 after the storm: $(listeners)"
	log "restart storm: ssh.service $r, ssh.socket $(cexec systemctl show -p Result --value ssh.socket), nothing on :22"
}

metric() { cexec cat /var/lib/prometheus/node-exporter/ssh_upgrade_guard.prom 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	open_session

	# 1. The storm, then the next apt run: the hooks bring ssh back.
	storm
	apt_get install --reinstall e2e-slow
	((RC == 0)) || fail "apt-get exited $RC after the storm: $(tail -n 3 <<<"$OUT")"
	assert_banner 127.0.0.1 ::1
	expect_in "$OUT" 'found: ssh.service failed \(result start-limit-hit\)' "pre-invoke's report"
	expect_in "$OUT" 'did: reset the failed state of ssh.service' "pre-invoke's report"
	expect_in "$OUT" 'did: started ssh.socket' "pre-invoke's report"
	assert_session "after the hooks' recovery"

	# 2. The storm again, and a broken sshd_config on top, so that the
	# watchdog may not act: status, check and the metrics name the limit.
	storm
	csh 'cp /etc/ssh/sshd_config /root/sshd_config.good && echo "Bogus yes" >>/etc/ssh/sshd_config'
	run_in "$GUARD_BIN" status --json
	python3 -c '
import json, sys
d = json.load(sys.stdin)
svc = d["snapshot"]["units"]["service"]
assert svc["result"] == "start-limit-hit", svc
assert svc["n_restarts"] == 0, svc
units = sorted(s["unit"] for s in d["roads"]["start_limit"])
assert units == ["ssh.service", "ssh.socket"], d["roads"]
' <<<"$OUT" || fail "status --json does not show the start limit: $(grep -E '"(result|n_restarts|unit)"' <<<"$OUT" | tr -s ' \n' ' ')"
	run_in "$GUARD_BIN" check
	((RC == 2)) || fail "check exited $RC after the storm (expected 2, CRITICAL)"
	expect_in "$OUT" 'ssh.service failed \(result start-limit-hit\)' "check's line"
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	[[ $(metric ssh_upgrade_guard_start_limit_hit) == 1 ]] || fail "with ssh down after a storm, ssh_upgrade_guard_start_limit_hit is '$(metric ssh_upgrade_guard_start_limit_hit)' (expected 1)"
	csh 'cp /root/sshd_config.good /etc/ssh/sshd_config'
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	run_in journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager
	assert_banner 127.0.0.1 ::1
	assert_unit_active ssh.socket
	[[ $(metric ssh_upgrade_guard_start_limit_hit) == 0 ]] || fail "after the watchdog's repair, ssh_upgrade_guard_start_limit_hit is '$(metric ssh_upgrade_guard_start_limit_hit)' (expected 0)"
	[[ $(metric 'ssh_upgrade_guard_repairs_total{outcome="success"}') -ge 2 ]] || fail "the watchdog's recovery is not counted as a repair"
	assert_session "after the watchdog's recovery"

	# 3. The guard is never the storm: ssh.socket stopped again and again,
	# repaired each time, until the guard's own budget (3 starts in 10
	# minutes, the two above included) refuses, before stopping anything.
	local n=0
	while ((n < 5)); do
		n=$((n + 1))
		cexec systemctl stop ssh.socket
		run_in "$GUARD_BIN" repair
		((RC == 0)) || break
	done
	((RC == 1)) || fail "the guard started ssh.socket $n times in a row without refusing"
	expect_in "$OUT" 'already started ssh.socket 3 times in the last 10 minutes' "the refusal"
	local r
	r=$(cexec systemctl show -p Result --value ssh.socket)
	[[ $r != *limit* ]] || fail "the guard's own starts hit systemd's limit: ssh.socket Result=$r"
	r=$(cexec systemctl show -p Result --value ssh.service)
	[[ $r != *limit* ]] || fail "the guard's own starts hit systemd's limit: ssh.service Result=$r"
}
