# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 item 1: ssh the admin turned off stays off. openssh-server stays
# installed; the admin turns ssh off three ways, one after the other:
#   1. `systemctl disable --now ssh.service` (classic layout, socket off too);
#   2. `systemctl mask --now ssh.service ssh.socket` (closed on purpose);
#   3. both units unmasked, ssh.service enabled, /etc/ssh/sshd_not_to_be_run
#      (ssh.service's ConditionPathExists=!: systemd skips the start quietly).
# After the first, the incident's stale listener appears: nothing would
# replace it, so the watchdog and repair leave it serving (repair, status
# and check, WARNING, name it). Each time: two watchdog runs (one through its unit, one as the unit runs
# it, with -v to show its info-level line) and an apt run exit 0 and leave nothing on :22 and no rescue sshd;
# the watchdog, `status` and `check` say so in one calm line ("OK: ssh is
# off by the admin's choice: ..."). No SSH session here: ssh is meant to be
# off, so every command goes in through nsenter.
SUITE=bookworm
TIMEOUT=300

RESCUE=ssh-upgrade-guard-rescue.service

load_states() { echo "$(cexec systemctl show -p LoadState --value ssh.service) $(cexec systemctl show -p LoadState --value ssh.socket) "; }

# assert_ssh_off WHEN: nothing listens on :22, ssh.service is not running,
# and no rescue unit ever ran.
assert_ssh_off() {
	local l st
	l=$(cexec ss -Hltnp 'sport = :22')
	[[ -z $l ]] || fail "$1: something listens on :22 though ssh is off by the admin's choice: $(listeners)"
	st=$(cexec systemctl is-active ssh.service ssh.socket | tr '\n' ' ')
	[[ " $st" != *' active '* && $st != *activating* ]] || fail "$1: ssh units are '$st' (expected both off)"
	st=$(cexec systemctl show -p LoadState,ActiveState --value "$RESCUE" | tr '\n' ' ')
	[[ $st == 'not-found inactive ' ]] || fail "$1: the rescue unit $RESCUE exists ($st): the guard started a rescue sshd the admin had closed"
}

# watchdog_twice WHY: the watchdog through its unit, then the binary as the
# unit runs it; both calm, both exit 0, ssh still off.
watchdog_twice() {
	local why=$1 j
	run_in systemctl start ssh-upgrade-guard-watchdog.service
	local unit_rc=$RC
	j=$(cexec journalctl -q -u ssh-upgrade-guard-watchdog.service --no-pager -o cat)
	printf '%s\n' "$j" | sed 's/^/    journal| /' >&2
	assert_ssh_off "after the watchdog unit ran ($why)"
	((unit_rc == 0)) || fail "$why: the watchdog unit failed (Result=$(cexec systemctl show -p Result --value ssh-upgrade-guard-watchdog.service))"
	# The timer's runs say nothing while all is as intended (the line is at
	# info level, which -v shows): no error, no warning, no PROBLEM.
	[[ $j != *ssh-upgrade-guard:* && $j != *PROBLEM* ]] || fail "$why: the watchdog unit said more than nothing: $(grep ssh-upgrade-guard: <<<"$j" | tr '\n' ' ')"
	run_in env DEBIAN_FRONTEND=noninteractive "$GUARD_BIN" -v watchdog
	((RC == 0)) || fail "$why: ssh-upgrade-guard watchdog exited $RC: $OUT"
	expect_in "$OUT" "OK: ssh is off by the admin's choice: $why" "the watchdog's line"
	[[ $OUT != *PROBLEM* ]] || fail "$why: the watchdog says PROBLEM: $OUT"
	assert_ssh_off "after the second watchdog run ($why)"
}

# status_and_check WHY: both say so calmly; check exits 0.
status_and_check() {
	local why=$1
	run_in "$GUARD_BIN" status
	((RC == 0)) || fail "$why: status exited $RC: $OUT"
	expect_in "$OUT" "ssh is off by the admin's choice: $why" "status"
	[[ $OUT != *PROBLEM* ]] || fail "$why: status says PROBLEM: $OUT"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "$why: check exited $RC (expected 0, OK): $OUT"
	expect_in "$OUT" "^SSH-UPGRADE-GUARD OK - ssh is off by the admin's choice: $why" "check"
}

# apt_run WHY: an apt run (the sleeper reinstalled) exits 0, its hooks say
# the same, and ssh stays off.
apt_run() {
	local why=$1
	apt_get install --reinstall e2e-slow
	((RC == 0)) || fail "$why: apt-get exited $RC: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	expect_in "$OUT" "ssh-upgrade-guard: .*OK: ssh is off by the admin's choice: $why" "post-invoke's line"
	[[ $OUT != *PROBLEM* ]] || fail "$why: the hooks say PROBLEM: $(grep PROBLEM <<<"$OUT")"
	assert_ssh_off "after an apt run ($why)"
	! cexec test -e /run/ssh-upgrade-guard/inhibit || fail "$why: the marker outlived the apt run"
}

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable --now ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	assert_unit_active ssh.service
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	# Quick answers when nothing listens (the rescue would start after it).
	csh 'echo BANNER_TIMEOUT=3s >>/etc/default/ssh-upgrade-guard'

	# 1. Disabled and stopped.
	csh 'systemctl disable --now ssh.service' >/dev/null 2>&1 || fail "fixture: cannot disable ssh.service"
	assert_pkg_installed openssh-server
	assert_ssh_off "after systemctl disable --now ssh.service"
	watchdog_twice 'ssh.service disabled'
	status_and_check 'ssh.service disabled'
	apt_run 'ssh.service disabled'

	# 1b. A stale listener while ssh is off: nothing would replace it, so
	#     it keeps serving, and the guard says so.
	make_stale_listener
	run_in env DEBIAN_FRONTEND=noninteractive "$GUARD_BIN" -v watchdog
	((RC == 0)) || fail "the watchdog exited $RC with a stale listener while ssh is off: $OUT"
	expect_in "$OUT" "OK: ssh is off by the admin's choice: ssh.service disabled" "the watchdog with a stale listener while ssh is off"
	local left="stale sshd listener pid $STALE_PID still serves on 0\.0\.0\.0:22, \[::\]:22; ssh is off by the admin's choice, so the guard starts nothing to replace it and does not stop it"
	run_in "$GUARD_BIN" status
	expect_in "$OUT" "^WARNING: ssh is off by the admin's choice: ssh.service disabled.*; $left" "status with a stale listener while ssh is off"
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC with a stale listener while ssh is off: $OUT"
	expect_in "$OUT" "left alone: $left" "repair names the stale listener it leaves serving"
	[[ $(stale_listener_pid) == "$STALE_PID" && $(proc_start "$STALE_PID") == "$STALE_START" ]] ||
		fail "the stale listener (pid $STALE_PID) was stopped while ssh is off by the admin's choice: $(listeners)"
	[[ $(cexec systemctl is-active ssh.service) != active ]] || fail "the watchdog started ssh.service"
	run_in "$GUARD_BIN" check
	((RC == 1)) || fail "check exited $RC with a stale listener while ssh is off (expected 1, WARNING): $OUT"
	expect_in "$OUT" "^SSH-UPGRADE-GUARD WARNING - .*stale_listeners=1" "check with a stale listener while ssh is off"
	csh "kill $STALE_PID" || fail "cannot stop the stale listener"
	wait_until 10 "the stale listener to go" csh "! ss -Hltn 'sport = :22' | grep -q LISTEN" || fail "the stale listener does not go"
	STALE_PID=''

	# 2. Masked and stopped (ssh closed on purpose).
	csh 'systemctl mask --now ssh.service ssh.socket' >/dev/null 2>&1 || fail "fixture: cannot mask the ssh units"
	[[ $(load_states) == 'masked masked ' ]] ||
		fail "fixture: the ssh units are not both masked"
	assert_ssh_off "after systemctl mask --now"
	watchdog_twice 'ssh.service masked; ssh.socket masked'
	status_and_check 'ssh.service masked; ssh.socket masked'
	apt_run 'ssh.service masked; ssh.socket masked'
	[[ $(load_states) == 'masked masked ' ]] ||
		fail "the guard unmasked an ssh unit"

	# 3. Unmasked and enabled, but /etc/ssh/sshd_not_to_be_run says no.
	csh 'systemctl unmask ssh.service ssh.socket && systemctl enable ssh.service && touch /etc/ssh/sshd_not_to_be_run' \
		>/dev/null 2>&1 || fail "fixture: cannot unmask and enable ssh.service"
	# The fixture: systemd itself skips the start.
	csh 'systemctl start ssh.service' || fail "fixture: systemctl start ssh.service failed (a skipped condition is not a failure)"
	[[ $(cexec systemctl show -p ConditionResult --value ssh.service) == no ]] ||
		fail "fixture: ssh.service's ConditionResult is '$(cexec systemctl show -p ConditionResult --value ssh.service)', not no"
	assert_ssh_off "with /etc/ssh/sshd_not_to_be_run"
	local why='/etc/ssh/sshd_not_to_be_run exists'
	watchdog_twice "$why"
	status_and_check "$why"
	apt_run "$why"
	cexec test -e /etc/ssh/sshd_not_to_be_run || fail "the guard removed /etc/ssh/sshd_not_to_be_run"
	[[ $(cexec systemctl is-enabled ssh.service) == enabled ]] || fail "ssh.service is no longer enabled"
}
