#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""./dev bench cluster: replicas sharing users through etcd (issue 19 §4), measured on a
3-member loopback etcd (Debian's etcd 3.4, tests/e2e/etcd_cluster.py) and two of our servers,
A and B, started with --etcd-endpoints (all three members) and a prefix of their own.

  1. What this etcd sustains, measured in the same run before the servers start: Put requests
     (1 and 8 client processes) and Txn requests of 128 Puts (1 and 4 processes, the store's
     batch), sent by Python clients (http.client, keep-alive, one member each in turn) to
     etcd's JSON gateway (/v3/kv/put, /v3/kv/txn) for BENCH_CLUSTER_PERF_SECONDS each. Key
     writes/s are etcd's own count (etcd_mvcc_put_total of one member: puts inside a Txn count
     one each). Not `etcdctl check perf` (a fixed 60 s pass/fail load, not a maximum). The
     clients and etcd share the two cores, and the gateway adds JSON: a lower bound of what
     gRPC clients get.
  2. Propagation: BENCH_CLUSTER_CHANGES consecutive UpdateUser on A (limits.max_connections
     = i); after each response, B's GetUser is polled every 5 ms (one grpc_call --stdin process
     per replica: a call is a round trip, about a millisecond) until it shows i. p50/p99/max
     of response-on-A to first-seen-on-B, and of request-sent-to-A to first-seen-on-B (the
     whole path: A's etcd transaction, the commit, B's watch); the resolution is the poll
     period plus one call.
  3. Traffic updates at BENCH_CLUSTER_USERS users (default 10 000): that many Shadowsocks 2022
     users (2022-blake3-aes-128-gcm, identity headers on the shared port). BENCH_CLUSTER_SEED
     etcd (default) writes them into etcd, 64 to a Txn, as copies of a user created through A's
     API (`P users/<name>` holds a user in the users.json form); api creates each through A's
     API (each CreateUser rebuilds the table: before the etcd store, 10 000 took about 3
     minutes without a state directory and far longer with one). Either way the time until
     both replicas list them all is reported. Every user sends one UDP datagram through A and
     one through B per sync interval (--etcd-sync-interval BENCH_CLUSTER_SYNC_INTERVAL, default
     5 s, the server's default), a client written from the spec (tests/e2e/ss2022_wire.py),
     paced evenly, to a UDP sink. Warm-up intervals come first (two or more), until every
     replica applies what etcd holds at the end of one within a second (a user's first datagram is its first use, which is
     written to its key: 10 000 configuration changes that every replica applies; their
     number, length and the largest lag in revisions are reported). Then BENCH_CLUSTER_ROUNDS
     intervals are measured: the etcd requests the replicas made (shadowrelay_store_requests_total deltas, by
     method) and the key writes etcd applied (etcd_mvcc_put_total), per second, against the
     expected users x replicas / interval and against the capacity of step 1.

Prints markdown tables; raw data in $BENCH_OUT (default /tmp/shadowrelay-bench):
cluster_raw.jsonl, cluster.md. When our binary has no etcd store (or cannot start), steps 2 and
3 read n/a with the reason, the etcd capacity is still measured, and the exit status is 1.

Run through tests/bench/cluster_bench.sh (`./dev bench cluster`), which builds the release
binary and grpc_call and passes them in BENCH_OURS_BIN and BENCH_GRPC_CALL (or --ours PATH,
--grpc-call PATH). Every wait is bounded; every process started here dies with the driver
(e2e_harness.Child: PR_SET_PDEATHSIG; etcd_cluster's atexit hook; killed on exit).
"""
import base64
import http.client
import json
import multiprocessing
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import e2e_harness as h  # noqa: E402
import ss2022_wire as wire  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402
from tcp_bench import env_int, parse_args  # noqa: E402

TOOL = "cluster_bench"
METHOD = "2022-blake3-aes-128-gcm"
USERS_API = "shadowrelay.v1.UserService/"
POLL_S = 0.005  # B's GetUser while waiting for a change
CHANGE_DEADLINE = 5.0  # one change must reach B within this
WARM_UP_ROUNDS = 30  # sync intervals of traffic at most before the measured ones (warm_up)
CAUGHT_UP = 1.0  # a replica in step with etcd applies its latest revision within this
TRAFFIC_VALUE = json.dumps({"bytes_up": 123456789, "bytes_down": 987654321,
                            "tcp_connections": 12345, "udp_packets": 6789})  # as a flush writes


def usage():
    print(__doc__.strip())
    print("""
Environment:
  BENCH_CLUSTER_USERS          users with traffic (default 10000)
  BENCH_CLUSTER_CHANGES        consecutive changes timed A -> B (default 100)
  BENCH_CLUSTER_SYNC_INTERVAL  --etcd-sync-interval of the servers, seconds (default 5)
  BENCH_CLUSTER_ROUNDS         sync intervals measured with traffic (default 4)
  BENCH_CLUSTER_PERF_SECONDS   seconds per etcd capacity measurement (default 5)
  BENCH_CLUSTER_SEED           etcd (default) or api: how the users are made (above)
  BENCH_OUT                    raw data directory (default /tmp/shadowrelay-bench)
Options:
  --ours PATH        our binary (default: $BENCH_OURS_BIN; cluster_bench.sh builds it)
  --grpc-call PATH   tests/e2e/grpc_call (default: $BENCH_GRPC_CALL)""")


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def progress(text):
    print(f"{TOOL}: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# 1. What this etcd sustains


class Gateway:
    """etcd's JSON gateway on one member, over one keep-alive connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection(h.LOOPBACK, port, timeout=10)

    def post(self, path, body):
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"etcd {path}: HTTP {response.status}: {data[:200]!r}")
        return data

    def close(self):
        self.conn.close()


def capacity_client(port, t, seconds, txn_ops, start_at):
    """One client process: Put (txn_ops 0) or Txn of `txn_ops` Puts on etcd's gateway at
    `port` from `start_at` (time.time()) for `seconds`. Returns (requests, first error)."""
    value = b64(TRAFFIC_VALUE)
    gateway = Gateway(port)
    done = 0
    try:
        time.sleep(max(0.0, start_at - time.time()))
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            if txn_ops:
                keys = (f"/bench-capacity/{t}/{(done * txn_ops + k) % 10000}"
                        for k in range(txn_ops))
                ops = [{"request_put": {"key": b64(key), "value": value}} for key in keys]
                gateway.post("/v3/kv/txn", {"success": ops})
            else:
                gateway.post("/v3/kv/put", {"key": b64(f"/bench-capacity/{t}/{done % 10000}"),
                                            "value": value})
            done += 1
        return done, None
    except Exception as e:  # noqa: BLE001 - reported in the row
        return done, f"{type(e).__name__}: {e}"
    finally:
        gateway.close()


def capacity_run(etcd, what, clients, seconds, txn_ops):
    """`clients` client processes (not threads: one Python interpreter cannot keep etcd busy),
    each on a member of its own (round robin), for `seconds`. Returns the row."""
    counted = etcd.members[0]
    puts_before = counted.metric("etcd_mvcc_put_total")
    start_at = time.time() + 0.5  # every process connected and waiting
    context = multiprocessing.get_context("fork")
    with context.Pool(clients) as pool:
        jobs = [pool.apply_async(capacity_client, (etcd.members[t % len(etcd.members)].client_port,
                                                   t, seconds, txn_ops, start_at))
                for t in range(clients)]
        results = [job.get(seconds + 60) for job in jobs]
    puts = counted.metric("etcd_mvcc_put_total") - puts_before
    requests = sum(done for done, _ in results)
    return {"step": "capacity", "what": what, "clients": clients, "seconds": seconds,
            "requests_per_s": round(requests / seconds, 1),
            "key_writes_per_s": round(puts / seconds, 1),
            "errors": [e for _, e in results if e][:3]}


def measure_capacity(etcd, seconds):
    rows = []
    for what, clients, ops in (("Put", 1, 0), ("Put", 8, 0), ("Txn of 128 Puts", 1, 128),
                               ("Txn of 128 Puts", 4, 128)):
        progress(f"etcd capacity: {what}, {clients} client process(es), {seconds} s")
        rows.append(capacity_run(etcd, what, clients, seconds, ops))
    etcd.delete_prefix("/bench-capacity/")
    etcd.compact()
    return rows


# ---------------------------------------------------------------------------------------------
# Servers


class Server:
    def __init__(self, name, child, token):
        self.name = name
        self.child = child
        ready = child.ready
        self.udp_port = ready.udp[0][1]
        self.api_port = ready.control[1]
        self.metrics_port = ready.metrics[1]
        self.api = h.ApiSession(self.api_port, token)

    def call(self, method, request):
        return self.api.call(USERS_API + method, request)

    def metric(self, name):
        return h.metric_sum(self.metrics_port, name)

    def store_requests(self):
        """{method: count} of shadowrelay_store_requests_total (every result)."""
        import urllib.request
        with urllib.request.urlopen(f"http://{h.LOOPBACK}:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            match = h._METRIC_SAMPLE.match(line)
            if not match or match.group(1) != "shadowrelay_store_requests_total":
                continue
            labels = dict(h._METRIC_LABEL.findall(match.group(2) or ""))
            method = labels.get("method", "?")
            out[method] = out.get(method, 0.0) + float(match.group(3))
        return out


def start_server(name, etcd, prefix, ipsk, sync_interval, tmp):
    token = f"bench-{name}-" + secrets.token_hex(8)
    token_file = os.path.join(tmp, f"token-{name}")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    os.chmod(token_file, 0o600)
    argv = [h.Config.relay, "server", "-s", h.LOOPBACK, "-p", 0, "-u", "--allow-private",
            "-m", METHOD, "-k", wire.b64(ipsk),
            "--control-listen", f"{h.LOOPBACK}:0", "--control-token-file", token_file,
            "--metrics-listen", f"{h.LOOPBACK}:0",
            "--state-dir", os.path.join(tmp, f"state-{name}"),
            "--etcd-endpoints", etcd.endpoints_arg, "--etcd-prefix", prefix,
            "--etcd-sync-interval", sync_interval, "--etcd-lease-ttl", 10]
    child = h.Child(f"server-{name}", argv, ours=True)
    child.wait_ready()
    return Server(name, child, token)


# ---------------------------------------------------------------------------------------------
# 2. Propagation


def measure_propagation(a, b, changes):
    a.call("CreateUser", {"name": "prop", "method": METHOD})
    end = time.monotonic() + CHANGE_DEADLINE
    while True:
        try:
            b.call("GetUser", {"name": "prop"})
            break
        except h.ApiError:
            if time.monotonic() > end:
                raise AssertionError("the user 'prop' never reached B")
            time.sleep(POLL_S)
    from_answer, from_request = [], []
    for i in range(1, changes + 1):
        sent = time.monotonic()
        a.call("UpdateUser", {"user": {"name": "prop", "limits": {"max_connections": i}},
                              "update_mask": "limits.maxConnections"})
        answered = time.monotonic()
        while True:
            got = b.call("GetUser", {"name": "prop"})
            if int(got.get("limits", {}).get("max_connections") or 0) == i:
                seen = time.monotonic()
                from_answer.append(seen - answered)
                from_request.append(seen - sent)
                break
            if time.monotonic() - answered > CHANGE_DEADLINE:
                raise AssertionError(f"change {i} did not reach B within {CHANGE_DEADLINE} s")
            time.sleep(POLL_S)
    row = {"step": "propagation", "changes": changes}
    # From A's answer: what a client that wrote on A waits before B serves it. From the request:
    # the whole path (A's etcd transaction, etcd's commit, B's watch), the bound.
    for what, latencies in (("", from_answer), ("request_", from_request)):
        ms = [x * 1000 for x in latencies]
        row.update({f"{what}p50_ms": round(percentile(ms, 50), 1),
                    f"{what}p99_ms": round(percentile(ms, 99), 1),
                    f"{what}max_ms": round(max(ms), 1),
                    f"{what}mean_ms": round(statistics.mean(ms), 1)})
    return row


# ---------------------------------------------------------------------------------------------
# 3. Traffic updates


class UdpSink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((h.LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                self.sock.recvfrom(2048)
                self.received += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def create_users_api(a, count, deadline_s):
    """`count` 2022 users created on A through the API, keys made here: [(name, uPSK)]."""
    users = []
    started = time.monotonic()
    for i in range(count):
        upsk = os.urandom(16)
        name = f"u{i:05d}"
        a.call("CreateUser", {"name": name, "method": METHOD, "password": wire.b64(upsk)})
        users.append((name, upsk))
        if (i + 1) % 1000 == 0:
            progress(f"created {i + 1} users ({time.monotonic() - started:.1f} s)")
        if time.monotonic() - started > deadline_s:
            raise AssertionError(f"creating {count} users took over {deadline_s} s ({i + 1} made)")
    return users


def seed_users_etcd(etcd, prefix, a, count):
    """`count` 2022 users written straight into etcd, 64 to a Txn: copies of a user created
    through A's API, whose `P users/<name>` value (the users.json form of a user, the key
    table of the store) gets another name and password. The replicas take them from their
    watch. [(name, uPSK)]."""
    template = wire.b64(os.urandom(16))
    a.call("CreateUser", {"name": "template", "method": METHOD, "password": template})
    stored = etcd.get_prefix(prefix + "users/template")
    value = json.loads(stored.get(prefix + "users/template", "null"))
    if not isinstance(value, dict) or value.get("name") != "template" or \
            value.get("password") != template:
        raise AssertionError(f"{prefix}users/template is not a user in the users.json form "
                             f"(BENCH_CLUSTER_SEED=api creates them through the API)")
    guard = etcd.get_prefix(prefix + "config_revision").get(prefix + "config_revision")
    gateway = Gateway(etcd.members[0].client_port)
    users = []
    try:
        for first in range(0, count, 64):
            ops = []
            for i in range(first, min(count, first + 64)):
                upsk = os.urandom(16)
                users.append((f"u{i:05d}", upsk))
                user = dict(value, name=users[-1][0], password=wire.b64(upsk))
                ops.append({"request_put": {"key": b64(f"{prefix}users/{users[-1][0]}"),
                                            "value": b64(json.dumps(user))}})
            if guard is not None:  # every config write moves the guard (etcd-spec.md)
                ops.append({"request_put": {"key": b64(prefix + "config_revision"),
                                            "value": b64(guard)}})
            gateway.post("/v3/kv/txn", {"success": ops})
    finally:
        gateway.close()
    return users


def create_users(etcd, prefix, servers, count, seed):
    """The users with traffic, made on A (through the API or seeded in etcd), once every
    replica lists them all; [(name, uPSK)] and the seconds until then."""
    started = time.monotonic()
    if seed == "api":
        users = create_users_api(servers[0], count, deadline_s=max(600, count / 10))
    else:
        users = seed_users_etcd(etcd, prefix, servers[0], count)
    want = {name for name, _ in users}
    for server in servers:
        end = time.monotonic() + 300
        while not want <= set(u["name"] for u in
                              server.call("ListUsers", {}).get("users", [])):
            if time.monotonic() > end:
                raise AssertionError(f"{server.name} did not list the {count} users in 300 s")
            time.sleep(0.5)
    return users, time.monotonic() - started


def warm_up(etcd, servers, send):
    """Rounds of traffic (`send`: one round), at least two, until every replica applies what
    etcd holds at the end of one within CAUGHT_UP s, for at most WARM_UP_ROUNDS. The first
    datagram of a user is its first use, which the registry writes to the user's key: 10 000
    configuration changes at once, each batch of which every replica applies by rebuilding its
    table; the traffic is measured after that has settled. Returns (rounds, seconds, the
    largest lag seen in revisions)."""
    started = time.monotonic()
    worst = 0
    for rounds in range(1, WARM_UP_ROUNDS + 1):
        progress(f"warm-up round {rounds}: one datagram per user and replica")
        send()
        target = etcd.current_revision()
        applied = {s.name: s.metric("shadowrelay_store_revision") for s in servers}
        worst = max([worst] + [target - r for r in applied.values()])
        end = time.monotonic() + CAUGHT_UP
        while min(applied.values()) < target and time.monotonic() < end:
            time.sleep(0.05)
            applied = {s.name: s.metric("shadowrelay_store_revision") for s in servers}
        progress(f"etcd at revision {target}; replicas applied {applied}")
        if rounds >= 2 and min(applied.values()) >= target:
            return rounds, time.monotonic() - started, int(worst)
    raise AssertionError(f"the replicas did not catch up with etcd in {WARM_UP_ROUNDS} rounds")


class Counters:
    """etcd's put and txn counters (one /metrics of `member`) and each server's
    shadowrelay_store_requests_total by method, each with the time it was read (the middle of
    its request)."""

    def __init__(self, member, servers):
        started = time.monotonic()
        text = member.metrics()
        self.etcd_at = (started + time.monotonic()) / 2
        values = {"etcd_mvcc_put_total": 0.0, "etcd_mvcc_txn_total": 0.0}
        for line in text.splitlines():
            match = h._METRIC_SAMPLE.match(line)
            if match and match.group(1) in values:
                values[match.group(1)] += float(match.group(3))
        self.puts = values["etcd_mvcc_put_total"]
        self.txns = values["etcd_mvcc_txn_total"]
        self.store, self.store_at = {}, {}
        for s in servers:
            started = time.monotonic()
            self.store[s.name] = s.store_requests()
            self.store_at[s.name] = (started + time.monotonic()) / 2


def send_round(sock, users, sessions, servers, sink_port, ipsk, interval):
    """One datagram per user through each server, spread evenly over `interval` s."""
    address = wire.socks_ipv4(h.LOOPBACK, sink_port)
    total = len(users) * len(servers)
    batch = 200
    started = time.monotonic()
    sent = 0
    for server in servers:
        for (name, upsk) in users:
            session = sessions[(server.name, name)]
            session[1] += 1
            packet = wire.client_packet(METHOD, [ipsk, upsk], session[0], session[1], address,
                                        b"cluster-bench")
            sock.sendto(packet, (h.LOOPBACK, server.udp_port))
            sent += 1
            if sent % batch == 0:
                due = started + interval * sent / total
                time.sleep(max(0.0, due - time.monotonic()))
    time.sleep(max(0.0, started + interval - time.monotonic()))
    return sent


def measure_traffic(etcd, prefix, servers, users_count, interval, rounds, ipsk, seed):
    users, create_s = create_users(etcd, prefix, servers, users_count, seed)
    progress(f"{users_count} users made on A ({seed}) and listed by every replica in "
             f"{create_s:.1f} s")
    last = servers[-1]
    sink = UdpSink()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sessions = {(s.name, name): [os.urandom(8), 0] for s in servers for name, _ in users}
    try:
        settled = warm_up(etcd, servers, lambda: send_round(sock, users, sessions, servers,
                                                             sink.port, ipsk, interval))
        counted = etcd.members[0]
        before = Counters(counted, servers)
        received_before = sink.received
        began = time.monotonic()
        sent = 0
        for r in range(rounds):
            progress(f"measured interval {r + 1}/{rounds}")
            sent += send_round(sock, users, sessions, servers, sink.port, ipsk, interval)
        elapsed = time.monotonic() - began
        after = Counters(counted, servers)
        relayed = sink.received - received_before
        sample = last.call("GetUser", {"name": users[0][0]})
    finally:
        sock.close()
        sink.stop()
    # Each counter over the time between its own two readings: a /metrics of 10 000 users
    # takes a while to render, and etcd's writes go on meanwhile.
    etcd_s = after.etcd_at - before.etcd_at
    by_method = {}
    for s in servers:
        seconds = after.store_at[s.name] - before.store_at[s.name]
        for method, count in after.store[s.name].items():
            delta = count - before.store[s.name].get(method, 0.0)
            by_method[method] = by_method.get(method, 0.0) + delta / seconds
    puts = after.puts - before.puts
    txns = after.txns - before.txns
    return {"step": "traffic", "users": users_count, "replicas": len(servers),
            "sync_interval_s": interval, "seconds": round(elapsed, 1),
            "etcd_seconds": round(etcd_s, 1),
            "warm_up_rounds": settled[0], "warm_up_s": round(settled[1], 1),
            "warm_up_max_lag_revisions": settled[2],
            "seed": seed, "create_users_per_s": round(users_count / create_s, 1),
            "datagrams_per_s": round(sent / elapsed, 1),
            "relayed_share": round(relayed / sent, 3) if sent else 0.0,
            "store_requests_per_s": {m: round(c, 1) for m, c in sorted(by_method.items())},
            "store_requests_total_per_s": round(sum(by_method.values()), 1),
            "etcd_txn_per_s": round(txns / etcd_s, 1),
            "key_writes_per_s": round(puts / etcd_s, 1),
            "key_writes_per_txn": round(puts / txns, 1) if txns else 0.0,
            # How often each user's counters were written, per replica: the interval plus
            # whatever a flush itself takes, if the next one is timed from its end.
            "write_period_s": round(users_count * len(servers) * etcd_s / puts, 2) if puts else 0,
            "expected_key_writes_per_s": round(users_count * len(servers) / interval, 1),
            "sample_user_udp_packets": int(sample.get("traffic", {}).get("udp_packets") or 0)}


# ---------------------------------------------------------------------------------------------
# Report


def tables(capacity, propagation, traffic, why_na):
    lines = ["#### etcd capacity here (3 members on loopback, measured in this run)", "",
             "| request (JSON gateway, Python clients) | client processes | requests/s "
             "| key writes/s (etcd_mvcc_put_total) |", "|---|---|---|---|"]
    for r in capacity:
        note = f" (errors: {'; '.join(r['errors'])})" if r["errors"] else ""
        lines.append(f"| {r['what']} | {r['clients']} | {r['requests_per_s']:.0f}{note} "
                     f"| {r['key_writes_per_s']:.0f} |")
    best = max((r["key_writes_per_s"] for r in capacity), default=0.0)
    lines += ["", "#### Propagation: UpdateUser on A until B's GetUser shows it (polled every "
              "5 ms)", "", "| from | changes | p50 | p99 | max |", "|---|---|---|---|---|"]
    if propagation:
        p = propagation
        for what, key in (("A's answer", ""), ("the request to A", "request_")):
            lines.append(f"| {what} | {p['changes']} | {p[key + 'p50_ms']} ms "
                         f"| {p[key + 'p99_ms']} ms | {p[key + 'max_ms']} ms |")
    else:
        lines.append(f"| n/a | n/a | n/a | n/a | n/a ({why_na}) |")
    lines += ["", "#### etcd writes of traffic updates", "",
              "| users (traffic every interval) | replicas | --etcd-sync-interval "
              "| store requests/s (by method) | etcd txn/s | key writes/s | expected users x "
              "replicas / interval | share of the best capacity measured |",
              "|---|---|---|---|---|---|---|---|"]
    if traffic:
        t = traffic
        methods = ", ".join(f"{m} {c:.1f}" for m, c in t["store_requests_per_s"].items())
        share = f"{100 * t['key_writes_per_s'] / best:.1f} %" if best else "n/a"
        lines.append(f"| {t['users']} | {t['replicas']} | {t['sync_interval_s']} s | "
                     f"{t['store_requests_total_per_s']:.1f} ({methods}) | "
                     f"{t['etcd_txn_per_s']:.1f} | {t['key_writes_per_s']:.0f} | "
                     f"{t['expected_key_writes_per_s']:.0f} | {share} |")
        made = ("created through A's API" if t["seed"] == "api" else
                "seeded in etcd (copies of a user created through A's API)")
        lines += ["", f"{t['key_writes_per_txn']:.0f} key writes per etcd transaction; "
                  f"each user's counters written every {t['write_period_s']} s per replica "
                  f"(users x replicas / key writes/s)."]
        lines += ["", f"Before the measured intervals: {t['warm_up_rounds']} warm-up "
                  f"intervals, {t['warm_up_s']} s, until every replica applied what etcd "
                  f"held at the end of one within a second (the users' first use is written "
                  f"to their keys); "
                  f"a replica was up to {t['warm_up_max_lag_revisions']} revisions behind "
                  f"etcd meanwhile."]
        lines += ["", f"{t['users']} users {made}, listed by every replica at "
                  f"{t['create_users_per_s']:.0f}/s; {t['datagrams_per_s']:.0f} datagrams/s "
                  f"sent, {100 * t['relayed_share']:.1f} % reached the sink; a sample user's "
                  f"GetUser on B counts {t['sample_user_udp_packets']} datagrams "
                  f"(cluster total)."]
    else:
        lines.append(f"| n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a ({why_na}) |")
    return "\n".join(lines)


def main(argv):
    parsed = parse_args(TOOL, argv, usage, {"--grpc-call": lambda args: args.pop(0)})
    if isinstance(parsed, int):
        return parsed
    ours, options = parsed
    grpc_call = options.get("--grpc-call") or os.environ.get("BENCH_GRPC_CALL")
    for tool in ("etcd", "etcdctl"):
        h.tool(tool)
    users = env_int("BENCH_CLUSTER_USERS", 10000, tool=TOOL)
    changes = env_int("BENCH_CLUSTER_CHANGES", 100, tool=TOOL)
    interval = env_int("BENCH_CLUSTER_SYNC_INTERVAL", 5, tool=TOOL)
    rounds = env_int("BENCH_CLUSTER_ROUNDS", 4, tool=TOOL)
    perf_seconds = env_int("BENCH_CLUSTER_PERF_SECONDS", 5, tool=TOOL)
    seed = os.environ.get("BENCH_CLUSTER_SEED", "etcd")
    if seed not in ("etcd", "api"):
        print(f"{TOOL}: BENCH_CLUSTER_SEED must be etcd or api", file=sys.stderr)
        return 2
    out_dir = os.environ.get("BENCH_OUT", "/tmp/shadowrelay-bench")
    os.makedirs(out_dir, exist_ok=True)
    h.Config.tmp = tempfile.mkdtemp(prefix="shadowrelay-cluster-")
    h.raise_fd_limit(4 * users + 1024)
    capacity, propagation, traffic, why_na = [], None, None, None
    etcd = EtcdCluster()
    servers = []
    try:
        etcd.start()
        progress(f"etcd up: {etcd.endpoints_arg}")
        capacity = measure_capacity(etcd, perf_seconds)
        for row in capacity:
            progress(json.dumps(row))
        if not ours or not os.access(ours, os.X_OK):
            why_na = "no binary of ours (BENCH_OURS_BIN or --ours PATH)"
        elif not grpc_call or not os.access(grpc_call, os.X_OK):
            why_na = "no grpc_call (BENCH_GRPC_CALL or --grpc-call PATH)"
        else:
            h.Config.relay = os.path.abspath(ours)
            h.Config.grpc_call = os.path.abspath(grpc_call)
            prefix = f"/bench{secrets.token_hex(4)}/"
            ipsk = os.urandom(16)
            try:
                for name in "AB":
                    servers.append(start_server(name, etcd, prefix, ipsk, interval, h.Config.tmp))
            except AssertionError as e:
                said = [x.strip() for x in str(e).splitlines()
                        if x.strip() and not x.strip().startswith(("$", "Run `"))]
                why_na = "our server did not start with the etcd store: " + said[-1][:200]
        if servers:
            progress(f"propagation: {changes} changes on A, polled on B")
            propagation = measure_propagation(servers[0], servers[1], changes)
            progress(json.dumps(propagation))
            traffic = measure_traffic(etcd, prefix, servers, users, interval, rounds, ipsk,
                                      seed)
            progress(json.dumps(traffic))
    except (AssertionError, OSError, RuntimeError, h.ApiError) as e:
        why_na = why_na or f"run failed: {e}"
        progress(why_na)
    finally:
        for s in servers:
            s.api.close()
        h.kill_all_children()
        etcd.close()
        shutil.rmtree(h.Config.tmp, ignore_errors=True)
    with open(os.path.join(out_dir, "cluster_raw.jsonl"), "a") as f:
        for row in capacity + [propagation, traffic]:
            if row:
                f.write(json.dumps(row) + "\n")
    report = tables(capacity, propagation, traffic, why_na)
    with open(os.path.join(out_dir, "cluster.md"), "w") as f:
        f.write(report + "\n")
    print(report)
    return 0 if capacity and propagation and traffic else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
