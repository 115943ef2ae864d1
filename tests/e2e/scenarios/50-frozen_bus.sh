# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 11: the system bus is frozen (dbus-daemon stopped with SIGSTOP, so
# connecting succeeds into its backlog and nothing ever answers). Each hook
# must give up on D-Bus within its connect timeout (5 s) and say so in one
# line, and an apt install must finish with the guard adding at most 30 s
# (measured against the same install with the guard's hooks cleared).
# Before the fix the D-Bus handshake had no timeout: apt never finished.
SUITE=bookworm
TIMEOUT=420

# apt_timed ARGS...: apt-get in the container, bounded (a hang fails the
# scenario, not the runner); sets OUT, RC and TOOK (wall time, seconds).
apt_timed() {
	local t0=$SECONDS
	log "apt-get $*"
	OUT=$(cexec timeout 200 env DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0 "$@" 2>&1)
	RC=$?
	printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
	TOOK=$((SECONDS - t0))
	log "apt-get exit $RC after $TOOK s"
	((RC != 124)) || fail "apt-get $* did not finish within 200 s with the system bus frozen"
}

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: this scenario measures the guard itself"
	start_machine "$SUITE"
	install_guard
	local bus
	bus=$(cexec pidof dbus-daemon) || fail "fixture: no dbus-daemon running"
	cexec kill -STOP "$bus" || fail "fixture: cannot freeze dbus-daemon"
	cexec timeout 5 busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetId >/dev/null 2>&1 &&
		fail "fixture: the system bus still answers"

	# Each hook on its own: bounded by the connect timeout, one line.
	local hook t0 took
	for hook in pre-invoke post-invoke; do
		t0=$SECONDS
		run_in timeout 100 "$GUARD_BIN" "$hook"
		took=$((SECONDS - t0))
		((RC != 124)) || fail "$hook did not finish within 100 s with the system bus frozen"
		((RC == 0)) || fail "$hook exited $RC"
		((took <= 15)) || fail "$hook took ${took} s with the system bus frozen (bound: 5 s to connect)"
		expect_in "$OUT" 'cannot reach systemd over the system D-Bus: no answer within 5 s' "$hook's warning"
		(($(grep -c "D-Bus" <<<"$OUT") == 1)) || fail "$hook did not say it in one line: $OUT"
		log "$hook gave up on the frozen bus after ${took} s"
	done

	# A whole apt install, with the guard's hooks and with none (apt itself
	# waits for logind on the frozen bus, so only the difference counts).
	# Other packages' hooks are left out of both runs: needrestart's
	# Post-Invoke (in this rootfs; it runs after the guard's) did not finish
	# within 200 s on a frozen bus, and is not the guard's to bound.
	cexec sh -c 'printf "#clear DPkg::Pre-Invoke;\n#clear DPkg::Post-Invoke;\n" >/run/e2e-no-hooks.conf &&
		cat /run/e2e-no-hooks.conf /etc/apt/apt.conf.d/10ssh-upgrade-guard >/run/e2e-guard-hooks.conf' ||
		fail "fixture: cannot write the apt configurations"
	apt_timed -c /run/e2e-no-hooks.conf install --reinstall e2e-slow
	((RC == 0)) || fail "fixture: apt-get without the guard's hooks exited $RC"
	grep -q 'ssh-upgrade-guard' <<<"$OUT" && fail "fixture: the guard's hooks ran although cleared"
	local bare=$TOOK
	apt_timed -c /run/e2e-guard-hooks.conf install --reinstall e2e-slow
	((RC == 0)) || fail "apt-get install with the system bus frozen exited $RC: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "a guard hook failed apt: $(grep 'Problem executing' <<<"$OUT")"
	expect_in "$OUT" 'ssh-upgrade-guard: warning: .*no answer within 5 s' "apt's output (the guard's warning)"
	local added=$((TOOK - bare))
	log "apt-get install took $TOOK s with the guard, $bare s without its hooks: the guard added $added s"
	((added <= 30)) || fail "the guard added $added s to apt-get install with the system bus frozen (bound: 30 s)"
	! cexec test -e /run/ssh-upgrade-guard/inhibit || fail "the marker is still there after apt finished"
	cexec kill -CONT "$bus"
}
