# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12 §1: proof that ssh serves, not only that it says hello.
# (a) After the seed incident's repair the report says that a key exchange
#     completed with this host's ed25519 key, with the fingerprint
#     ssh-keygen prints, on 127.0.0.1:22 and [::1]:22; `status --probe` and
#     `check --probe` say the same and exit 0.
# (b) Debian's real sshd, with a configuration that passes `sshd -t` and
#     answers the banner but completes no key exchange (HostKeyAlgorithms
#     allows RSA only and the RSA host key is gone: sshd logs "No supported
#     key exchange algorithms" for every connection), is NOT accepted: the repair exits 1 with
#     PROBLEM REMAINS and says which address completes no key exchange;
#     `status --probe` exits 1 and `check --probe` is CRITICAL. (A rescue
#     sshd is tried and cannot bind the port ssh.socket holds.) The session
#     opened before stays alive throughout.
SUITE=bookworm
TIMEOUT=240

# expect_fixed TEXT STRING WHAT: STRING (no regex) must occur in TEXT.
expect_fixed() {
	grep -Fq -- "$2" <<<"$1" || fail "$3: no line containing '$2'"
}

run_scenario() {
	start_machine "$SUITE"
	install_guard
	make_stale_listener
	open_session

	# (a) the seed incident: repaired, and proven by a key exchange.
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC after the seed incident (expected 0)"
	local fp line
	fp=$(cexec ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | awk '{ print $2 }')
	[[ $fp == SHA256:* ]] || fail "fixture: no ed25519 host key fingerprint ($fp)"
	line="did: ssh completed a key exchange with this host's ed25519 key ($fp) on 127.0.0.1:22, [::1]:22"
	expect_fixed "$OUT" "$line" "repair output"
	assert_clean_socket_activated
	assert_session "after the repair"
	run_in "$GUARD_BIN" status --probe
	((RC == 0)) || fail "status --probe exited $RC on a healthy machine"
	expect_fixed "$OUT" "probe       ssh completed a key exchange with this host's ed25519 key ($fp)" "status --probe"
	run_in "$GUARD_BIN" status --json --probe
	python3 -c 'import json,sys; p=json.load(sys.stdin)["probe"]; sys.exit(0 if p["ok"] and p["proof"] == "key exchange" else 1)' <<<"$OUT" ||
		fail "status --json --probe: probe is not ok by key exchange"
	run_in "$GUARD_BIN" check --probe
	((RC == 0)) || fail "check --probe exited $RC on a healthy machine"

	# (b) a listener that says hello and completes no key exchange: ssh
	# down (units stopped), so the guard starts ssh.socket and must prove it.
	csh 'systemctl stop ssh.socket ssh.service' || fail "cannot stop the ssh units"
	# The field's road: the configuration allows RSA host keys only, and the
	# image lost its RSA key. sshd -t accepts it (other keys load), sshd
	# sends its banner, then every connection dies with "No supported key
	# exchange algorithms".
	csh 'rm -f /etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_rsa_key.pub &&
		echo "HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256" >/etc/ssh/sshd_config.d/e2e-nokex.conf' ||
		fail "fixture: cannot write the sshd_config drop-in"
	csh 'mkdir -p /run/sshd && sshd -t' || fail "fixture: sshd -t rejects the drop-in (the guard would refuse, not test the proof)"
	csh 'echo BANNER_TIMEOUT=3s >>/etc/default/ssh-upgrade-guard'
	run_in "$GUARD_BIN" repair
	((RC == 1)) || fail "repair exited $RC with an sshd that completes no key exchange (expected 1: problem remains)"
	expect_in "$OUT" 'did: started ssh.socket' "repair output"
	expect_in "$OUT" 'ssh answers on 127\.0\.0\.1:22 but completes no key exchange' "repair output"
	expect_in "$OUT" 'ssh answers on \[::1\]:22 but completes no key exchange' "repair output"
	wait_until 15 "sshd's 'No supported key exchange algorithms' in the journal" \
		csh 'journalctl -q -u ssh.service --no-pager | grep -q "No supported key exchange algorithms"' ||
		fail "fixture: sshd's journal does not show the field's failure"
	expect_in "$OUT" 'PROBLEM REMAINS: .*completes no key exchange' "repair output"
	grep -Fq 'completed a key exchange' <<<"$OUT" && fail "repair output claims a key exchange"
	assert_banner 127.0.0.1 ::1
	assert_session "after the failed proof"
	run_in "$GUARD_BIN" status --probe
	((RC == 1)) || fail "status --probe exited $RC with no key exchange possible (expected 1)"
	expect_in "$OUT" '^PROBLEM: .*completes no key exchange' "status --probe verdict"
	run_in "$GUARD_BIN" check --probe
	((RC == 2)) || fail "check --probe exited $RC with no key exchange possible (expected 2: CRITICAL)"
	expect_in "$OUT" '^SSH-UPGRADE-GUARD CRITICAL - .*completes no key exchange' "check --probe"
	# Without --probe the banner alone still looks healthy: the proof is what
	# tells the difference.
	run_in "$GUARD_BIN" check
	((RC == 0)) || log "note: check without --probe exited $RC"
}
