# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 18 #1: dpkg's own questions. openssh-server unpacked, not
# configured, with a locally modified conffile (/etc/pam.d/sshd) that the
# new package also changes: a plain `dpkg --configure` with stdin /dev/null
# fails on every run ("end of file on stdin at conffile prompt"). The
# guard's configure passes --force-confdef --force-confold, as
# unattended-upgrades does: the package ends configured, the admin's file is
# kept and the package's version lands beside it as .dpkg-dist.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	# shellcheck disable=SC2016  # expanded inside the container
	csh 'set -e; d=$(ls /srv/e2e-repo/openssh-server_*noble2*_amd64.deb); rm -rf /tmp/re
		dpkg-deb -R "$d" /tmp/re
		sed -i "s/^Version: \(.*\)noble2$/Version: \1noble3/" /tmp/re/DEBIAN/control
		echo "# a new packaged default" >>/tmp/re/etc/pam.d/sshd
		dpkg-deb -b /tmp/re /tmp/openssh-server_noble3_amd64.deb >/dev/null; rm -rf /tmp/re' ||
		fail "fixture: cannot build openssh-server noble3"
	csh 'echo "# the admin was here" >>/etc/pam.d/sshd'
	open_session
	run_in dpkg --unpack /tmp/openssh-server_noble3_amd64.deb
	((RC == 0)) || fail "fixture: dpkg --unpack exited $RC"
	[[ $(pkg_status openssh-server) == iU ]] || fail "fixture: openssh-server is '$(pkg_status openssh-server)', not unpacked"
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC"
	expect_in "$OUT" 'did: configured openssh-server' "repair output"
	assert_pkg_installed openssh-server
	cexec grep -qx '# the admin was here' /etc/pam.d/sshd || fail "the admin's /etc/pam.d/sshd was replaced"
	cexec grep -qx '# a new packaged default' /etc/pam.d/sshd.dpkg-dist || fail "no /etc/pam.d/sshd.dpkg-dist with the package's version"
	assert_unit_active ssh.socket
	assert_banner 127.0.0.1 ::1
	assert_session "after the repair"
}
