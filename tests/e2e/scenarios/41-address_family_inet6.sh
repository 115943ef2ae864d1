# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11 #5: `AddressFamily inet6` (classic topology). sshd listens on
# [::]:22 only and binds it v6-only, so nothing answers on 127.0.0.1:22.
# Probing it too made every repair's verification fail (and start a rescue
# sshd that could not answer there either). With a stale listener, the
# repair must verify on [::1]:22 alone and succeed, with no rescue.
SUITE=bookworm
TIMEOUT=240

# v6_listener: the pid of a non-pid-1 process listening on [::]:22.
v6_listener() {
	cexec ss -Hltnp 'sport = :22' | awk '$4 == "[::]:22"' | grep -o 'pid=[0-9]*' | grep -vx 'pid=1' | head -n1 | sed 's/pid=//' | grep .
}

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	csh 'echo "AddressFamily inet6" >/etc/ssh/sshd_config.d/e2e-inet6.conf && systemctl restart ssh.service' ||
		fail "fixture: cannot set AddressFamily inet6"
	wait_until 10 "ssh.service on [::]:22" v6_listener || fail "fixture: nothing on [::]:22: $(listeners)"
	cexec ss -Hltn 'sport = :22' | grep -q '0.0.0.0:22' && fail "fixture: sshd still listens on IPv4: $(listeners)"
	install_guard
	csh 'systemctl stop ssh.service' || fail "cannot stop ssh.service"
	csh 'systemd-run --quiet --collect --unit=e2e-cron-watchdog -p KillMode=process \
		/bin/sh -c "mkdir -p /run/sshd && /usr/sbin/sshd"' || fail "cannot start the stale sshd"
	wait_until 10 "the stale sshd on [::]:22" v6_listener || fail "the stale sshd did not listen"
	# Without exec: the script is the unit's main process and ends; the
	# daemon stays behind in its cgroup (see make_stale_listener).
	wait_until 10 "the cron-like unit's script to end" \
		csh "! systemctl is-active -q e2e-cron-watchdog.service" || fail "fixture: the cron-like unit still runs"
	STALE_PID=$(v6_listener)
	STALE_START=$(proc_start "$STALE_PID")

	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC"
	expect_in "$OUT" 'stopped stale sshd listener' "repair output"
	expect_in "$OUT" 'ssh answers with an SSH-2.0 banner on \[::1\]:22$' "repair output (verified on IPv6 only)"
	grep -q '127\.0\.0\.1' <<<"$OUT" && fail "the repair probed 127.0.0.1 under AddressFamily inet6"
	cexec systemctl is-active -q ssh-upgrade-guard-rescue.service && fail "a rescue sshd was started"
	assert_unit_active ssh.service
	[[ $(proc_start "$STALE_PID") != "$STALE_START" ]] || fail "the stale sshd $STALE_PID still runs"
	assert_banner ::1
}
