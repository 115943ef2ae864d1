# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11: `sshd -T` never returns (sshd_config Includes a FIFO: sshd's
# open() waits for a writer forever; a hung mount does the same). With a
# stale listener to repair, the hooks, `status` and `check` must each
# finish within their bounds (sshd -T: 10 s) and say why; nothing is stopped
# on an unchecked configuration, so ssh and the open session keep working;
# no sshd -T is left running. Before the fix they waited forever.
SUITE=bookworm
TIMEOUT=300

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: this scenario measures the guard itself"
	start_machine "$SUITE"
	install_guard
	make_stale_listener
	open_session
	csh 'mkfifo /etc/ssh/hang.fifo && echo "Include /etc/ssh/hang.fifo" >/etc/ssh/sshd_config.d/hang.conf' ||
		fail "fixture: cannot add the FIFO include"
	local rc=0
	cexec timeout 5 /usr/sbin/sshd -T >/dev/null 2>&1 || rc=$?
	((rc == 124)) || fail "fixture: sshd -T did not hang (exit $rc)"

	local cmd t0 took
	for cmd in pre-invoke post-invoke status check; do
		t0=$SECONDS
		run_in timeout 100 "$GUARD_BIN" "$cmd"
		took=$((SECONDS - t0))
		((RC != 124)) || fail "$cmd did not finish within 100 s with sshd -T hung"
		((took <= 25)) || fail "$cmd took $took s with sshd -T hung (bound: 10 s for sshd -T)"
		expect_in "$OUT" 'sshd -T did not answer within 10 s' "$cmd's output"
		log "$cmd finished after $took s and said why"
		case $cmd in
		*-invoke) ((RC == 0)) || fail "$cmd exited $RC" ;;
		check) ((RC == 2)) || fail "check exited $RC (expected 2: the stale listener is still there)" ;;
		esac
	done

	# A whole apt run finishes too.
	apt_get install --reinstall e2e-slow
	((RC == 0)) || fail "apt-get install with sshd -T hung exited $RC"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "a guard hook failed apt: $(grep 'Problem executing' <<<"$OUT")"
	expect_in "$OUT" 'sshd -T did not answer within 10 s' "apt's output (the guard's warning)"

	local left
	left=$(cexec pgrep -af 'sshd -T' || true)
	[[ -z $left ]] || fail "sshd -T processes left running: $left"
	[[ $(proc_start "$STALE_PID") == "$STALE_START" ]] ||
		fail "the guard stopped the listener (pid $STALE_PID) without a checked configuration"
	assert_banner 127.0.0.1 ::1
	assert_session "after every command gave up on sshd -T"
}
