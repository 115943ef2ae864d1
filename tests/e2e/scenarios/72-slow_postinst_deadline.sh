# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 18 #1: a hook deadline shorter than a slow postinst under the
# guard's own dpkg. The seed incident mid-run (a fixture Pre-Invoke hook
# after the guard's starts a stale listener), apt installing a package that
# depends on openssh-server and whose postinst takes two minutes: dpkg
# leaves it unconfigured ("dependency problems"), and post-invoke's repair
# configures openssh-server and then it. HOOK_DEADLINE=20s, the postinst
# takes 60 s: the package configure is part of the repair's critical
# stretch (its postinst restarts ssh) with its own bound
# (CONFIGURE_TIMEOUT, 15 min), so the hook waits for it rather than
# leaving it behind: when apt returns no dpkg is left running and holding
# dpkg's lock, and the next apt run works. (Before issue 18 the hook gave
# up at its deadline and dpkg ran on, unbounded, after apt had let go.)
SUITE=bookworm
TIMEOUT=360

# The fixture package: Depends on openssh-server, postinst sleeps as long as
# /run/e2e-slow-seconds says.
make_slow_dependent() {
	csh 'set -e; w=$(mktemp -d); mkdir -p "$w/DEBIAN"
		cat >"$w/DEBIAN/control" <<CTL
Package: e2e-slow-dependent
Version: 1
Architecture: all
Depends: openssh-server
Maintainer: ssh-upgrade-guard e2e <root@localhost>
Description: e2e fixture: depends on openssh-server, postinst sleeps
CTL
		printf "#!/bin/sh\nset -e\ntouch /run/e2e-slowdep-started\nsleep \"\$(cat /run/e2e-slow-seconds 2>/dev/null || echo 15)\"\n" >"$w/DEBIAN/postinst"
		chmod 755 "$w/DEBIAN/postinst"
		dpkg-deb -b "$w" /srv/e2e-repo/e2e-slow-dependent_1_all.deb >/dev/null; rm -rf "$w"' ||
		fail "fixture: cannot build e2e-slow-dependent"
	repo_refresh
}

run_scenario() {
	start_machine "$SUITE"
	install_guard
	make_slow_dependent
	csh 'echo HOOK_DEADLINE=20s >>/etc/default/ssh-upgrade-guard'
	# As in stale_during_dpkg: the stale listener appears after the guard's
	# Pre-Invoke, once.
	csh 'cat >/usr/local/sbin/e2e-stale-now <<"SH"
#!/bin/sh
[ -e /run/e2e-stale-done ] && exit 0
touch /run/e2e-stale-done
systemctl stop ssh.socket ssh.service
systemd-run --quiet --collect --unit=e2e-cron-watchdog -p KillMode=process \
	/bin/sh -c "mkdir -p /run/sshd && /usr/sbin/sshd"
sleep 1
SH
chmod 755 /usr/local/sbin/e2e-stale-now
echo "DPkg::Pre-Invoke { \"/usr/local/sbin/e2e-stale-now\"; };" >/etc/apt/apt.conf.d/99e2e-stale-listener'
	csh 'echo 60 >/run/e2e-slow-seconds'
	open_session
	# apt's output to a file, and what runs is looked at the moment apt
	# exits: a dpkg left behind would otherwise hold a captured pipe open
	# and make apt seem to return only when it ends.
	local t0=$SECONDS left
	log "apt-get install openssh-server e2e-slow-dependent"
	cexec bash -c 'DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0 install openssh-server e2e-slow-dependent >/run/e2e-apt.out 2>&1 </dev/null
		echo $? >/run/e2e-apt.rc
		{ pgrep -a -x dpkg; pgrep -a -f "[e]2e-slow-dependent.postinst"; } >/run/e2e-left 2>&1; true'
	OUT=$(cexec cat /run/e2e-apt.out)
	printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
	log "apt-get exit $(cexec cat /run/e2e-apt.rc) after $((SECONDS - t0)) s"
	left=$(cexec cat /run/e2e-left)
	cexec test -e /run/e2e-stale-done || fail "fixture: the stale-listener hook did not run"
	expect_in "$OUT" 'Could not execute systemctl' "apt output (openssh-server's postinst must have failed)"
	cexec test -e /run/e2e-slowdep-started || fail "fixture: the guard never ran e2e-slow-dependent's postinst: $(grep ssh-upgrade-guard <<<"$OUT" | tr '\n' ' ')"
	# What matters: nothing the guard started outlives apt.
	[[ -z $left ]] || fail "still running when apt exited: $(tr '\n' ' ' <<<"$left")"
	expect_in "$OUT" 'did: configured e2e-slow-dependent \(they were waiting for openssh-server\)' "the guard's report"
	((SECONDS - t0 >= 60)) || fail "apt returned before the 60 s postinst could have finished"
	assert_pkg_installed openssh-server
	assert_pkg_installed e2e-slow-dependent
	assert_unit_active ssh.socket
	assert_banner 127.0.0.1 ::1
	assert_no_stale
	assert_session "after the bounded repair"
	# The next apt run works (dpkg's lock is free, nothing interrupted).
	csh 'echo 0 >/run/e2e-slow-seconds'
	apt_get install -f
	((RC == 0)) || fail "the next apt run exited $RC: $(grep -E '^(E:|dpkg: error)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
}
