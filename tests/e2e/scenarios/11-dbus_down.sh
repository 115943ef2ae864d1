# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #11: D-Bus is down. The hooks must exit 0 with a warning line, and
# apt's result must be what it would have been without the guard (here: 0).
SUITE=bookworm
TIMEOUT=180

run_scenario() {
	start_machine "$SUITE"
	install_guard
	csh 'systemctl stop dbus.socket dbus.service' || fail "fixture: cannot stop dbus"
	! cexec systemctl is-active -q dbus.socket dbus.service || fail "fixture: dbus is still active"
	apt_get install e2e-slow
	((RC == 0)) || fail "apt-get install e2e-slow exited $RC with D-Bus down: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	grep -q 'Problem executing scripts' <<<"$OUT" && fail "a guard hook failed apt: $(grep 'Problem executing' <<<"$OUT")"
	[[ $GUARD == off ]] && return 0
	local warn
	warn=$(grep -i 'ssh-upgrade-guard' <<<"$OUT" | grep -iE 'warn|bus' || true)
	[[ -n $warn ]] || fail "no warning line from the guard with D-Bus down"
	log "the guard's warning: $warn"
	(($(wc -l <<<"$warn") <= 2)) || fail "more than one warning line per hook: $warn"
}
