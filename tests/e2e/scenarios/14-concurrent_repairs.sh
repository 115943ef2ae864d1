# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #14: two repairs started at once are serialized: both end with a
# healthy system (exit 0), exactly one of them stops the stale listener.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no repair to run"
	make_stale_listener
	open_session
	cexec "$GUARD_BIN" repair >"$C_DIR/r1.out" 2>&1 &
	local p1=$!
	cexec "$GUARD_BIN" repair >"$C_DIR/r2.out" 2>&1 &
	local p2=$!
	local rc1=0 rc2=0
	wait "$p1" || rc1=$?
	wait "$p2" || rc2=$?
	sed 's/^/    r1| /' "$C_DIR/r1.out" >&2
	sed 's/^/    r2| /' "$C_DIR/r2.out" >&2
	((rc1 == 0 && rc2 == 0)) || fail "repair exit codes $rc1 and $rc2 (expected 0 and 0)"
	local n=0
	grep -qw "$STALE_PID" "$C_DIR/r1.out" && n=$((n + 1))
	grep -qw "$STALE_PID" "$C_DIR/r2.out" && n=$((n + 1))
	((n == 1)) || fail "$n of the 2 concurrent repairs report acting on stale pid $STALE_PID (expected exactly 1)"
	assert_clean_socket_activated
	assert_session "after two concurrent repairs"
}
