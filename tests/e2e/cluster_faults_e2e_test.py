# SPDX-License-Identifier: Apache-2.0
"""Replicas sharing users through etcd (issue 19 §2), the faults and limits cluster_e2e_test
does not cover: a replica that dies without a word, devices counted over UDP and IPv6, and a
renewing quota whose period ends while the cluster runs. Each test starts a 3-member etcd
(Debian's etcd 3.4, etcd_cluster.py) and three of our servers A, B and C the way
cluster_e2e_test does (its flags: --etcd-sync-interval 1 --etcd-lease-ttl 3 --device-window 3,
a state directory, control token and /metrics each); the clients are shadowsocks-libev's
ss-local and ss-tunnel (with curl and nginx), a UDP echo and a TCP source of the test's own.

  (1) kill -9 of A. (a) A user downloaded 8 MiB through A and B's GetUser shows it: from the
      kill until three sync intervals after A's traffic key was folded, every GetUser on B and
      C reports exactly that total (not lost, not doubled), traffic/<user>/<A's id> is gone
      and traffic/<user>/_base holds the bytes. (b) A user with max_connections 1 holds a
      session through A, one through B is refused; after the kill B admits one within the
      lease TTL plus two intervals (A's live/ key went with its lease); the time is reported.
  (2) max_devices 1 over UDP and IPv6, the replicas listening on 127.0.0.1 and ::1 with -u:
      UDP through A (ss-tunnel -u) makes the device; once A published it a TCP session from
      ::1 (ss-local to B's IPv6 address) is refused by B and counted; the same device's UDP
      through C is admitted (C shows A's device id); UDP of another source (127.0.0.2, a
      client written from SIP004/SIP007 so that it can bind its source) through C is refused
      and counted.
  (3) a 10 MiB daily quota, the replicas' registry clocks shifted (the test-only
      SHADOWRELAY_TEST_CLOCK_OFFSET_SECONDS) so that 00:00 UTC comes 25 s after they start:
      6 MiB through A and 6 MiB through B make the user OVER_QUOTA on all three; after the
      boundary it is ACTIVE on all three with (almost) nothing used; 6 MiB through A and
      6 MiB through C make it OVER_QUOTA again (the new period counts the cluster total); B
      restarted (SIGTERM, same arguments and state directory) shows the new period's usage
      and refuses the user. Separately (a test of its own, 00:00 10 s after the start): the
      boundary writes no configuration: the mod_revisions of config_revision and
      users/<user> read 1.5 s before 00:00 are the same 33 s after it, once every replica's
      registry has flushed (it saves a roll with its 30-s flush, not at the roll itself).

libev's ss-tunnel -u sends its UDP from the kernel's choice of source whatever -b says (for
127.0.0.1 that is 127.0.0.1: measured), so the UDP device of (2) is 127.0.0.1, the address of
every libev client here; 127.0.0.2 needs a client that binds its source.

The cleanups stop the servers (SIGTERM, exit 0 checked; the one killed -9 excepted) while etcd
still runs, then etcd. Every wait is bounded (wait_until, deadlines below, curl --max-time,
socket timeouts).
"""
import base64
import json
import os
import re
import secrets
import socket
import threading
import time

import aead_wire
import cluster_e2e_test as cluster  # a module, so that its TestCase is not run here too
import e2e_harness as h
from devices_e2e_test import socks_ipv4
from etcd_cluster import EtcdCluster
from users_e2e_test import ThrottledSource

MIB = 1 << 20
SYNC_INTERVAL = cluster.SYNC_INTERVAL  # --etcd-sync-interval 1
LEASE_TTL = cluster.LEASE_TTL  # --etcd-lease-ttl 3
PROPAGATION = cluster.PROPAGATION
QUOTA_DEADLINE = cluster.QUOTA_DEADLINE
METHOD = cluster.METHOD
traffic = cluster.traffic
# A dead replica's lease runs out at most LEASE_TTL after its last keepalive; the next sync of
# a survivor then folds its traffic key (and its live keys went with the lease).
LIVE_AFTER_KILL = LEASE_TTL + 2 * SYNC_INTERVAL
FOLD_DEADLINE = LEASE_TTL + 2 * SYNC_INTERVAL + 1.0
SAMPLE_EVERY = 0.1  # GetUser on B and C this often from the kill on
CLOCK_OFFSET_VARIABLE = "SHADOWRELAY_TEST_CLOCK_OFFSET_SECONDS"
DAY = 86400
# From the replicas' start to their 00:00 UTC: room for etcd's and the replicas' start, 12 MiB,
# the quota noticed on three replicas and a refused fetch (about 10 s here).
BEFORE_MIDNIGHT = 25
# The registry rolls at the boundary itself (its tick's deadline); one interval of slack for a
# tick that waited on a write.
RENEW_DEADLINE = 2 * SYNC_INTERVAL + 1.0
# The registry saves what changed (a roll included) with its flush, every 30 s
# (api/app/server_runtime.cc): a write caused by the boundary comes within that.
SAVE_EVERY = 30
BOUNDARY_SOON = 10  # seconds from the replicas' start to 00:00 when little has to happen first
QUIET = 1.0  # seconds a refused datagram is given to (wrongly) produce a reply
UDP_TRIES = 3  # datagrams sent (2 s apart) before an admitted association counts as lost
OVER_DEVICES = {"reason": "over_devices"}


class ClusterFaultsTest(h.RelayTestCase):
    def setUp(self):
        self.require_ours("the etcd store is our server's")
        self.etcd = EtcdCluster.for_test(self)  # first: closed after the servers stopped
        super().setUp()
        self.prefix = f"/f{secrets.token_hex(4)}/"
        self.site = h.nginx()
        self.replicas = {}
        self.argv = {}  # replica name -> argv, for a restart with the same arguments
        self.clock_offset = None

    def failure_context(self):
        return super().failure_context() + "\n" + self.etcd.log_tails()

    # cluster_e2e_test's helpers (they use self.site, self.replicas, self.etcd, self.prefix).
    ss_local = cluster.ClusterTest.ss_local
    fetch_ok = cluster.ClusterTest.fetch_ok
    fetch_fails = cluster.ClusterTest.fetch_fails
    until = cluster.ClusterTest.until
    wait_everywhere = cluster.ClusterTest.wait_everywhere
    report = cluster.ClusterTest.report
    live_keys = cluster.ClusterTest.live_keys
    wait_published = cluster.ClusterTest.wait_published
    six_mib_file = cluster.ClusterTest.six_mib_file
    replica_argv = cluster.ClusterTest.replica_argv
    download_starts = staticmethod(cluster.ClusterTest.download_starts)

    # ---------------------------------------------------------------- replicas

    def start_replicas(self, extra=(), clock_offset=None):
        """A, B and C with cluster_e2e_test's flags plus `extra`; with `clock_offset` (seconds)
        their registries' clocks are shifted by that much."""
        self.clock_offset = clock_offset
        for name in "ABC":
            self.argv[name] = self.replica_argv(name, extra)
            self.replicas[name] = self.launch(name)
        self.A, self.B, self.C = (self.replicas[n] for n in "ABC")

    def launch(self, name):
        argv, token = self.argv[name]
        # Only our servers get the offset (Child passes the environment on): the clients and
        # etcd keep the true time.
        if self.clock_offset is not None:
            os.environ[CLOCK_OFFSET_VARIABLE] = str(self.clock_offset)
        try:
            replica = cluster.Replica(name, self.start_ours(f"ours-server-{name}", argv), token)
        finally:
            os.environ.pop(CLOCK_OFFSET_VARIABLE, None)
        self.addCleanup(replica.session.close)
        return replica

    def restart(self, name):
        """SIGTERM (exit 0 checked), then the same arguments and state directory again."""
        old = self.replicas[name]
        old.session.close()
        h.stopped_log(self, old.child)
        self.replicas[name] = self.launch(name)
        setattr(self, name, self.replicas[name])
        return self.replicas[name]

    @staticmethod
    def replica_id(replica):
        """The id the server took in etcd (random unless --replica-id), from its log."""
        with open(replica.child.log_path, encoding="utf-8", errors="replace") as f:
            match = re.search(r"users are shared through etcd .* as replica (\S+)", f.read())
        if match is None:
            raise AssertionError(f"{replica.name} logged no replica id")
        return match.group(1)

    def traffic_keys(self, name):
        """{id: bytes up + down} of traffic/<name>/ in etcd."""
        prefix = f"{self.prefix}traffic/{name}/"
        keys = self.etcd.get_prefix(prefix)
        return {k[len(prefix):]: json.loads(v)["bytes_up"] + json.loads(v)["bytes_down"]
                for k, v in keys.items()}

    def mod_revision(self, key):
        """The key's (mod_revision, version: writes since its creation, value) in etcd; (0, 0,
        None) when absent."""
        out = json.loads(self.etcd.etcdctl("get", key, "-w", "json").stdout)
        kvs = out.get("kvs", [])
        if not kvs:
            return 0, 0, None
        value = base64.b64decode(kvs[0].get("value", "")).decode()
        return int(kvs[0]["mod_revision"]), int(kvs[0]["version"]), value

    # ---------------------------------------------------------------- (1) kill -9

    def test_a_replica_killed_minus_nine(self):
        self.start_replicas()
        big_size = self.site.files[h.Nginx.BIG][0]
        tara = self.A.create("tara", password="tara-" + secrets.token_hex(8))
        lena = self.A.create("lena", password="lena-" + secrets.token_hex(8),
                             limits={"max_connections": 1})
        self.wait_everywhere("tara", tara["password"], PROPAGATION)
        self.wait_everywhere("lena", lena["password"], PROPAGATION)
        a_id = self.replica_id(self.A)

        # (a) 8 MiB through A, until B reports what A counts and A's key holds it.
        self.fetch_ok(self.ss_local(self.A, tara["password"]), h.Nginx.BIG)
        h.wait_until(lambda: traffic(self.B.get("tara")) >= big_size, QUOTA_DEADLINE,
                     "B's GetUser to count tara's 8 MiB through A")
        seen = {}

        def agreed():
            seen.update(A=traffic(self.A.get("tara")), B=traffic(self.B.get("tara")),
                        key=self.traffic_keys("tara"))
            return seen["A"] == seen["B"] == seen["key"].get(a_id)

        try:
            h.wait_until(agreed, QUOTA_DEADLINE, f"A's count of tara on B and in its key")
        except AssertionError as e:
            raise AssertionError(f"{e} traffic/tara/{a_id} (last seen: {seen})") from None
        total = traffic(self.B.get("tara"))
        self.assertEqual(traffic(self.C.get("tara")), total)
        self.assertEqual(self.traffic_keys("tara"), {a_id: total})

        # (b) lena's one session through A; B refuses a second once A published it.
        source = ThrottledSource(rate=64 << 10, seconds=60)
        self.addCleanup(source.stop)
        local_b = self.ss_local(self.B, lena["password"])
        held = self.download_starts(self.ss_local(self.A, lena["password"]), source)
        self.assertIsNotNone(held, "lena's session through A")
        self.addCleanup(held.close)
        self.wait_published("lena", "A's connection",
                            lambda keys: [v["connections"] for v in keys] == [1],
                            time.monotonic())
        refused = self.download_starts(local_b, source)
        if refused is not None:
            refused.close()
        self.assertIsNone(refused, "a second session of lena through B was admitted")
        self.assertEqual(source.accepted, 1)

        # kill -9: no lease revoked, no last flush. GetUser on B and C sampled from now on.
        samples = {"B": [], "C": []}
        errors = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                for name in ("B", "C"):
                    try:
                        samples[name].append((time.monotonic(),
                                              traffic(self.replicas[name].get("tara"))))
                    except Exception as e:  # noqa: BLE001 - reported by the assertion below
                        errors.append(f"{name}: {e!r}")
                stop.wait(SAMPLE_EVERY)

        self.A.child.kill()
        self.A.child.exit_code = -9  # killed by the test: no exit code to check
        killed = time.monotonic()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.addCleanup(sampler.join, 10)
        self.addCleanup(stop.set)
        self.report(f"killed A (replica {a_id}) with SIGKILL; tara's total was {total} bytes")

        admitted = None
        while admitted is None and time.monotonic() - killed < LIVE_AFTER_KILL + 2:
            admitted = self.download_starts(local_b, source)
            if admitted is None:
                time.sleep(0.1)
        took = time.monotonic() - killed
        self.assertIsNotNone(admitted, f"B still refused lena {took:.1f} s after A's death")
        self.addCleanup(admitted.close)
        self.report(f"B admitted lena's session {took:.3f} s after A's kill -9 (bound: lease "
                    f"TTL {LEASE_TTL} s + 2 intervals = {LIVE_AFTER_KILL} s)")
        self.assertLessEqual(took, LIVE_AFTER_KILL, "A's live count outlived its lease")
        self.assertEqual(self.live_keys("lena").keys() & {f"{self.prefix}live/lena/{a_id}"},
                         set(), "A's live/lena key is still in etcd")

        folded = self.until(lambda: self.traffic_keys("tara") == {"_base": total},
                            FOLD_DEADLINE - (time.monotonic() - killed),
                            f"traffic/tara/{a_id} folded into _base with {total} bytes")
        folded_at = time.monotonic() - killed
        self.report(f"traffic/tara/{a_id} folded into _base {folded_at:.3f} s after the kill")
        stop.wait(3 * SYNC_INTERVAL)
        stop.set()
        sampler.join(10)
        self.assertEqual(errors, [], "GetUser failed on a survivor")
        for name, got in samples.items():
            wrong = [(round(t - killed, 2), v) for t, v in got if v != total]
            self.report(f"{name}: {len(got)} GetUser samples over {got[-1][0] - killed:.1f} s, "
                        f"{len(wrong)} not {total}")
            self.assertGreater(got[-1][0] - killed, folded_at + 2 * SYNC_INTERVAL)
            self.assertEqual(wrong, [], f"{name}'s total of tara strayed from {total} "
                                        f"(s after the kill, total)")
        replicas = self.etcd.get_prefix(self.prefix + "replicas/")
        self.assertEqual(len(replicas), 2, replicas)
        self.assertNotIn(f"{self.prefix}replicas/{a_id}", replicas)

    # ---------------------------------------------------------------- (2) devices

    def udp_roundtrip(self, sock, what):
        """A datagram through an ss-tunnel -u socket comes back from the echo (a few tries: the
        tunnel's first datagram may race its association)."""
        sock.settimeout(2.0)
        for _ in range(UDP_TRIES):
            payload = os.urandom(48)
            sock.send(payload)
            try:
                if sock.recv(4096) == payload:
                    return
            except socket.timeout:
                continue
        self.fail(f"{what}: no echo after {UDP_TRIES} datagrams")

    def test_devices_across_replicas_over_udp_and_ipv6(self):
        if not h.ipv6_loopback_available():
            self.skipTest("no IPv6 loopback (::1) on this machine")
        self.start_replicas(extra=["-s", "::1", "-u"])
        v6_port = {}
        for name, r in self.replicas.items():
            tcp = dict((host, port) for host, port in r.child.ready.tcp)
            self.assertIn("::1", tcp, f"{name} does not listen on ::1: {r.child.ready}")
            v6_port[name] = tcp["::1"]
        dora = self.A.create("dora", limits={"max_devices": 1})
        password = dora["password"]
        self.wait_everywhere("dora", password, PROPAGATION)
        echo = h.UdpEcho()
        self.addCleanup(echo.stop)
        source = ThrottledSource(rate=64 << 10, seconds=30)
        self.addCleanup(source.stop)

        # The device: UDP through A (ss-tunnel -u, from 127.0.0.1).
        tunnel_a = self.start_ss_tunnel_u(self.A.relay_port, METHOD, password, echo.port, "A")
        self.udp_roundtrip(tunnel_a, "UDP through A")
        self.wait_published("dora", "A's device",
                            lambda keys: [len(v["devices"]) for v in keys] == [1],
                            time.monotonic())
        on_a = self.A.get("dora")["devices"]
        self.assertEqual(on_a.get("count"), 1, on_a)
        for r in (self.B, self.C):
            h.wait_until(lambda: r.get("dora").get("devices", {}).get("count") == 1, 5,
                         f"{r.name} to show A's device")
            self.assertEqual(r.get("dora")["devices"]["list"][0]["address"],
                             on_a["list"][0]["address"], f"the device's id on {r.name}")

        # A TCP session from ::1 (another device: an IPv6 /64) through B: refused, counted.
        refusals = self.B.metric("shadowrelay_user_refused_total", dict(user="dora",
                                                                        **OVER_DEVICES))
        local_v6 = self.start_process(
            "libev-local-v6-B", "libev",
            lambda port: [h.tool("ss-local"), "-s", "::1", "-p", v6_port["B"], "-b", h.LOOPBACK,
                          "-l", port, "-k", password, "-m", METHOD])
        sock = self.download_starts(local_v6, source)
        if sock is not None:
            sock.close()
        self.assertIsNone(sock, "a session from ::1 through B was admitted: a second device")
        self.assertEqual(source.accepted, 0, "the refused device reached the target")
        h.wait_until(lambda: self.B.metric("shadowrelay_user_refused_total",
                                           dict(user="dora", **OVER_DEVICES)) > refusals, 5,
                     "B to count the over_devices refusal of ::1")

        # The same device's UDP through C: admitted, one device still.
        tunnel_c = self.start_ss_tunnel_u(self.C.relay_port, METHOD, password, echo.port, "C")
        self.udp_roundtrip(tunnel_c, "UDP of the same device through C")
        self.assertEqual(self.C.get("dora")["devices"].get("count"), 1)
        self.udp_roundtrip(tunnel_a, "UDP through A, still")

        # UDP of another IPv4 source through C: refused (no reply, nothing at the echo), counted.
        refusals = self.C.metric("shadowrelay_user_refused_total", dict(user="dora",
                                                                        **OVER_DEVICES))
        received = echo.received
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(other.close)
        other.bind(("127.0.0.2", 0))
        other.settimeout(QUIET)
        packet = aead_wire.seal_packet(aead_wire.master_key(password, 32),
                                       socks_ipv4(h.LOOPBACK, echo.port) + b"let me in")
        other.sendto(packet, (h.LOOPBACK, self.C.relay_port))
        with self.assertRaises(socket.timeout, msg="UDP from 127.0.0.2 through C was answered"):
            other.recvfrom(4096)
        self.assertEqual(echo.received, received, "UDP from 127.0.0.2 reached the echo")
        h.wait_until(lambda: self.C.metric("shadowrelay_user_refused_total",
                                           dict(user="dora", **OVER_DEVICES)) > refusals, 5,
                     "C to count the over_devices refusal of 127.0.0.2's UDP")

    # ---------------------------------------------------------------- (3) daily quota

    def start_before_midnight(self, seconds):
        """Starts A, B and C with their registry clocks `seconds` before a 00:00 UTC; returns
        (that midnight as their clock has it, when it comes on ours: time.time())."""
        now = time.time()
        midnight = (int(now) // DAY + 1) * DAY
        offset = int(midnight - now) - seconds
        self.start_replicas(clock_offset=offset)
        return midnight, midnight - offset

    def quota_state(self, replica, name):
        user = replica.get(name)
        return user["state"], int(user.get("quota_used_bytes") or 0), traffic(user)

    def wait_over_quota(self, name, since):
        for r in self.replicas.values():
            self.until(lambda: r.get(name)["state"] == "USER_STATE_OVER_QUOTA",
                       QUOTA_DEADLINE + 2.0, f"{name} OVER_QUOTA on {r.name}")
            self.report(f"OVER_QUOTA on {r.name} {time.monotonic() - since:.3f} s after the "
                        f"second download")

    def test_daily_quota_renews_across_replicas(self):
        quota = 10 * MIB
        midnight, boundary = self.start_before_midnight(BEFORE_MIDNIGHT)
        six = self.six_mib_file()
        dana = self.A.create("dana", limits={"data_quota_bytes": quota,
                                             "data_quota_period": "QUOTA_PERIOD_DAILY"})
        password = dana["password"]
        self.wait_everywhere("dana", password, PROPAGATION)
        local_a = self.ss_local(self.A, password)
        local_b = self.ss_local(self.B, password)
        local_c = self.ss_local(self.C, password)

        # The first period: 6 MiB through A, then through B.
        self.fetch_ok(local_a, six)
        h.wait_until(lambda: self.quota_state(self.B, "dana")[1] >= 6 * MIB, QUOTA_DEADLINE,
                     "B to count the 6 MiB through A")
        body, _ = cluster.fetch(local_b, self.site.url(six), 20)
        self.assertGreater(len(body), 4 * MIB, "B cut the download before the quota")
        self.wait_over_quota("dana", time.monotonic())
        for r in self.replicas.values():
            h.wait_until(lambda: self.quota_state(r, "dana")[2] >= 6 * MIB + len(body),
                         QUOTA_DEADLINE, f"{r.name} to count both downloads")
        first = {r.name: self.quota_state(r, "dana") for r in self.replicas.values()}
        self.report(f"before 00:00: (state, quota used, total) {first}")
        old_total = first["A"][2]
        for name, (state, used, total) in first.items():
            self.assertEqual(state, "USER_STATE_OVER_QUOTA", name)
            self.assertEqual(total, old_total, f"{name}'s cluster total")
            self.assertEqual(used, total, f"{name}: the period began before the user")
        self.fetch_fails(local_c)
        self.assertLess(time.time(), boundary - 1,
                        "the first period's checks ran into the boundary")

        # 00:00 UTC on the replicas' clocks: ACTIVE everywhere, counting from zero.
        h.wait_until(lambda: time.time() >= boundary, boundary - time.time() + 1, "00:00")
        for r in self.replicas.values():
            h.wait_until(lambda: self.quota_state(r, "dana")[0] == "USER_STATE_ACTIVE",
                         boundary + RENEW_DEADLINE - time.time(), f"dana ACTIVE on {r.name}")
            self.report(f"dana ACTIVE on {r.name} {time.time() - boundary:.3f} s after 00:00")
        for r in self.replicas.values():
            state, used, total = self.quota_state(r, "dana")
            self.assertLess(used, MIB, f"{r.name} counts the old period in the new one")
            self.assertEqual(total, old_total, f"{r.name}'s total changed at the boundary")
            reset = r.get("dana")["quota_reset_time"]
            self.assertEqual(reset, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                  time.gmtime(midnight + DAY)), r.name)

        # The new period: 6 MiB through A, then through C; the cluster total counts again.
        self.fetch_ok(local_a, six)
        h.wait_until(lambda: self.quota_state(self.C, "dana")[1] >= 6 * MIB, QUOTA_DEADLINE,
                     "C to count the new 6 MiB through A")
        body, _ = cluster.fetch(local_c, self.site.url(six), 20)
        self.assertGreater(len(body), 4 * MIB, "C cut the download before the quota")
        self.wait_over_quota("dana", time.monotonic())
        settled = time.monotonic()
        h.wait_until(lambda: len({self.quota_state(r, "dana")[2:]
                                  for r in self.replicas.values()}) == 1, QUOTA_DEADLINE,
                     "the three totals to agree")
        second = {r.name: self.quota_state(r, "dana") for r in self.replicas.values()}
        self.report(f"after 00:00: (state, quota used, total) {second} "
                    f"({time.monotonic() - settled:.3f} s to agree)")
        new_used = second["A"][1]
        for name, (state, used, total) in second.items():
            self.assertEqual(state, "USER_STATE_OVER_QUOTA", name)
            self.assertGreaterEqual(used, quota, name)
            self.assertEqual(used, total - old_total, f"{name}: used = the new period's bytes")
        self.fetch_fails(local_b)

        # B restarted with its arguments and state directory: the new period's usage still.
        b = self.restart("B")
        self.wait_everywhere("dana", password, PROPAGATION, replicas=[b])
        h.wait_until(lambda: self.quota_state(b, "dana")[1] == new_used, QUOTA_DEADLINE,
                     f"the restarted B to count the new period's {new_used} bytes")
        state, used, total = self.quota_state(b, "dana")
        self.report(f"B after its restart: {state}, quota used {used}, total {total}")
        self.assertEqual(state, "USER_STATE_OVER_QUOTA")
        self.assertLessEqual(used, total - quota, "B counts the old period again")
        self.fetch_fails(self.ss_local(b, password))

    def test_the_boundary_writes_no_configuration(self):
        midnight, boundary = self.start_before_midnight(BOUNDARY_SOON)
        dale = self.A.create("dale", limits={"data_quota_bytes": 10 * MIB,
                                             "data_quota_period": "QUOTA_PERIOD_DAILY"})
        self.wait_everywhere("dale", dale["password"], PROPAGATION)
        self.fetch_ok(self.ss_local(self.A, dale["password"]))
        for r in self.replicas.values():
            h.wait_until(lambda: self.quota_state(r, "dale")[2] > 0, QUOTA_DEADLINE,
                         f"{r.name} to count dale's traffic")
        self.assertLess(time.time(), boundary - 2, "the setup ran into the boundary")
        keys = (self.prefix + "config_revision", self.prefix + "users/dale")

        def revisions():
            return [self.mod_revision(k)[0] for k in keys]

        time.sleep(max(0.0, boundary - 1.5 - time.time()))
        before = revisions()
        _, writes_before, value_before = self.mod_revision(keys[1])
        self.assertLess(time.time(), boundary, "read after the boundary")
        # Until every replica's registry flushed once after the boundary (a roll marks the
        # user's state to be saved, and the save is that flush): polled, to say when a write
        # came.
        changed = None
        while time.time() < boundary + SAVE_EVERY + 3:
            if changed is None and revisions() != before:
                changed = time.time() - boundary
            time.sleep(1.0)
        # The replicas did roll: the next reset is a day later everywhere.
        for r in self.replicas.values():
            self.assertEqual(r.get("dale")["quota_reset_time"],
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(midnight + DAY)),
                             f"{r.name} did not roll at 00:00")
        after = revisions()
        _, writes_after, value_after = self.mod_revision(keys[1])
        when = "never" if changed is None else f"{changed:.1f} s after 00:00"
        self.report(f"mod_revision of config_revision, users/dale: {before} before 00:00, "
                    f"{after} {SAVE_EVERY + 3} s after; {writes_after - writes_before} write(s) of "
                    f"users/dale meanwhile (first change seen: {when})")
        self.assertEqual(after, before,
                         f"crossing 00:00 wrote configuration (seen {when}; "
                         f"{writes_after - writes_before} write(s) of users/dale): it was "
                         f"{value_before}, is {value_after}")


if __name__ == "__main__":
    h.main()
