# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 12 road 2c: missing host keys. A first-boot script or an image
# build removed /etc/ssh/ssh_host_*; the next connection makes ssh.service
# fail its ExecStartPre=sshd -t ("sshd: no hostkeys available -- exiting").
# `repair` creates the keys with `ssh-keygen -A`, reports their
# fingerprints, checks the configuration again, restores ssh and proves it by
# a key exchange with the new ed25519 key; the session opened before stays
# alive. Any other configuration error is still refused, keys missing or not:
# nothing is generated and nothing is stopped.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	install_guard
	open_session
	csh 'rm -f /etc/ssh/ssh_host_*' || fail "fixture: cannot remove the host keys"
	cexec timeout 15 ssh -o BatchMode=yes -o ConnectTimeout=5 root@127.0.0.1 true >/dev/null 2>&1 &&
		fail "fixture: a new login still works without host keys"
	# Bounded generously: under CI's load the failed start reached the
	# journal later than 15 s once.
	wait_until 60 "sshd's 'no hostkeys available' in the journal" \
		csh 'journalctl -q -u ssh.service --no-pager | grep -q "no hostkeys available -- exiting"' ||
		fail "fixture: sshd's journal does not show the field's failure"

	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC with only the host keys missing (expected 0)"
	expect_in "$OUT" 'found: sshd has no host keys' "repair output"
	expect_in "$OUT" 'did: created the missing host keys with ssh-keygen -A: .*ed25519 SHA256:' "repair output"
	local fp
	fp=$(cexec ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | awk '{ print $2 }')
	[[ $fp == SHA256:* ]] || fail "no ed25519 host key after the repair ($fp)"
	grep -Fq -- "ed25519 $fp" <<<"$OUT" || fail "repair output: the new key's fingerprint $fp is not reported"
	grep -Fq -- "did: ssh completed a key exchange with this host's ed25519 key ($fp) on 127.0.0.1:22, [::1]:22" <<<"$OUT" ||
		fail "repair output: no key exchange with the new key"
	assert_clean_socket_activated
	assert_session "after the repair"

	# Another configuration error beside the missing keys: refused as ever.
	csh 'systemctl stop ssh.socket ssh.service && rm -f /etc/ssh/ssh_host_* &&
		echo "Bogus yes" >/etc/ssh/sshd_config.d/e2e-bad.conf' || fail "fixture: cannot break sshd_config"
	run_in "$GUARD_BIN" repair
	((RC == 1)) || fail "repair exited $RC with a bad sshd_config (expected 1: refused)"
	expect_in "$OUT" 'Bad configuration option: Bogus' "repair output"
	cexec sh -c 'ls /etc/ssh/ssh_host_* >/dev/null 2>&1' && fail "host keys were generated despite another configuration error"
	assert_session "after the refusal"
}
