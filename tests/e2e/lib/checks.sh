# shellcheck shell=bash
# What scenarios do to a booted container and what they assert about it.
# Every assertion reads real state (dpkg-query, systemctl, ss, /proc, an
# SSH banner, a live SSH session) and fails with the state it found.

# shellcheck source=container.sh
. "$(dirname "${BASH_SOURCE[0]}")/container.sh"

GUARD=${GUARD:-on}
GUARD_BIN=/usr/sbin/ssh-upgrade-guard
CTL=/run/e2e-ssh-master.ctl

# --- the local apt repository ----------------------------------------------

# Re-index /srv/e2e-repo inside the container (Packages + a Release with
# Origin "e2e", which unattended-upgrades' Origins-Pattern can name).
repo_refresh() {
	csh 'cd /srv/e2e-repo &&
		apt-ftparchive packages . >Packages &&
		apt-ftparchive -o APT::FTPArchive::Release::Origin=e2e \
			-o APT::FTPArchive::Release::Label=e2e \
			-o APT::FTPArchive::Release::Suite=e2e release . >Release &&
		apt-get update -qq' >/dev/null 2>&1 || fail "cannot index the local apt repository"
}

# The guard's package from `make deb` (GUARD_DEB overrides).
guard_deb() {
	if [[ -n ${GUARD_DEB:-} ]]; then
		echo "$GUARD_DEB"
		return
	fi
	local d
	d=$(ls "$REPO_DIR"/target/debian/ssh-upgrade-guard_*_amd64.deb 2>/dev/null | sort -V | tail -n1)
	[[ -n $d ]] || return 1
	echo "$d"
}

# Put the guard's .deb into the local repository (not installed yet).
publish_guard() {
	local deb
	deb=$(guard_deb) || fail "no guard package in target/debian/: run \`make deb\` first"
	cp "$deb" "$C_ROOT/srv/e2e-repo/"
	repo_refresh
}

# install_guard: apt-get install the guard like an admin would. GUARD=off
# (the harness switch) leaves it out so a scenario shows the bare failure.
install_guard() {
	if [[ $GUARD == off ]]; then
		log "GUARD=off: the guard is NOT installed"
		return 0
	fi
	publish_guard
	apt_get install ssh-upgrade-guard
	((RC == 0)) || fail "apt-get install ssh-upgrade-guard exited $RC: $(tail -n 5 <<<"$OUT")"
	cexec test -x "$GUARD_BIN" || fail "$GUARD_BIN missing after install"
	# A package given from outside (make dist-check's trixie build) must be
	# the one really installed, not an equal-versioned make deb build.
	if [[ -n ${GUARD_DEB:-} ]]; then
		local want got
		want=$(dpkg-deb --fsys-tarfile "$GUARD_DEB" | tar -xOf - ./usr/sbin/ssh-upgrade-guard | sha256sum)
		got=$(sha256sum <"$C_ROOT$GUARD_BIN")
		[[ ${want%% *} == "${got%% *}" ]] || fail "the installed $GUARD_BIN is not the one in GUARD_DEB=$GUARD_DEB"
		log "installed the guard from GUARD_DEB=$GUARD_DEB"
	fi
}

# apt_get ARGS...: run apt-get in the container; sets OUT (stdout+stderr) and RC.
apt_get() {
	log "apt-get $*"
	OUT=$(cexec DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold "$@" 2>&1)
	RC=$?
	printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
	log "apt-get exit $RC"
}

# run_in CMD...: run CMD in the container; sets OUT and RC, logs both.
run_in() {
	log "\$ $*"
	OUT=$(cexec "$@" 2>&1)
	RC=$?
	printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
	log "exit $RC"
}

# --- the field's stale listener ---------------------------------------------

# make_stale_listener: an sshd listener systemd does not manage, started the
# way an admin's cron watchdog starts one: ssh looks dead (units stopped), the
# script runs /usr/sbin/sshd, which daemonizes. The transient unit's main
# process (the script) exits at once and, like cron.service
# (KillMode=process), its leftover daemon keeps running in the unit's cgroup:
# no unit has it as MainPID. (The script must not `exec` sshd: then sshd is
# the unit's main process and systemd keeps the unit active with the daemon
# as its MainPID, which is a managed sshd, not a stale one.)
# Sets STALE_PID and STALE_START (start time, to detect PID reuse).
make_stale_listener() {
	csh 'systemctl stop ssh.socket ssh.service' || fail "cannot stop ssh units"
	csh 'systemd-run --quiet --collect --unit=e2e-cron-watchdog -p KillMode=process \
		/bin/sh -c "mkdir -p /run/sshd && /usr/sbin/sshd"' || fail "cannot start the stale sshd"
	wait_until 10 "the stale sshd on :22" stale_listener_pid || fail "the stale sshd did not listen on :22"
	STALE_PID=$(stale_listener_pid)
	STALE_START=$(proc_start "$STALE_PID")
	wait_until 10 "the cron-like unit's script to end" \
		csh '! systemctl is-active -q e2e-cron-watchdog.service' ||
		fail "fixture: e2e-cron-watchdog.service still runs ($(cexec systemctl show -p MainPID,ActiveState e2e-cron-watchdog.service | tr '\n' ' '))"
	local main unit
	for unit in ssh.service e2e-cron-watchdog.service; do
		main=$(cexec systemctl show -p MainPID --value "$unit")
		[[ $main != "$STALE_PID" ]] || fail "fixture: the stale sshd is $unit's MainPID"
	done
	log "stale listener: pid $STALE_PID ($(cexec readlink "/proc/$STALE_PID/exe")), ssh.service MainPID=$(cexec systemctl show -p MainPID --value ssh.service)"
}

# stale_listener_pid: the pid of a non-pid-1 process listening on :22 for
# both 0.0.0.0 and [::].
stale_listener_pid() {
	local out v4 v6
	out=$(cexec ss -Hltnp 'sport = :22') || return 1
	v4=$(awk '$4 == "0.0.0.0:22"' <<<"$out" | grep -o 'pid=[0-9]*' | grep -vx 'pid=1' | head -n1)
	v6=$(awk '$4 == "[::]:22"' <<<"$out" | grep -o 'pid=[0-9]*' | grep -vx 'pid=1' | head -n1)
	[[ -n $v4 && $v4 == "$v6" ]] || return 1
	echo "${v4#pid=}"
}

proc_start() { cexec awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }

# --- an established SSH session -------------------------------------------

# open_session: key login as root to 127.0.0.1, kept as a ControlMaster.
open_session() {
	cexec ssh -fN -o ControlMaster=yes -o ControlPersist=yes -o "ControlPath=$CTL" \
		-o ConnectTimeout=10 root@127.0.0.1 >/dev/null 2>&1 ||
		fail "cannot open the SSH session to 127.0.0.1"
	assert_session "just opened"
}

# assert_session WHEN: the master is alive and a command runs over it.
assert_session() {
	local out
	cexec ssh -o "ControlPath=$CTL" -O check root@127.0.0.1 >/dev/null 2>&1 ||
		fail "SSH session ($1): ssh -O check says the master is gone"
	out=$(cexec timeout 15 ssh -o "ControlPath=$CTL" -o ControlMaster=no root@127.0.0.1 'echo session-ok' 2>&1)
	[[ $out == *session-ok* ]] || fail "SSH session ($1): command over the open session failed: $out"
}

# --- assertions ---------------------------------------------------------------

pkg_status() { cexec dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' '; }
pkg_version() { cexec dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }

assert_pkg_installed() {
	local st
	st=$(pkg_status "$1")
	[[ $st == ii ]] || fail "$1 is not fully installed: dpkg-query says '${st:-absent}' ($(cexec dpkg-query -W -f='${Status}' "$1" 2>&1))"
}

assert_unit_active() {
	local st
	st=$(cexec systemctl is-active "$1")
	[[ $st == active ]] ||
		fail "$1 is $st (Result=$(cexec systemctl show -p Result --value "$1")); $(cexec journalctl -q -n 3 -u "$1" --no-pager 2>&1 | tr '\n' ' ')"
}

# banner ADDR: the first bytes sshd sends on ADDR port 22.
banner() {
	cexec timeout 10 bash -c "exec 3<>/dev/tcp/$1/22 && head -c 8 <&3" 2>/dev/null
}

assert_banner() {
	local a b
	for a in "$@"; do
		b=$(banner "$a")
		[[ $b == SSH-2.0- ]] || fail "no SSH-2.0- banner on [$a]:22 (got '${b}'); listeners: $(listeners)"
	done
}

listeners() { cexec ss -Hltnp 'sport = :22' | awk '{ print $4, $6 }' | tr '\n' ';'; }

# assert_no_stale: no process on :22 runs a deleted binary, and the stale
# listener we made (pid + start time) is gone.
assert_no_stale() {
	local p exe
	for p in $(cexec ss -Hltnp 'sport = :22' | grep -o 'pid=[0-9]*' | sort -u); do
		p=${p#pid=}
		exe=$(cexec readlink "/proc/$p/exe" 2>/dev/null)
		[[ $exe != *'(deleted)'* ]] || fail "listener pid $p on :22 still runs a deleted binary: $exe"
	done
	if [[ -n ${STALE_PID:-} && $(proc_start "$STALE_PID") == "$STALE_START" ]]; then
		fail "the stale sshd (pid $STALE_PID, $(cexec readlink "/proc/$STALE_PID/exe")) is still running"
	fi
}

# assert_clean_socket_activated: the end state every socket-activated
# scenario wants.
assert_clean_socket_activated() {
	assert_pkg_installed openssh-server
	assert_unit_active ssh.socket
	assert_banner 127.0.0.1 ::1
	assert_no_stale
	local audit
	audit=$(cexec dpkg --audit 2>&1)
	[[ -z $audit ]] || fail "dpkg --audit is not empty: $audit"
}

# expect_in TEXT PATTERN WHAT: PATTERN (extended regex) must occur in TEXT.
expect_in() {
	grep -Eq -- "$2" <<<"$1" || fail "$3: no line matching /$2/"
}

# The next openssh-server version in the local repository.
next_ssh_version() { cexec apt-cache policy openssh-server | awk '/Candidate:/ { print $2 }'; }

# start_machine SUITE: boot, index the local repository, make the slow
# fixture package quick unless a scenario asks otherwise.
start_machine() {
	boot "$1"
	repo_refresh
	csh 'echo 0 >/run/e2e-slow-seconds'
}

# --- the guard's package (issue 3) ------------------------------------------

WATCHDOG_TIMER=ssh-upgrade-guard-watchdog.timer

# assert_hooks_live: on an apt run the guard's hooks work: the marker exists
# while dpkg runs a maintainer script (and `inhibited` says 0), is gone after,
# and apt exits 0.
assert_hooks_live() {
	csh 'echo 5 >/run/e2e-slow-seconds'
	cexec DEBIAN_FRONTEND=noninteractive apt-get -y install --reinstall e2e-slow >"$C_DIR/apt.out" 2>&1 &
	local apt_pid=$! rc=0 inh=0
	wait_until 60 "the slow postinst" cexec test -e /run/e2e-slow-started || fail "fixture: e2e-slow postinst never started"
	local during=absent
	cexec test -f /run/ssh-upgrade-guard/inhibit && during=present
	cexec "$GUARD_BIN" inhibited >/dev/null 2>&1 || inh=$?
	wait "$apt_pid" || rc=$?
	csh 'echo 0 >/run/e2e-slow-seconds'
	sed 's/^/    apt| /' "$C_DIR/apt.out" >&2
	((rc == 0)) || fail "apt-get exited $rc: $(grep -E '^(E:|W:)' "$C_DIR/apt.out" | head -n 3 | tr '\n' ' ')"
	[[ $during == present ]] || fail "no marker /run/ssh-upgrade-guard/inhibit while apt ran dpkg: the Pre-Invoke hook did not run"
	((inh == 0)) || fail "inhibited exited $inh while apt ran dpkg (expected 0)"
	! cexec test -e /run/ssh-upgrade-guard/inhibit || fail "the marker is still there after apt finished: the Post-Invoke hook did not release it"
}

assert_timer_active() {
	local a e
	a=$(cexec systemctl is-active "$WATCHDOG_TIMER")
	e=$(cexec systemctl is-enabled "$WATCHDOG_TIMER")
	[[ $a == active && $e == enabled ]] || fail "$WATCHDOG_TIMER is $a/$e (expected active/enabled)"
}

# publish_previous_guard: the current .deb repacked with a lower version, as
# the "previous build" an upgrade starts from. Prints that version.
publish_previous_guard() {
	local deb ver work
	deb=$(guard_deb) || fail "no guard package in target/debian/: run \`make deb\` first"
	ver=$(dpkg-deb -f "$deb" Version)
	work=$(mktemp -d "$C_DIR/prev.XXXXXX")
	dpkg-deb -R "$deb" "$work/pkg"
	sed -i "s/^Version: .*/Version: ${ver}~prev1/" "$work/pkg/DEBIAN/control"
	dpkg-deb -b "$work/pkg" "$C_ROOT/srv/e2e-repo/ssh-upgrade-guard_${ver}~prev1_amd64.deb" >/dev/null
	rm -rf "$work"
	echo "${ver}~prev1"
}

# file_list: every path on the container's root and /run, minus what apt,
# dpkg, logs and the test itself change anyway.
file_list() {
	cexec find / /run -xdev \( -path /proc -o -path /sys -o -path /dev \) -prune -o -print 2>/dev/null |
		grep -vE '^/(var/lib/dpkg|var/lib/apt|var/cache|var/log|tmp|var/tmp|run/systemd|run/user|run/lock|run/e2e|run/dbus|run/sshd|run/log|srv/e2e-repo|var/lib/systemd/deb-systemd-user-helper-enabled)(/|$)' |
		sort -u
}
