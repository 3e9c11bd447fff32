#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Keep-alive HTTP at 100, 1 000 and 10 000 concurrent connections through the relay chain,
shadowrelay next to shadowsocks-libev in one run (issue 15 §9).

    ours:  wrk -> shadowrelay tunnel -> shadowrelay server -> nginx (1 KiB file)
    libev: wrk -> ss-tunnel          -> ss-server          -> nginx

Per level N (BENCH_SCALE_LEVELS) both implementations get a fresh chain, then
`wrk --latency -t2 -cN` runs BENCH_ROUNDS times through each, ours and libev alternating (the
order flips every round). Per run:
  - requests/s and the p50/p99 latency of wrk's latency distribution;
  - peak VmRSS of the tunnel and of the server (sampled every 0.25 s during the run);
  - CPU per request per hop (tunnel, server), user and system apart, from /proc/PID/stat
    utime/stime deltas over the steady state: from the moment nginx's stub_status shows 95 % of
    the N connections open (plus a settle of 0.5 s) to just before wrk stops, divided by the
    requests nginx served in that window; and over the whole run (wrk's start to its exit,
    over the requests wrk counted), which includes opening and closing the N connections.
Targets: ours >= 1.2x libev's requests/s and ours' p99 <= libev's, at every level.

Descriptors: each relay process holds two descriptors per relayed connection (client side and
upstream side). When the hard RLIMIT_NOFILE cannot hold 2N plus a reserve, the level is
lowered to what fits (rounded down to a hundred) and the report says so: with the hard limit
of 20 000 here, 10 000 becomes 9 900.

Run through tests/bench/scale_bench.sh (`./dev bench scale`), which builds the binary and
passes its path in BENCH_OURS_BIN (or --ours PATH). Knobs are environment variables (--help).
Every wait is bounded by a deadline, every loop by a count; every process started here runs in
its own process group with PR_SET_PDEATHSIG=SIGKILL and is killed on exit, on SIGINT, SIGTERM
and SIGHUP (tcp_bench.Procs).
"""
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Chains, nginx, process ownership, quiet-machine waiting and table cells: the TCP benchmark's.
from tcp_bench import (IMPLS, WRK_METHOD, Bench, CpuMeter, env_int, fmt,  # noqa: E402
                       http_get, method_label, missing_tool, paired_ratio, parse_args,
                       proc_cpu_times, process_tree, ratio, rss_kib, run_owned, target_cell)

TOOL = "scale_bench"
DEFAULT_LEVELS = "100,1000,10000"
RATE_TARGET = 1.2       # ours/libev requests/s, minimum
P99_TARGET = 1.0        # ours/libev p99 latency, maximum
FD_RESERVE = 64         # descriptors per relay process besides two per connection
SAMPLE_S = 0.25         # sampling period during a run
SETTLE_S = 0.5          # after the connections are open, before the steady-state window
# The steady state starts once nginx holds this share of the connections: under load a relay
# accepts a burst of thousands slowly (and SYNs dropped at a full accept queue come back after
# 1, 3, 7 s), which would otherwise leave no window at all. The connects that still happen in
# the window are recorded with it (a few % of its CPU at most); the time until all connections
# were open is reported apart.
STEADY_SHARE = 0.95
DRAIN_TIMEOUT = 30.0    # seconds for the relays to close a run's connections before the next
HOPS = ("tunnel", "server")
TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # to milliseconds


def usage():
    print(__doc__)
    print(f"""Environment:
  BENCH_SCALE_LEVELS   concurrent connections, comma-separated (default {DEFAULT_LEVELS});
                       each lowered to what RLIMIT_NOFILE allows (see above)
  BENCH_SCALE_METHOD   method (default {WRK_METHOD}; a 2022 method runs against libev's 2017
                       method of the same cipher)
  BENCH_SECONDS        seconds per wrk run (default 15)
  BENCH_ROUNDS         alternating ours/libev rounds per level, median reported (default 3)
  BENCH_WRK_THREADS    wrk -t (default 2)
  BENCH_WRK_TIMEOUT    wrk --timeout in seconds (default 10): a slower response is counted as
                       a timeout and left out of wrk's latency distribution
  BENCH_OUT            raw data directory (default /tmp/shadowrelay-bench): scale_raw.jsonl,
                       scale.md, scale_summary.json, scale_logs/
  BENCH_MAX_SECONDS, BENCH_QUIET_CORES, BENCH_QUIET_WAIT, BENCH_QUIET_BUDGET,
  OURS_SERVER_ARGS, OURS_TUNNEL_ARGS, LIBEV_SERVER_ARGS, LIBEV_TUNNEL_ARGS
                       as for tests/bench/tcp_bench.py (--help there)
Options:
  --ours PATH          our binary (default: $BENCH_OURS_BIN; scale_bench.sh builds it)""")


# ---------------------------------------------------------------------------------------------
# Parsing and counters


def parse_levels(text, threads):
    levels = []
    for word in text.replace(" ", ",").split(","):
        if not word:
            continue
        if not word.isdigit() or int(word) < threads:
            raise SystemExit(f"{TOOL}: BENCH_SCALE_LEVELS: {word!r} is not a whole number "
                             f">= wrk's {threads} threads")
        levels.append(int(word))
    if not levels:
        raise SystemExit(f"{TOOL}: BENCH_SCALE_LEVELS is empty")
    return levels


def fitting_level(level, nofile):
    """The largest level <= `level` whose 2 descriptors per connection fit in a relay process
    with `nofile` descriptors, rounded down to a hundred above 1 000."""
    most = (nofile - FD_RESERVE) // 2
    if level <= most:
        return level
    return most - most % 100 if most >= 1000 else most


def parse_wrk(text):
    """wrk --latency output: requests/s, requests, seconds, p50/p99 (ms), socket errors,
    non-2xx responses. Missing fields are None."""
    out = {"rps": None, "requests": None, "seconds": None, "p50_ms": None, "p99_ms": None,
           "socket_errors": {}, "non2xx": 0}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if m:
        out["requests"] = int(m.group(1))
        out["seconds"] = float(m.group(2)) * TIME_UNITS[m.group(3)] / 1e3
    dist = text.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pct, value, unit in re.findall(r"(\d+)%\s+([\d.]+)(us|ms|s|m|h)\b", dist[1]):
            if pct in ("50", "99"):
                out[f"p{pct}_ms"] = float(value) * TIME_UNITS[unit]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        (int(g) for g in m.groups())))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    return out


def nginx_status(port):
    """(active connections, requests served so far) from stub_status, or None."""
    status, body = http_get(port, "/nginx_status", timeout=2.0)
    if status != 200:
        return None
    m = re.search(rb"Active connections:\s*(\d+).*?\n\s*(\d+)\s+(\d+)\s+(\d+)", body, re.S)
    return (int(m.group(1)), int(m.group(4))) if m else None


def _proc_net_table(path, prefix):
    with open(path) as f:
        rows = [line.split() for line in f if line.startswith(prefix)]
    return dict(zip(rows[0][1:], (int(v) for v in rows[1][1:])))


def listen_counters():
    """Machine-wide TcpExt ListenOverflows / ListenDrops (/proc/net/netstat): SYNs or
    handshakes dropped because an accept queue was full."""
    try:
        table = _proc_net_table("/proc/net/netstat", "TcpExt:")
        return {k: table.get(k, 0) for k in ("ListenOverflows", "ListenDrops")}
    except (OSError, ValueError, IndexError):
        return {}


def segment_counters():
    """Machine-wide TCP segments sent (Tcp OutSegs, /proc/net/snmp) and delayed ACKs sent
    (TcpExt DelayedACKs, /proc/net/netstat): the kernel's TCP work, which both chains pay alike
    per segment. Everything on the machine counts; the bench's own traffic dominates."""
    try:
        snmp = _proc_net_table("/proc/net/snmp", "Tcp:")
        ext = _proc_net_table("/proc/net/netstat", "TcpExt:")
        return {"OutSegs": snmp.get("OutSegs", 0), "DelayedACKs": ext.get("DelayedACKs", 0)}
    except (OSError, ValueError, IndexError):
        return {}


def listen_backlog(port):
    """The accept-queue limit of the sockets listening on 127.0.0.1:port (ss's Send-Q)."""
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    values = {int(line.split()[2]) for line in out.splitlines() if len(line.split()) > 3}
    return min(values) if values else None


def per_request(row, counter):
    """A machine-wide TCP counter's growth over the whole run (opening and closing the
    connections included), per request wrk counted."""
    grown = (row.get("segments") or {}).get(counter)
    return grown / row["requests"] if grown is not None and row.get("requests") else None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Snapshot:
    """The relays' CPU (user, system per hop) and RSS, and nginx's counters, at one moment."""

    def __init__(self, trees, nginx_port, status_calls):
        self.t = time.monotonic()
        self.cpu = {}
        for hop, pids in trees.items():
            times = [proc_cpu_times(p) for p in pids]
            self.cpu[hop] = (sum(u for u, _ in times), sum(s for _, s in times))
        self.rss = {hop: rss_kib(pids[0], tree=pids) for hop, pids in trees.items()}
        self.status = nginx_status(nginx_port) if nginx_port else None
        # stub_status counts its own requests: how many were made up to and including this one.
        self.status_calls = status_calls + (1 if nginx_port else 0)


def cpu_per_request(a, b, requests):
    """{hop: {"user_us", "system_us"}} per request between snapshots a and b."""
    if not requests or requests <= 0:
        return None
    return {hop: {"user_us": (b.cpu[hop][0] - a.cpu[hop][0]) / requests * 1e6,
                  "system_us": (b.cpu[hop][1] - a.cpu[hop][1]) / requests * 1e6}
            for hop in HOPS}


def steady_window(snaps, level, wrk_start, seconds):
    """(first, last) snapshots of the steady state: from SETTLE_S after nginx first shows
    STEADY_SHARE of the `level` connections open to the last sample before wrk's duration ends,
    with that many still open; None when that window is shorter than a second or a fifth of the
    run."""
    full = [s for s in snaps if s.status and s.status[0] >= STEADY_SHARE * level]
    if not full:
        return None
    start = next((s for s in full if s.t >= full[0].t + SETTLE_S), None)
    end_by = wrk_start + seconds - SAMPLE_S
    ends = [s for s in full if s.t <= end_by]
    if start is None or not ends or ends[-1].t - start.t < max(1.0, seconds / 5):
        return None
    return start, ends[-1]


# ---------------------------------------------------------------------------------------------
# The benchmark


class ScaleBench(Bench):
    TOOL = TOOL

    def __init__(self, ours_bin):
        # The knobs first: a bad one exits before Bench makes its temporary directory.
        seconds = env_int("BENCH_SECONDS", 15, tool=TOOL)
        self.wrk_timeout = env_int("BENCH_WRK_TIMEOUT", 10, tool=TOOL)
        self.method = os.environ.get("BENCH_SCALE_METHOD", WRK_METHOD)
        self.requested = parse_levels(os.environ.get("BENCH_SCALE_LEVELS", DEFAULT_LEVELS),
                                      env_int("BENCH_WRK_THREADS", 2, tool=TOOL))
        super().__init__(ours_bin, prefix="scale")
        # Every tunnel->server connection of this bench comes from 127.0.0.1: the server's bound
        # on one source's unauthenticated connections (--max-preauth-per-source, 1 024 by
        # default, issue 15 §4) would refuse most of a 9 900-connect burst (18 581 refusals, 19 159
        # wrk read errors in one run). A deployment whose clients share one address raises it
        # the same way (README, "Pre-authentication bounds"); libev has no such bound.
        ours_server = self.extra[("ours", "server")]
        if not any(a.startswith("--max-preauth-per-source") for a in ours_server):
            ours_server += ["--max-preauth-per-source", "0"]
            self.notes.append("ours: the server runs with --max-preauth-per-source 0 (every "
                              "connection of the bench comes from 127.0.0.1; "
                              "OURS_SERVER_ARGS overrides it)")
        self.seconds = seconds
        self.levels = []
        for want in self.requested:
            level = fitting_level(want, self.nofile)
            if level != want:
                self.notes.append(
                    f"{want:,} connections requested, {level:,} measured: RLIMIT_NOFILE is "
                    f"{self.nofile:,} (hard limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}"
                    f") and each relay process holds two descriptors per connection plus "
                    f"about {FD_RESERVE} of its own")
            if level >= self.wrk_threads and level not in self.levels:
                self.levels.append(level)
        self.results = {"scale": {}}
        self.backlogs = {}  # impl -> (tunnel, server) listen backlog

    # -- one run -------------------------------------------------------------------------------

    def wait_drained(self, chains, nginx_port, baseline_fds):
        """Before a run: the previous run's connections closed in every relay (descriptors back
        near the idle count) and in nginx, so the next run cannot run out of descriptors."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        state = {}
        while time.monotonic() < deadline:
            state = {f"{c.impl}-{hop}": fd_count(getattr(c, hop).pid)
                     for c in chains.values() if c for hop in HOPS}
            status = nginx_status(nginx_port)
            state["nginx_active"] = status[0] if status else None
            if status and status[0] <= 1 and all(
                    state[k] is None or state[k] <= baseline_fds.get(k, 0) + 16
                    for k in state if k != "nginx_active"):
                return None
            time.sleep(0.2)
        return f"connections of the previous run still open after {DRAIN_TIMEOUT:.0f} s: {state}"

    def scale_once(self, chain, level, nginx_port):
        """One wrk run at `level` connections through chain: a row for the raw data."""
        busy_before = self.wait_quiet()
        trees = {hop: process_tree(getattr(chain, hop).pid) for hop in HOPS}
        listen0 = listen_counters()
        segments0 = segment_counters()
        meter = CpuMeter(self.procs, chain)
        argv = ["wrk", "--latency", f"-t{self.wrk_threads}", f"-c{level}",
                f"-d{self.seconds}s", "--timeout", f"{self.wrk_timeout}s",
                f"http://127.0.0.1:{chain.tunnel_port}/1k.bin"]
        before = Snapshot(trees, nginx_port, 0)
        wrk = self.procs.start(f"wrk-{chain.impl}-{level}", argv, stdout=subprocess.PIPE)
        wrk_start = time.monotonic()
        snaps, err = [], None
        deadline = wrk_start + self.seconds + self.wrk_timeout + 60
        for _ in range(int((deadline - wrk_start) / SAMPLE_S) + 1):
            if wrk.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(SAMPLE_S)
            snaps.append(Snapshot(trees, nginx_port,
                                  snaps[-1].status_calls if snaps else before.status_calls))
        if wrk.poll() is None:
            err = "wrk did not finish in time"
        after = Snapshot(trees, None, 0)
        output = wrk.stdout.read().decode(errors="replace") if wrk.poll() is not None else ""
        wrk.stdout.close()
        self.procs.stop(wrk)
        cpu = dict(meter.stop(), busy_before_cores=busy_before)
        listen1 = listen_counters()
        segments1 = segment_counters()
        parsed = parse_wrk(output)
        if err is None and (wrk.returncode != 0 or parsed["rps"] is None):
            err = f"wrk rc={wrk.returncode}: {output[-300:]}"
        errors = {k: v for k, v in parsed["socket_errors"].items() if v}
        if err is None and (errors or parsed["non2xx"]):
            err = f"wrk socket errors {errors}, non-2xx {parsed['non2xx']}"
        full = next((s for s in snaps if s.status and s.status[0] >= level), None)
        row = dict(parsed, error=err, cpu=cpu, output=output,
                   connections_open_s=round(full.t - wrk_start, 3) if full else None,
                   max_nginx_active=max((s.status[0] for s in snaps if s.status), default=None),
                   # (seconds since wrk started, connections open at nginx incl. the probe)
                   ramp=[(round(s.t - wrk_start, 2), s.status[0]) for s in snaps if s.status],
                   peak_rss_kib={hop: max([s.rss[hop] for s in snaps] + [after.rss[hop]])
                                 for hop in HOPS},
                   rss_before_kib=before.rss,
                   listen_drops={k: listen1[k] - listen0.get(k, 0) for k in listen1},
                   segments={k: segments1[k] - segments0[k] for k in segments1
                             if k in segments0},
                   whole_run_cpu_per_request=cpu_per_request(before, after, parsed["requests"]))
        window = steady_window(snaps, level, wrk_start, self.seconds)
        if window:
            a, b = window
            served = (b.status[1] - a.status[1]) - (b.status_calls - a.status_calls)
            row["steady"] = {"seconds": round(b.t - a.t, 3), "requests": served,
                             "connections_opened": b.status[0] - a.status[0],
                             "rps": served / (b.t - a.t),
                             "cpu_per_request": cpu_per_request(a, b, served)}
        else:
            row["steady"] = None
        return row

    # -- one level ------------------------------------------------------------------------------

    def bench_level(self, level, nginx_port):
        label = method_label(self.method)
        self.progress(f"{level} connections through {label} chains")
        chains = {impl: self.start_chain(impl, self.method, nginx_port) for impl in IMPLS}
        errors, restarts, rows = {}, {}, {impl: [] for impl in IMPLS}
        try:
            for impl, chain in chains.items():
                if chain is None:
                    if (impl, self.method) in self.start_errors:
                        errors[impl] = self.start_errors[(impl, self.method)]
                    continue
                why = self.http_sanity(chain)
                if why:
                    self.progress(f"  {impl}: {why}; skipping {impl}")
                    self.stop_chain(chain)
                    chains[impl], errors[impl] = None, why
                    continue
                self.backlogs[impl] = (listen_backlog(chain.tunnel_port),
                                       listen_backlog(chain.server_port))
            baseline = {f"{c.impl}-{hop}": fd_count(getattr(c, hop).pid)
                        for c in chains.values() if c for hop in HOPS}
            for rnd in range(self.rounds):
                order = IMPLS if rnd % 2 == 0 else tuple(reversed(IMPLS))
                for impl in order:
                    if chains[impl] is None or self.out_of_time():
                        continue
                    chain, err = self.revive(chains, impl, restarts)
                    if chain is None:
                        errors[impl] = err
                        continue
                    stuck = self.wait_drained(chains, nginx_port, baseline)
                    if stuck:
                        self.notes.append(f"{level} connections, round {rnd + 1}: {stuck}")
                    row = self.scale_once(chain, level, nginx_port)
                    row["round"] = rnd
                    rows[impl].append(row)
                    self.record(kind="scale", impl=impl, method=self.method, level=level, **row)
                    self.foreign.append(row["cpu"]["foreign_cores"])
                    self.progress(f"  round {rnd + 1} {impl:5} " + self.describe(row))
                    if row["error"]:
                        errors[impl] = row["error"]
        finally:
            for chain in chains.values():
                self.stop_chain(chain)
        for impl in IMPLS:
            na = self.available(impl, self.method) if chains[impl] is None and \
                not rows[impl] else None
            self.summarize(level, impl, rows[impl], na, errors.get(impl))

    @staticmethod
    def describe(row):
        if row["rps"] is None:
            return f"FAILED {row['error']}"
        text = (f"{row['rps']:.0f} req/s, p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                f"peak RSS tunnel {row['peak_rss_kib']['tunnel'] / 1024:.1f} MiB / server "
                f"{row['peak_rss_kib']['server'] / 1024:.1f} MiB")
        steady = row["steady"]
        if steady and steady["cpu_per_request"]:
            c = steady["cpu_per_request"]
            text += (f"; steady {steady['rps']:.0f} req/s, per request tunnel "
                     f"{c['tunnel']['user_us']:.1f}+{c['tunnel']['system_us']:.1f} µs, server "
                     f"{c['server']['user_us']:.1f}+{c['server']['system_us']:.1f} µs "
                     "(user+system)")
        else:
            text += "; no steady-state window"
        if row["error"]:
            text += f" ({row['error']})"
        return text + f"  [relay {row['cpu']['relay_cores']:.2f} cores, other processes " \
                      f"{row['cpu']['foreign_cores']:.2f}]"

    def summarize(self, level, impl, rows, na, error):
        """Medians over the rounds, one result per measure, in the shape fmt/ratio expect."""
        measures = {
            "rps": lambda r: r["rps"],
            "p50_ms": lambda r: r["p50_ms"],
            "p99_ms": lambda r: r["p99_ms"],
            "steady_rps": lambda r: r["steady"]["rps"] if r["steady"] else None,
            "connections_open_s": lambda r: r["connections_open_s"],
            "socket_errors": lambda r: sum(r["socket_errors"].values()),
            "rss_tunnel_mib": lambda r: r["peak_rss_kib"]["tunnel"] / 1024,
            "rss_server_mib": lambda r: r["peak_rss_kib"]["server"] / 1024,
            "segments_per_request": lambda r: per_request(r, "OutSegs"),
            "delayed_acks_per_request": lambda r: per_request(r, "DelayedACKs"),
        }
        for hop in HOPS:
            for kind in ("user_us", "system_us"):
                measures[f"{hop}_{kind}"] = (
                    lambda r, hop=hop, kind=kind: r["steady"]["cpu_per_request"][hop][kind]
                    if r["steady"] and r["steady"]["cpu_per_request"] else None)
                measures[f"{hop}_{kind}_run"] = (
                    lambda r, hop=hop, kind=kind: r["whole_run_cpu_per_request"][hop][kind]
                    if r["whole_run_cpu_per_request"] else None)
        for name, get in measures.items():
            by_round = {}
            for r in rows:
                value = get(r) if r["rps"] is not None else None
                if value is not None:
                    by_round[r["round"]] = value
            values = list(by_round.values())
            if not values and any(r["rps"] is not None for r in rows):
                na = "not measured in any run"  # e.g. no steady state: fmt prints n/a
            self.results["scale"][(level, name, impl)] = {
                "median": statistics.median(values) if values else None,
                "samples": values, "by_round": by_round, "na": na,
                "error": error if name == "rps" else None,
            }

    def run(self):
        self.progress(f"ours: {self.ours_bin or 'n/a'}; levels {self.levels}; "
                      f"{self.method}; raw data in {self.out}")
        nginx, nginx_port = self.start_nginx(for_scale=True)
        try:
            for level in self.levels:
                if self.out_of_time():
                    break
                self.bench_level(level, nginx_port)
        finally:
            self.procs.stop(nginx)
        self.report()

    # -- report ---------------------------------------------------------------------------------

    def get(self, level, name, impl):
        return self.results["scale"].get((level, name, impl))

    def report(self):
        m, lines = self.report_head("## Keep-alive at scale (`./dev bench scale`)")
        add = lines.append
        add("")
        add(f"Loopback, `wrk -> tunnel -> server -> nginx` (1 KiB file, keep-alive) for both "
            f"implementations, {method_label(self.method)}, same password; `wrk --latency "
            f"-t{self.wrk_threads} -cN -d{self.seconds}s --timeout {self.wrk_timeout}s`; a fresh "
            f"chain per level; ours and libev alternate run by run (order flipped every round), "
            f"{self.rounds} round(s), medians. RLIMIT_NOFILE {self.nofile:,}; "
            f"net.core.somaxconn {read_sysctl('net/core/somaxconn')}; listen backlogs "
            f"(tunnel/server): " + ", ".join(
                f"{impl} {'/'.join(str(b) for b in self.backlogs[impl])}"
                for impl in IMPLS if impl in self.backlogs) + ".")
        if self.ours_unavailable:
            add("")
            add(f"ours: n/a — {self.ours_unavailable}")
        add("")
        add("### Requests/s, latency and relay memory")
        add("")
        add("| connections | measure | ours | libev | ours/libev | per-round ratios, median "
            "| target |")
        add("|---:|---|---:|---:|---:|---:|---|")
        rows = (("rps", "requests/s (wrk)", 0, RATE_TARGET, True),
                ("p99_ms", "p99 latency (ms)", 1, P99_TARGET, False),
                ("p50_ms", "p50 latency (ms, information)", 1, None, False),
                ("steady_rps", "requests/s in the steady state (nginx, information)", 0,
                 None, True),
                ("connections_open_s", "seconds until nginx saw all connections (information)",
                 2, None, False),
                ("socket_errors", "wrk socket errors per run (connect, read, write, timeout; "
                 "information)", 0, None, False),
                ("rss_tunnel_mib", "tunnel peak RSS (MiB, information)", 1, None, False),
                ("rss_server_mib", "server peak RSS (MiB, information)", 1, None, False),
                ("segments_per_request", "TCP segments sent per request, machine-wide, whole "
                 "run (information)", 1, None, False),
                ("delayed_acks_per_request", "of which delayed ACKs (information)", 2, None,
                 False))
        for level in self.levels:
            for name, label, digits, target, minimum in rows:
                o, l = self.get(level, name, "ours"), self.get(level, name, "libev")
                if o is None and l is None:
                    continue
                add(f"| {level:,} | {label} | {fmt(o, digits)} | {fmt(l, digits)} | "
                    f"{ratio(o, l)} | {paired_ratio(o, l)} | "
                    f"{target_cell(o, l, target, minimum=minimum)} |")
        add("")
        add("### CPU per request per hop (µs)")
        add("")
        add("utime and stime deltas of each relay process (/proc/PID/stat), divided by the "
            "requests served; medians over the rounds. Steady state: from "
            f"{STEADY_SHARE:.0%} of the connections open at nginx to the end of the run, over "
            "the requests nginx served meanwhile. Whole run: wrk's start to its exit, over the "
            "requests wrk counted, so opening (and closing) the N connections is in it. System "
            "time is the kernel's TCP work on the relay's behalf (the floor).")
        add("")
        add("| connections | window | hop | ours user | ours system | libev user | libev system "
            "| ours/libev (user + system) |")
        add("|---:|---|---|---:|---:|---:|---:|---:|")
        for level in self.levels:
            for suffix, window in (("", "steady state"), ("_run", "whole run")):
                for hop in HOPS:
                    cells = [self.get(level, f"{hop}_{kind}{suffix}", impl) for impl in IMPLS
                             for kind in ("user_us", "system_us")]
                    if all(c is None for c in cells):
                        continue
                    total = {impl: self.total_cpu(level, hop, impl, suffix) for impl in IMPLS}
                    add(f"| {level:,} | {window} | {hop} | " +
                        " | ".join(fmt(c, 1) for c in cells) +
                        f" | {ratio(total['ours'], total['libev'])} |")
        self.add_run_notes()
        failures = [f"{level:,} connections, {impl}: {r['error']}"
                    for (level, name, impl), r in self.results["scale"].items() if r.get("error")]
        summary = {"machine": m, "ours_unavailable": self.ours_unavailable,
                   "levels": self.levels, "requested_levels": self.requested,
                   "results": {f"{level}/{name}/{impl}": v for (level, name, impl), v in
                               self.results["scale"].items()}}
        self.report_tail(lines, failures, "one JSON object per run: wrk output, CPU over the "
                         "whole run and the steady state, RSS, listen-queue drops", "scale",
                         summary)

    def total_cpu(self, level, hop, impl, suffix=""):
        """User + system per request of the rounds that have both, as a result for ratio()."""
        u = self.get(level, f"{hop}_user_us{suffix}", impl)
        s = self.get(level, f"{hop}_system_us{suffix}", impl)
        if not u or not s:
            return None
        both = [u["by_round"][r] + s["by_round"][r] for r in u["by_round"] if r in s["by_round"]]
        return {"median": statistics.median(both) if both else None}

    def add_run_notes(self):
        """What the raw data shows about the runs themselves: listen-queue drops, runs without
        a steady state, wrk's timeouts."""
        drops, no_window = [], []
        with open(self.raw_path) as f:
            for line in f:
                row = json.loads(line)
                if row.get("kind") != "scale":
                    continue
                d = row.get("listen_drops") or {}
                if d.get("ListenOverflows") or d.get("ListenDrops"):
                    drops.append(f"{row['impl']} {row['level']:,} round {row['round'] + 1}: "
                                 f"{d.get('ListenOverflows', 0)} overflows")
                if row.get("rps") is not None and not row.get("steady"):
                    no_window.append(f"{row['impl']} {row['level']:,} round {row['round'] + 1}")
        if drops:
            self.notes.append("accept queues overflowed (TcpExt ListenOverflows, machine-wide; "
                              "the SYN is retransmitted after 1 s, then 3 s...): " +
                              "; ".join(drops))
        if no_window:
            self.notes.append(f"no steady-state window (nginx never saw {STEADY_SHARE:.0%} of "
                              "the connections open long enough), so no steady-state CPU per "
                              "request: " + ", ".join(no_window))


def read_sysctl(path):
    try:
        with open(f"/proc/sys/{path}") as f:
            return f.read().strip()
    except OSError:
        return "?"


def main(argv):
    parsed = parse_args(TOOL, argv, usage)
    if isinstance(parsed, int):
        return parsed
    ours, _ = parsed
    if missing_tool(TOOL, ("wrk", "nginx", "ss-server", "ss-tunnel", "ss")):
        return 2
    return run_owned(lambda: ScaleBench(ours), lambda bench: bench.run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
