# shellcheck shell=bash
# Shared helpers for the end-to-end harness: logging, failing with a reason,
# waiting with a deadline. Sourced by every other file in tests/e2e.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Used by the files that source this one:
# shellcheck disable=SC2034
REPO_DIR=$(cd "$E2E_DIR/../.." && pwd)
# The rootfs cache lives outside the repository: it is big, root-owned and
# shared between clones.
E2E_CACHE=${E2E_CACHE:-/var/cache/ssh-upgrade-guard-e2e}
# Per-run state (overlay dirs, logs) is under /run so that a reboot never
# leaves half-torn-down overlays behind.
E2E_RUNDIR=${E2E_RUNDIR:-/run/ssh-upgrade-guard-e2e}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# fail REASON...: the scenario's verdict. The runner shows the last FAIL line.
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD until it succeeds.
wait_until() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "timed out after ${secs}s waiting for: $what"
			return 1
		fi
		sleep 0.2
	done
}
