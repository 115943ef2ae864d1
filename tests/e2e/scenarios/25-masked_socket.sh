# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12, road b: a masked unit the postinst still restarts. A hardening
# role runs `systemctl mask ssh.socket` without --now: the socket keeps
# running and its enable links stay, so deb-systemd-helper still says
# was-enabled and noble's postinst runs `deb-systemd-invoke restart
# ssh.socket`, which restarts a running unit whatever its enablement:
# "Failed to restart ssh.socket: Unit ssh.socket is masked.", "Could not
# execute systemctl:", openssh-server half-configured. (Masked and stopped,
# deb-systemd-invoke skips it and the upgrade completes: FIELD-NOTES §9.)
# The guard says so before dpkg runs and again after, with the commands
# that fix it, unmasks nothing, and never runs dpkg into the same failure;
# the commands it prints do fix it.
SUITE=bookworm
TIMEOUT=300

metric() { cexec cat /var/lib/prometheus/node-exporter/ssh_upgrade_guard.prom 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	open_session
	cexec systemctl mask ssh.socket >/dev/null 2>&1 || fail "fixture: cannot mask ssh.socket"
	[[ $(cexec systemctl show -p LoadState,ActiveState --value ssh.socket | tr '\n' ' ') == 'masked active ' ]] ||
		fail "fixture: ssh.socket is not masked and running"

	apt_get upgrade
	local apt_out=$OUT apt_rc=$RC
	# The field's failure, with or without the guard: the guard does not
	# unmask, so this run fails; what it adds is saying so and how to fix it.
	expect_in "$apt_out" 'Unit ssh.socket is masked' "apt's output (the fixture must fail like the field)"
	[[ $(pkg_status openssh-server) == iF ]] || fail "fixture: openssh-server is '$(pkg_status openssh-server)', not half-configured"
	[[ $GUARD != off ]] || fail "GUARD=off: apt-get upgrade exited $apt_rc: Failed to restart ssh.socket: Unit ssh.socket is masked; openssh-server half-configured, nobody said why beforehand"
	[[ $(cexec systemctl show -p LoadState --value ssh.socket) == masked ]] || fail "the guard unmasked ssh.socket"
	# Before dpkg: the prediction; after dpkg: the same, precisely, and no
	# second dpkg --configure into the same failure.
	expect_in "$apt_out" "ssh-upgrade-guard: WARNING: if this run configures openssh-server, its postinst will fail: ssh.socket is masked but still running" "pre-invoke's prediction"
	expect_in "$apt_out" "ssh-upgrade-guard: found: openssh-server is not fully installed \\(install ok half-configured\\)" "post-invoke's report"
	expect_in "$apt_out" "ssh-upgrade-guard: found: ssh.socket is masked but still running, and openssh-server's postinst restarts it" "post-invoke's report"
	expect_in "$apt_out" "PROBLEM REMAINS: the guard does not unmask or re-enable units \\(your decision\\). Either keep ssh.socket: 'systemctl unmask ssh.socket'; or keep ssh.socket masked and run ssh.service instead: 'systemctl unmask ssh.socket && systemctl disable --now ssh.socket && systemctl enable --now ssh.service && systemctl mask ssh.socket'; then 'dpkg --configure openssh-server'" "post-invoke's advice"
	[[ $(grep -c 'Failed to restart ssh.socket: Unit ssh.socket is masked' <<<"$apt_out") == 1 ]] || fail "the postinst ran into the masked unit more than once (the guard re-ran dpkg)"
	[[ $(metric ssh_upgrade_guard_postinst_restart_blocked) == 1 ]] || fail "ssh_upgrade_guard_postinst_restart_blocked is '$(metric ssh_upgrade_guard_postinst_restart_blocked)' (expected 1)"

	run_in "$GUARD_BIN" status --json
	python3 -c '
import json, sys
d = json.load(sys.stdin)
b = d["roads"]["postinst_restart_blocked"]
assert b["unit"] == "ssh.socket", b
assert len(b["fixes"]) == 2, b
r = d["snapshot"]["packaging_records"]
assert r["socket_was_enabled"] is True, r
' <<<"$OUT" || fail "status --json does not show the blocked restart"
	assert_banner 127.0.0.1 ::1
	assert_session "with ssh.socket masked"

	# The admin keeps ssh.socket masked and runs ssh.service, with the
	# commands the guard printed; then the package completes.
	local fix
	fix=$(grep -o "systemctl unmask ssh.socket && systemctl disable --now ssh.socket && systemctl enable --now ssh.service && systemctl mask ssh.socket" <<<"$apt_out" | head -n1)
	csh "$fix" || fail "the printed fix failed: $fix"
	run_in dpkg --configure openssh-server
	((RC == 0)) || fail "dpkg --configure openssh-server after the printed fix exited $RC: $OUT"
	assert_pkg_installed openssh-server
	assert_unit_active ssh.service
	[[ $(cexec systemctl show -p LoadState --value ssh.socket) == masked ]] || fail "ssh.socket is no longer masked after the fix"
	assert_banner 127.0.0.1 ::1
	assert_session "after the fix"
	run_in "$GUARD_BIN" status
	((RC == 0)) || fail "status after the fix exited $RC: $OUT"
}
