# shellcheck shell=bash disable=SC2034  # GUARD, SLEEPER, OUT, RC: read by the tests
# Shared by the DEP-8 tests in this directory (sourced, not a test itself).
# stderr goes to stdout: a test fails on its exit status and says why on
# stdout, so no test needs allow-stderr.
set -euo pipefail
exec 2>&1
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
GUARD=/usr/sbin/ssh-upgrade-guard
# The source tree (autopkgtest runs each test from its top).
SRC=$(pwd)
WORK=$(mktemp -d "${AUTOPKGTEST_TMP:-/var/tmp}/sug.XXXXXX")

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*"
	exit 1
}
# wait_until SECONDS WHAT CMD...: poll CMD until it succeeds.
wait_until() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || {
			say "gave up after ${secs}s waiting for $what"
			return 1
		}
		sleep 0.2
	done
}
# apt_get ARGS...: run apt-get, show its output, leave its exit status in RC.
apt_get() {
	say "apt-get $*"
	set +e
	OUT=$(apt-get -y -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold "$@" 2>&1)
	RC=$?
	set -e
	printf '%s\n' "$OUT" | sed 's/^/    | /'
	say "apt-get exit $RC"
}
pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' '; }
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }
# banner HOST: the first 8 bytes ssh sends on HOST:22.
banner() { timeout 5 bash -c "exec 3<>/dev/tcp/$1/22 && head -c 8 <&3" 2>/dev/null; }
assert_serves() { # HOST...: an SSH-2.0 banner, then a key exchange with a host key
	local h line
	for h in "$@"; do
		wait_until 20 "ssh's banner on $h" bash -c "[[ \$(timeout 5 bash -c 'exec 3<>/dev/tcp/$h/22 && head -c 8 <&3') == SSH-2.0- ]]" ||
			fail "no SSH-2.0 banner on $h:22 (got '$(banner "$h" | tr -cd '[:print:]')')"
		line=$(ssh-keyscan -T 5 -t ed25519 "$h" 2>/dev/null | head -n1)
		[[ -n $line ]] || fail "no key exchange on $h:22"
		grep -qF "$(awk '{ print $2 }' <<<"$line")" /etc/ssh/ssh_host_ed25519_key.pub ||
			fail "$h:22 serves an ed25519 key that is not /etc/ssh/ssh_host_ed25519_key.pub"
		say "ssh serves on $h:22 (banner and key exchange with the host's ed25519 key)"
	done
}
# The addresses to check: IPv6 loopback only where the testbed has it.
loopbacks() {
	echo 127.0.0.1
	if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1'; then echo ::1; fi
}
# ssh_listener_pids: pids of processes listening on :22.
ssh_listener_pids() { ss -Hltnp 'sport = :22' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
# A tiny package whose postinst sleeps /run/e2e-slow-seconds seconds.
make_sleeper() {
	"$SRC/tests/e2e/fixture/make-sleeper-deb" "$WORK"
	SLEEPER=$WORK/e2e-slow_1_all.deb
}
# A background apt run a failed test leaves is waited for (bounded), so the
# next test finds dpkg idle.
BG_PID=''
cleanup() {
	if [[ -n $BG_PID ]] && kill -0 "$BG_PID" 2>/dev/null; then
		timeout 120 tail --pid="$BG_PID" -f /dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
