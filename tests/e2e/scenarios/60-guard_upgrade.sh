# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 19: the guard upgrades itself from the previous release (0.1.0,
# built by its own `make deb` from its last commit: dist/old-deb) in the
# same apt run as a pending openssh-server upgrade, with a stale sshd on :22.
# That run's DPkg::Pre-Invoke is the old guard's binary (it repairs the
# stale listener before dpkg), dpkg then replaces the guard, and the
# Post-Invoke that apt runs is the new binary reading the old one's marker.
# apt must exit 0, both packages end installed at the new versions, ssh
# serves with no stale listener, the session opened before survives, the
# marker is released and the watchdog timer still runs.
SUITE=bookworm
# Building the 0.1.0 package when target/ has none takes most of this.
TIMEOUT=1500

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: an upgrade of the guard needs the guard"
	local old oldver cur ssh_from ssh_to
	old=$("$REPO_DIR/dist/old-deb") || fail "cannot build the 0.1.0 package (dist/old-deb)"
	oldver=$(dpkg-deb -f "$old" Version)
	start_machine "$SUITE"
	cp "$old" "$C_ROOT/srv/e2e-repo/"
	publish_guard
	cur=$(dpkg-deb -f "$(guard_deb)" Version)
	apt_get install "ssh-upgrade-guard=$oldver"
	((RC == 0)) || fail "installing $oldver exited $RC"
	[[ $(pkg_version ssh-upgrade-guard) == "$oldver" ]] || fail "ssh-upgrade-guard is $(pkg_version ssh-upgrade-guard), expected $oldver"
	assert_timer_active
	ssh_from=$(pkg_version openssh-server)
	ssh_to=$(next_ssh_version)
	[[ $ssh_to != "$ssh_from" ]] || fail "fixture: no pending openssh-server upgrade"
	make_stale_listener
	open_session
	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade (guard $oldver -> $cur, openssh-server $ssh_from -> $ssh_to) exited $RC: $(grep -E '^(E:|W:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "a hook failed while the guard upgraded itself"
	grep -q "Unpacking ssh-upgrade-guard ($cur) over ($oldver)" <<<"$OUT" ||
		fail "apt did not upgrade the guard from $oldver to $cur in this run"
	grep -q "Unpacking openssh-server ($ssh_to) over ($ssh_from)" <<<"$OUT" ||
		fail "apt did not upgrade openssh-server in the same run"
	[[ $(pkg_version ssh-upgrade-guard) == "$cur" ]] || fail "ssh-upgrade-guard is $(pkg_version ssh-upgrade-guard), expected $cur"
	[[ $(pkg_version openssh-server) == "$ssh_to" ]] || fail "openssh-server is $(pkg_version openssh-server), expected $ssh_to"
	assert_pkg_installed ssh-upgrade-guard
	assert_clean_socket_activated
	assert_session "after the guard upgraded itself with openssh-server"
	! cexec test -e /run/ssh-upgrade-guard/inhibit || fail "the old guard's marker is still there after apt finished"
	run_in "$GUARD_BIN" inhibited
	((RC == 1)) || fail "inhibited exited $RC after apt finished (expected 1)"
	assert_timer_active
	assert_hooks_live
}
