# shellcheck shell=bash
# The cached root filesystems the scenarios boot: one minimal Debian per
# suite, with the noble-style openssh-server fixture already installed and a
# local apt repository holding the next fixture version. Built once, reused
# read-only as the lower layer of every scenario's overlay.
#
# The directory name carries a hash of this recipe (this file and
# tests/e2e/fixture/), so a changed recipe builds a new rootfs instead of
# reusing a stale one. A build happens in a temporary directory that is only
# renamed into place when it is complete: an interrupted build is never used.

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# needrestart: Ubuntu servers have it, and its 99needrestart Post-Invoke hook
# runs after ours (FIELD-NOTES §7). lsof, time: used by benches/run.
# prometheus-node-exporter: fleets scrape the guard's metrics through its
# textfile collector; python3-apt: Ansible's apt module, which the
# fleet_metrics scenario uses to roll the guard out (issue 6). autopkgtest:
# `make autopkgtest` runs the package's DEP-8 tests with its null runner
# inside a booted container (tests/autopkgtest/run), which has no network;
# dpkg-dev: autopkgtest needs it for a test source tree.
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,openssh-server,openssh-client,iproute2,procps,apt-utils,cron,cron-apt,unattended-upgrades,python3,needrestart,lsof,time,prometheus-node-exporter,python3-apt,autopkgtest,dpkg-dev

# The Debian archive this machine already uses, read from its apt sources at
# run time (no mirror host is written anywhere in the repository). E2E_MIRROR
# overrides it.
host_mirror() {
	if [[ -n ${E2E_MIRROR:-} ]]; then
		echo "$E2E_MIRROR"
		return
	fi
	local codename uri
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	# deb822 .sources: the stanza whose Suites has the host's own codename.
	uri=$(awk -v want="$codename" '
		BEGIN { RS = ""; FS = "\n" }
		{
			uris = ""; suites = ""; types = ""; enabled = "yes"
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^[ \t]*#/) continue
				split($i, kv, ":[ \t]*")
				key = tolower(kv[1]); val = substr($i, length(kv[1]) + 2)
				sub(/^[ \t]+/, "", val)
				if (key == "uris") uris = val
				else if (key == "suites") suites = " " val " "
				else if (key == "types") types = " " val " "
				else if (key == "enabled") enabled = tolower(val)
			}
			if (enabled != "no" && types ~ / deb / && suites ~ (" " want " ")) {
				split(uris, u, /[ \t]+/); print u[1]; exit
			}
		}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	if [[ -z $uri ]]; then
		# One-line format: deb [opts] URI SUITE COMPONENTS...
		uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			sed -E 's/\[[^]]*\]//' |
			awk -v want="$codename" '$1 == "deb" && $3 == want { print $2; exit }')
	fi
	[[ -n $uri ]] || {
		log "no Debian archive for suite '$codename' in the host's apt sources; set E2E_MIRROR"
		return 1
	}
	echo "$uri"
}

rootfs_recipe_hash() {
	local suite=$1
	{
		echo "$suite $ROOTFS_PACKAGES"
		# Comment lines do not change what gets built.
		grep -hv '^[[:space:]]*#' "$E2E_DIR/lib/rootfs.sh" "$E2E_DIR/fixture/"*
	} | sha256sum | cut -c1-12
}

# rootfs_dir SUITE: where the cached rootfs for SUITE is (or will be).
rootfs_dir() {
	echo "$E2E_CACHE/$1-$(rootfs_recipe_hash "$1")"
}

# ensure_rootfs SUITE: print the cached rootfs directory, building it first
# if needed. Layout: DIR/rootfs (the tree), DIR/debs (fixture packages).
ensure_rootfs() {
	local suite=$1 dir
	dir=$(rootfs_dir "$suite")
	mkdir -p "$E2E_CACHE"
	if [[ ! -e $dir/complete ]]; then
		# Two runners in parallel must not build the same suite twice.
		exec {lockfd}>"$E2E_CACHE/.lock-$suite"
		flock "$lockfd"
		if [[ ! -e $dir/complete ]]; then
			build_rootfs "$suite" "$dir" >&2 || {
				exec {lockfd}>&-
				return 1
			}
		fi
		exec {lockfd}>&-
	fi
	echo "$dir"
}

build_rootfs() (
	set -euo pipefail
	local suite=$1 dest=$2 mirror tmp t0=$SECONDS
	mirror=$(host_mirror)
	tmp=$(mktemp -d "$E2E_CACHE/.build-$suite.XXXXXX")
	# Whatever happens, leave no mount and no half-built tree behind.
	# (set -e applies inside the trap too: nothing in it may fail.)
	trap 'umount -R "$tmp/rootfs/proc" 2>/dev/null || true; rm -rf "$tmp" || true' EXIT
	log "building $suite rootfs from $mirror into $dest (once; cached)"
	debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" \
		"$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
		tail -n 30 "$tmp/debootstrap.log" >&2
		log "debootstrap $suite failed"
		exit 1
	}
	local r=$tmp/rootfs
	mkdir -p "$tmp/debs"
	# debootstrap leaves the .debs it installed in the target's apt cache:
	# the real openssh-server package of this suite is the fixture's source.
	local orig
	orig=$(ls "$r"/var/cache/apt/archives/openssh-server_*.deb)
	"$E2E_DIR/fixture/make-noble-debs" "$orig" "$tmp/debs"
	# The archive's own package too, into the local repository (below the
	# fixture's versions, so no upgrade picks it): the DEP-8 seed-incident
	# test repacks it as a real testbed would (debian/tests/seed-incident).
	mkdir -p "$tmp/orig"
	cp "$orig" "$tmp/orig/"
	"$E2E_DIR/fixture/make-sleeper-deb" "$tmp/debs"

	mount -t proc proc "$r/proc"
	cp "$tmp"/debs/openssh-server_*noble1_*.deb "$r/tmp/"
	# The noble layout: ssh.socket enabled, ssh.service disabled (noble's
	# default since 22.10), recorded in deb-systemd-helper's state the way
	# the package itself would.
	chroot "$r" sh -ec '
		dpkg -i /tmp/openssh-server_*.deb
		rm -f /tmp/openssh-server_*.deb
		# deb-systemd-helper only acts for a maintainer script.
		export DPKG_MAINTSCRIPT_PACKAGE=openssh-server DPKG_MAINTSCRIPT_NAME=postinst
		deb-systemd-helper disable ssh.service
		deb-systemd-helper enable ssh.socket
		unset DPKG_MAINTSCRIPT_PACKAGE DPKG_MAINTSCRIPT_NAME
		# Newer deb-systemd-helper only records the state outside a booted
		# system; systemctl makes the links.
		systemctl disable ssh.service
		systemctl enable ssh.socket
		# Runs at boot as on a monitored server; enabled explicitly for the
		# same reason as ssh.socket above.
		systemctl enable prometheus-node-exporter.service
		test -L /etc/systemd/system/sockets.target.wants/ssh.socket
		test -L /etc/systemd/system/ssh.service.requires/ssh.socket
		! test -e /etc/systemd/system/multi-user.target.wants/ssh.service
		# No unit may start apt/dpkg behind a scenario'"'"'s back.
		for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
			man-db.timer e2scrub_all.timer fstrim.timer logrotate.timer; do
			systemctl mask "$u"
		done
		rm -f /etc/cron.d/cron-apt
		apt-get clean
		rm -rf /var/lib/apt/lists/*
	' >"$tmp/chroot.log" 2>&1 || {
		cat "$tmp/chroot.log" >&2
		exit 1
	}
	umount "$r/proc"

	# Key login for root, used by the SSH session that must survive repairs.
	install -d -m 700 "$r/root/.ssh"
	ssh-keygen -q -t ed25519 -N '' -C e2e -f "$r/root/.ssh/id_ed25519"
	cp "$r/root/.ssh/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
	printf '%s\n' 'Host *' '  StrictHostKeyChecking no' '  UserKnownHostsFile /dev/null' \
		'  LogLevel ERROR' '  BatchMode yes' >"$r/root/.ssh/config"

	# Only the local repository: the container has no network.
	rm -f "$r/etc/apt/sources.list"
	echo 'deb [trusted=yes] file:/srv/e2e-repo ./' >"$r/etc/apt/sources.list.d/e2e-local.list"
	mkdir -p "$r/srv/e2e-repo"
	cp "$tmp"/debs/*.deb "$tmp"/orig/*.deb "$r/srv/e2e-repo/"
	echo e2e >"$r/etc/hostname"
	: >"$r/etc/machine-id"

	touch "$tmp/complete"
	# A leftover without "complete" is an interrupted older build.
	rm -rf "$dest"
	mv -T "$tmp" "$dest"
	# Rootfs trees of older recipes are dead weight (a few hundred MB each).
	local old
	# One still mounted as an overlay's lower layer belongs to a run in progress.
	for old in "$E2E_CACHE/$suite"-*; do
		[[ $old == "$dest" || ! -d $old ]] && continue
		grep -qF "lowerdir=$old/rootfs" /proc/self/mountinfo || rm -rf "$old"
	done
	log "$suite rootfs ready in $((SECONDS - t0))s"
)
