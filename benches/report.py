#!/usr/bin/env python3
"""Turns one run's raw results (benches/run's results directory) into
BENCHMARKS.md on stdout: the tables, the targets of issue 5 with met/missed,
the machine and how to reproduce. Standard library only."""

import json
import os
import statistics
import sys

GUARD = ["pre-invoke", "post-invoke", "status", "watchdog", "inhibited"]
CHEAP = ["pre-invoke", "post-invoke", "watchdog", "inhibited"]
BASE = ["ss", "lsof", "needrestart", "true"]
LABEL = {
    "pre-invoke": "`ssh-upgrade-guard pre-invoke`",
    "post-invoke": "`ssh-upgrade-guard post-invoke` (healthy)",
    "status": "`ssh-upgrade-guard status` (full diagnosis)",
    "watchdog": "`ssh-upgrade-guard watchdog` (healthy)",
    "inhibited": "`ssh-upgrade-guard inhibited`",
    "ss": "`ss -Hltnp 'sport = :22'`",
    "lsof": "`lsof -nP -iTCP:22 -sTCP:LISTEN`",
    "needrestart": "`needrestart -b`",
    "true": "`true` (floor: spawn + reap)",
}
# "Flat from 200 to 10,000": the median at 10,000 extra processes is at most
# this many times the median at 200 (a full /proc scan of 10,000 processes
# costs tens of milliseconds, far beyond this).
FLAT_FACTOR = 1.5
RSS_LIMIT_KIB = 10 * 1024


def ms(ns):
    return ns / 1e6


def fmt_ms(x):
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_n(n):
    return f"{n:,}"


def load(d):
    machine = {}
    with open(os.path.join(d, "machine.txt")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            machine[k] = v
    levels = {}
    repairs = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if name.startswith("loop-") and name.endswith(".json"):
            with open(p) as f:
                r = json.load(f)
            levels[r["extra_processes"]] = r
        elif name.startswith("repair-") and name.endswith(".json"):
            with open(p) as f:
                r = json.load(f)
            r["n"] = int(name[len("repair-"):-len(".json")])
            repairs.append(r)
    repairs.sort(key=lambda r: r["n"])
    with open(os.path.join(d, "container-packages.txt")) as f:
        pkgs = dict(line.split(None, 1) for line in f.read().splitlines() if line.strip())
    with open(os.path.join(d, "pid_max.txt")) as f:
        pid_max = f.read().strip()
    return machine, levels, repairs, pkgs, pid_max


def main():
    d = sys.argv[1]
    machine, levels, repairs, pkgs, pid_max = load(d)
    counts = sorted(levels)
    med = {n: {c: statistics.median(v) for c, v in levels[n]["ns"].items()} for n in counts}
    out = []
    w = out.append

    w("# Benchmarks")
    w("")
    w("What ssh-upgrade-guard costs on every apt run, and how fast it repairs (issue 5).")
    w(f"Everything below comes from one run of `make bench` on {machine['date']}")
    w(f"({machine['bench_seconds']} s for the whole run). Raw results: `target/bench/` of that run.")
    w("")
    w("## Machine")
    w("")
    w(f"- CPU: {machine['cpu']}, {machine['nproc']} cores (`nproc` = {machine['nproc']}), {machine['mem']} RAM")
    w(f"- kernel {machine['kernel']}; host {machine['host']}")
    w(f"- container: Debian bookworm under `systemd-nspawn -b` (the e2e harness's rootfs), "
      f"openssh-server {pkgs.get('openssh-server', '?')} with noble's ssh.socket "
      f"(socket-activated topology), systemd {pkgs.get('systemd', '?')}, "
      f"needrestart {pkgs.get('needrestart', '?')}, lsof {pkgs.get('lsof', '?')}; pid_max {pid_max}")
    dirty = "" if machine["dirty_src"] == "0" else " (with uncommitted changes under src/, debian/ or Cargo.*)"
    w(f"- guard: {machine['deb']} (sha256 {machine['deb_sha256']}...), built from commit "
      f"{machine['commit']}{dirty}, installed with apt")
    w("")
    w("## Reproduce")
    w("")
    w("    make bench")
    w("")
    w("As root, after the README's set-up line (the same needs as `make e2e`). It builds the")
    w("package if it is missing or older than the sources, boots one container, runs everything")
    w("below and rewrites this file. `BENCH_RUNS`, `BENCH_REPAIRS`, `BENCH_LEVELS` change the sizes.")
    w("")

    # ---- targets first: the verdicts
    rows = []
    n_ref = 2000 if 2000 in med else counts[len(counts) // 2]
    lo, hi = counts[0], counts[-1]
    for c in CHEAP:
        r = med[n_ref][c] / med[n_ref]["ss"]
        flat = med[hi][c] / med[lo][c]
        ok = r <= 0.1 and flat <= FLAT_FACTOR
        rows.append((f"{c}: <= 0.1 x ss at {fmt_n(n_ref)}, flat {fmt_n(lo)} to {fmt_n(hi)}",
                     f"{r:.3f} x ss ({fmt_ms(ms(med[n_ref][c]))} vs {fmt_ms(ms(med[n_ref]['ss']))} ms); "
                     f"{fmt_ms(ms(med[lo][c]))} -> {fmt_ms(ms(med[hi][c]))} ms (x {flat:.2f})", ok))
    worst = max(counts, key=lambda n: med[n]["status"] / med[n]["ss"])
    ratios = ", ".join(f"{med[n]['status'] / med[n]['ss']:.2f} at {fmt_n(n)}" for n in counts)
    rows.append(("status: <= 0.5 x ss at every count", f"x ss: {ratios}",
                 med[worst]["status"] / med[worst]["ss"] <= 0.5))
    good = [r for r in repairs if r["banner_ns"] is not None]
    if repairs:
        lat = [ms(r["banner_ns"]) if r["banner_ns"] is not None else float("inf") for r in repairs]
        mlat = statistics.median(lat)
        rows.append(("repair latency: <= 1 s median, stale listener to banner",
                     f"median {fmt_ms(mlat)} ms over {len(repairs)} repairs "
                     f"({len(repairs) - len(good)} without a banner)", mlat <= 1000))
        worst_ref = max(r["refused"] for r in repairs)
        rows.append(("refused connections: <= 1 per repair",
                     f"max {worst_ref}, total {sum(r['refused'] for r in repairs)} over {len(repairs)} repairs",
                     worst_ref <= 1))
    rss_max = {c: max(max(levels[n]["rss_kib"][c]) for n in counts) for c in GUARD}
    worst_rss = max(rss_max, key=rss_max.get)
    rows.append(("peak RSS of any guard command: <= 10 MiB",
                 f"max {rss_max[worst_rss] / 1024:.1f} MiB ({worst_rss})",
                 rss_max[worst_rss] <= RSS_LIMIT_KIB))
    w("## Targets")
    w("")
    w("| target (issue 5) | measured | verdict |")
    w("| --- | --- | --- |")
    for what, got, ok in rows:
        w(f"| {what} | {got} | {'met' if ok else '**MISSED**'} |")
    w("")
    met = sum(1 for r in rows if r[2])
    w(f"{met} of {len(rows)} targets met.")
    w("")

    # ---- per level tables
    w("## Cost per command")
    w("")
    w(f"Wall time from spawn to exit, {levels[counts[0]]['runs']} runs per command per level, one")
    w("interleaved loop per level (order shuffled each round). ms; ratio = median / median of `ss`")
    w("at the same level; peak RSS = the highest of 3 separate runs under GNU time.")
    w("")
    for n in counts:
        L = levels[n]
        w(f"### {fmt_n(n)} extra idle processes ({fmt_n(L['processes_before'])} in the container)")
        w("")
        if "idle_before" in L:
            w(f"CPU idle before the loop: {L['idle_before'] * 100:.0f}% of the machine over 0.5 s "
              f"(waited {L['settle_seconds']:.1f} s for two quiet half-seconds in a row).")
        if "loadavg_before" in L:
            w(f"Load average (1, 5, 15 min) before the loop: {' '.join(L['loadavg_before'])}; "
              f"after: {' '.join(L['loadavg_after'])} ({machine['nproc']} cores).")
            w("")
        w("| command | median | min - max | ratio to ss | peak RSS |")
        w("| --- | ---: | ---: | ---: | ---: |")
        for c in GUARD + BASE:
            v = L["ns"][c]
            rss = f"{max(L['rss_kib'][c]) / 1024:.1f} MiB" if c in GUARD else ""
            w(f"| {LABEL[c]} | {fmt_ms(ms(statistics.median(v)))} | "
              f"{fmt_ms(ms(min(v)))} - {fmt_ms(ms(max(v)))} | {med[n][c] / med[n]['ss']:.3f} | {rss} |")
        w("")
        if L["anomalies"]:
            w("Unexpected exit statuses or output in this loop:")
            w("")
            for a in L["anomalies"][:10]:
                text = " ".join(a["output"].split())[:200]
                w(f"- {a['command']}: exit {a['exit']} (expected {a['expected']}): `{text}`")
            w("")
    w("### Medians across process counts (ms)")
    w("")
    w("| command | " + " | ".join(fmt_n(n) for n in counts) + f" | {fmt_n(hi)} / {fmt_n(lo)} |")
    w("| --- | " + " | ".join("---:" for _ in counts) + " | ---: |")
    for c in GUARD + BASE:
        w(f"| {LABEL[c]} | " + " | ".join(fmt_ms(ms(med[n][c])) for n in counts) +
          f" | {med[hi][c] / med[lo][c]:.2f} |")
    w("")
    floor = max(levels[n]["rss_floor_kib"] for n in counts)
    w(f"RSS floor of the method (`true` under GNU time): {floor / 1024:.1f} MiB.")
    if all("rss_sshd_t_kib" in levels[n] for n in counts):
        sshd_t = max(levels[n]["rss_sshd_t_kib"] for n in counts)
        w(f"`ru_maxrss` covers the children a command waited for: `status` runs `sshd -T`, which")
        w(f"alone peaks at {sshd_t / 1024:.1f} MiB here, so a `status` figure at or below that may be")
        w("the child's rather than the guard's own.")
    w("")

    # ---- repairs
    if repairs:
        rl = repairs[0]
        w(f"## Repair latency ({len(repairs)} repairs, {fmt_n(int(machine['repair_level']))} extra processes)")
        w("")
        w("Each round: the harness's `make_stale_listener` (ssh.socket and ssh.service stopped, an")
        w("unmanaged `/usr/sbin/sshd` started from a transient unit holds 0.0.0.0:22 and [::]:22),")
        w("then `ssh-upgrade-guard repair`. **Latency** = from just before the repair command is")
        w("spawned to the first `SSH-2.0-` banner read on a connection to 127.0.0.1:22 that was")
        w("opened after the stale listener process had exited (checked by pid + start time before")
        w("each connect), so neither the stale listener nor one of its forks can have served it.")
        w("A probe connects every 10 ms (start to start) from the repair's start until both the")
        w("command has exited and that banner has arrived; **refused** counts ECONNREFUSED in that")
        w("window. Connections accepted while the stale listener still runs are closed at once.")
        w("The probe thread runs at real-time priority (SCHED_FIFO), as a client on another")
        w("machine keeps its schedule whatever the repair costs this one; **late** is the most")
        w("any probe of the round started after its 10 ms slot.")
        w("")
        w("Columns after the latency: ms after the repair's start, from the container's journal")
        w("(stale sshd logs SIGTERM, systemd listens on ssh.socket again, ssh.service started); the")
        w("**gap** is SIGTERM to listening, the longest time nothing can listen on :22 (the stale")
        w("sshd closes its sockets between the two), which is where refused probes come from.")
        w("")
        w("| # | latency to banner | repair command | stale SIGTERM | ssh.socket listening | gap | ssh.service started | probes | late | refused | other failures | exit |")
        w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

        def j(r, k):
            v = r.get("journal_ms", {}).get(k)
            return "-" if v is None else f"{fmt_ms(v)}"

        def gap(r):
            e = r.get("journal_ms", {})
            if "stale_sigterm" in e and "socket_listening" in e:
                return e["socket_listening"] - e["stale_sigterm"]
            return None

        def late(r):
            if r.get("probe_late_max_ms") is None:
                return "-"
            rt = "" if r.get("probe_rt") else " (not real-time)"
            return f"{r['probe_late_max_ms']:.1f}{rt}"

        for r in repairs:
            b = "none" if r["banner_ns"] is None else f"{fmt_ms(ms(r['banner_ns']))}"
            g = gap(r)
            w(f"| {r['n']} | {b} | {fmt_ms(ms(r['repair_ns']))} | {j(r, 'stale_sigterm')} | "
              f"{j(r, 'socket_listening')} | {'-' if g is None else fmt_ms(g)} | {j(r, 'service_started')} | "
              f"{r['attempts']} | {late(r)} | {r['refused']} | {r['other_failures']} | {r['repair_exit']} |")
        w("")
        gaps = [g for g in (gap(r) for r in repairs) if g is not None]
        if gaps:
            w(f"Gap SIGTERM to listening: median {fmt_ms(statistics.median(gaps))} ms, "
              f"max {fmt_ms(max(gaps))} ms; a probe every 10 ms expects about gap / 10 refusals.")
            w("")
        if good:
            w(f"Medians: latency {fmt_ms(statistics.median(ms(r['banner_ns']) for r in good))} ms, "
              f"repair command {fmt_ms(statistics.median(ms(r['repair_ns']) for r in repairs))} ms, "
              f"stale listener gone after "
              f"{fmt_ms(statistics.median(ms(r['stale_gone_ns']) for r in repairs if r['stale_gone_ns'] is not None))} ms.")
            w("")
        refused_at = [f"#{r['n']}: {', '.join(str(t) for t in r['refused_at_ms'][:8])}"
                      for r in repairs if r["refused_at_ms"]]
        if refused_at:
            w("Refused probes, ms after the repair started: " + "; ".join(refused_at) + ".")
            w("")
        kinds = sorted({k for r in repairs for k in r["failure_kinds"]})
        if kinds:
            w("Other probe failures seen: " + ", ".join(f"`{k}`" for k in kinds) + ".")
            w("")
        w("What the repair printed (round 1):")
        w("")
        for line in rl["output"].rstrip().splitlines():
            w("    " + line)
        w("")

    w("## Method")
    w("")
    w("- One booted container (`tests/e2e/lib`: cached bookworm rootfs, overlay, `systemd-nspawn -b`,")
    w("  private network), the guard installed from its .deb with `apt-get install`, healthy")
    w("  noble topology (ssh.socket enabled and listening, ssh.service started on demand). The")
    w("  watchdog timer is stopped so that it does not fire during the loop. Torn down at the end")
    w("  like every e2e scenario.")
    w("- Extra processes: `sleep infinity`, started inside the container and kept for the level")
    w("  (added on top of the previous level); the container's own processes come on top.")
    w("- Timing runs inside the container (`benches/driver.py`): `posix_spawn` of the command with")
    w("  stdin `/dev/null`, output to a file, cwd `/tmp` as apt gives its hooks, a clean")
    w("  environment without `DPKG_FRONTEND_LOCKED`; `time.perf_counter_ns` around spawn and")
    w("  `wait4`. The hooks are timed as the binary alone, without apt's `/bin/sh -c` wrapper.")
    w("- `pre-invoke` and `post-invoke` always run as a pair, in that order, like apt runs them:")
    w("  pre-invoke places the marker (holder: the driver, their parent) and post-invoke releases it,")
    w("  so every other command sees the healthy, uninhibited state; `inhibited` exits 1 (may act).")
    w("- Before the timed rounds each command runs once untimed (warm caches; exit statuses checked).")
    w("  Every run's exit status is checked (`inhibited` 1, the rest 0); surprises are listed above.")
    w("- Peak RSS: `ru_maxrss` of the command as GNU time reports it (`%M`), in a separate pass. Not")
    w("  measured from the Python driver: a child inherits its spawner's RSS high-water mark across")
    w("  exec, which would put a floor of Python's size under every number.")
    w(f"- \"Flat\": median at {fmt_n(hi)} extra processes <= {FLAT_FACTOR} x the median at {fmt_n(lo)}.")
    w("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
