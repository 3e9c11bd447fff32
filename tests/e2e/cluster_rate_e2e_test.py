# SPDX-License-Identifier: Apache-2.0
"""bytes_per_second across replicas (issue 19 §2): the documented choice is that a user's rate
holds per server, so a user downloading through N servers at once reaches N times its rate
(README, "Several servers, one set of users (etcd)"). Measured with real processes on
loopback: a 3-member etcd cluster (Debian's etcd 3.4, etcd_cluster.py), two of our servers A
and B started with

    --etcd-endpoints <the three members> --etcd-prefix /r<random>/ --etcd-sync-interval 1
    --etcd-lease-ttl 3   (cluster_e2e_test's servers: its ClusterTest.start_replica)

shadowsocks-libev's ss-local to each, curl and nginx. The user is made through A's control API
with limits.bytes_per_second = 256 KiB/s; B has it from its watch.

  * A download through A alone runs at the rate (+- 15 %: one connection, curl's start in the
    window), and so does one through B alone.
  * Downloads through A and B at the same time get the rate each (+- 15 %): 2x the rate in
    total, not the rate shared between them; each server's
    shadowrelay_user_rate_limited_seconds_total shows that its shaper held the user back.
  * UpdateUser on B halving the rate slows a download running through A to the new rate.

Each test gets an etcd cluster and servers of its own; the whole module takes about 40 s.
Every wait is bounded (wait_until, curl --max-time, the readers' windows).
"""
import secrets
import sys
import time

import e2e_harness as h
import cluster_e2e_test as cluster  # a module, so that its TestCase is not run here too
from bandwidth_e2e_test import Reader, downloaded, start_downloads
from etcd_cluster import EtcdCluster

KIB = 1 << 10
RATE = 256 * KIB  # the user's limits.bytes_per_second
WINDOW = 5  # seconds of each curl download (its --max-time)
TOLERANCE = 0.15  # one connection per measurement (bandwidth_e2e_test: 1.5 x its 10 %)
PROPAGATION = cluster.PROPAGATION  # issue 19 §1: 1 s from a write on A to B applying it
METHOD = cluster.METHOD
USER = "rita"


class ClusterRateTest(h.RelayTestCase):
    def setUp(self):
        self.require_ours("the etcd store is our server's")
        self.etcd = EtcdCluster.for_test(self)  # first: closed after the servers stopped
        super().setUp()
        self.prefix = f"/r{secrets.token_hex(4)}/"
        self.url = h.nginx().url(h.Nginx.BIG, host=h.LOOPBACK)  # 8 MiB: 32 s at the rate
        self.A, self.B = self.start_replica("A"), self.start_replica("B")
        for replica in (self.A, self.B):
            self.addCleanup(replica.session.close)
        self.password = f"{USER}-" + secrets.token_hex(8)
        made = self.A.create(USER, method=METHOD, password=self.password,
                             limits={"bytes_per_second": RATE})
        self.assertEqual(int(made["limits"]["bytes_per_second"]), RATE)
        h.wait_until(lambda: self.rate_on(self.B) == RATE, PROPAGATION,
                     f"{USER} with bytes_per_second {RATE} on B")

    def failure_context(self):
        return super().failure_context() + "\n" + self.etcd.log_tails()

    # --etcd-sync-interval 1 (and --etcd-lease-ttl 3), --metrics-listen, a state directory
    # and a control token of its own: the servers of cluster_e2e_test.
    start_replica = cluster.ClusterTest.start_replica
    replica_argv = cluster.ClusterTest.replica_argv

    def rate_on(self, replica):
        try:
            user = replica.get(USER)
        except h.ApiError:
            return None
        return int(user.get("limits", {}).get("bytes_per_second") or 0)

    def ss_local(self, replica):
        return self.start_local(replica.relay_port, METHOD, impl="libev", password=self.password)

    def download_rates(self, *locals_):
        """One curl through each of `locals_` (SOCKS5 ports) at the same time, for WINDOW s;
        the bytes per second each got."""
        started = time.monotonic()
        runs = [start_downloads(self, self.url, port, WINDOW, count=1) for port in locals_]
        rates = [downloaded(procs, WINDOW)[0] / WINDOW for procs in runs]
        self.assertLess(time.monotonic() - started, WINDOW + 10, "the curls overran")
        return rates

    def limited_seconds(self, replica):
        return replica.metric("shadowrelay_user_rate_limited_seconds_total",
                              {"user": USER, "direction": "down"})

    def assert_rate(self, measured, want, what):
        print(f"  {what}: {measured / KIB:.1f} KiB/s (limit {want / KIB:.0f} KiB/s, "
              f"{100 * measured / want:.1f} %)", file=sys.stderr)
        self.assertGreaterEqual(measured, want * (1 - TOLERANCE), what)
        self.assertLessEqual(measured, want * (1 + TOLERANCE), what)

    def test_each_server_gives_the_user_its_rate(self):
        local_a = self.ss_local(self.A)
        local_b = self.ss_local(self.B)

        alone_a, = self.download_rates(local_a)
        self.assert_rate(alone_a, RATE, "through A alone")
        alone_b, = self.download_rates(local_b)
        self.assert_rate(alone_b, RATE, "through B alone")
        waited_a, waited_b = self.limited_seconds(self.A), self.limited_seconds(self.B)

        both_a, both_b = self.download_rates(local_a, local_b)
        self.assert_rate(both_a, RATE, "through A, beside B")
        self.assert_rate(both_b, RATE, "through B, beside A")
        total = both_a + both_b
        print(f"  through A and B together: {total / KIB:.1f} KiB/s in total "
              f"({total / RATE:.2f} x the rate)", file=sys.stderr)
        # Per server, not divided: a share of one rate would leave each near RATE / 2.
        self.assertGreaterEqual(total, 2 * RATE * (1 - TOLERANCE))
        # Each server's own shaper did the holding back, during most of the shared window.
        for replica, before in ((self.A, waited_a), (self.B, waited_b)):
            h.wait_until(lambda: self.limited_seconds(replica) - before >= WINDOW / 2, 5,
                         f"{USER}'s waits in {replica.name}'s /metrics")

    def test_a_rate_changed_on_b_applies_to_a_download_on_a(self):
        reader = self.add_peer(Reader(self.ss_local(self.A), h.Nginx.BIG))
        self.assert_rate(reader.rate(3), RATE, "through A before the change")
        changed = self.B.call("UpdateUser", {"user": {"name": USER,
                                                      "limits": {"bytes_per_second": RATE // 2}},
                                             "update_mask": "limits.bytesPerSecond"})
        self.assertEqual(int(changed["limits"]["bytes_per_second"]), RATE // 2)
        h.wait_until(lambda: self.rate_on(self.A) == RATE // 2, PROPAGATION,
                     "the new rate on A's API")
        # The running connection follows within the propagation bound; measured after it.
        self.assert_rate(reader.rate(3, settle=PROPAGATION), RATE // 2,
                         "through A after UpdateUser on B")


if __name__ == "__main__":
    h.main()
