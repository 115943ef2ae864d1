# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 18 #1: an interrupted repair still finishes what it started. A
# stale listener slow to die (SIGSTOPped: the guard's SIGTERM stays
# pending, so it waits STOP_TIMEOUT and sends SIGKILL) and `repair`, run
# from a shell, gets SIGINT then SIGHUP one second after its SIGTERM to the
# listener (Ctrl-C in an apt run over ssh, then the dropped link). Without
# the hold the guard dies silently there: the listener keeps :22 with
# connections queuing on it, ssh.socket stays inactive, nobody can log in.
# With it: ssh serves within the repair's bound, the guard says in one line
# that it finished before honouring the signal, and then dies by it.
SUITE=bookworm
TIMEOUT=240

# sigterm_pending PID: the kernel has a SIGTERM queued for PID (ShdPnd
# bit 15, i.e. mask 0x4000).
sigterm_pending() {
	local pnd
	pnd=$(cexec awk '/^ShdPnd:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[[ -n $pnd ]] && (((16#$pnd & 16#4000) != 0))
}

answers_v4() { [[ $(banner 127.0.0.1) == SSH-2.0- ]]; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	make_stale_listener
	open_session
	cexec kill -STOP "$STALE_PID" || fail "fixture: cannot SIGSTOP the stale listener $STALE_PID"
	# Job control on, so the background guard keeps SIGINT's default
	# disposition (a non-interactive shell's background jobs ignore it).
	cexec bash -c "set -m; $GUARD_BIN repair >/run/e2e-repair.out 2>&1 & echo \$! >/run/e2e-repair.pid; wait \$!; echo \$? >/run/e2e-repair.rc" &
	local shell=$! gpid t0=$SECONDS
	wait_until 10 "the guard's pid" cexec test -s /run/e2e-repair.pid || fail "fixture: the repair did not start"
	gpid=$(cexec cat /run/e2e-repair.pid)
	if [[ $GUARD != off ]]; then
		wait_until 15 "the guard's SIGTERM to the stale listener" sigterm_pending "$STALE_PID" ||
			fail "the guard never sent SIGTERM to the stale listener: $(cexec cat /run/e2e-repair.out)"
	else
		sleep 2
	fi
	sleep 1
	cexec kill -INT "$gpid" || log "the guard (pid $gpid) is already gone at SIGINT"
	cexec kill -HUP "$gpid" || log "the guard (pid $gpid) is already gone at SIGHUP"
	log "SIGINT and SIGHUP sent to the guard (pid $gpid)"
	wait_until 60 "ssh to answer on 127.0.0.1:22" answers_v4 ||
		fail "ssh does not serve 60 s after the interrupted repair; listeners: $(listeners); guard said: $(cexec cat /run/e2e-repair.out 2>&1 | tr '\n' ' ')"
	log "ssh serves $((SECONDS - t0)) s after the repair started"
	wait "$shell" || true
	local out rc
	out=$(cexec cat /run/e2e-repair.out)
	rc=$(cexec cat /run/e2e-repair.rc)
	printf '%s\n' "$out" | sed 's/^/    repair| /' >&2
	log "repair exit status $rc"
	expect_in "$out" 'did: stopped stale sshd listener pid [0-9]+ .* with SIGKILL after 5 s' "repair output (the SIGTERM was pending: SIGKILL)"
	expect_in "$out" 'did: started ssh.socket' "repair output"
	expect_in "$out" 'SIGINT received during the repair: finished restoring ssh before honouring it' "repair output (the one line about the signal)"
	((rc == 130)) || fail "the repair exited $rc, not by the SIGINT it held (130)"
	assert_clean_socket_activated
	assert_session "after the interrupted repair"
}
