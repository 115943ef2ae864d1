# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12 §1, the "regenerated host keys" case, on trixie (OpenSSH 10: the
# listener loads the host keys and hands them to each sshd-session). A
# stale listener keeps serving the keys it loaded at start after a script
# removed them and ran `ssh-keygen -A`: `status --probe` names the foreign
# key it serves (the fingerprint clients will see) and exits 1, `check
# --probe` is CRITICAL; `repair` replaces the listener and proves a key
# exchange with the new key; the session opened before stays alive.
SUITE=trixie
TIMEOUT=240

ed25519_fp() { cexec ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | awk '{ print $2 }'; }

run_scenario() {
	start_machine "$SUITE"
	install_guard
	make_stale_listener
	open_session
	local old new
	old=$(ed25519_fp)
	csh 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null' || fail "fixture: cannot regenerate the host keys"
	new=$(ed25519_fp)
	[[ $old == SHA256:* && $new == SHA256:* && $old != "$new" ]] || fail "fixture: host key not regenerated ($old -> $new)"
	[[ $(cexec sh -c 'ssh-keyscan -t ed25519 127.0.0.1 2>/dev/null | ssh-keygen -lf -' | awk '{ print $2 }') == "$old" ]] ||
		fail "fixture: the stale listener does not serve the old key"

	run_in "$GUARD_BIN" status --probe
	((RC == 1)) || fail "status --probe exited $RC with a listener serving a foreign key (expected 1)"
	grep -Fq -- "ssh on 127.0.0.1:22 serves an ed25519 key ($old) that is none of this host's keys" <<<"$OUT" ||
		fail "status --probe: the foreign key $old is not named"
	run_in "$GUARD_BIN" check --probe
	((RC == 2)) || fail "check --probe exited $RC with a listener serving a foreign key (expected 2: CRITICAL)"

	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC (expected 0)"
	grep -Fq -- "did: ssh completed a key exchange with this host's ed25519 key ($new) on 127.0.0.1:22, [::1]:22" <<<"$OUT" ||
		fail "repair output: no key exchange with the new key $new"
	assert_clean_socket_activated
	assert_session "after the repair"
}
