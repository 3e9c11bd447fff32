#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""UDP relay benchmark: shadowrelay next to shadowsocks-libev, side by side in one run.

Chains on loopback, UDP only, same method and password for both:
    ours:  udp_blast -> shadowrelay tunnel -U -> shadowrelay server -U -> udp_blast sink
    libev: udp_blast -> ss-tunnel -U          -> ss-server -U          -> udp_blast sink

udp_blast (tests/bench/udp_blast.c, compiled here with cc) sends fixed-size datagrams
(default 1200 bytes) from several flows (source ports, default 4) into the tunnel's local port
for a bounded time, as fast as it can or at BENCH_RATE datagrams/s, and counts at the target
what the chain delivered. Each datagram carries a run tag and a sequence number, so the sink
counts only the measured datagrams of this run. iperf3 -u is not usable: its TCP control
connection cannot pass a UDP-only tunnel.

    delivered datagrams/s = datagrams received at the sink / seconds of sending
    Mbit/s                = payload bytes received * 8 / seconds of sending / 1e6
    loss                  = 1 - received / sent (sent: what sendmmsg accepted)

Every run starts a fresh server and tunnel (fresh associations; our relay's "stopped: udp ..."
counters then belong to that run alone and go into the raw data), warms up until every flow
got one datagram through, measures, stops the relays with SIGTERM. ours and libev alternate run
by run (the order flips every round); medians over BENCH_ROUNDS rounds.

Run through tests/bench/udp_bench.sh (`./dev bench udp`), which builds the binary and passes its
path in BENCH_OURS_BIN (or --ours PATH). Knobs are environment variables (--help).

Every wait is bounded by a deadline, every loop by a count; every process started here runs
in its own process group with PR_SET_PDEATHSIG=SIGKILL and is killed on exit, on SIGINT,
SIGTERM and SIGHUP.
"""
import json
import os
import platform
import re
import resource
import selectors
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Process ownership, /proc CPU accounting and table cells are shared with the TCP benchmark.
from tcp_bench import (METHODS as METHODS_ALL, Procs, RelayBench,  # noqa: E402
                       fmt, impl_method, log_tail, method_label, missing_tool, paired_ratio,
                       parse_args, proc_cpu_seconds, process_tree, ratio, ratio_value, relay_key,
                       run_owned, system_cpu)
from tcp_bench import env_int as _env_int  # noqa: E402

# A Shadowsocks 2022 method runs against libev's 2017 method of the same cipher (tcp_bench's
# LIBEV_PEER): libev has no 2022.
DEFAULT_METHODS = "chacha20-ietf-poly1305 aes-128-gcm 2022-blake3-aes-128-gcm"
PASSWORD = os.environ.get("BENCH_PASSWORD", "bench-pw-7Qx2")
IMPLS = ("ours", "libev")

TARGET_RATIO = 1.5          # ours/libev delivered datagrams/s, minimum
LOSS_TOLERANCE_PP = 0.1     # "equal loss": ours' median loss at most libev's + 0.1 points
# A paced load that libev carries with less loss than this cannot show a rate ratio: the target
# is judged only at "max" and at paced loads that overload libev.
OVERLOAD_LOSS_PCT = 10.0
BOUND_TIMEOUT = 5.0         # seconds for a relay to bind its UDP port
STOP_GRACE = 5.0            # seconds after SIGTERM before SIGKILL (the stats line comes at exit)
HERE = os.path.dirname(os.path.abspath(__file__))


def usage():
    print(__doc__)
    print(f"""Environment:
  BENCH_OUT            raw data directory (default /tmp/shadowrelay-bench): udp_raw.jsonl,
                       udp.md, udp_summary.json, udp_logs/
  BENCH_METHODS        methods, separated by spaces or commas (default "{DEFAULT_METHODS}")
  BENCH_ROUNDS         alternating ours/libev rounds, median reported (default 3)
  BENCH_SECONDS        seconds of sending per run (default 5)
  BENCH_RATE           offered load in datagrams/s over all flows; 0 = as fast as the sender
                       can (default 0); suffixes k and M allowed; several values separated by
                       spaces or commas measure each (e.g. "0 20k": saturation, and loss at a
                       load both relays should carry)
  BENCH_PAYLOAD        datagram payload bytes (default 1200)
  BENCH_FLOWS          sending sockets (source ports, each one association) (default 4)
  BENCH_DRAIN_MS       wait after sending stops for datagrams still queued (default 500)
  BENCH_WARMUP         seconds the warm-up may take to get one datagram per flow through
                       (default 5)
  BENCH_BASELINE       1 = also measure the sender straight into the sink, no relay, once
                       (what the load generator alone can do on this machine) (default 1)
  BENCH_MAX_SECONDS    overall deadline; runs after it are skipped (default 1800)
  BENCH_QUIET_CORES, BENCH_QUIET_WAIT, BENCH_QUIET_BUDGET
                       before each run, wait up to BENCH_QUIET_WAIT s (default 20; 0 = never)
                       while other processes use more than BENCH_QUIET_CORES cores (default
                       0.25); at most BENCH_QUIET_BUDGET s of waiting in all (default 600)
  BENCH_CC             C compiler for udp_blast.c (default cc)
  OURS_SERVER_ARGS, OURS_TUNNEL_ARGS, LIBEV_SERVER_ARGS, LIBEV_TUNNEL_ARGS
                       extra arguments (shell words) for each relay process
Options:
  --ours PATH          our binary (default: $BENCH_OURS_BIN; udp_bench.sh builds it)""")


def env_int(name, default, minimum=1):
    return _env_int(name, default, minimum, tool="udp_bench")


def env_rates(name, default="0"):
    """Datagrams/s values (k and M suffixes), separated by spaces or commas; 0 = unlimited."""
    rates = []
    for text in re.split(r"[\s,]+", os.environ.get(name, default).strip()):
        if not text:
            continue
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text)
        if not m:
            raise SystemExit(f"udp_bench: {name}: {text!r} is not a number of datagrams/s "
                             "(k, M allowed)")
        rate = float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m.group(2)]
        if rate not in rates:
            rates.append(rate)
    if not rates or len(rates) > 16:
        raise SystemExit(f"udp_bench: {name} needs 1 to 16 values")
    return rates


def rate_label(rate):
    return "max" if rate <= 0 else f"{rate:,.0f}/s"


# ---------------------------------------------------------------------------------------------
# UDP ports and kernel counters


def udp_bound_ports():
    """Local ports of UDP sockets (from /proc/net/udp{,6}); reading it sends nothing."""
    ports = set()
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 1:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except (OSError, ValueError, StopIteration):
            pass
    return ports


def wait_udp_bound(port, proc, timeout=BOUND_TIMEOUT):
    """True once a UDP socket is bound to `port`; False if `proc` exits or the deadline passes.
    A probe datagram would open an association and count in the relay's statistics."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port in udp_bound_ports():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


class UdpPortPool:
    def __init__(self):
        self.used = set()

    def free(self):
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in self.used:
                self.used.add(port)
                return port
        raise RuntimeError("no free UDP port")


def kernel_udp_counters():
    """Machine-wide UDP counters: /proc/net/snmp Udp (RcvbufErrors: datagrams dropped at a full
    socket receive queue) and the per-CPU backlog drops of /proc/net/softnet_stat."""
    out = {}
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        if len(rows) >= 2:
            out.update({k: int(v) for k, v in zip(rows[0][1:], rows[1][1:])})
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/net/softnet_stat") as f:
            out["softnet_dropped"] = sum(int(line.split()[1], 16) for line in f)
    except (OSError, ValueError, IndexError):
        pass
    return out


def counter_delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after
            if k in ("InDatagrams", "NoPorts", "InErrors", "RcvbufErrors", "SndbufErrors",
                     "MemErrors", "softnet_dropped")}


STATS_RE = re.compile(r"stopped: udp (.*)")


def parse_udp_stats(log_path):
    """Our relay's last "stopped: udp k=v ... dropped{k=v ...} ..." line as a dict, or None."""
    try:
        with open(log_path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    lines = STATS_RE.findall(text)
    if not lines:
        return None
    line = lines[-1]
    stats = {}
    m = re.search(r"dropped\{([^}]*)\}", line)
    if m:
        stats["dropped"] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
        line = line[:m.start()] + line[m.end():]
    stats.update({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)})
    return stats


def thread_cpu(pid):
    """{tid: cpu seconds} of every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids[:256]:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return out


class Snapshot:
    """CPU counters at one instant: relays, the load generator, this benchmark, the machine."""

    def __init__(self, procs, chain, blast):
        self.t = time.monotonic()
        self.busy, self.steal = system_cpu()
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.rusage = a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
        self.live = {pid: proc_cpu_seconds(pid) for p in procs.live for pid in process_tree(p.pid)}
        self.relay = ({"server": sum(proc_cpu_seconds(p) for p in process_tree(chain.server.pid)),
                       "tunnel": sum(proc_cpu_seconds(p) for p in process_tree(chain.tunnel.pid))}
                      if chain else {})
        self.blast = thread_cpu(blast.pid) if blast else {}


def cpu_between(s0, s1, blast_pid):
    wall = s1.t - s0.t
    if wall <= 0:
        return None
    relay = {k: s1.relay[k] - s0.relay[k] for k in s1.relay}
    ours = s1.rusage - s0.rusage
    for pid, t0 in s0.live.items():
        t1 = s1.live.get(pid)
        if t1 is not None and t1 >= t0:
            ours += t1 - t0
    sender = receiver = 0.0
    for tid, t1 in s1.blast.items():
        d = t1 - s0.blast.get(tid, 0.0)
        if tid == blast_pid:
            sender += d
        else:
            receiver += d
    return {
        "wall_s": round(wall, 3),
        "relay_cpu_s": {k: round(v, 3) for k, v in relay.items()},
        "relay_cores": round(sum(relay.values()) / wall, 3) if relay else None,
        "sender_cores": round(sender / wall, 3),
        "sink_cores": round(receiver / wall, 3),
        "machine_busy_cores": round((s1.busy - s0.busy) / wall, 3),
        "foreign_cores": round(max(0.0, s1.busy - s0.busy - ours) / wall, 3),
        "steal_cores": round((s1.steal - s0.steal) / wall, 3),
    }


# ---------------------------------------------------------------------------------------------
# The benchmark


class LineReader:
    """Lines from a child's stdout, each read bounded by a deadline."""

    def __init__(self, stream):
        self.stream = stream
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(stream, selectors.EVENT_READ)
        os.set_blocking(stream.fileno(), False)

    def line(self, deadline):
        while True:
            if b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                return line.decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.sel.select(timeout=min(left, 0.5)):
                continue
            try:
                chunk = os.read(self.stream.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                return None

    def close(self):
        self.sel.close()


def read_knobs():
    """The BENCH_* environment, validated (SystemExit with the reason when a value is bad)."""
    k = {}
    k["methods"] = [m for m in re.split(r"[\s,]+", os.environ.get("BENCH_METHODS",
                                                                  DEFAULT_METHODS)) if m]
    for m in k["methods"]:
        if m not in METHODS_ALL:
            raise SystemExit(f"udp_bench: unknown method {m!r} (one of {METHODS_ALL})")
    if not k["methods"]:
        raise SystemExit("udp_bench: BENCH_METHODS is empty")
    k["rounds"] = env_int("BENCH_ROUNDS", 3)
    k["seconds"] = env_int("BENCH_SECONDS", 5)
    k["rates"] = env_rates("BENCH_RATE")
    k["payload"] = env_int("BENCH_PAYLOAD", 1200, minimum=24)
    k["flows"] = env_int("BENCH_FLOWS", 4)
    if k["flows"] > 64 or k["payload"] > 65000 or k["seconds"] > 3600:
        raise SystemExit("udp_bench: BENCH_FLOWS <= 64, BENCH_PAYLOAD <= 65000 and "
                         "BENCH_SECONDS <= 3600")
    k["drain_ms"] = env_int("BENCH_DRAIN_MS", 500, minimum=0)
    k["warmup"] = env_int("BENCH_WARMUP", 5)
    k["baseline"] = os.environ.get("BENCH_BASELINE", "1") not in ("0", "", "no", "false")
    k["max_seconds"] = env_int("BENCH_MAX_SECONDS", 1800)
    k["quiet_cores"] = float(os.environ.get("BENCH_QUIET_CORES", "0.25"))
    k["quiet_wait"] = env_int("BENCH_QUIET_WAIT", 20, minimum=0)
    k["quiet_budget"] = env_int("BENCH_QUIET_BUDGET", 600, minimum=0)
    k["extra"] = {
        ("ours", "server"): shlex.split(os.environ.get("OURS_SERVER_ARGS", "")),
        ("ours", "tunnel"): shlex.split(os.environ.get("OURS_TUNNEL_ARGS", "")),
        ("libev", "server"): shlex.split(os.environ.get("LIBEV_SERVER_ARGS", "")),
        ("libev", "tunnel"): shlex.split(os.environ.get("LIBEV_TUNNEL_ARGS", "")),
    }
    return k


class Bench(RelayBench):
    TOOL = "udp_bench"

    def __init__(self, ours_bin):
        knobs = read_knobs()  # before anything is created
        self.out = os.environ.get("BENCH_OUT", "/tmp/shadowrelay-bench")
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="shadowrelay-udp-bench.")
        try:
            self.blast = self.compile_blast()
            self.raw = None
            self._setup(ours_bin, knobs)
        except BaseException:
            if getattr(self, "raw", None):
                self.raw.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _setup(self, ours_bin, knobs):
        self.log_dir = os.path.join(self.out, "udp_logs")
        shutil.rmtree(self.log_dir, ignore_errors=True)
        os.makedirs(self.log_dir)
        self.raw_path = os.path.join(self.out, "udp_raw.jsonl")
        self.raw = open(self.raw_path, "w")
        self.procs = Procs(self.log_dir)
        self.ports = UdpPortPool()
        self.ours_bin = ours_bin if ours_bin and os.access(ours_bin, os.X_OK) else None
        self.ours_unavailable = None if self.ours_bin else "binary not built"
        self.ours_started = False
        self.libev_methods = self.libev_supported_methods()
        self.__dict__.update(knobs)
        self.deadline = time.monotonic() + self.max_seconds
        self.quiet_waited = 0.0
        self.results = {}   # (method, rate, impl) -> summary
        self.baseline_result = None
        self.notes = []
        self.foreign = []
        self.start_errors = {}

    def compile_blast(self):
        src = os.path.join(HERE, "udp_blast.c")
        exe = os.path.join(self.tmp, "udp_blast")
        cc = shlex.split(os.environ.get("BENCH_CC", "cc"))
        argv = cc + ["-O2", "-pthread", "-o", exe, src]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SystemExit(f"udp_bench: compiling udp_blast.c: {e}")
        if r.returncode != 0:
            raise SystemExit(f"udp_bench: {shlex.join(argv)} failed:\n{r.stderr[-2000:]}")
        return exe

    # -- chains ---------------------------------------------------------------------------------

    def start_chain(self, impl, method, target_port):
        """Starts server then tunnel (UDP only); a Chain, or None (reason recorded)."""
        if self.available(impl, method):
            return None
        server_port, tunnel_port = self.ports.free(), self.ports.free()
        m = impl_method(impl, method)
        key = relay_key(m, PASSWORD)
        if impl == "ours":
            server_argv = [self.ours_bin, "server", "-s", "127.0.0.1", "-p", str(server_port),
                           "-k", key, "-m", m, "-U", "--allow-private"]
            tunnel_argv = [self.ours_bin, "tunnel", "-s", "127.0.0.1", "-p", str(server_port),
                           "-b", "127.0.0.1", "-l", str(tunnel_port),
                           "-L", f"127.0.0.1:{target_port}", "-k", key, "-m", m, "-U"]
        else:
            server_argv = ["ss-server", "-s", "127.0.0.1", "-p", str(server_port),
                           "-k", key, "-m", m, "-U"]
            tunnel_argv = ["ss-tunnel", "-s", "127.0.0.1", "-p", str(server_port),
                           "-b", "127.0.0.1", "-l", str(tunnel_port),
                           "-L", f"127.0.0.1:{target_port}", "-k", key, "-m", m, "-U"]
        return self.launch_chain(impl, method, server_argv, tunnel_argv,
                                 (server_port, tunnel_port, target_port), wait_udp_bound,
                                 "bind UDP")

    def stop_chain(self, chain):
        """SIGTERM (tunnel, then server), bounded; returns what each relay reported."""
        out = {}
        for role, proc in (("tunnel", chain.tunnel), ("server", chain.server)):
            alive = proc.poll() is None
            self.procs.stop(proc, grace=STOP_GRACE)
            out[role] = {"rc": proc.returncode, "alive_before_stop": alive}
            if chain.impl == "ours":
                out[role]["stats"] = parse_udp_stats(proc.log_path)
        return out

    # -- one run --------------------------------------------------------------------------------

    def blast_once(self, chain, tunnel_port, target_port, rate):
        """Runs udp_blast against tunnel_port with its sink on target_port (chain None: the
        sender straight into the sink). (result dict or None, error or None, cpu or None)."""
        argv = [self.blast, "--tunnel-port", str(tunnel_port), "--target-port", str(target_port),
                "--flows", str(self.flows), "--size", str(self.payload),
                "--seconds", str(self.seconds), "--rate", f"{rate:.0f}",
                "--drain-ms", str(self.drain_ms), "--warmup", str(self.warmup)]
        blast = self.procs.start("udp_blast", argv, stdout=subprocess.PIPE)
        reader = LineReader(blast.stdout)
        deadline = time.monotonic() + self.warmup + self.seconds + self.drain_ms / 1000 + 20
        s0 = s1 = None
        result, err = None, None
        try:
            for _ in range(8):  # "measure", "sent", JSON (or an error JSON at any point)
                line = reader.line(deadline)
                if line is None:
                    err = f"udp_blast: no output before its deadline (rc={blast.poll()}) " \
                          f"{log_tail(blast)}"
                    break
                if line == "measure":
                    s0 = Snapshot(self.procs, chain, blast)
                elif line == "sent":
                    s1 = Snapshot(self.procs, chain, blast)
                elif line.startswith("{"):
                    try:
                        result = json.loads(line)
                    except json.JSONDecodeError:
                        err = f"udp_blast: bad JSON {line[:200]}"
                    break
            try:
                blast.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                err = err or "udp_blast did not exit"
        finally:
            reader.close()
            blast.stdout.close()
            self.procs.stop(blast)
        if result and result.get("error"):
            err, result = result["error"], None
        cpu = cpu_between(s0, s1, blast.pid) if s0 and s1 else None
        return result, err, cpu

    def run_once(self, impl, method, rate, rnd):
        busy_before = self.wait_quiet()
        target_port = self.ports.free()
        chain = self.start_chain(impl, method, target_port)
        if chain is None:
            return None, self.start_errors.get((impl, method)) or self.available(impl, method)
        k0 = kernel_udp_counters()
        try:
            result, err, cpu = self.blast_once(chain, chain.tunnel_port, target_port, rate)
        finally:
            k1 = kernel_udp_counters()
            relays = self.stop_chain(chain)
        for role in ("server", "tunnel"):
            r = relays[role]
            if not r["alive_before_stop"]:
                err = err or f"{impl} {role} exited during the run (rc={r['rc']})"
        kernel = counter_delta(k1, k0)
        row = self.summarize(result, cpu, kernel, relays)
        self.record(kind="udp", impl=impl, method=method, rate_setting=rate, round=rnd,
                    error=err, **row, blast=result, cpu=cpu, kernel=kernel, relays=relays,
                    busy_before_cores=busy_before,
                    logs={"server": chain.server.log_path, "tunnel": chain.tunnel.log_path})
        if cpu:
            self.foreign.append(cpu["foreign_cores"])
        self.progress(f"  round {rnd + 1} {method} {rate_label(rate)} {impl:5} "
                      + self.describe(row, cpu, err))
        return (row or None), err

    @staticmethod
    def summarize(result, cpu, kernel, relays=None):
        if not result or not result.get("send_s"):
            return {}
        sent, received, secs = result["sent"], result["received"], result["send_s"]
        row = {
            "sent": sent,
            "received": received,
            "offered_dps": sent / secs,
            "delivered_dps": received / secs,
            "mbps": result["received_bytes"] * 8 / secs / 1e6,
            "loss_pct": 100.0 * (1 - received / sent) if sent else None,
        }
        if sent and kernel and "RcvbufErrors" in kernel:
            # Machine-wide: datagrams the kernel dropped at full socket receive queues (the
            # tunnel's, the server's, the sink's) during the run, as a share of those sent.
            row["kernel_rcvbuf_drops_pct"] = 100.0 * kernel["RcvbufErrors"] / sent
        if relays is not None:
            counted = [sum((r.get("stats") or {}).get("dropped", {}).values())
                       for r in relays.values() if r.get("stats")]
            if counted:
                row["relay_counted_drops"] = sum(counted)
        if cpu and cpu.get("relay_cores"):
            row["relay_cores"] = cpu["relay_cores"]
            row["dps_per_relay_core"] = row["delivered_dps"] / cpu["relay_cores"]
        return row

    @staticmethod
    def describe(row, cpu, err):
        if not row:
            return f"FAILED {err}"
        text = (f"{row['delivered_dps']:,.0f} dgram/s ({row['mbps']:,.0f} Mbit/s) of "
                f"{row['offered_dps']:,.0f} offered, loss {row['loss_pct']:.2f}%")
        if cpu:
            text += (f"  [relay {cpu['relay_cores'] or 0:.2f} cores, sender "
                     f"{cpu['sender_cores']:.2f}, sink {cpu['sink_cores']:.2f}, other "
                     f"processes {cpu['foreign_cores']:.2f}]")
        if err:
            text += f" ({err})"
        return text

    def run_baseline(self):
        """The load generator alone: sender straight into the sink (no relay), unlimited."""
        if not self.baseline or self.out_of_time():
            return
        self.progress("baseline: udp_blast straight into its sink (no relay), unlimited rate")
        busy_before = self.wait_quiet()
        port = self.ports.free()
        k0 = kernel_udp_counters()
        result, err, cpu = self.blast_once(None, port, port, 0)
        kernel = counter_delta(kernel_udp_counters(), k0)
        row = self.summarize(result, cpu, kernel)
        self.record(kind="udp_baseline", rate_setting=0, error=err, **row, blast=result,
                    cpu=cpu, kernel=kernel, busy_before_cores=busy_before)
        self.progress("  direct " + self.describe(row, cpu, err))
        self.baseline_result = dict(row, cpu=cpu, error=err)

    def run(self):
        self.progress(f"ours: {self.ours_bin or 'n/a'}; libev methods: "
                      f"{', '.join(m for m in METHODS_ALL if m in self.libev_methods) or 'none'}; "
                      f"raw data in {self.out}")
        self.run_baseline()
        for method in self.methods:
            for rate in self.rates:
                self.progress(f"{method}, offered {rate_label(rate)}")
                self.measure(method, rate)
        self.report()

    def measure(self, method, rate):
        samples = {impl: [] for impl in IMPLS}
        errors = {}
        for rnd in range(self.rounds):
            order = IMPLS if rnd % 2 == 0 else tuple(reversed(IMPLS))
            for impl in order:  # alternating ours / libev, order flipped every round
                if self.out_of_time() or self.available(impl, method):
                    continue
                row, err = self.run_once(impl, method, rate, rnd)
                if err:
                    errors[impl] = err
                if row:
                    samples[impl].append(dict(row, round=rnd))
        for impl in IMPLS:
            rows = samples[impl]

            def med(key):
                vals = [r[key] for r in rows if r.get(key) is not None]
                return statistics.median(vals) if vals else None

            self.results[(method, rate, impl)] = {
                "median": med("delivered_dps"),
                "samples": [r["delivered_dps"] for r in rows],
                "by_round": {r["round"]: r["delivered_dps"] for r in rows},
                "mbps": med("mbps"),
                "loss_pct": med("loss_pct"),
                "loss_samples": [r["loss_pct"] for r in rows],
                "offered_dps": med("offered_dps"),
                "kernel_rcvbuf_drops_pct": med("kernel_rcvbuf_drops_pct"),
                "relay_cores": med("relay_cores"),
                "relay_counted_drops": med("relay_counted_drops"),
                "per_relay_core": med("dps_per_relay_core"),
                "na": self.available(impl, method),
                "error": errors.get(impl),
            }

    # -- report ---------------------------------------------------------------------------------

    def machine(self):
        model = "unknown"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        libev = "not installed"
        try:
            head = subprocess.run(["ss-server", "-h"], capture_output=True, text=True,
                                  timeout=10).stdout
            m = re.search(r"shadowsocks-libev\s+(\S+)", head)
            libev = m.group(0) if m else head.strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            pass
        ours = "n/a"
        if self.ours_bin:
            try:
                ours = subprocess.run([self.ours_bin, "version"], capture_output=True, text=True,
                                      timeout=10).stdout.strip() or "unknown"
            except (OSError, subprocess.TimeoutExpired):
                pass
        return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
                "libev": libev, "ours": ours, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    @staticmethod
    def target_cell(o, l, rate):
        text = f"≥ {TARGET_RATIO:.1f}× at ≤ loss"
        if rate > 0 and l and l.get("loss_pct") is not None and \
                l["loss_pct"] < OVERLOAD_LOSS_PCT:
            return "— (libev carries this load: compare loss)"
        v = ratio_value(o, l)
        if v is None or o.get("loss_pct") is None or l.get("loss_pct") is None:
            return text
        loss_ok = o["loss_pct"] <= l["loss_pct"] + LOSS_TOLERANCE_PP
        met = v >= TARGET_RATIO and loss_ok
        why = "" if met else (" (rate)" if loss_ok else
                              (" (loss)" if v >= TARGET_RATIO else " (rate, loss)"))
        return f"{text} {'met' if met else '**missed**'}{why}"

    def report(self):
        m, lines = self.report_head("## UDP relay (`./dev bench udp`)")
        add = lines.append
        add("")
        add(f"Loopback, `udp_blast -> tunnel -U -> server -U -> sink` for both implementations, "
            f"same method and password; {self.flows} flows (source ports), {self.payload}-byte "
            f"datagrams, {self.seconds} s of sending per run, fresh relays per run; offered "
            "load \"max\" = as fast as the sender can (the relays then drop most datagrams at "
            "their full receive queues: delivered is what they can carry), otherwise paced at "
            f"that many datagrams/s; ours and libev alternate run by run (order flipped every "
            f"round), {self.rounds} round(s), medians. Delivered = datagrams received at the "
            "target per second of sending; Mbit/s counts payload; loss = 1 − received/sent. "
            "\"ours/libev\" is the ratio of the medians (the target's measure); \"per-round "
            "ratios\" pairs the adjacent runs of each round. Target: ours/libev ≥ "
            f"{TARGET_RATIO}× with ours' loss at most libev's (+{LOSS_TOLERANCE_PP} points), "
            "judged at \"max\" and at paced loads libev loses at least "
            f"{OVERLOAD_LOSS_PCT:.0f} % of. Kernel receive-queue drops: the machine's UDP "
            "RcvbufErrors during the run (datagrams dropped at a full socket queue of the tunnel, "
            "the server or the sink) per datagram sent; drops counted by the relays: the sum of "
            "the `dropped{...}` counters our tunnel and server print at exit.")
        if self.ours_unavailable:
            add("")
            add(f"ours: n/a — {self.ours_unavailable}")
        add("")
        add("### Forward datagrams through the tunnel (delivered datagrams/s)")
        add("")
        add("| method | offered | ours | libev | ours/libev | per-round ratios, median | "
            "ours Mbit/s | libev Mbit/s | ours loss | libev loss | target |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")

        def num(r, key, digits, suffix=""):
            if not r or r.get(key) is None:
                return "n/a"
            return f"{r[key]:,.{digits}f}{suffix}"

        for method in self.methods:
            for rate in self.rates:
                o = self.results.get((method, rate, "ours"))
                l = self.results.get((method, rate, "libev"))
                add(f"| {method_label(method)} | {rate_label(rate)} | {fmt(o, 0)} | {fmt(l, 0)} | "
                    f"{ratio(o, l)} | {paired_ratio(o, l)} | {num(o, 'mbps', 0)} | "
                    f"{num(l, 'mbps', 0)} | {num(o, 'loss_pct', 2, ' %')} | "
                    f"{num(l, 'loss_pct', 2, ' %')} | {self.target_cell(o, l, rate)} |")
        add("")
        add("### Offered load, drops and relay CPU (information, medians)")
        add("")
        add("| run | offered datagrams/s | delivered datagrams/s | loss | kernel receive-queue "
            "drops / sent | drops counted by the relays | relay cores (server + tunnel) | "
            "delivered per relay core |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        b = self.baseline_result
        if b and b.get("delivered_dps") is not None:
            add(f"| direct, no relay (the load generator alone), max | {num(b, 'offered_dps', 0)} "
                f"| {num(b, 'delivered_dps', 0)} | {num(b, 'loss_pct', 2, ' %')} | "
                f"{num(b, 'kernel_rcvbuf_drops_pct', 2, ' %')} | — | — | — |")
        for method in self.methods:
            for rate in self.rates:
                for impl in IMPLS:
                    r = self.results.get((method, rate, impl))
                    if not r or r.get("median") is None:
                        continue
                    add(f"| {method} {rate_label(rate)} {impl} | {num(r, 'offered_dps', 0)} | "
                        f"{num(r, 'median', 0)} | {num(r, 'loss_pct', 2, ' %')} | "
                        f"{num(r, 'kernel_rcvbuf_drops_pct', 2, ' %')} | "
                        f"{num(r, 'relay_counted_drops', 0) if impl == 'ours' else 'n/a'} | "
                        f"{num(r, 'relay_cores', 2)} | {num(r, 'per_relay_core', 0)} |")
        failures = [f"{method} {rate_label(rate)} {impl}: {r['error']}"
                    for (method, rate, impl), r in self.results.items() if r.get("error")]
        if b and b.get("error"):
            failures.append(f"baseline: {b['error']}")
        summary = {"machine": m, "ours_unavailable": self.ours_unavailable,
                   "baseline": self.baseline_result,
                   "results": {f"{method}/{rate_label(rate)}/{impl}": v
                               for (method, rate, impl), v in self.results.items()}}
        self.report_tail(lines, failures, "one JSON object per run: udp_blast counters, relay "
                         "and sender CPU, kernel UDP counters, our relays' `stopped: udp` "
                         "counters", "udp", summary)

    def close(self):
        self.procs.stop_all()
        self.raw.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv):
    parsed = parse_args("udp_bench", argv, usage, {"--check-env": lambda args: True})
    if isinstance(parsed, int):
        return parsed
    ours, options = parsed
    if "--check-env" in options:
        read_knobs()  # udp_bench.sh: bad knobs fail before the build
        return 0
    if missing_tool("udp_bench", ("ss-server", "ss-tunnel")):
        return 2
    return run_owned(lambda: Bench(ours), lambda bench: bench.run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
