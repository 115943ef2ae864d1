# shellcheck shell=bash disable=SC2034  # SUITE, TIMEOUT: read by the runner
# Issue 6: fleet visibility, and the examples of docs/fleet.md (the README
# links it; ssh-upgrade-guard-fleet(7) is made from it), run.
# The guard is rolled out with docs/fleet.md's Ansible playbook (over ssh into the
# container). The seed incident (stale listener, then `apt-get upgrade`) is
# then seen the ways a fleet sees it: `check` says CRITICAL (2) before and OK
# (0) after, node-problem-detector's plugin (docs/fleet.md's JSON rule, run as
# NPD would) 1 then 0, and Debian's prometheus-node-exporter, scraped on
# :9100, exports the repair and the healthy end state from the guard's
# textfile. promtool (from Debian's prometheus package) checks our metrics
# file and docs/fleet.md's alert rules, and unit-tests those rules.
SUITE=${SUITE:-bookworm}
TIMEOUT=300

# shellcheck source=../lib/promtool.sh
. "$E2E_DIR/lib/promtool.sh"

EXAMPLES=$REPO_DIR/examples
PLAYBOOK=$EXAMPLES/ansible/ssh-upgrade-guard.yml
RULES=$EXAMPLES/prometheus/ssh-upgrade-guard.rules.yml
RULES_TEST=$EXAMPLES/prometheus/ssh-upgrade-guard.rules.test.yml
NPD_CONFIG=$EXAMPLES/node-problem-detector/ssh-upgrade-guard.json
FLEET_DOC=$REPO_DIR/docs/fleet.md
PROM_FILE=/var/lib/prometheus/node-exporter/ssh_upgrade_guard.prom

# host_run CMD...: run CMD on the host; sets OUT and RC, logs both.
host_run() {
	log "host\$ $*"
	OUT=$("$@" 2>&1)
	RC=$?
	printf '%s\n' "$OUT" | sed 's/^/    | /' >&2
	log "exit $RC"
}

# The examples docs/fleet.md shows are the files checked here, verbatim, and
# each passes its tool's check.
check_examples() {
	local f
	# docs/fleet.md (also ssh-upgrade-guard-fleet(7), generated from it)
	# shows each example verbatim, and the README links to it.
	grep -q '(docs/fleet.md)' "$REPO_DIR/README.md" || fail "README.md does not link docs/fleet.md"
	for f in "$PLAYBOOK" "$RULES" "$NPD_CONFIG"; do
		python3 - "$FLEET_DOC" "$f" <<-'EOF' || fail "docs/fleet.md does not show ${f#"$REPO_DIR"/} verbatim"
			import sys
			sys.exit(0 if open(sys.argv[2]).read().strip() in open(sys.argv[1]).read() else 1)
		EOF
	done
	PROMTOOL=$(ensure_promtool) || fail "no promtool (Debian's prometheus package, fetched with apt-get download)"
	host_run "$PROMTOOL" check rules "$RULES"
	((RC == 0)) || fail "promtool check rules ${RULES#"$REPO_DIR"/} exited $RC: $OUT"
	# promtool resolves rule_files relative to the working directory.
	# shellcheck disable=SC2016  # expanded by the inner bash
	host_run bash -c 'cd "$(dirname "$2")" && "$1" test rules "$(basename "$2")"' - "$PROMTOOL" "$RULES_TEST"
	((RC == 0)) || fail "promtool test rules ${RULES_TEST#"$REPO_DIR"/} exited $RC: $(tr '\n' ' ' <<<"$OUT")"
	command -v ansible-playbook >/dev/null ||
		fail "ansible-playbook not found on the host: apt-get install ansible-core (.ci/run does)"
	host_run ansible-playbook --syntax-check -i e2e, "$PLAYBOOK"
	((RC == 0)) || fail "ansible-playbook --syntax-check ${PLAYBOOK#"$REPO_DIR"/} exited $RC: $OUT"
	# What node-problem-detector's custom plugin monitor checks when it loads
	# a config (pkg/custompluginmonitor/types/config.go: Validate), except
	# that the plugin exists, which is checked in the container.
	host_run python3 - "$NPD_CONFIG" <<-'EOF'
		import json, re, sys
		c = json.load(open(sys.argv[1]))
		def secs(d):
		    m = re.fullmatch(r"(\d+)(s|m|h)", d)
		    assert m, f"duration {d!r}"
		    return int(m[1]) * {"s": 1, "m": 60, "h": 3600}[m[2]]
		assert c["plugin"] == "custom", "plugin must be custom"
		g = c["pluginConfig"]
		secs(g["invoke_interval"])
		conds = {x["type"] for x in c["conditions"]}
		for r in c["rules"]:
		    assert r["type"] in ("permanent", "temporary"), r["type"]
		    assert secs(r["timeout"]) <= secs(g["timeout"]), "rule timeout above the global one"
		    assert r["type"] != "permanent" or r["condition"] in conds, "permanent rule without default condition"
		    print(r["path"], *r["args"])
	EOF
	((RC == 0)) || fail "the node-problem-detector config would not load: $OUT"
	read -ra NPD_PLUGIN <<<"$OUT"
}

# npd_plugin: run the plugin of docs/fleet.md's node-problem-detector rule as
# NPD would (path, args; exit 0 OK, 1 problem, 2 unknown).
npd_plugin() {
	cexec test -x "${NPD_PLUGIN[0]}" || fail "the NPD rule's path ${NPD_PLUGIN[0]} does not exist in the container"
	run_in "${NPD_PLUGIN[@]}"
}

# rollout: docs/fleet.md's playbook against the container. Ansible reaches it
# over ssh like any host: the "network" is the container's sshd in inetd mode
# (sshd -i, as OpenSSH's own regression tests connect), entered with nsenter;
# it needs sshd's privilege separation directory, which only a started
# ssh.service creates.
rollout() {
	local a=$C_DIR/ansible
	mkdir -p "$a/tmp"
	cat >"$a/ssh_config" <<-EOF
		Host e2e
		  HostName e2e
		  User root
		  IdentityFile $C_ROOT/root/.ssh/id_ed25519
		  IdentitiesOnly yes
		  ProxyCommand nsenter -t $C_LEADER -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c 'mkdir -p /run/sshd && exec /usr/sbin/sshd -i'
		  StrictHostKeyChecking no
		  UserKnownHostsFile /dev/null
		  LogLevel ERROR
		  BatchMode yes
	EOF
	: >"$a/ansible.cfg"
	# No ControlPersist: no ssh master may outlive the playbook.
	host_run env ANSIBLE_CONFIG="$a/ansible.cfg" ANSIBLE_HOME="$a" ANSIBLE_LOCAL_TEMP="$a/tmp" \
		ANSIBLE_SSH_ARGS="-F $a/ssh_config -o ControlMaster=no" ANSIBLE_NOCOLOR=1 \
		ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
		ansible-playbook -i e2e, "$PLAYBOOK" -e "guard_deb=$1"
}

# scrape: node_exporter's /metrics, fetched inside the container.
scrape() {
	cexec python3 -c 'import urllib.request, sys
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9100/metrics", timeout=10).read().decode())'
}

# sample TEXT NAME{LABELS}: the value of that sample in a scrape.
sample() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }

# expect_sample TEXT NAME{LABELS} AWK-CONDITION(v): the sample exists and
# its value meets the condition.
expect_sample() {
	local v
	v=$(sample "$1" "$2")
	[[ -n $v ]] || fail "no $2 in node_exporter's scrape; ours: $(grep '^ssh_upgrade_guard_' <<<"$1" | tr '\n' ' ')"
	awk -v v="$v" "BEGIN { v += 0; exit !($3) }" || fail "$2 is $v in node_exporter's scrape, expected $3"
}

run_scenario() {
	check_examples
	start_machine "$SUITE"
	assert_unit_active prometheus-node-exporter.service
	wait_until 30 "node_exporter on 127.0.0.1:9100" scrape || fail "node_exporter does not answer on 127.0.0.1:9100"
	# Debian's default: the textfile collector reads the directory the guard
	# writes to (no ARGS needed).
	csh 'ps -o args= -C prometheus-node-exporter' | grep -q -- '--collector.textfile.directory' &&
		log "note: node_exporter runs with an explicit textfile directory"

	if [[ $GUARD == off ]]; then
		log "GUARD=off: the guard is NOT rolled out"
	else
		local deb
		deb=$(guard_deb) || fail "no guard package in target/debian/: run \`make deb\` first"
		rollout "$deb"
		((RC == 0)) || fail "ansible-playbook (docs/fleet.md's rollout) exited $RC: $(grep -E 'fatal|FAILED|ERROR' <<<"$OUT" | head -n 3 | tr '\n' ' ')"
		assert_pkg_installed ssh-upgrade-guard
		assert_timer_active
		rollout "$deb"
		((RC == 0)) || fail "second ansible-playbook run exited $RC"
		grep -Eq 'e2e +: ok=[0-9]+ +changed=0 .*failed=0' <<<"$OUT" ||
			fail "the rollout is not idempotent: $(grep -E '^e2e +:' <<<"$OUT")"
	fi

	make_stale_listener
	open_session
	# The broken machine, before any apt run: monitoring must see it.
	if [[ $GUARD == off ]]; then
		log "GUARD=off: no ssh-upgrade-guard to run check with"
	else
		run_in "$GUARD_BIN" check
		((RC == 2)) || fail "check on the broken machine exited $RC, expected 2 (CRITICAL): $OUT"
		[[ $OUT == 'SSH-UPGRADE-GUARD CRITICAL - '*'| package_ok=1 ssh_up=0 stale_listeners=1 inhibited=0' ]] ||
			fail "check's line on the broken machine: $OUT"
		npd_plugin
		((RC == 1)) || fail "check --npd (the NPD rule) on the broken machine exited $RC, expected 1 (problem): $OUT"
	fi

	apt_get upgrade
	local apt_rc=$RC apt_err
	apt_err=$(grep -E '^(E:|dpkg: error|Could not)' <<<"$OUT" | head -n 3 | tr '\n' ' ')

	local text ours
	text=$(scrape) || fail "cannot scrape node_exporter on 127.0.0.1:9100"
	ours=$(grep '^ssh_upgrade_guard_' <<<"$text")
	printf '%s\n' "$ours" | sed 's/^/    scrape| /' >&2
	[[ -n $ours ]] || fail "node_exporter exports no ssh_upgrade_guard_* metrics$([[ $GUARD == off ]] && echo ' (GUARD=off: the guard is not installed)'); apt-get upgrade exited $apt_rc${apt_err:+: $apt_err}; openssh-server is '$(pkg_status openssh-server)'"
	# node_exporter read our file and had no trouble with it.
	grep -q '^node_textfile_mtime_seconds{file="[^"]*ssh_upgrade_guard.prom"}' <<<"$text" ||
		fail "node_exporter's textfile collector did not read ssh_upgrade_guard.prom"
	expect_sample "$text" node_textfile_scrape_error 'v == 0'
	expect_sample "$text" 'ssh_upgrade_guard_repairs_total{outcome="success"}' 'v >= 1'
	expect_sample "$text" 'ssh_upgrade_guard_package_fully_installed{package="openssh-server"}' 'v == 1'
	expect_sample "$text" ssh_upgrade_guard_ssh_up 'v == 1'
	expect_sample "$text" ssh_upgrade_guard_stale_listeners 'v == 0'
	expect_sample "$text" ssh_upgrade_guard_inhibited 'v == 0'
	expect_sample "$text" ssh_upgrade_guard_watchdog_gave_up 'v == 0'
	expect_sample "$text" ssh_upgrade_guard_last_repair_timestamp_seconds 'v > 0'
	expect_sample "$text" "ssh_upgrade_guard_build_info{version=\"$(pkg_version ssh-upgrade-guard | sed 's/-[^-]*$//')\"}" 'v == 1'

	[[ -s $C_ROOT$PROM_FILE ]] || fail "$PROM_FILE is missing or empty"
	host_run "$PROMTOOL" check metrics <"$C_ROOT$PROM_FILE"
	((RC == 0)) || fail "promtool check metrics $PROM_FILE: $(tr '\n' ' ' <<<"$OUT")"
	# And what Prometheus really gets: our samples as node_exporter serves them.
	host_run "$PROMTOOL" check metrics <<<"$(grep -E '^(# (HELP|TYPE) )?ssh_upgrade_guard_' <<<"$text")"
	((RC == 0)) || fail "promtool check metrics on the scraped ssh_upgrade_guard_* samples: $(tr '\n' ' ' <<<"$OUT")"

	((apt_rc == 0)) || fail "apt-get upgrade exited $apt_rc: $apt_err"
	assert_clean_socket_activated
	assert_session "after the upgrade"
	run_in "$GUARD_BIN" check
	((RC == 0)) || fail "check after the upgrade exited $RC, expected 0 (OK): $OUT"
	[[ $OUT == 'SSH-UPGRADE-GUARD OK - '*'| package_ok=1 ssh_up=1 stale_listeners=0 inhibited=0' ]] ||
		fail "check's line after the upgrade: $OUT"
	npd_plugin
	((RC == 0)) || fail "check --npd (the NPD rule) after the upgrade exited $RC, expected 0: $OUT"
}
