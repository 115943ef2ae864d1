# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 #3: a stale leftover of a sandboxed ssh.service (a drop-in with
# PrivateTmp=yes and ProtectSystem=strict gives its sshd a mount namespace of
# its own) is repaired, not refused as foreign. The leftover: ssh.service
# run once as a forking daemon (no main process), then stopped: with
# KillMode=process systemd signals nobody, and the listener stays in the
# unit's cgroup and its sandbox, ssh.service inactive. 0.1 compared its
# mount namespace with the guard's: "foreign", and every repair refused.
SUITE=bookworm
TIMEOUT=300

DROPINS=/etc/systemd/system/ssh.service.d

mnt_ns() { cexec readlink "/proc/$1/ns/mnt"; }

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable --now ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	csh "mkdir -p $DROPINS && printf '[Service]\nPrivateTmp=yes\nProtectSystem=strict\n' >$DROPINS/sandbox.conf" ||
		fail "fixture: cannot write the sandbox drop-in"
	csh 'systemctl daemon-reload && systemctl restart ssh.service' || fail "fixture: sandboxed ssh.service does not start"
	assert_unit_active ssh.service
	local main
	main=$(cexec systemctl show -p MainPID --value ssh.service)
	[[ $(mnt_ns "$main") != "$(mnt_ns 1)" ]] || fail "fixture: ssh.service's sshd $main is in pid 1's mount namespace"

	# The leftover: a forking run (no main process), then a stop that
	# kills nothing (KillMode=process). The shell starts the listener and
	# exits (bookworm's sshd does not daemonize under systemd).
	csh "cat >$DROPINS/zz-e2e-forking.conf" <<-'DROPIN' || fail "fixture: cannot write the forking drop-in"
		[Service]
		Type=forking
		GuessMainPID=no
		ExecStart=
		ExecStart=/bin/sh -c '/usr/sbin/sshd -D </dev/null >/dev/null 2>&1 &'
	DROPIN
	csh 'systemctl daemon-reload && systemctl restart ssh.service' || fail "fixture: forking ssh.service does not start"
	wait_until 10 "the forked sshd on :22" stale_listener_pid || fail "fixture: the forked sshd does not listen on :22"
	STALE_PID=$(stale_listener_pid)
	STALE_START=$(proc_start "$STALE_PID")
	# Before the stop: systemd then removes /run/sshd (RuntimeDirectory=),
	# and the leftover can take no new login.
	open_session
	csh 'systemctl stop ssh.service' || fail "fixture: cannot stop ssh.service"
	csh "rm $DROPINS/zz-e2e-forking.conf && systemctl daemon-reload" || fail "fixture: cannot remove the forking drop-in"
	[[ $(stale_listener_pid) == "$STALE_PID" ]] || fail "fixture: the leftover sshd $STALE_PID no longer listens: $(listeners)"
	[[ $(cexec systemctl is-active ssh.service) != active ]] || fail "fixture: ssh.service is still active"
	local cg
	cg=$(cexec cat "/proc/$STALE_PID/cgroup")
	[[ $cg == */ssh.service* ]] || fail "fixture: the leftover $STALE_PID is not in ssh.service's cgroup: $cg"
	[[ $(mnt_ns "$STALE_PID") != "$(mnt_ns 1)" ]] || fail "fixture: the leftover $STALE_PID is in pid 1's mount namespace"
	log "leftover: sshd $STALE_PID in ssh.service's cgroup, mount namespace $(mnt_ns "$STALE_PID") (pid 1: $(mnt_ns 1))"

	run_in "$GUARD_BIN" status
	expect_in "$OUT" "STALE +$STALE_PID" "status calls the sandboxed leftover stale"
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC: $(tail -n 5 <<<"$OUT")"
	expect_in "$OUT" "stopped stale sshd listener pid $STALE_PID" "the repair stops the leftover"
	assert_unit_active ssh.service
	main=$(cexec systemctl show -p MainPID --value ssh.service)
	cexec ss -Hltnp 'sport = :22' | grep -q "pid=$main," || fail "ssh.service's MainPID $main does not hold :22: $(listeners)"
	[[ $(mnt_ns "$main") != "$(mnt_ns 1)" ]] || fail "ssh.service's new sshd $main is not sandboxed: the drop-in was lost"
	assert_banner 127.0.0.1 ::1
	assert_no_stale
	assert_session "after the repair"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC after the repair: $OUT"
}
