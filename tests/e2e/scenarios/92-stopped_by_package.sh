# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 16 item 2 (FIELD-NOTES §10, first bullet): the silent outage. The
# admin keeps ssh.socket masked and stopped and runs ssh.service (enabled,
# active); deb-systemd-helper's state for ssh.socket is empty, so
# `was-enabled ssh.socket` still says yes. The pending openssh-server's
# preinst stops ssh.service on upgrade (as Ubuntu's 1:9.6p1-3ubuntu13.19
# does) and its postinst then restarts ssh.socket, which deb-systemd-invoke
# skips because it is masked: apt exits 0, openssh-server is installed, and
# nothing listens on :22 (GUARD=off shows it: the scenario fails there).
# With the guard, post-invoke brings ssh.service back, says what the
# package did, and the session survives.
SUITE=bookworm
TIMEOUT=240

# stopping_variant: the pending +noble2 package repacked (as make-noble-debs
# repacks) with a preinst that stops ssh.service on upgrade; the postinst's
# restart step (was-enabled ssh.socket -> restart ssh.socket) is kept. Done
# here, not in fixture/, so the cached rootfs (hashed over fixture/) stays.
stopping_variant() {
	local deb work
	deb=$(ls "$C_ROOT"/srv/e2e-repo/openssh-server_*+noble2_amd64.deb) || fail "fixture: no +noble2 openssh-server"
	work=$(mktemp -d "$C_DIR/variant.XXXXXX")
	dpkg-deb -R "$deb" "$work/pkg" || fail "fixture: cannot unpack $deb"
	grep -q 'deb-systemd-helper --quiet was-enabled ssh.socket' "$work/pkg/DEBIAN/postinst" ||
		fail "fixture: +noble2's postinst has no restart step for ssh.socket"
	sed -i '/^set -e$/a\
# e2e fixture: Ubuntu 1:9.6p1-3ubuntu13.19 stops ssh.service on upgrade.\
if [ "$1" = upgrade ] \&\& [ -d /run/systemd/system ]; then\
	deb-systemd-invoke stop ssh.service || true\
fi' "$work/pkg/DEBIAN/preinst"
	grep -q 'deb-systemd-invoke stop ssh.service' "$work/pkg/DEBIAN/preinst" || fail "fixture: the preinst stop was not added"
	# In the field the socket's empty state file is still empty when the
	# restart step asks was-enabled; debhelper 13.11's block for ssh.socket
	# would rewrite it first (update-state lists the [Install] links, which
	# a disabled socket lacks, so was-enabled would say no and the elif
	# would restart ssh.service). The variant leaves that block out.
	python3 - "$work/pkg/DEBIAN/postinst" <<-'PY' || fail "fixture: cannot drop the socket's debhelper block"
		import re, sys
		path = sys.argv[1]
		s = open(path).read()
		blocks = re.split(r'(?=# Automatically added by )', s)
		kept, dropped = [], 0
		for b in blocks:
		    if b.startswith('# Automatically added by dh_installsystemd') and "debian-installed 'ssh.socket'" in b:
		        b = b.split('# End automatically added section\n', 1)[1]
		        dropped += 1
		    kept.append(b)
		s = ''.join(kept)
		assert dropped == 1, 'no debhelper block for ssh.socket'
		assert 'deb-systemd-invoke restart ssh.socket' in s, 'the restart step went with it'
		open(path, 'w').write(s)
	PY
	sed 's/^/    preinst| /' "$work/pkg/DEBIAN/preinst" >&2
	dpkg-deb -Zxz -z1 -b "$work/pkg" "$deb" >/dev/null || fail "fixture: cannot repack $deb"
	rm -rf "$work"
	repo_refresh
}

run_scenario() {
	start_machine "$SUITE"
	stopping_variant
	# The admin's layout: ssh.socket masked and stopped, ssh.service enabled
	# and running; deb-systemd-helper's state for ssh.socket left empty.
	csh 'systemctl disable --now ssh.socket && systemctl mask ssh.socket &&
		systemctl enable --now ssh.service &&
		: >/var/lib/systemd/deb-systemd-helper-enabled/ssh.socket.dsh-also' >/dev/null 2>&1 ||
		fail "fixture: cannot mask ssh.socket and run ssh.service"
	[[ $(cexec systemctl show -p LoadState,ActiveState --value ssh.socket | tr '\n' ' ') == 'masked inactive ' ]] ||
		fail "fixture: ssh.socket is not masked and stopped"
	assert_unit_active ssh.service
	[[ $(cexec systemctl is-enabled ssh.service) == enabled ]] || fail "fixture: ssh.service is not enabled"
	csh 'DPKG_MAINTSCRIPT_PACKAGE=openssh-server DPKG_MAINTSCRIPT_NAME=postinst deb-systemd-helper --quiet was-enabled ssh.socket' ||
		fail "fixture: deb-systemd-helper was-enabled ssh.socket says no (the postinst would restart ssh.service instead)"
	assert_banner 127.0.0.1 ::1
	install_guard
	open_session
	local before main0
	before=$(pkg_version openssh-server)
	main0=$(cexec systemctl show -p MainPID --value ssh.service)

	apt_get upgrade
	((RC == 0)) || fail "apt-get upgrade exited $RC (the silent outage ends with apt's exit 0): $(grep -E '^(E:|dpkg: error)' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
	assert_pkg_installed openssh-server
	[[ $(pkg_version openssh-server) == *+noble2 && $(pkg_version openssh-server) != "$before" ]] ||
		fail "fixture: openssh-server is $(pkg_version openssh-server) after the upgrade (was $before)"
	expect_in "$OUT" 'ssh.socket is a disabled or a static unit not running, not starting it' "fixture: the postinst's restart of the masked ssh.socket (the field's line)"
	if [[ -z $(cexec ss -Hltn 'sport = :22') ]]; then
		fail "nothing listens on :22 after apt-get upgrade exited 0 with openssh-server installed: the package's preinst stopped ssh.service and its postinst restarted the masked ssh.socket (ssh.service is $(cexec systemctl is-active ssh.service)) - the silent outage"
	fi
	[[ $GUARD != off ]] || fail "GUARD=off: something listens on :22 after the upgrade though no guard ran: $(listeners)"
	assert_unit_active ssh.service
	[[ $(cexec systemctl show -p MainPID --value ssh.service) != "$main0" ]] ||
		fail "fixture: ssh.service kept its MainPID $main0: the preinst did not stop it"
	[[ $(cexec timeout 15 ssh-keyscan -T 5 -t ed25519 127.0.0.1 2>/dev/null | grep -c ' ssh-ed25519 ') -ge 1 ]] ||
		fail "no key exchange on 127.0.0.1:22 after the upgrade: $(listeners)"
	assert_banner 127.0.0.1 ::1
	expect_in "$OUT" "ssh served before this apt run \(ssh\.service\) and nothing serves now: the package's maintainer scripts stopped it" "post-invoke names what the package did"
	[[ $(cexec systemctl show -p LoadState --value ssh.socket) == masked ]] || fail "the guard unmasked ssh.socket"
	local audit
	audit=$(cexec dpkg --audit 2>&1)
	[[ -z $audit ]] || fail "dpkg --audit is not empty: $audit"
	assert_session "after the upgrade"
}
