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
	fi
	apt_get install -f
	((RC == 0)) || fail "apt-get install -f exited $RC: $(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	assert_clean_socket_activated
	assert_session "after apt-get install -f"
}
