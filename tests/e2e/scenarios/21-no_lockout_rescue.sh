# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 2, invariant 1 (no lockout): after the guard stopped a stale listener,
# ssh.socket cannot be started (a drop-in makes it fail). No SSH-2.0 banner
# answers within BANNER_TIMEOUT, so the guard must bring a listener back (its
# transient rescue sshd, managed by systemd), say so, exit 1 (problem
# remains), and leave the open session alone. A later diagnosis must count
# the rescue sshd as managed, never as stale.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	make_stale_listener
	open_session
	csh 'mkdir -p /etc/systemd/system/ssh.socket.d &&
		printf "[Socket]\nExecStartPre=/bin/false\n" >/etc/systemd/system/ssh.socket.d/e2e-broken.conf &&
		systemctl daemon-reload' || fail "fixture: cannot break ssh.socket"
	cexec systemctl start ssh.socket >/dev/null 2>&1 && fail "fixture: ssh.socket still starts"
	csh 'systemctl reset-failed ssh.socket'
	csh 'echo BANNER_TIMEOUT=3s >>/etc/default/ssh-upgrade-guard'
	run_in "$GUARD_BIN" repair
	((RC == 1)) || fail "repair exited $RC with an unstartable ssh.socket (expected 1: problem remains)"
	expect_in "$OUT" 'stopped stale sshd listener' "repair output"
	expect_in "$OUT" 'rescue sshd' "repair output (the rescue must be reported)"
	expect_in "$OUT" 'PROBLEM REMAINS' "repair output"
	cexec systemctl is-active -q ssh-upgrade-guard-rescue.service || fail "the rescue unit is not active"
	assert_banner 127.0.0.1 ::1
	assert_session "after the rescue"
	run_in "$GUARD_BIN" status --json
	python3 -c 'import json,sys; d=json.load(sys.stdin); c=[l["class"] for l in d["snapshot"]["listeners"]]; sys.exit(0 if "stale" not in c and "managed" in c else 1)' <<<"$OUT" ||
		fail "status classifies the rescue sshd wrongly: $(grep -o '"class": "[a-z]*"' <<<"$OUT" | tr '\n' ' ')"
}
