# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# The field incident (FIELD-NOTES §1) reproduced WITHOUT the guard, whatever
# GUARD says. This validates the fixture: if the bare upgrade did not fail the
# way the field saw it, every other scenario would prove nothing.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	start_machine "$SUITE"
	local from to
	from=$(pkg_version openssh-server)
	make_stale_listener
	apt_get upgrade
	to=$(pkg_version openssh-server)
	((RC != 0)) || fail "expected apt-get upgrade to fail without the guard, it exited 0"
	expect_in "$OUT" 'Could not execute systemctl: +at /usr/bin/deb-systemd-invoke' "apt output"
	expect_in "$OUT" 'installed openssh-server package post-installation script subprocess returned error exit status 1' "apt output"
	expect_in "$OUT" 'E: Sub-process /usr/bin/dpkg returned an error code \(1\)' "apt output"
	[[ $from != "$to" ]] || fail "openssh-server was not upgraded ($from)"
	local st
	st=$(cexec dpkg-query -W -f='${Status}' openssh-server)
	[[ $st == 'install ok half-configured' ]] || fail "openssh-server status is '$st', expected half-configured"
	[[ $(cexec systemctl show -p Result --value ssh.socket) == resources ]] ||
		fail "ssh.socket Result is '$(cexec systemctl show -p Result --value ssh.socket)', expected resources"
	[[ $(cexec systemctl is-active ssh.socket) == failed ]] || fail "ssh.socket is not failed"
	expect_in "$(cexec journalctl -q -u ssh.socket --no-pager)" 'Address already in use' "ssh.socket journal"
	local exe
	exe=$(cexec readlink "/proc/$STALE_PID/exe")
	[[ $exe == '/usr/sbin/sshd (deleted)' ]] || fail "stale sshd exe is '$exe', expected '/usr/sbin/sshd (deleted)'"
	# Logins still work through the stale listener: nobody notices.
	assert_banner 127.0.0.1 ::1
	# And every later apt run fails.
	apt_get install e2e-slow
	expect_in "$OUT" '1 not fully installed or removed' "the next apt run"
	log "incident reproduced: $from -> $to half-configured, ssh.socket failed (resources), stale pid $STALE_PID runs $exe"
}
