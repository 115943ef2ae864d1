# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #9: no lockout. sshd_config is invalid while a stale listener is the
# only thing answering on :22: the guard must not stop it, must print sshd's
# own error, and ssh must still answer (and the open session still work).
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	start_machine "$SUITE"
	install_guard
	make_stale_listener
	open_session
	csh 'echo "ThisIsNotAnOption yes" >>/etc/ssh/sshd_config'
	local sshd_err
	sshd_err=$(cexec /usr/sbin/sshd -t 2>&1) && fail "fixture: sshd -t accepts the broken config"
	log "sshd -t: $sshd_err"
	run_in "$GUARD_BIN" repair
	((RC == 1)) || fail "repair exited $RC with an invalid sshd_config (expected 1: problem remains)"
	expect_in "$OUT" 'ThisIsNotAnOption' "repair output (sshd's own error)"
	[[ $(proc_start "$STALE_PID") == "$STALE_START" ]] || fail "the guard stopped the only working listener (pid $STALE_PID)"
	assert_banner 127.0.0.1 ::1
	assert_session "after the refused repair"
}
