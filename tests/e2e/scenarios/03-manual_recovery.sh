# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #3: manual recovery. A machine already broken by the incident
# (openssh-server half-configured, stale sshd on :22, ssh.socket failed) gets
# the guard with `dpkg -i`; then `apt-get install -f` alone must exit 0 and
# leave everything clean.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	make_stale_listener
	apt_get upgrade
	((RC != 0)) || fail "fixture: the unguarded upgrade did not fail"
	[[ $(pkg_status openssh-server) == iF ]] || fail "fixture: openssh-server is '$(pkg_status openssh-server)', not half-configured"
	open_session
	if [[ $GUARD != off ]]; then
		local deb
		deb=$(guard_deb) || fail "no guard package in target/debian/: run \`make deb\` first"
		# The container's /tmp is a tmpfs of its own: use /var/tmp.
		cp "$deb" "$C_ROOT/var/tmp/guard.deb"
		run_in dpkg -i /var/tmp/guard.deb
		((RC == 0)) || fail "dpkg -i of the guard exited $RC"
		# What an admin reads first. As root: the stale listener by pid.
		run_in ssh-upgrade-guard status
		((RC == 1)) || fail "status as root exited $RC, not 1 (problem)"
		expect_in "$OUT" "STALE +[0-9]+ +0 +0\.0\.0\.0:22" "status as root"
		# Without root it cannot see root's processes or dpkg's locks: it
		# must say so, and neither call the locks free nor plan a start
		# that could only fail to bind.
		run_in setpriv --reuid=65534 --regid=65534 --clear-groups ssh-upgrade-guard status
		((RC == 1)) || fail "status as nobody exited $RC, not 1 (problem)"
		expect_in "$OUT" "not run as root" "status as nobody"
		expect_in "$OUT" "will not repair: .*held by a process the guard cannot see" "status as nobody"
		expect_in "$OUT" "dpkg lock +/var/lib/dpkg/lock unknown: " "status as nobody"
		! grep -Eq "lock(-frontend)? free" <<<"$OUT" || fail "status as nobody calls an unreadable dpkg lock free"
		! grep -q "Repair plan" <<<"$OUT" || fail "status as nobody plans a repair it cannot see through"
	fi
	apt_get install -f
	((RC == 0)) || fail "apt-get install -f exited $RC: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	assert_clean_socket_activated
	assert_session "after apt-get install -f"
}
