# SPDX-License-Identifier: Apache-2.0
"""Per-user limits of issue 18 (§2 expiry, §4 renewing quotas, §5 the cap) end to end: our
server with its control API (grpc_call) and /metrics, shadowsocks-libev's ss-local, curl and
nginx as client and target.

  * expire_time a few seconds ahead: a running download is cut at that moment, new sessions are
    refused and counted in shadowrelay_user_refused_total{user,reason="expired"}, GetUser says
    USER_STATE_EXPIRED and shadowrelay_users{state="expired"} counts it; UpdateUser with a later
    expireTime brings the user back at once.
  * UDP on a shared port: an expired user's datagrams are identified, refused and counted; the
    port's other user goes on; a later expire_time brings it back.
  * limits.expire_after_first_use: nothing runs out while the user is unused; from the first
    session on, the same cut and refusals; UpdateUser limits.expireAfterFirstUse lifts it.
  * A daily quota in a server whose registry clock is set a few seconds before midnight UTC
    (SHADOWRELAY_TEST_CLOCK_OFFSET_SECONDS, a test-only hook): over the quota, then refused;
    at the boundary it counts from zero and relays again (quota_used_bytes, quota_reset_time,
    the shadowrelay_user_quota_* gauges).
  * --max-users: CreateUser beyond it answers RESOURCE_EXHAUSTED (the -k user counts); a
    deletion makes room.

Every wait is bounded (wait_until, socket and subprocess timeouts).
"""
import datetime
import os
import subprocess
import time

import users_e2e_test as u
from e2e_harness import ApiError, Config, main, metric_sum, wait_until

# An expiry is enforced by the registry's timer (at the deadline) and the table it posts to the
# workers; the slack is for sanitizer builds.
CUT_SLACK = 2.5
# Traffic (and so a first use or a quota) reaches the registry about once a second.
TRAFFIC_DEADLINE = u.TRAFFIC_DEADLINE
CLOCK_OFFSET_VARIABLE = "SHADOWRELAY_TEST_CLOCK_OFFSET_SECONDS"


def rfc3339(unix_seconds):
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


class LimitsTestCase(u.UsersTestCase):
    def start(self, extra=()):
        self.start_controlled(extra=extra, name="ours-server-limits",
                              metrics_listen=f"{u.LOOPBACK}:0")

    def state(self, name):
        return self.get(name).get("state")

    def refused_expired(self, name):
        return metric_sum(self.metrics_port, "shadowrelay_user_refused_total",
                          {"user": name, "reason": "expired"})

    def users_in(self, state):
        return metric_sum(self.metrics_port, "shadowrelay_users", {"state": state})

    def update(self, user, paths):
        return self.call("shadowrelay.v1.UserService/UpdateUser",
                         {"user": user, "update_mask": ",".join(paths)})

    def assert_cut_at(self, sock, deadline, what):
        """`sock` (a running download) ends within CUT_SLACK s of the wall-clock `deadline`,
        not before it by more than a report's delay."""
        got, _, how = u.drain_until_closed(sock, max(0.0, deadline - time.time()) + CUT_SLACK + 5)
        ended = time.time()
        self.assertNotEqual(how, "still open", f"{what}: the download went on ({got} bytes)")
        self.assertGreater(got, 0, f"{what}: nothing came before the cut")
        self.assertLess(ended, deadline + CUT_SLACK, f"{what}: cut late ({how})")
        return ended

    def assert_refused_and_counted(self, local, name):
        before = self.refused_expired(name)
        self.fetch_fails(local)
        wait_until(lambda: self.refused_expired(name) > before, TRAFFIC_DEADLINE,
                   f"shadowrelay_user_refused_total{{user={name},reason=expired}} to grow")


class ExpireTimeTest(LimitsTestCase):
    def test_expire_time_cuts_a_live_session_refuses_new_ones_until_updated(self):
        self.start()
        source = u.ThrottledSource(rate=1 << 20, seconds=40)
        self.addCleanup(source.stop)
        expire_at = time.time() + 5
        eve = self.create("eve", "aes-256-gcm", expire_time=rfc3339(expire_at))
        self.assertEqual(eve["state"], "USER_STATE_ACTIVE")
        self.assertIn("expire_time", eve)
        local = self.ss_local(eve)
        self.fetch_ok(local)
        sock = self.download(local, source, 64 << 10, "eve before expiry")
        self.assertLess(time.time(), expire_at, "the setup took longer than the expiry")

        self.assert_cut_at(sock, expire_at, "eve's download at expire_time")
        self.assertEqual(self.state("eve"), "USER_STATE_EXPIRED")
        self.assert_refused_and_counted(local, "eve")
        self.assertEqual(self.users_in("expired"), 1)
        listed = self.call("shadowrelay.v1.UserService/ListUsers")["users"]
        self.assertEqual({x["name"]: x["state"] for x in listed}["eve"], "USER_STATE_EXPIRED")

        # A later expire_time brings eve back at once.
        back = self.update({"name": "eve", "expire_time": rfc3339(time.time() + 3600)},
                           ["expireTime"])
        self.assertEqual(back["state"], "USER_STATE_ACTIVE")
        self.fetch_ok(local)
        self.assertEqual(self.users_in("expired"), 0)
        self.assertEqual(self.users_in("active"), 1)
        # An unset expire_time in the mask: never.
        never = self.update({"name": "eve"}, ["expireTime"])
        self.assertNotIn("expire_time", never)


class ExpiredUdpTest(LimitsTestCase):
    def test_an_expired_users_datagrams_are_refused_and_counted(self):
        # Two users on the shared UDP port (trial decryption): the expired one is identified by
        # its key, then refused; the other goes on.
        self.start(extra=["-u"])
        echo = u.UdpEcho()
        self.addCleanup(echo.stop)
        expire_at = time.time() + 4
        uma = self.create("uma", "aes-128-gcm", expire_time=rfc3339(expire_at))
        ulf = self.create("ulf", "aes-256-gcm")
        capped = self.ss_tunnel_u(uma, echo.port)
        free = self.ss_tunnel_u(ulf, echo.port)
        payload = os.urandom(500)
        self.assertEqual(self.roundtrip(capped, payload, timeout=3), payload)
        self.assertLess(time.time(), expire_at, "the setup took longer than the expiry")
        time.sleep(max(0.0, expire_at - time.time()) + CUT_SLACK)
        for i in range(3):
            self.assertIsNone(self.roundtrip(capped, payload, timeout=1),
                              f"datagram {i} of an expired user came back")
            self.assertEqual(self.roundtrip(free, payload, timeout=3), payload)
        self.assertEqual(echo.received, 1 + 3, "an expired user's datagram reached the target")
        wait_until(lambda: self.refused_expired("uma") >= 3, TRAFFIC_DEADLINE,
                   "three refused datagrams of uma counted")
        self.update({"name": "uma", "expire_time": rfc3339(time.time() + 3600)}, ["expireTime"])
        self.assertEqual(self.roundtrip(capped, payload, timeout=3), payload,
                         "a datagram once the expiry was moved")


class ExpireAfterFirstUseTest(LimitsTestCase):
    def test_expire_after_first_use_runs_from_the_first_session(self):
        self.start()
        source = u.ThrottledSource(rate=1 << 20, seconds=40)
        self.addCleanup(source.stop)
        gus = self.create("gus", "chacha20-ietf-poly1305",
                          limits={"expire_after_first_use": "4s"})
        self.assertEqual(gus["limits"]["expire_after_first_use"], "4s")
        local = self.ss_local(gus)
        time.sleep(5)  # longer than the lifetime, unused: nothing runs out
        idle = self.get("gus")
        self.assertEqual(idle["state"], "USER_STATE_ACTIVE")
        self.assertNotIn("first_use_time", idle)

        started = time.time()
        sock = self.download(local, source, 64 << 10, "gus's first session")
        wait_until(lambda: "first_use_time" in self.get("gus"), TRAFFIC_DEADLINE,
                   "GetUser to show gus's first use")
        first = datetime.datetime.strptime(
            self.get("gus")["first_use_time"][:19], "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        self.assertGreaterEqual(first, int(started) - 1)
        self.assertLessEqual(first, started + 3, "the first use was noticed late")
        ended = self.assert_cut_at(sock, first + 4 + 1, "gus's download after 4 s of use")
        self.assertGreater(ended, started + 3, "gus was cut before its time")
        self.assertEqual(self.state("gus"), "USER_STATE_EXPIRED")
        self.assert_refused_and_counted(local, "gus")

        lifted = self.update({"name": "gus", "limits": {"expire_after_first_use": "0s"}},
                             ["limits.expireAfterFirstUse"])
        self.assertEqual(lifted["state"], "USER_STATE_ACTIVE")
        self.fetch_ok(local)


class QuotaPeriodTest(LimitsTestCase):
    # Seconds between the server's (shifted) start and its midnight: room for a download, the
    # quota to be noticed and a refused fetch, with sanitizer builds.
    BEFORE_MIDNIGHT = 20

    def test_daily_quota_counts_from_zero_at_midnight_utc(self):
        now = time.time()
        midnight = (int(now) // 86400 + 1) * 86400
        offset = int(midnight - now) - self.BEFORE_MIDNIGHT
        os.environ[CLOCK_OFFSET_VARIABLE] = str(offset)
        try:
            self.start()
        finally:
            del os.environ[CLOCK_OFFSET_VARIABLE]
        server_midnight = time.time() + (midnight - (time.time() + offset))  # our clock
        quota = 32 << 10  # one 64 KiB download is beyond it
        hal = self.create("hal", "aes-128-gcm", limits={"data_quota_bytes": quota,
                                                        "data_quota_period": "QUOTA_PERIOD_DAILY"})
        self.assertEqual(hal["limits"]["data_quota_period"], "QUOTA_PERIOD_DAILY")
        self.assertEqual(hal["quota_reset_time"], rfc3339(midnight).replace(".000000", ""))
        local = self.ss_local(hal)
        self.fetch_ok(local)
        wait_until(lambda: self.state("hal") == "USER_STATE_OVER_QUOTA", TRAFFIC_DEADLINE,
                   "hal over its daily quota")
        over = self.get("hal")
        self.assertGreaterEqual(int(over["quota_used_bytes"]), 64 << 10)
        self.assertEqual(metric_sum(self.metrics_port, "shadowrelay_user_quota_bytes",
                                    {"user": "hal"}), quota)
        self.assertGreaterEqual(metric_sum(self.metrics_port, "shadowrelay_user_quota_used_bytes",
                                           {"user": "hal"}), 64 << 10)
        self.assertEqual(self.users_in("over_quota"), 1)
        self.fetch_fails(local)
        self.assertLess(time.time(), server_midnight, "the setup took longer than the day")

        wait_until(lambda: self.state("hal") == "USER_STATE_ACTIVE",
                   server_midnight - time.time() + CUT_SLACK, "hal's quota to renew at midnight")
        self.assertGreater(time.time(), server_midnight - 1, "renewed before midnight")
        renewed = self.get("hal")
        self.assertEqual(int(renewed.get("quota_used_bytes", 0)), 0)
        self.assertEqual(renewed["quota_reset_time"],
                         rfc3339(midnight + 86400).replace(".000000", ""))
        # The counters since creation stay.
        self.assertGreaterEqual(u.traffic(renewed, "bytes_down"), 64 << 10)
        # Before the fetch: its 64 KiB are beyond the quota again, and once the traffic report
        # (every second) has it, the user is over quota in the new period too.
        self.assertEqual(self.users_in("over_quota"), 0)
        self.fetch_ok(local)


class MaxUsersTest(LimitsTestCase):
    def test_create_beyond_max_users_is_resource_exhausted(self):
        self.start(extra=["-k", "e2e-max-users-key", "-m", "aes-256-gcm", "--max-users", "2"])
        self.create("one")
        with self.assertRaises(ApiError) as refused:
            self.create("two")
        self.assertEqual(refused.exception.code, "RESOURCE_EXHAUSTED")
        self.assertIn("--max-users 2", refused.exception.message)
        names = [x["name"] for x in self.call("shadowrelay.v1.UserService/ListUsers")["users"]]
        self.assertEqual(names, ["default", "one"])
        self.call("shadowrelay.v1.UserService/DeleteUser", {"name": "one"})
        two = self.create("two")
        self.fetch_ok(self.ss_local(two))

    def test_the_clock_hook_is_not_a_flag(self):
        out = subprocess.run([Config.relay, "server", "--help"], capture_output=True, text=True,
                             timeout=30)
        self.assertIn("--max-users", out.stdout + out.stderr)
        self.assertNotIn(CLOCK_OFFSET_VARIABLE, out.stdout + out.stderr)


if __name__ == "__main__":
    main()
