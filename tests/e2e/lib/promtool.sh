# shellcheck shell=bash
# promtool, the Prometheus project's checker for the metrics text format and
# for alerting rules, as Debian ships it in its `prometheus` package. Only that
# one binary is taken out of the package (dpkg-deb, no install): no Prometheus
# server is installed or started. Cached next to the rootfs trees, one
# directory per package version.

# ensure_promtool: print the path of a cached promtool, fetching the package
# with `apt-get download` (the host's own apt sources) the first time.
ensure_promtool() {
	local ver dir tmp lockfd rc=0
	ver=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')
	if [[ -z $ver || $ver == '(none)' ]]; then
		log "promtool: no prometheus package in the host's apt lists (run apt-get update; .ci/run does)"
		return 1
	fi
	dir=$E2E_CACHE/promtool-${ver//[^A-Za-z0-9.+~-]/_}
	if [[ ! -x $dir/promtool ]]; then
		mkdir -p "$E2E_CACHE"
		# Parallel scenarios fetch it once.
		exec {lockfd}>"$E2E_CACHE/.lock-promtool"
		flock "$lockfd"
		if [[ ! -x $dir/promtool ]]; then
			tmp=$(mktemp -d "$E2E_CACHE/.promtool.XXXXXX")
			log "promtool: fetching Debian's prometheus $ver (for promtool only) into $dir"
			if (cd "$tmp" && apt-get download -q "prometheus=$ver" >"$tmp/download.log" 2>&1) &&
				dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -xf - -C "$tmp" ./usr/bin/promtool &&
				"$tmp/usr/bin/promtool" --version >/dev/null 2>&1; then
				mkdir -p "$dir" && mv "$tmp/usr/bin/promtool" "$dir/promtool"
			else
				tail -n 5 "$tmp/download.log" >&2 2>/dev/null
				log "promtool: could not get it from Debian's prometheus package"
				rc=1
			fi
			rm -rf "$tmp"
		fi
		exec {lockfd}>&-
	fi
	((rc == 0)) || return 1
	echo "$dir/promtool"
}
