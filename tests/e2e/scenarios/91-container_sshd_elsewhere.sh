# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 item 4: a foreign listener blocks only what needs its addresses.
# ssh.service listens on 127.0.0.1:22 and [::1]:22 (a sshd_config.d
# drop-in); a "container's" sshd on the host network, in its own PID and
# mount namespace and a docker-style scope, listens on 127.0.0.3:22. With
# ssh.service stopped, the watchdog starts ssh.service (a key exchange on
# 127.0.0.1:22 proves it), exits 0 and names the container's sshd as left
# alone; that sshd keeps its pid and still completes a key exchange.
SUITE=bookworm
TIMEOUT=240

SCOPE=docker-abc.scope

# container_pid: the sshd listening on 127.0.0.3:22.
container_pid() {
	cexec ss -Hltnp 'sport = :22' | awk '$4 == "127.0.0.3:22"' | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2
}

# keyscan ADDR: an ed25519 key from a real key exchange on ADDR:22.
keyscan() { cexec timeout 15 ssh-keyscan -T 5 -t ed25519 "$1" 2>/dev/null | grep -c ' ssh-ed25519 '; }

assert_container_sshd() {
	local pid
	pid=$(container_pid)
	[[ $pid == "$CPID" && $(proc_start "$pid") == "$CSTART" ]] ||
		fail "the container's sshd ($1): 127.0.0.3:22 is held by pid ${pid:-nobody}, was $CPID (start $CSTART); listeners: $(listeners)"
	[[ $(keyscan 127.0.0.3) -ge 1 ]] || fail "the container's sshd ($1): no key exchange on 127.0.0.3:22"
}

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	csh 'printf "ListenAddress 127.0.0.1\nListenAddress ::1\n" >/etc/ssh/sshd_config.d/e2e-loopback.conf &&
		systemctl restart ssh.service' || fail "fixture: cannot restart ssh.service on loopback addresses"
	assert_unit_active ssh.service
	wait_until 10 "ssh.service on 127.0.0.1:22" csh "ss -Hltn 'sport = :22' | grep -q '127.0.0.1:22'" ||
		fail "fixture: ssh.service does not listen on 127.0.0.1:22: $(listeners)"
	install_guard
	# The container's sshd: its own PID namespace (it is PID 1 there) and
	# mount namespace with its own /run (its privilege separation directory
	# outlives ssh.service's RuntimeDirectory=sshd), in a docker-style scope,
	# with its own configuration (defaults: the host's keys; not the
	# host's drop-in addresses).
	csh "setsid -f systemd-run --quiet --scope --unit=$SCOPE \
		unshare --pid --mount --fork --mount-proc /bin/sh -c \
		'mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd &&
		exec /usr/sbin/sshd -D -f /dev/null -o ListenAddress=127.0.0.3 -p 22 -o PidFile=none' \
		</dev/null >/dev/null 2>&1" || fail "fixture: cannot start the container's sshd"
	wait_until 15 "the container's sshd on 127.0.0.3:22" container_pid ||
		fail "fixture: nothing listens on 127.0.0.3:22: $(listeners)"
	CPID=$(container_pid)
	CSTART=$(proc_start "$CPID")
	local ns1 nsc cg
	ns1=$(cexec readlink /proc/1/ns/pid)
	nsc=$(cexec readlink "/proc/$CPID/ns/pid")
	[[ -n $nsc && $nsc != "$ns1" ]] || fail "fixture: the container's sshd (pid $CPID) is in PID namespace '$nsc', the same as PID 1's ($ns1)"
	[[ $(cexec readlink "/proc/$CPID/ns/mnt") != "$(cexec readlink /proc/1/ns/mnt)" ]] ||
		fail "fixture: the container's sshd shares PID 1's mount namespace"
	cg=$(cexec cat "/proc/$CPID/cgroup")
	[[ $cg == *"/$SCOPE"* ]] || fail "fixture: the container's sshd is not in $SCOPE: $cg"
	log "container's sshd: pid $CPID, $nsc (PID 1: $ns1), cgroup $cg"
	assert_container_sshd "at the start"
	[[ $(keyscan 127.0.0.1) -ge 1 ]] || fail "fixture: no key exchange with ssh.service on 127.0.0.1:22"
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"

	run_in "$GUARD_BIN" status
	expect_in "$OUT" "foreign +$CPID .*127\.0\.0\.3:22 +$SCOPE" "status names the container's sshd as foreign, in its scope ($(cgroup_story "$CPID"))"

	csh 'systemctl stop ssh.service' || fail "fixture: cannot stop ssh.service"
	[[ $(keyscan 127.0.0.1) -eq 0 ]] || fail "fixture: 127.0.0.1:22 still answers with ssh.service stopped"
	run_in env DEBIAN_FRONTEND=noninteractive "$GUARD_BIN" watchdog
	local wd_rc=$RC wd_out=$OUT
	((wd_rc == 0)) || fail "the watchdog exited $wd_rc with the container's sshd on 127.0.0.3:22 (expected 0: ssh.service restored around it): $wd_out"
	assert_unit_active ssh.service
	[[ $(keyscan 127.0.0.1) -ge 1 ]] || fail "no key exchange on 127.0.0.1:22 after the watchdog: $(listeners)"
	assert_banner 127.0.0.1 ::1
	expect_in "$wd_out" "left alone: pid $CPID \(sshd.*127\.0\.0\.3:22.*never touched" "the watchdog names the container's sshd as left alone"
	assert_container_sshd "after the watchdog restored ssh.service"
	[[ $(cexec systemctl show -p LoadState,ActiveState --value ssh-upgrade-guard-rescue.service | tr '\n' ' ') == 'not-found inactive ' ]] ||
		fail "a rescue sshd was started"
	# A second run: healthy, quiet, the container's sshd still untouched.
	run_in env DEBIAN_FRONTEND=noninteractive "$GUARD_BIN" watchdog
	((RC == 0)) || fail "the second watchdog run exited $RC: $OUT"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC with ssh.service serving and the container's sshd elsewhere: $OUT"
	assert_container_sshd "at the end"
}
