# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 #3: an sshd started from /etc/rc.local (rc-local.service: active,
# MainPID 0, the sshd in its cgroup) on an extra ssh port declared in
# EXTRA_PORTS is systemd's, not stale: `check` says OK on a healthy host, and
# beside the incident's stale listener on :22 the repair stops only that
# one; the rc.local sshd keeps its pid and answers after.
# 0.1 called it "left over in rc-local.service, which has no main process":
# check CRITICAL, and the repair killed it.
SUITE=bookworm
TIMEOUT=300

EXTRA_UNIT=rc-local.service
EXTRA_PORT=2222
EXTRA_PIDFILE=/run/sshd-rc-local.pid

# shellcheck source=../lib/extra_sshd.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/extra_sshd.sh"

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	csh "echo EXTRA_PORTS=$EXTRA_PORT >>/etc/default/ssh-upgrade-guard"
	csh 'cat >/etc/rc.local && chmod 755 /etc/rc.local' <<-EOF || fail "fixture: cannot write /etc/rc.local"
		#!/bin/sh -e
		mkdir -p /run/sshd
		/usr/sbin/sshd -p $EXTRA_PORT -o PidFile=$EXTRA_PIDFILE
		exit 0
	EOF
	# systemd-rc-local-generator pulls rc-local.service in once
	# /etc/rc.local is executable, as at boot.
	csh "systemctl daemon-reload && systemctl start $EXTRA_UNIT" ||
		fail "fixture: cannot start $EXTRA_UNIT: $(cexec systemctl status --no-pager "$EXTRA_UNIT" 2>&1 | tail -n 5 | tr '\n' ' ')"
	extra_sshd_started
	assert_extra "at the start"
	extra_beside_stale
}
