# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 4 #12: a hostile /run/ssh-upgrade-guard. The marker path is replaced by
# a symlink to /etc/shadow, by a directory, by garbage: nothing is followed
# (/etc/shadow unchanged), nothing crashes, apt works, the path is reported.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	local shadow_before case_ unreported=()
	shadow_before=$(cexec stat -c '%a %U %s %Y' /etc/shadow)$(cexec sha256sum /etc/shadow)
	for case_ in symlink directory garbage; do
		log "--- marker path as $case_"
		csh 'mkdir -p /run/ssh-upgrade-guard; rm -rf /run/ssh-upgrade-guard/inhibit'
		case $case_ in
		symlink) csh 'ln -s /etc/shadow /run/ssh-upgrade-guard/inhibit' ;;
		directory) csh 'mkdir /run/ssh-upgrade-guard/inhibit' ;;
		garbage) csh 'head -c 4096 /dev/urandom >/run/ssh-upgrade-guard/inhibit' ;;
		esac
		apt_get install --reinstall e2e-slow
		((RC == 0)) || fail "$case_ marker: apt-get exited $RC: $(grep -E '^(E:|W:)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
		grep -q 'Problem executing scripts' <<<"$OUT" && fail "$case_ marker: a guard hook failed apt"
		grep -qi 'panicked' <<<"$OUT" && fail "$case_ marker: the guard panicked: $(grep -i panicked <<<"$OUT")"
		[[ $(cexec stat -c '%a %U %s %Y' /etc/shadow)$(cexec sha256sum /etc/shadow) == "$shadow_before" ]] ||
			fail "$case_ marker: /etc/shadow changed"
		[[ $GUARD == off ]] && continue
		# Collected, not fatal at once: the report then covers all three cases.
		grep -q '/run/ssh-upgrade-guard' <<<"$OUT" ||
			unreported+=("$case_: apt output does not name /run/ssh-upgrade-guard/inhibit")
		local c
		for c in "inhibited" "status"; do
			run_in "$GUARD_BIN" $c
			((RC == 0 || RC == 1)) || fail "$case_ marker: \`$c\` exited $RC"
		done
	done
	((${#unreported[@]} == 0)) || fail "the path is not reported: $(printf '%s; ' "${unreported[@]}")"
}
