# SPDX-License-Identifier: Apache-2.0
"""Replicas sharing users through etcd (issue 19 §4): a real 3-member etcd cluster (Debian's
etcd 3.4, etcd_cluster.py) and three of our servers, A, B and C, each with its own state
directory, control token and /metrics, all started with

    --etcd-endpoints <the three members> --etcd-prefix /t<random>/
    --etcd-sync-interval 1 --etcd-lease-ttl 3 --device-window 3

and shadowsocks-libev's ss-local (and curl, nginx) as the clients. Each test gets a cluster and
replicas of its own.

  (a) CreateUser on A relays through C within 1 s (fetches started every 50 ms; the earliest
      one that relays is recorded), and GetUser on C shows it;
  (b) CreateUser of a name that exists, asked on B at once: ALREADY_EXISTS;
  (c) 10 concurrent CreateUser of one name over A, B, C: exactly one OK; two users asking for
      one dedicated port on two replicas at once: one wins (three rounds);
  (d) a live download through A is cut within 1 s of DeleteUser on B;
  (e) kill -9 of the etcd leader: a download through B goes on, a CreateUser succeeds within
      2.5 s and reaches B and C;
  (f) every etcd member stopped for 10 s: relaying goes on, writes answer UNAVAILABLE (and
      leave nothing behind), GetUser/ListUsers answer; etcd back: a change reaches all;
  (g) compaction while C is away (SIGSTOP, its watch severed by an etcd restart, changes on A
      with a delete, compaction at the current revision): C re-lists and ends with A's users;
  (h) a 10 MiB quota: 6 MiB through A, then 6 MiB through B: within about two sync intervals
      the user is OVER_QUOTA on every replica, whose GetUser reports the cluster total;
  (i) max_connections 2: two sessions held through A (ss-local); once A published them (one
      sync interval) a third through B or C is refused before the target and counted on B;
      one of A's ends: within two intervals B admits one;
  (j) max_devices 1: a device (a client bound to 127.0.0.2) through A; once A published it,
      127.0.0.3 through B is refused and counted, 127.0.0.2 through B is admitted (one device
      id on every replica: GetUser on B lists A's device by the hash A shows), and 127.0.0.3 is
      admitted through B once the first device's --device-window has ended;
  the shadowrelay_store_* metrics and the keys under the prefix.

The cleanups stop the replicas (SIGTERM, exit 0 checked) while etcd still runs, then etcd.
Every wait is bounded (wait_until, deadlines below, curl --max-time, socket timeouts).
"""
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import aead_wire
import e2e_harness as h
from devices_e2e_test import Session2017
from etcd_cluster import EtcdCluster
from users_e2e_test import ThrottledSource, drain_until_closed

SYNC_INTERVAL = 1  # --etcd-sync-interval
LEASE_TTL = 3  # --etcd-lease-ttl
# Issue 19 §1: from a write on one replica to relaying (or being cut) on another.
PROPAGATION = 1.0
POLL = 0.05  # a new fetch is started this often while waiting for propagation
# Leader killed: a new one in ~0.6 s (RESEARCH.md), the replica's request timeout is 2 s.
FAILOVER = 2.5
# etcd back after an outage: the watch reconnects with backoff up to 1 s, writes retry.
RECOVERY = 5.0
# A quota reached on the cluster total: each replica flushes every interval, the others apply
# the flush from their watch, the registry's next tick cuts; one interval of slack.
QUOTA_DEADLINE = 2 * SYNC_INTERVAL + 1.5
OUTAGE = 10.0  # all etcd members down this long
DEVICE_WINDOW = 3  # --device-window
# A replica publishes its live counts at its next sync; the others hear them from the watch.
LIVE_DEADLINE = 2 * SYNC_INTERVAL + 1.5
WATCH_SETTLE = 0.3  # from a key written in etcd to the other replicas' tables (measured < 0.1)
API_WHILE_DOWN = 4.0  # a write with etcd down answers UNAVAILABLE within this (2 s timeout)
METHOD = "chacha20-ietf-poly1305"
REFUSED_OVER_LIMIT = "shadowrelay_tcp_refused_over_limit_total"
USERS = "shadowrelay.v1.UserService/"
STORE_METRICS = ("shadowrelay_store_requests_total", "shadowrelay_store_watch_lag_seconds",
                 "shadowrelay_store_revision", "shadowrelay_store_last_sync_timestamp_seconds",
                 "shadowrelay_store_up")


def traffic(user):
    """bytes_up + bytes_down of a User in JSON (uint64 are strings there)."""
    t = user.get("traffic", {})
    return int(t.get("bytes_up") or 0) + int(t.get("bytes_down") or 0)


def fetch(local_port, url, max_time):
    """One curl through the SOCKS5 port: (body, curl's exit code)."""
    out = subprocess.run([h.tool("curl"), "-q", "-sS", "--max-time", str(max_time),
                          "--socks5-hostname", f"{h.LOOPBACK}:{local_port}", "-o", "-", url],
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=max_time + 15)
    return out.stdout, out.returncode


class Replica:
    """One of our servers in the cluster: its ports, and an ApiSession to its control API."""

    def __init__(self, name, child, token):
        self.name = name
        self.child = child
        self.token = token
        ready = child.ready
        self.relay_port = ready.port
        self.api_port = ready.control[1]
        self.metrics_port = ready.metrics[1]
        self.session = h.ApiSession(self.api_port, token)

    def call(self, method, request, timeout=15):
        return self.session.call(USERS + method, request, timeout=timeout)

    def create(self, name, method=METHOD, **fields):
        return self.call("CreateUser", dict(name=name, method=method, **fields))

    def get(self, name):
        return self.call("GetUser", {"name": name})

    def delete(self, name):
        return self.call("DeleteUser", {"name": name})

    def users(self):
        """{name: User} from ListUsers."""
        return {u["name"]: u for u in self.call("ListUsers", {}).get("users", [])}

    def has(self, name, password=None):
        try:
            user = self.get(name)
        except h.ApiError as e:
            if e.code == "NOT_FOUND":
                return False
            raise
        return password is None or user["password"] == password

    def lacks(self, name):
        try:
            self.get(name)
            return False
        except h.ApiError as e:
            if e.code == "NOT_FOUND":
                return True
            raise

    def metric(self, name, labels=None):
        return h.metric_sum(self.metrics_port, name, labels)

    def metrics_text(self):
        import urllib.request
        with urllib.request.urlopen(f"http://{h.LOOPBACK}:{self.metrics_port}/metrics",
                                    timeout=5) as r:
            return r.read().decode("utf-8")


class ClusterTest(h.RelayTestCase):
    def setUp(self):
        self.require_ours("the etcd store is our server's")
        # etcd's cleanup is registered first, so it runs last: the replicas stop (and must
        # exit 0) while etcd still answers.
        self.etcd = EtcdCluster()
        self.addCleanup(self.etcd.close)
        self.etcd.start()
        super().setUp()
        self.prefix = f"/t{secrets.token_hex(4)}/"
        self.site = h.nginx()
        self.replicas = {}
        for name in "ABC":
            self.replicas[name] = self.start_replica(name)
        self.A, self.B, self.C = (self.replicas[n] for n in "ABC")
        for replica in self.replicas.values():
            self.addCleanup(replica.session.close)

    def failure_context(self):
        return super().failure_context() + "\n" + self.etcd.log_tails()

    def replica_argv(self, name, extra=()):
        """(argv, control token) of replica `name`: the flags above plus `extra`."""
        token = f"e2e-cluster-{name}-" + secrets.token_hex(8)
        token_file = h.scratch_path(f"control-token-{name}")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(token_file, 0o600)
        argv = [h.Config.relay, "server", "-s", h.LOOPBACK, "-p", 0, "--allow-private",
                "--control-listen", f"{h.LOOPBACK}:0", "--control-token-file", token_file,
                "--metrics-listen", f"{h.LOOPBACK}:0",
                "--state-dir", h.scratch_path(f"state-{name}"),
                "--etcd-endpoints", self.etcd.endpoints_arg, "--etcd-prefix", self.prefix,
                "--etcd-sync-interval", SYNC_INTERVAL, "--etcd-lease-ttl", LEASE_TTL,
                "--device-window", DEVICE_WINDOW] + list(extra)
        if h.Config.verbose:
            argv.append("-v")
        return argv, token

    def start_replica(self, name):
        argv, token = self.replica_argv(name)
        return Replica(name, self.start_ours(f"ours-server-{name}", argv), token)

    # ---------------------------------------------------------------- helpers

    def ss_local(self, replica, password, method=METHOD):
        """shadowsocks-libev's ss-local to `replica`'s shared port with `password`."""
        return self.start_local(replica.relay_port, method, impl="libev", password=password)

    def fetch_ok(self, local_port, name=h.Nginx.SMALL, max_time=20):
        body, code = fetch(local_port, self.site.url(name), max_time)
        size, digest = self.site.files[name]
        self.assertEqual(code, 0, f"curl through {local_port} failed ({code})")
        self.assertEqual(len(body), size)
        self.assertEqual(h.sha256(body), digest)
        return body

    def fetch_fails(self, local_port, max_time=2):
        """A fetch through `local_port` gets nothing (a key nobody has is held silent until
        the handshake deadline: curl gives up after `max_time` s)."""
        body, code = fetch(local_port, self.site.url(h.Nginx.SMALL), max_time)
        self.assertNotEqual(code, 0, "the fetch should have failed")
        self.assertEqual(body, b"", "bytes came back through a refused session")

    def fetch_works(self, local_port, max_time=3):
        size, digest = self.site.files[h.Nginx.SMALL]
        body, code = fetch(local_port, self.site.url(h.Nginx.SMALL), max_time)
        return code == 0 and len(body) == size and h.sha256(body) == digest

    def first_relay(self, local_port, since, deadline):
        """Starts a fetch through `local_port` every POLL s from now until one relays or
        `deadline` s after `since` have passed; returns how long after `since` the earliest
        fetch that relayed was started (None if none did). A fetch started before the user
        reached the replica fails at the handshake, so overlapping starts time the change to
        within POLL."""
        starts = []
        results = {}
        threads = []
        lock = threading.Lock()

        def attempt(i, started):
            ok = self.fetch_works(local_port, max_time=3)
            with lock:
                results[i] = (started, ok)

        end = since + deadline
        i = 0
        while time.monotonic() < end and i < int(deadline / POLL) + 2:
            with lock:
                if any(ok for _, ok in results.values()):
                    break
            started = time.monotonic()
            starts.append(started)
            t = threading.Thread(target=attempt, args=(i, started), daemon=True)
            t.start()
            threads.append(t)
            i += 1
            time.sleep(max(0.0, started + POLL - time.monotonic()))
        for t in threads:
            t.join(20)
        relayed = [started for started, ok in results.values() if ok]
        return (min(relayed) - since) if relayed else None

    def until(self, predicate, timeout, what):
        """How long `predicate` took to hold (polled every 5 ms), failing after `timeout`."""
        start = time.monotonic()
        end = start + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
            time.sleep(0.005)
        return time.monotonic() - start

    def retry_write(self, replica, what, write, timeout):
        """Calls `write()` until it does not fail with UNAVAILABLE, for at most `timeout` s;
        returns (its result, seconds taken)."""
        start = time.monotonic()
        last = None
        while time.monotonic() - start < timeout:
            try:
                return write(), time.monotonic() - start
            except h.ApiError as e:
                if e.code != "UNAVAILABLE":
                    raise
                last = e
                time.sleep(0.05)
        raise AssertionError(f"{what} on {replica.name} still failed after {timeout:.1f} s: "
                             f"{last}")

    def wait_everywhere(self, name, password, timeout, replicas=None):
        for r in replicas or self.replicas.values():
            h.wait_until(lambda: r.has(name, password), timeout, f"{name} on replica {r.name}")

    def report(self, text):
        print(f"  {text}", file=sys.stderr)

    # ---------------------------------------------------------------- (a) (b)

    def test_create_on_a_relays_through_c_within_a_second(self):
        password = "alice-" + secrets.token_hex(8)
        local_c = self.ss_local(self.C, password)  # before the user exists: nothing relays
        self.fetch_fails(local_c, max_time=1)
        sent = time.monotonic()
        alice = self.A.create("alice", password=password)
        written = time.monotonic()
        self.assertEqual(alice["password"], password)
        # Fetches through C from now on (a thread), GetUser on C polled meanwhile.
        relay = {}
        poller = threading.Thread(
            target=lambda: relay.update(at=self.first_relay(local_c, written, 3 * PROPAGATION)),
            daemon=True)
        poller.start()
        api_seen = self.until(lambda: self.C.has("alice", password), 5 * PROPAGATION,
                              "GetUser on C to show alice")
        poller.join(30)
        relayed = relay.get("at")
        self.report(f"CreateUser on A took {written - sent:.3f} s; on C's API after "
                    f"{api_seen:.3f} s; first fetch through C that relayed started "
                    f"{relayed if relayed is None else round(relayed, 3)} s after the write")
        self.assertIsNotNone(relayed, "alice never relayed through C")
        self.assertLessEqual(relayed, PROPAGATION, "alice relayed through C too late")
        self.assertLessEqual(api_seen, PROPAGATION, "alice reached C's API too late")
        self.fetch_ok(local_c, h.Nginx.BIG)
        self.wait_everywhere("alice", password, PROPAGATION)
        self.fetch_ok(self.ss_local(self.B, password))

    def test_create_of_an_existing_name_on_another_replica(self):
        bob = self.A.create("bob", password="bob-on-a")
        with self.assertRaises(h.ApiError) as err:  # at once: B may not have applied it yet
            self.B.create("bob", password="bob-on-b")
        self.assertEqual(err.exception.code, "ALREADY_EXISTS", err.exception.message)
        with self.assertRaises(h.ApiError) as err:
            self.C.create("bob", method="aes-128-gcm")
        self.assertEqual(err.exception.code, "ALREADY_EXISTS", err.exception.message)
        self.wait_everywhere("bob", bob["password"], PROPAGATION)
        for r in self.replicas.values():
            self.assertEqual(r.get("bob")["method"], METHOD, f"bob's method on {r.name}")

    # ---------------------------------------------------------------- (c)

    def race(self, calls):
        """Runs `calls` [(replica, request)] as concurrent CreateUser calls, one grpc_call
        process each, released together; returns [(replica, response or ApiError)]."""
        barrier = threading.Barrier(len(calls))
        results = [None] * len(calls)

        def run(i, replica, request):
            try:
                barrier.wait(10)
                results[i] = h.grpc_api(replica.api_port, USERS + "CreateUser", request,
                                        replica.token, timeout=20)
            except h.ApiError as e:
                results[i] = e
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                results[i] = AssertionError(repr(e))

        threads = [threading.Thread(target=run, args=(i, r, req))
                   for i, (r, req) in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for (replica, _), result in zip(calls, results):
            if isinstance(result, AssertionError):
                raise result
        return list(zip((r for r, _ in calls), results))

    def test_concurrent_creates_of_one_name_and_one_port(self):
        replicas = list(self.replicas.values())
        calls = [(replicas[i % 3], {"name": "race", "method": METHOD, "password": f"race-{i}"})
                 for i in range(10)]
        results = self.race(calls)
        won = [(r, res) for r, res in results if not isinstance(res, h.ApiError)]
        lost = [(r, res) for r, res in results if isinstance(res, h.ApiError)]
        self.assertEqual(len(won), 1, f"{len(won)} of 10 concurrent creates succeeded: {results}")
        self.assertEqual({res.code for _, res in lost}, {"ALREADY_EXISTS"},
                         [(r.name, str(res)) for r, res in lost])
        winner = won[0][1]["password"]
        self.report(f"one of 10 creates won (on {won[0][0].name}, {winner})")
        self.wait_everywhere("race", winner, PROPAGATION)
        self.assertIn(self.prefix + "users/race", self.etcd.get_prefix(self.prefix + "users/"))

        # One dedicated port asked for by two users on two replicas at once, three rounds.
        for round_ in range(3):
            port = h.free_port()
            first, second = replicas[round_ % 3], replicas[(round_ + 1) % 3]
            names = (f"porta{round_}", f"portb{round_}")
            results = self.race([(first, {"name": names[0], "method": METHOD, "port": port}),
                                 (second, {"name": names[1], "method": METHOD, "port": port})])
            won = [(r, res) for r, res in results if not isinstance(res, h.ApiError)]
            self.assertEqual(len(won), 1, f"round {round_}, port {port}: {results}")
            loser = [res for _, res in results if isinstance(res, h.ApiError)][0]
            self.assertIn(loser.code, ("ALREADY_EXISTS", "FAILED_PRECONDITION"), str(loser))
            owner = won[0][1]
            self.assertEqual(owner["port"], port)
            other = names[1] if owner["name"] == names[0] else names[0]
            self.wait_everywhere(owner["name"], owner["password"], PROPAGATION)
            for r in self.replicas.values():
                self.assertTrue(r.lacks(other), f"{other} (who lost port {port}) is on {r.name}")
                self.assertEqual(r.get(owner["name"])["port"], port)

    # ---------------------------------------------------------------- (d)

    def test_delete_on_b_cuts_a_live_download_on_a(self):
        password = "erin-" + secrets.token_hex(8)
        self.A.create("erin", password=password)
        local_a = self.ss_local(self.A, password)
        source = ThrottledSource(rate=4 << 20, seconds=30)
        self.addCleanup(source.stop)
        sock = h.socks5_connect(local_a, h.LOOPBACK, source.port)
        self.addCleanup(sock.close)
        sock.settimeout(10)
        received = 0
        while received < 512 << 10:  # the download runs
            data = sock.recv(65536)
            self.assertTrue(data, f"the download ended early, after {received} bytes")
            received += len(data)
        self.wait_everywhere("erin", password, PROPAGATION)
        self.B.delete("erin")
        deleted = time.monotonic()
        got, took, how = drain_until_closed(sock, 5 * PROPAGATION)
        took = time.monotonic() - deleted if how == "still open" else took
        self.report(f"the download through A ended ({how}) {took:.3f} s after DeleteUser on "
                    f"B returned ({got} bytes meanwhile)")
        self.assertNotEqual(how, "still open", "DeleteUser on B did not cut A's session")
        # ss-local may still hand over what it had buffered; the cut itself is the bound.
        self.assertLessEqual(took, PROPAGATION, "A cut the session too late")
        self.fetch_fails(local_a)
        for r in self.replicas.values():
            h.wait_until(lambda: r.lacks("erin"), PROPAGATION, f"erin gone from {r.name}")

    # ---------------------------------------------------------------- (e)

    def test_kill_the_etcd_leader(self):
        password = "kim-" + secrets.token_hex(8)
        self.A.create("kim", password=password)
        self.wait_everywhere("kim", password, PROPAGATION)
        local_b = self.ss_local(self.B, password)
        local_a = self.ss_local(self.A, password)
        self.fetch_ok(local_b)
        source = ThrottledSource(rate=1 << 20, seconds=30)
        self.addCleanup(source.stop)
        sock = h.socks5_connect(local_b, h.LOOPBACK, source.port)
        self.addCleanup(sock.close)
        sock.settimeout(5)
        self.assertTrue(sock.recv(65536), "the download through B did not start")

        leader = self.etcd.kill_leader()
        killed = time.monotonic()
        self.report(f"killed the etcd leader {leader.name}")
        # Writes: a new name per attempt, so no attempt's fate is in doubt.
        attempt = [0]

        def create():
            attempt[0] += 1
            return self.A.create(f"after-kill-{attempt[0]}", password=f"ak-{attempt[0]}")

        made, _ = self.retry_write(self.A, "CreateUser after the leader's death", create,
                                   2 * FAILOVER)
        took = time.monotonic() - killed
        self.report(f"CreateUser on A succeeded {took:.3f} s after the kill "
                    f"(attempt {attempt[0]})")
        self.assertLessEqual(took, FAILOVER, "writes did not continue soon enough")
        self.wait_everywhere(made["name"], made["password"], PROPAGATION)
        self.fetch_ok(self.ss_local(self.C, made["password"]))
        # The download through B never stopped: bytes keep coming for 2 s more.
        received = 0
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            data = sock.recv(65536)
            self.assertTrue(data, "the download through B ended after the leader's death")
            received += len(data)
        self.assertGreater(received, 1 << 20, "the download through B slowed to a crawl")
        self.fetch_ok(local_a)
        self.fetch_ok(local_b)
        for r in self.replicas.values():
            self.assertEqual(r.metric("shadowrelay_store_up"), 1.0, f"store_up on {r.name}")

    # ---------------------------------------------------------------- (f)

    def test_all_etcd_members_down_for_ten_seconds(self):
        password = "fay-" + secrets.token_hex(8)
        self.A.create("fay", password=password)
        self.wait_everywhere("fay", password, PROPAGATION)
        local_a = self.ss_local(self.A, password)
        local_c = self.ss_local(self.C, password)
        self.fetch_ok(local_a)
        unavailable_before = self.B.metric("shadowrelay_store_requests_total",
                                           {"result": "unavailable"})

        self.etcd.stop_all()
        down = time.monotonic()
        # Relaying goes on with the last table.
        self.fetch_ok(local_a)
        self.fetch_ok(local_c, h.Nginx.BIG)
        # Writes answer UNAVAILABLE, within the replica's request timeout.
        for replica, method, request in (
                (self.B, "CreateUser", {"name": "during-outage", "method": METHOD}),
                (self.C, "UpdateUser", {"user": {"name": "fay", "enabled": False},
                                        "update_mask": "enabled"}),
                (self.A, "DeleteUser", {"name": "fay"})):
            started = time.monotonic()
            with self.assertRaises(h.ApiError, msg=f"{method} on {replica.name}") as err:
                replica.call(method, request)
            took = time.monotonic() - started
            self.assertEqual(err.exception.code, "UNAVAILABLE",
                             f"{method} on {replica.name}: {err.exception}")
            self.assertLessEqual(took, API_WHILE_DOWN, f"{method} answered after {took:.2f} s")
        # Reads answer from the replica's table.
        for r in self.replicas.values():
            started = time.monotonic()
            self.assertEqual(r.get("fay")["password"], password)
            self.assertIn("fay", r.users())
            self.assertLess(time.monotonic() - started, 1.0, f"reads on {r.name} were slow")
            h.wait_until(lambda: r.metric("shadowrelay_store_up") == 0.0, 5,
                         f"shadowrelay_store_up 0 on {r.name}")
        self.assertGreater(self.B.metric("shadowrelay_store_requests_total",
                                         {"result": "unavailable"}), unavailable_before)
        self.fetch_ok(local_a)
        remaining = OUTAGE - (time.monotonic() - down)
        self.assertGreater(remaining, 0, "the checks took longer than the outage")
        time.sleep(remaining)

        self.etcd.start_all()
        back = time.monotonic()
        # A write is only tried once A's client reached etcd again, so that no attempt that
        # timed out might have been applied (its retry would then find the name taken).
        h.wait_until(lambda: self.A.metric("shadowrelay_store_up") == 1.0, RECOVERY,
                     "A's store to be up again")
        made, _ = self.retry_write(self.A, "CreateUser after the outage",
                                   lambda: self.A.create("after-outage", password="ao-1"),
                                   RECOVERY)
        self.report(f"etcd back: CreateUser on A succeeded {time.monotonic() - back:.3f} s "
                    f"after the members were healthy")
        self.wait_everywhere("after-outage", "ao-1", RECOVERY)
        self.fetch_ok(self.ss_local(self.C, "ao-1"))
        for r in self.replicas.values():
            h.wait_until(lambda: r.metric("shadowrelay_store_up") == 1.0, RECOVERY,
                         f"shadowrelay_store_up 1 on {r.name}")
            # The writes refused during the outage left nothing behind.
            self.assertTrue(r.lacks("during-outage"), r.name)
            self.assertTrue(r.get("fay")["enabled"], r.name)
        self.fetch_ok(local_a)

    # ---------------------------------------------------------------- (g)

    def test_compaction_while_a_replica_is_away(self):
        passwords = {f"g{i}": f"g{i}-" + secrets.token_hex(6) for i in range(1, 4)}
        for name, password in passwords.items():
            self.A.create(name, password=password)
        for name, password in passwords.items():
            self.wait_everywhere(name, password, PROPAGATION)
        local_g1 = self.ss_local(self.C, passwords["g1"])
        self.fetch_ok(local_g1)

        self.C.child.signal(signal.SIGSTOP)
        self.addCleanup(self.C.child.signal, signal.SIGCONT)
        # Restarting etcd ends C's watch stream while C cannot read it: C has to resume from
        # its last revision, which the compaction below removes (a watch left open would be
        # fed every event as it happens, and compaction would never reach it).
        self.etcd.stop_all()
        self.etcd.start_all()
        for r in (self.A, self.B):
            h.wait_until(lambda: r.metric("shadowrelay_store_up") == 1.0, RECOVERY,
                         f"{r.name}'s store to be up again")
        self.A.delete("g1")
        passwords.pop("g1")
        updated = self.A.call("UpdateUser", {"user": {"name": "g2", "password": "g2-new"},
                                             "update_mask": "password"})
        self.assertEqual(updated["password"], "g2-new")
        passwords["g2"] = "g2-new"
        for name in ("g4", "g5"):
            passwords[name] = f"{name}-" + secrets.token_hex(6)
            self.A.create(name, password=passwords[name])
        revision = self.etcd.compact()
        self.report(f"compacted at revision {revision} while C was stopped")

        self.C.child.signal(signal.SIGCONT)
        resumed = time.monotonic()
        want = set(self.A.users())
        self.assertEqual(want, set(passwords))
        h.wait_until(lambda: set(self.C.users()) == want, RECOVERY,
                     f"C's users to be A's {sorted(want)}")
        self.report(f"C had A's users {time.monotonic() - resumed:.3f} s after SIGCONT")
        for name, password in passwords.items():
            self.assertEqual(self.C.get(name)["password"], password, name)
        self.assertTrue(self.C.lacks("g1"))
        self.assertGreaterEqual(self.C.metric("shadowrelay_store_revision"), revision)
        self.fetch_fails(local_g1)
        self.fetch_ok(self.ss_local(self.C, passwords["g4"]))
        self.fetch_ok(self.ss_local(self.C, "g2-new"))
        # And C is a full member again: its write reaches A.
        made = self.C.create("g6", password="g6-pw")
        self.wait_everywhere("g6", made["password"], PROPAGATION)

    # ---------------------------------------------------------------- (h)

    def six_mib_file(self):
        name = "six.bin"
        data = os.urandom(6 << 20)
        with open(os.path.join(self.site.dir, "www", name), "wb") as f:
            f.write(data)
        self.site.files[name] = (len(data), hashlib.sha256(data).hexdigest())
        return name

    def test_quota_holds_on_the_cluster_total(self):
        quota = 10 << 20
        six = self.six_mib_file()
        password = "quinn-" + secrets.token_hex(8)
        self.A.create("quinn", password=password, limits={"data_quota_bytes": quota})
        self.wait_everywhere("quinn", password, PROPAGATION)
        local_a = self.ss_local(self.A, password)
        local_b = self.ss_local(self.B, password)

        self.fetch_ok(local_a, six)
        # A's flush reaches B: B reports the cluster total though nothing went through it.
        h.wait_until(lambda: traffic(self.B.get("quinn")) >= 6 << 20, QUOTA_DEADLINE,
                     "B's GetUser to count the 6 MiB that went through A")
        for r in self.replicas.values():
            user = r.get("quinn")
            self.assertEqual(user["state"], "USER_STATE_ACTIVE", f"{r.name}: {user}")
            self.assertFalse(user["quota_exceeded"])

        body, code = fetch(local_b, self.site.url(six), 20)
        done = time.monotonic()
        self.report(f"the 6 MiB through B: curl {code}, {len(body)} bytes")
        self.assertGreater(len(body), 4 << 20, "B cut the download before the quota")
        for r in self.replicas.values():
            self.until(lambda: r.get("quinn")["state"] == "USER_STATE_OVER_QUOTA",
                       QUOTA_DEADLINE + 2.0, f"quinn OVER_QUOTA on {r.name}")
            since = time.monotonic() - done
            self.report(f"OVER_QUOTA on {r.name} {since:.3f} s after the second download")
            self.assertLessEqual(since, QUOTA_DEADLINE, f"{r.name} noticed the quota late")
        # Every replica reports the cluster total: both downloads.
        totals = {}
        for r in self.replicas.values():
            h.wait_until(lambda: traffic(r.get("quinn")) >= (6 << 20) + len(body),
                         QUOTA_DEADLINE, f"{r.name}'s GetUser to count both downloads")
            user = r.get("quinn")
            self.assertTrue(user["quota_exceeded"], f"{r.name}: {user}")
            totals[r.name] = traffic(user)
        self.report(f"cluster totals: {totals}")
        self.assertGreaterEqual(min(totals.values()), quota)
        listed = self.C.users()["quinn"]
        self.assertEqual(listed["state"], "USER_STATE_OVER_QUOTA")
        # Cut on both: new sessions through A and B are refused before the target.
        requests = self.site.requests_logged()
        self.fetch_fails(local_a)
        self.fetch_fails(local_b)
        self.assertEqual(self.site.requests_logged(), requests, "a refused session reached nginx")

    # ---------------------------------------------------------------- (i) (j)

    def live_keys(self, name):
        """{replica key: {"connections", "devices"}} of live/<name>/ in etcd."""
        keys = self.etcd.get_prefix(f"{self.prefix}live/{name}/")
        return {k: json.loads(v) for k, v in keys.items()}

    def wait_published(self, name, what, predicate, since):
        """Waits (LIVE_DEADLINE) until the replicas' live/<name>/ keys together satisfy
        `predicate` (given their values), then for the watches to carry them; reports how long
        after `since` they were written."""
        h.wait_until(lambda: predicate(list(self.live_keys(name).values())),
                     LIVE_DEADLINE, f"{what} in live/{name}/")
        self.report(f"live/{name}/: {what} in etcd {time.monotonic() - since:.3f} s after it "
                    f"happened")
        time.sleep(WATCH_SETTLE)

    @staticmethod
    def download_starts(local_port, source):
        """A session through ss-local to `source`: the socket once bytes came, None if none
        came within 2 s (refused: ss-local answers SOCKS5 before the server decides)."""
        try:
            sock = h.socks5_connect(local_port, h.LOOPBACK, source.port, timeout=10)
        except (AssertionError, OSError):
            return None
        sock.settimeout(2.0)
        try:
            if sock.recv(65536):
                return sock
        except OSError:
            pass
        sock.close()
        return None

    def test_max_connections_hold_across_replicas(self):
        password = "max-" + secrets.token_hex(8)
        self.A.create("max", password=password, limits={"max_connections": 2})
        self.wait_everywhere("max", password, PROPAGATION)
        local_a = self.ss_local(self.A, password)
        local_b = self.ss_local(self.B, password)
        local_c = self.ss_local(self.C, password)
        source = ThrottledSource(rate=64 << 10, seconds=60)
        self.addCleanup(source.stop)
        held = []
        for i in range(2):
            sock = self.download_starts(local_a, source)
            self.assertIsNotNone(sock, f"session {i + 1} of 2 through A")
            self.addCleanup(sock.close)
            held.append(sock)
        self.wait_published("max", "A's 2 connections",
                            lambda keys: [v["connections"] for v in keys] == [2], time.monotonic())
        refused = self.B.metric(REFUSED_OVER_LIMIT, {"user": "max"})
        for local, where in ((local_b, "B"), (local_c, "C")):
            sock = self.download_starts(local, source)
            if sock is not None:
                sock.close()
            self.assertIsNone(sock, f"a third session through {where} was admitted")
        self.assertEqual(source.accepted, 2, "a session over the limit reached the target")
        h.wait_until(lambda: self.B.metric(REFUSED_OVER_LIMIT, {"user": "max"}) > refused, 5,
                     "B to count the refusal")
        # The two through A still run.
        for sock in held:
            self.assertTrue(sock.recv(65536), "a session through A ended")

        held[0].close()
        closed = time.monotonic()
        admitted = None
        while admitted is None and time.monotonic() - closed < LIVE_DEADLINE + 1:
            admitted = self.download_starts(local_b, source)
            if admitted is None:
                time.sleep(0.2)
        self.assertIsNotNone(admitted, "B never admitted a session after one through A ended")
        self.addCleanup(admitted.close)
        self.report(f"B admitted a session {time.monotonic() - closed:.3f} s after one of A's "
                    f"two ended")
        # Two open in the cluster again, one on A and one on B: C refuses.
        self.wait_published("max", "A's and B's connection",
                            lambda keys: [v["connections"] for v in keys] == [1, 1],
                            time.monotonic())
        sock = self.download_starts(local_c, source)
        self.assertIsNone(sock, "a third session through C was admitted")

    def device_session(self, replica, source, master):
        """A session of the 2017 user `master` from `source` through `replica`'s shared port,
        to the echo server; (the session, whether it was admitted: the echo came back, not an
        end without a byte)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect((h.LOOPBACK, replica.relay_port))
        session = Session2017(sock, master)
        session.start(self.echo.port, b"device")
        try:
            return session, session.recv(6) == b"device"
        except (AssertionError, ConnectionResetError):
            return session, False  # closed without a byte: refused

    def test_max_devices_hold_across_replicas(self):
        self.echo = self.add_peer(h.EchoServer())
        user = self.A.create("dev", method="aes-256-gcm", limits={"max_devices": 1})
        self.wait_everywhere("dev", user["password"], PROPAGATION)
        master = aead_wire.master_key(user["password"], 32)
        first, ok = self.device_session(self.A, "127.0.0.2", master)
        self.assertTrue(ok, "127.0.0.2 through A")
        self.wait_published("dev", "A's device",
                            lambda keys: [len(v["devices"]) for v in keys] == [1],
                            time.monotonic())

        refused = self.B.metric("shadowrelay_user_refused_total",
                                {"user": "dev", "reason": "over_devices"})
        accepted = self.echo.accepted
        _, ok = self.device_session(self.B, "127.0.0.3", master)
        self.assertFalse(ok, "127.0.0.3 through B: a second device of the cluster")
        self.assertEqual(self.echo.accepted, accepted, "the refused device reached the target")
        h.wait_until(lambda: self.B.metric("shadowrelay_user_refused_total",
                                           {"user": "dev", "reason": "over_devices"}) > refused,
                     5, "B to count the over_devices refusal")
        # One id per device in the cluster: B lists A's device by the hash A shows.
        on_a = self.A.get("dev")["devices"]
        on_b = self.B.get("dev")["devices"]
        self.assertEqual(on_a.get("count"), 1, on_a)
        self.assertEqual(on_b.get("count"), 1, on_b)
        self.assertRegex(on_a["list"][0]["address"], r"^[0-9a-f]{16}$")
        self.assertEqual(on_b["list"][0]["address"], on_a["list"][0]["address"])
        self.assertNotIn("last_seen", on_b["list"][0], "B cannot know when A saw it")
        # The device A counts is no new device on B.
        same, ok = self.device_session(self.B, "127.0.0.2", master)
        self.assertTrue(ok, "127.0.0.2 through B: the device A counts already")
        same.sock.close()
        self.assertEqual(self.B.get("dev")["devices"].get("count"), 1)

        # The first device's sessions end; it counts for the window still, then 127.0.0.3 is
        # admitted through B.
        first.sock.close()
        ended = time.monotonic()
        _, ok = self.device_session(self.B, "127.0.0.3", master)
        self.assertFalse(ok, "127.0.0.3 through B within the first device's window")
        self.assertLess(time.monotonic() - ended, DEVICE_WINDOW,
                        "the refusal within the window came too late to prove anything")
        admitted = False
        while not admitted and time.monotonic() - ended < DEVICE_WINDOW + LIVE_DEADLINE + 1:
            time.sleep(0.25)
            _, admitted = self.device_session(self.B, "127.0.0.3", master)
        took = time.monotonic() - ended
        self.report(f"127.0.0.3 admitted through B {took:.3f} s after 127.0.0.2's sessions "
                    f"ended (--device-window {DEVICE_WINDOW})")
        self.assertTrue(admitted, "127.0.0.3 still refused through B after the window")
        self.assertGreaterEqual(took, DEVICE_WINDOW - 0.5, "admitted before the window ended")
        # Now 127.0.0.3 is the device: 127.0.0.2 through A is refused once B published it.
        self.wait_published("dev", "B's device 127.0.0.3",
                            lambda keys: [len(v["devices"]) for v in keys] == [1],
                            time.monotonic())
        _, ok = self.device_session(self.A, "127.0.0.2", master)
        self.assertFalse(ok, "127.0.0.2 through A while B counts 127.0.0.3")

    # ---------------------------------------------------------------- metrics and keys

    def test_store_metrics_and_keys(self):
        self.A.create("mia", password="mia-pw")
        self.wait_everywhere("mia", "mia-pw", PROPAGATION)
        for r in self.replicas.values():
            text = r.metrics_text()
            for name in STORE_METRICS:
                self.assertTrue(f"# TYPE {name} " in text, f"{name} missing on {r.name}")
            self.assertEqual(r.metric("shadowrelay_store_up"), 1.0, r.name)
            self.assertGreater(r.metric("shadowrelay_store_requests_total", {"result": "ok"}),
                               0, r.name)
            # The last applied revision follows etcd's (nothing writes now but the replicas'
            # own flushes and keepalives, which move it only when something changed).
            h.wait_until(lambda: r.metric("shadowrelay_store_revision")
                         == self.etcd.current_revision(), 5,
                         f"{r.name}'s shadowrelay_store_revision to be etcd's")
            synced = r.metric("shadowrelay_store_last_sync_timestamp_seconds")
            self.assertLessEqual(abs(time.time() - synced), 5 * SYNC_INTERVAL + 5,
                                 f"{r.name} last synced at {synced}")
        self.assertGreaterEqual(
            self.A.metric("shadowrelay_store_requests_total", {"method": "txn", "result": "ok"}),
            1, "A's CreateUser was no etcd txn")
        lag = self.A.metric("shadowrelay_store_watch_lag_seconds")
        self.assertGreaterEqual(lag, 0.0)
        self.assertLess(lag, PROPAGATION, "A's own write took long to come back on its watch")

        keys = self.etcd.get_prefix(self.prefix)
        self.assertIn(self.prefix + "users/mia", keys)
        self.assertIn(self.prefix + "config_revision", keys)
        replicas = [k for k in keys if k.startswith(self.prefix + "replicas/")]
        self.assertEqual(len(replicas), 3, replicas)
        self.assertFalse([k for k in self.etcd.get_prefix("/") if not k.startswith(self.prefix)],
                         "a replica wrote outside its prefix")
        # Traffic of mia through C shows up as C's key under traffic/mia/.
        self.fetch_ok(self.ss_local(self.C, "mia-pw"))
        h.wait_until(lambda: any(k.startswith(f"{self.prefix}traffic/mia/")
                                 for k in self.etcd.get_prefix(self.prefix + "traffic/")),
                     QUOTA_DEADLINE, "a traffic/mia/<replica> key")
        h.wait_until(lambda: traffic(self.B.get("mia")) >= self.site.files[h.Nginx.SMALL][0],
                     QUOTA_DEADLINE, "B to report mia's traffic through C")
        # A replica that stops (exit 0) takes its leased replicas/ key with it, by revoking
        # the lease or, at the latest, when the lease's TTL runs out.
        self.C.session.close()
        h.stopped_log(self, self.C.child)
        h.wait_until(lambda: len(self.etcd.get_prefix(self.prefix + "replicas/")) == 2,
                     LEASE_TTL + 2, "C's replicas/ key to go when it stopped")


if __name__ == "__main__":
    h.main()
