# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 #3: a second sshd started by an init script
# (/etc/init.d/ssh-second; systemd-sysv-generator's ssh-second.service:
# Type=forking without PIDFile, active with MainPID 0) on an extra ssh port
# in EXTRA_PORTS is systemd's, not stale: `check` OK on a healthy host, and
# beside the incident's stale listener only that one is stopped; the init
# script's sshd keeps its pid and answers after.
SUITE=bookworm
TIMEOUT=300

EXTRA_UNIT=ssh-second.service
EXTRA_PORT=2200
EXTRA_PIDFILE=/run/sshd-second.pid

# shellcheck source=../lib/extra_sshd.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/extra_sshd.sh"

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	csh "echo EXTRA_PORTS=$EXTRA_PORT >>/etc/default/ssh-upgrade-guard"
	csh 'cat >/etc/init.d/ssh-second && chmod 755 /etc/init.d/ssh-second' <<-EOF || fail "fixture: cannot write the init script"
		#!/bin/sh
		### BEGIN INIT INFO
		# Provides:          ssh-second
		# Required-Start:    \$remote_fs \$network
		# Required-Stop:     \$remote_fs
		# Default-Start:     2 3 4 5
		# Default-Stop:      0 1 6
		# Short-Description: a second sshd on port $EXTRA_PORT
		### END INIT INFO
		case "\$1" in
		start)
			mkdir -p /run/sshd
			/usr/sbin/sshd -p $EXTRA_PORT -o PidFile=$EXTRA_PIDFILE
			;;
		stop)
			[ ! -f $EXTRA_PIDFILE ] || kill "\$(cat $EXTRA_PIDFILE)"
			;;
		esac
		exit 0
	EOF
	csh "systemctl daemon-reload && systemctl start $EXTRA_UNIT" ||
		fail "fixture: cannot start $EXTRA_UNIT: $(cexec systemctl status --no-pager "$EXTRA_UNIT" 2>&1 | tail -n 5 | tr '\n' ' ')"
	local src
	src=$(cexec systemctl show -p SourcePath --value "$EXTRA_UNIT")
	[[ $src == /etc/init.d/ssh-second ]] || fail "fixture: $EXTRA_UNIT does not come from the init script (SourcePath '$src')"
	extra_sshd_started
	assert_extra "at the start"
	extra_beside_stale
}
