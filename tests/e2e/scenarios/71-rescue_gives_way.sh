# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 18 #3: the rescue's whole life. ssh.socket is broken (a drop-in
# makes it fail), so a repair ends with the guard's rescue sshd bridging
# :22. The admin then removes the cause. At the next upgrade the rescue
# gives way (pre-invoke stops it, starts ssh.socket, proves it), so the
# postinst's restart of ssh.socket works: apt exits 0, the package is
# installed, ssh.socket serves, no rescue runs, the session is kept.
# (Before issue 18 the rescue held :22 for good: ssh.socket could never
# bind again and every openssh-server upgrade failed like the seed's.)
SUITE=bookworm
TIMEOUT=300

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no rescue sshd without the guard"
	open_session
	csh 'mkdir -p /etc/systemd/system/ssh.socket.d &&
		printf "[Socket]\nExecStartPre=/bin/false\n" >/etc/systemd/system/ssh.socket.d/e2e-broken.conf &&
		systemctl daemon-reload && systemctl stop ssh.socket' || fail "fixture: cannot break ssh.socket"
	csh 'echo BANNER_TIMEOUT=3s >>/etc/default/ssh-upgrade-guard'
	run_in "$GUARD_BIN" repair
	expect_in "$OUT" 'did: started a rescue sshd' "repair output (the rescue must bridge the broken socket)"
	cexec systemctl is-active -q ssh-upgrade-guard-rescue.service || fail "fixture: no rescue runs"
	assert_banner 127.0.0.1 ::1
	# The cause goes away.
	csh 'rm /etc/systemd/system/ssh.socket.d/e2e-broken.conf && systemctl daemon-reload' ||
		fail "fixture: cannot mend ssh.socket"
	local from
	from=$(pkg_version openssh-server)
	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade exited $RC: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	[[ $(pkg_version openssh-server) != "$from" ]] || fail "openssh-server was not upgraded ($from)"
	expect_in "$OUT" 'did: stopped the rescue sshd \(ssh-upgrade-guard-rescue.service; sessions kept\)' "apt output (pre-invoke retires the rescue)"
	! cexec systemctl is-active -q ssh-upgrade-guard-rescue.service || fail "the rescue still runs after the upgrade"
	assert_clean_socket_activated
	assert_session "after the rescue gave way"
}
