# shellcheck shell=bash
# One booted Debian per scenario: a fresh overlay over the cached rootfs,
# systemd as PID 1 under systemd-nspawn (private network: port 22 inside never
# touches the host), commands run inside with nsenter. Everything is torn down
# by container_teardown, which the scenario runner installs as an EXIT trap:
# no mount, process or directory is left behind, also on failure or signal.

# shellcheck source=rootfs.sh
. "$(dirname "${BASH_SOURCE[0]}")/rootfs.sh"

C_DIR='' C_NSPAWN='' C_LEADER='' C_ROOT=''

# boot SUITE: start the container and wait until its systemd is up.
boot() {
	local suite=${1:-bookworm} lower t0=$SECONDS
	lower=$(ensure_rootfs "$suite") || fail "no $suite rootfs (see the build log above)"
	mkdir -p "$E2E_RUNDIR"
	C_DIR=$(mktemp -d "$E2E_RUNDIR/c.XXXXXX")
	proc_ident "$BASHPID" >"$C_DIR/owner"
	mkdir "$C_DIR/upper" "$C_DIR/work" "$C_DIR/root"
	mount -t overlay overlay \
		-o "lowerdir=$lower/rootfs,upperdir=$C_DIR/upper,workdir=$C_DIR/work" "$C_DIR/root" ||
		fail "cannot mount the overlay on $C_DIR/root"
	C_ROOT=$C_DIR/root
	# No machine registration and --keep-unit: both would ask the host's
	# systemd over D-Bus for a scope, and these hosts have no systemd.
	# --keep-unit puts the container at <nspawn's cgroup>/payload: started
	# from a cgroup of its own (own_cgroup), so that two containers (JOBS=2,
	# or one a killed run left) never share their units' cgroups.
	(
		own_cgroup "$C_DIR"
		exec systemd-nspawn -D "$C_ROOT" --register=no --keep-unit --private-network -b --console=pipe \
			-M "e2e-${C_DIR##*.}"
	) </dev/null >"$C_DIR/console.log" 2>&1 &
	C_NSPAWN=$!
	echo "$C_NSPAWN" >"$C_DIR/nspawn.pid"
	wait_until 30 "the container's init" find_leader ||
		fail "container did not start: $(tail -n 5 "$C_DIR/console.log")"
	C_LEADER=$(find_leader)
	echo "$C_LEADER" >"$C_DIR/leader.pid"
	# systemctl needs PID 1's private socket, which appears a moment after exec.
	wait_until 30 "the container's systemd control socket" cexec test -S /run/systemd/private ||
		fail "container systemd has no control socket: $(tail -n 5 "$C_DIR/console.log")"
	local state
	state=$(timeout 60 nsenter -t "$C_LEADER" -a -- systemctl is-system-running --wait 2>&1)
	case $state in
	running | degraded) ;;
	*) fail "container systemd did not come up (state: ${state:-none}): $(cexec systemctl --failed --no-legend 2>&1 | head -n 5)" ;;
	esac
	log "booted $suite in $((SECONDS - t0))s (systemd: $state)"
}

# The cgroup hierarchies systemd tracks units in, as mounted on this host:
# the unified one alone (cgroup v2), or name=systemd (and, on a hybrid host,
# the unified one beside it). One "MOUNTPOINT HIERARCHY-ID" line each.
unit_hierarchies() {
	if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
		echo "/sys/fs/cgroup 0"
		return
	fi
	local id
	id=$(awk -F: '$2 == "name=systemd" { print $1 }' /proc/self/cgroup)
	[[ -z $id || ! -d /sys/fs/cgroup/systemd ]] || echo "/sys/fs/cgroup/systemd $id"
	[[ $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) != cgroup2fs ]] || echo "/sys/fs/cgroup/unified 0"
}

# own_cgroup DIR: moves this shell into a new child of its cgroup in each
# of those hierarchies (named after DIR's container), recorded in
# DIR/cgroups for teardown_dir. A child of its own cgroup, not of the
# root: whoever runs the tests keeps accounting for them.
own_cgroup() {
	local dir=$1 mnt id cur cg
	: >"$dir/cgroups"
	while read -r mnt id; do
		cur=$(awk -F: -v id="$id" '$1 == id { print $3 }' /proc/self/cgroup)
		cg=$mnt${cur%/}/ssh-upgrade-guard-e2e-${dir##*.}
		# Best effort: where the hierarchy cannot be written the container
		# boots where the runner is, as it did before.
		{ mkdir -p "$cg" && echo "$cg" >>"$dir/cgroups" && echo "$BASHPID" >"$cg/cgroup.procs"; } 2>/dev/null ||
			echo "e2e: cannot move into a cgroup of its own ($cg): the container shares the runner's" >&2
	done < <(unit_hierarchies)
}

# cgroup_story PID: PID's /proc/PID/cgroup lines in the container, beside
# PID 1's and the runner's, for a failure about who owns a process.
cgroup_story() {
	local pid=$1
	printf 'cgroup of %s: %s; of PID 1: %s; runner: %s' "$pid" \
		"$(cexec cat "/proc/$pid/cgroup" 2>&1 | grep -E ':(name=systemd)?:' | tr '\n' ' ')" \
		"$(cexec cat /proc/1/cgroup 2>&1 | grep -E ':(name=systemd)?:' | tr '\n' ' ')" \
		"$(grep -E ':(name=systemd)?:' /proc/self/cgroup | tr '\n' ' ')"
}

# The container's PID 1: the process below nspawn whose innermost pid is 1.
find_leader() {
	local p
	for p in $(pgrep -P "$C_NSPAWN") $(for q in $(pgrep -P "$C_NSPAWN"); do pgrep -P "$q"; done); do
		if awk '/^NSpid:/ { exit !($NF == 1 && NF > 2) }' "/proc/$p/status" 2>/dev/null &&
			[[ $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# cexec CMD...: run CMD inside the container, as root, in a clean environment.
cexec() {
	nsenter -t "$C_LEADER" -a -- /usr/bin/env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# csh SCRIPT: run a shell snippet inside the container.
csh() { cexec /bin/bash -c "$1"; }

container_teardown() {
	[[ -n $C_DIR ]] || return 0
	teardown_dir "$C_DIR"
	C_DIR=''
}

# teardown_dir DIR: stop whatever DIR's container left running and remove it.
# Also used by the runner to clean up after a runner that was SIGKILLed.
teardown_dir() {
	local dir=$1 leader nspawn
	leader=$(cat "$dir/leader.pid" 2>/dev/null || true)
	nspawn=$(cat "$dir/nspawn.pid" 2>/dev/null || true)
	# Killing the container's PID 1 kills its whole PID namespace; nspawn
	# then cleans up its own mounts and exits. The overlay is thrown away, so
	# a clean poweroff would only cost time.
	if [[ -n $leader && $(cat "/proc/$leader/comm" 2>/dev/null) == systemd ]]; then
		kill -KILL "$leader" 2>/dev/null || true
	fi
	if [[ -n $nspawn ]]; then
		local i
		for ((i = 0; i < 100; i++)); do
			[[ $(cat "/proc/$nspawn/comm" 2>/dev/null) == systemd-nspawn ]] || break
			sleep 0.1
		done
		if [[ $(cat "/proc/$nspawn/comm" 2>/dev/null) == systemd-nspawn ]]; then
			kill -KILL "$nspawn" 2>/dev/null || true
		fi
		wait "$nspawn" 2>/dev/null || true
	fi
	if mountpoint -q "$dir/root"; then
		umount "$dir/root" 2>/dev/null || umount -l "$dir/root"
	fi
	# The container's cgroups, deepest first (empty once its processes are
	# gone; a v1 hierarchy keeps them otherwise).
	local cg
	while read -r cg; do
		[[ $cg == /sys/fs/cgroup/* && -d $cg ]] || continue
		find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done <"$dir/cgroups" 2>/dev/null
	rm -rf "$dir"
}

# proc_ident PID: "PID STARTTIME" of a live (non-zombie) host process.
proc_ident() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	set -- "$1" $st
	[[ $2 != Z && $2 != X ]] || return 1
	echo "$1 ${21}"
}

# Remove what runners killed with SIGKILL left behind: their owner (pid and
# start time) is gone or a zombie (a host without a real init may not reap).
reap_orphans() {
	local d owner
	for d in "$E2E_RUNDIR"/c.*; do
		[[ -d $d ]] || continue
		owner=$(cat "$d/owner" 2>/dev/null || true)
		if [[ -z $owner || $(proc_ident "${owner%% *}") != "$owner" ]]; then
			log "cleaning up after an interrupted run: $d"
			teardown_dir "$d"
		fi
	done
}
