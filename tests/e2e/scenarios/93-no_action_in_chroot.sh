# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 item 5: the guard acts only on the booted system. With the
# incident's stale listener on the booted container (which any acting hook
# would stop), each of these apt/dpkg runs leaves it alone and says so in
# one `not acting: ...` line per hook, exit 0:
#   - apt inside a chroot (an overlay of / with /proc, /dev and /run bound
#     in, as image builds and schroot do: systemd's /run/systemd/system is
#     visible there, only "/ is not PID 1's root" tells it apart), then
#     the same chroot without /run (an image build: no systemd to be seen);
#   - apt with `-o Debug::pkgDPkgPM=1` (dpkg's calls printed, not run);
#   - post-invoke under DPKG_ROOT=/x.
SUITE=bookworm
TIMEOUT=240

CH=/srv/chroot

assert_stale_untouched() {
	[[ $(proc_start "$STALE_PID") == "$STALE_START" ]] ||
		fail "$1: the stale listener (pid $STALE_PID) is gone: the guard acted on the booted system; listeners: $(listeners)"
	[[ $(stale_listener_pid) == "$STALE_PID" ]] || fail "$1: :22 is not held by the stale listener any more: $(listeners)"
	local st
	st=$(cexec systemctl is-active ssh.socket ssh.service | tr '\n' ' ')
	[[ $st == 'inactive inactive ' ]] || fail "$1: ssh units are '$st': the guard started one"
	! cexec test -e /run/ssh-upgrade-guard/inhibit || fail "$1: a marker sits in the booted system's /run/ssh-upgrade-guard"
}

# not_acting TEXT WHAT: one `not acting` line per hook and nothing else
# from the guard.
not_acting() {
	local n
	n=$(grep -c 'ssh-upgrade-guard: .*not acting: ' <<<"$1")
	((n == 2)) || fail "$2: $n 'not acting' lines from the hooks (expected 2, pre- and post-invoke): $(grep ssh-upgrade-guard <<<"$1" | tr '\n' ' ')"
	expect_in "$1" "ssh-upgrade-guard: .*pre-invoke: not acting: " "$2 (pre-invoke)"
	expect_in "$1" "ssh-upgrade-guard: .*post-invoke: not acting: " "$2 (post-invoke)"
	[[ $1 != *PROBLEM* && $1 != *stopped\ stale* ]] || fail "$2: the hooks diagnosed or repaired: $(grep ssh-upgrade-guard <<<"$1" | tr '\n' ' ')"
}

run_scenario() {
	start_machine "$SUITE"
	install_guard
	[[ $GUARD != off ]] || fail "GUARD=off: there is no guard to ask"
	make_stale_listener
	# The chroot: an overlay of the container's / (guard and openssh-server
	# installed, the hooks configured), its upper layer on a tmpfs.
	csh "mkdir -p $CH && mount -t tmpfs tmpfs $CH && mkdir $CH/upper $CH/work $CH/root &&
		mount -t overlay overlay -o lowerdir=/,upperdir=$CH/upper,workdir=$CH/work $CH/root &&
		mount -t proc proc $CH/root/proc && mount --rbind /dev $CH/root/dev &&
		mount --rbind /run $CH/root/run" || fail "fixture: cannot build the chroot"
	cexec chroot "$CH/root" test -x "$GUARD_BIN" || fail "fixture: no guard in the chroot"
	cexec chroot "$CH/root" test -d /run/systemd/system || fail "fixture: /run/systemd/system is not visible in the chroot"
	[[ $(cexec chroot "$CH/root" dpkg-query -W -f='${Status}' openssh-server) == 'install ok installed' ]] ||
		fail "fixture: openssh-server is not installed in the chroot"

	# 1. apt in the chroot, with dpkg really running there (the slow postinst
	#    holds it long enough to look for a marker in the booted /run).
	csh 'echo 3 >/run/e2e-slow-seconds'
	log "chroot $CH/root apt-get install --reinstall e2e-slow"
	cexec chroot "$CH/root" env DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0 \
		install --reinstall e2e-slow >"$C_DIR/apt.out" 2>&1 &
	local apt_pid=$! rc=0
	wait_until 60 "the slow postinst in the chroot" cexec test -e "$CH/root/run/e2e-slow-started" ||
		fail "fixture: e2e-slow's postinst never started in the chroot"
	assert_stale_untouched "while dpkg runs in the chroot"
	wait "$apt_pid" || rc=$?
	OUT=$(cat "$C_DIR/apt.out")
	sed 's/^/    chroot apt| /' <<<"$OUT" >&2
	((rc == 0)) || fail "apt-get in the chroot exited $rc"
	[[ $(cexec chroot "$CH/root" dpkg-query -W -f='${db:Status-Abbrev}' e2e-slow | tr -d ' ') == ii ]] ||
		fail "fixture: e2e-slow is not installed in the chroot"
	not_acting "$OUT" "apt in a chroot"
	expect_in "$OUT" "not acting: .*chroot" "apt in a chroot: the line names the chroot"
	assert_stale_untouched "after apt in the chroot"

	# 1b. The same chroot without the booted /run (an image build's
	#     debootstrap chroot): no systemd to be seen there at all.
	csh "umount -R $CH/root/run" || fail "fixture: cannot unmount the chroot's /run"
	cexec chroot "$CH/root" test ! -e /run/systemd/system || fail "fixture: /run/systemd/system still visible in the chroot"
	csh "echo 0 >$CH/root/run/e2e-slow-seconds"
	run_in chroot "$CH/root" env DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0 install --reinstall e2e-slow
	((RC == 0)) || fail "apt-get in the chroot without /run exited $RC"
	not_acting "$OUT" "apt in a chroot without /run"
	expect_in "$OUT" "not acting: systemd is not running as PID 1 here" "apt in a chroot without /run: the line says why"
	assert_stale_untouched "after apt in the chroot without /run"
	csh "umount -R $CH/root && umount $CH" || fail "fixture: cannot take the chroot down"
	csh 'echo 0 >/run/e2e-slow-seconds'

	# 2. apt on the booted system with Debug::pkgDPkgPM=1: dpkg never runs.
	apt_get -o Debug::pkgDPkgPM=1 install --reinstall e2e-slow
	((RC == 0)) || fail "apt-get -o Debug::pkgDPkgPM=1 exited $RC"
	not_acting "$OUT" "apt -o Debug::pkgDPkgPM=1"
	expect_in "$OUT" "not acting: .*Debug::pkgDPkgPM" "apt -o Debug::pkgDPkgPM=1: the line names the option"
	assert_stale_untouched "after apt -o Debug::pkgDPkgPM=1"

	# 3. post-invoke under DPKG_ROOT (dpkg --root's environment).
	run_in env DPKG_ROOT=/x "$GUARD_BIN" post-invoke
	((RC == 0)) || fail "DPKG_ROOT=/x post-invoke exited $RC"
	expect_in "$OUT" "post-invoke: not acting: DPKG_ROOT is /x" "DPKG_ROOT=/x post-invoke"
	assert_stale_untouched "after DPKG_ROOT=/x post-invoke"

	# The stale listener was never safe from the guard: the booted system's
	# own apt run repairs it, so the runs above did not act by choice.
	apt_get install --reinstall e2e-slow
	((RC == 0)) || fail "apt-get on the booted system exited $RC"
	assert_clean_socket_activated
}
