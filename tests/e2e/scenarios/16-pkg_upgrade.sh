# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 3, package test 2: upgrade from the previous build to the current one
# through apt (the previous build is the current .deb repacked at a lower
# version): installed, same conffiles (no prompt), timer active, hooks work.
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	[[ $GUARD != off ]] || fail "GUARD=off: a package test needs the package"
	start_machine "$SUITE"
	publish_guard
	local prev cur
	prev=$(publish_previous_guard)
	repo_refresh
	apt_get install "ssh-upgrade-guard=$prev"
	((RC == 0)) || fail "installing the previous build $prev exited $RC"
	assert_timer_active
	cur=$(dpkg-deb -f "$(guard_deb)" Version)
	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade $prev -> $cur exited $RC: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	[[ $(pkg_version ssh-upgrade-guard) == "$cur" ]] || fail "ssh-upgrade-guard is $(pkg_version ssh-upgrade-guard) after the upgrade, expected $cur"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "a hook failed during the upgrade of the guard itself"
	assert_pkg_installed ssh-upgrade-guard
	assert_pkg_installed openssh-server
	assert_timer_active
	assert_hooks_live
}
