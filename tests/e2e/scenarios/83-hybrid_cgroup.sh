# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 #3: under a hybrid cgroup hierarchy (these containers boot with
# name=systemd v1 beside a unified "0::" line), systemd tracks units in
# name=systemd. With ssh.service's own sshd moved to the unified root (as a
# tool writing to /sys/fs/cgroup/unified alone does, and as pure legacy
# hosts show "0::/" for every process), the guard still reads ssh.service
# from name=systemd: `check` OK, `status` managed, `repair` leaves it
# running. 0.1 let the "0::/" line win: "in no systemd unit's cgroup",
# stale, CRITICAL.
SUITE=bookworm
TIMEOUT=240

run_scenario() {
	start_machine "$SUITE"
	csh 'systemctl disable --now ssh.socket && systemctl enable --now ssh.service' >/dev/null 2>&1 ||
		fail "fixture: cannot switch to the classic topology"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	local main start cg
	main=$(cexec systemctl show -p MainPID --value ssh.service)
	start=$(proc_start "$main")
	cg=$(cexec cat "/proc/$main/cgroup")
	[[ $cg == *':name=systemd:/system.slice/ssh.service'* && $cg == *'0::/system.slice/ssh.service'* ]] ||
		fail "fixture: this container's cgroup hierarchy is not hybrid (name=systemd beside 0::), so this scenario cannot be built here: $(tr '\n' ' ' <<<"$cg")"
	csh "echo $main >/sys/fs/cgroup/unified/cgroup.procs" || fail "fixture: cannot move sshd $main in the unified hierarchy"
	cg=$(cexec cat "/proc/$main/cgroup")
	[[ $cg == *':name=systemd:/system.slice/ssh.service'* && $cg == *$'\n0::/' ]] ||
		fail "fixture: sshd $main is not at the unified root with name=systemd in ssh.service: $(tr '\n' ' ' <<<"$cg")"
	log "ssh.service's sshd $main: $(tr '\n' ' ' <<<"$cg")"

	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check exited $RC with ssh.service's sshd at the unified root: $OUT"
	run_in "$GUARD_BIN" status --json
	local row
	row=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(" ".join(str(l.get(k)) for l in s["snapshot"]["listeners"] if l["pid"] == int(sys.argv[2]) for k in ("class", "unit", "cgroup")))
' "$OUT" "$main") || fail "status --json is not JSON"
	[[ $row == "managed ssh.service "*"name=systemd:/system.slice/ssh.service" ]] ||
		fail "status --json: ssh.service's sshd $main is '$row' (expected managed, ssh.service, its name=systemd line)"
	run_in "$GUARD_BIN" repair
	((RC == 0)) || fail "repair exited $RC: $(tail -n 5 <<<"$OUT")"
	[[ $(cexec systemctl show -p MainPID --value ssh.service) == "$main" && $(proc_start "$main") == "$start" ]] ||
		fail "the repair replaced ssh.service's sshd $main"
	assert_banner 127.0.0.1 ::1
}
