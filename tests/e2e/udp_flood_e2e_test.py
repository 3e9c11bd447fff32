#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A key-less UDP flood against a multi-user AEAD-2017 port (issue 15 §1).

1 000 users share our server's port (-u). A sender without any key floods it for 5 s with
random 32 KiB datagrams (2 000 a second, from 8 source ports of one loopback address, so both
workers get some) while a TCP echo client, going through our `local` with one of the port's
users, times round trips over one connection. Without bounds each datagram would be tried
against every user (1 000 opens of 32 KiB: about 8 ms of a core each), and the server would
use both cores. With them (--udp-max-trials, --udp-trial-budget, --udp-source-trial-budget,
their defaults):
  - the round trips' median stays within 3x of its idle median, and none fails;
  - the server spends at most 0.25 cores on the flood (its utime+stime from /proc/PID/stat
    over the flood, the round trips included);
  - the dropped datagrams are counted (reason trial_budget besides open).

The same measurement is `./dev bench flood` (tests/bench/flood_bench.py imports this module),
which also runs it with the bounds lifted, for the numbers of the unbounded server.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import e2e_harness as h

METHOD = "aes-128-gcm"
USERS = 1000
FLOOD_SECONDS = 5.0
FLOOD_RATE = 2000          # datagrams per second, all source ports together
FLOOD_SIZE = 32 << 10
FLOOD_SOCKETS = 8
IDLE_ROUND_TRIPS = 300
PAYLOAD = 64               # bytes per echo round trip
GAP_S = 0.005              # between round trips during the flood
MAX_SLOWDOWN = 3.0         # flood p50 / idle p50
MAX_CORES = 0.25

# Runs in its own process (no GIL shared with the round-trip timer): paced sends of random
# datagrams, bounded by the duration and the count.
FLOODER = r"""
import os, socket, sys, time
port, seconds, rate, size, count = (int(float(a)) for a in sys.argv[1:6])
socks = []
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
pool = [os.urandom(size) for _ in range(64)]
start = time.monotonic()
sent = 0
limit = int(rate * seconds)
while sent < limit:
    due = start + sent / rate
    now = time.monotonic()
    if now - start > seconds + 2:
        break
    if due > now:
        time.sleep(due - now)
    try:
        socks[sent % count].sendto(pool[sent % len(pool)], ("127.0.0.1", port))
    except OSError:
        pass
    sent += 1
print(sent, flush=True)
"""


def cpu_seconds(pid):
    """utime + stime of `pid` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def round_trip(sock, payload):
    started = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(len(payload) - len(got))
        if not chunk:
            raise AssertionError(f"echo connection closed after {len(got)} bytes")
        got += chunk
    if got != payload:
        raise AssertionError("echo differs")
    return time.perf_counter() - started


class UdpFloodTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("our server's trial-decryption bounds")

    def measure(self, server_extra=()):
        """Runs the flood next to the echo round trips; returns the numbers as a dict."""
        users = [{"name": f"flood-user-{i:04d}", "password": f"flood-password-{i}",
                  "method": METHOD} for i in range(USERS)]
        config = h.scratch_path("flood-users.json")
        with open(config, "w") as f:
            json.dump({"users": users}, f)
        server = self.start_ours("ours-server-flood", h.server_argv(
            "ours", 0, METHOD, extra=["-u", "-c", config] + list(server_extra)))
        port = server.ready.port
        # The user the echo goes through: in the middle of the port's order.
        chosen = users[USERS // 2]
        local = self.start_local(port, METHOD, password=chosen["password"])
        echo = self.add_peer(h.EchoServer())
        sock = h.socks5_connect(local, h.LOOPBACK, echo.port)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(10)
        payload = os.urandom(PAYLOAD)
        for _ in range(20):  # warm up: the user is matched and hinted
            round_trip(sock, payload)
        # Idle round trips paced as those under the flood will be (a round trip after a pause
        # is slower than one right after another: the pause is part of what is compared).
        idle = []
        for _ in range(IDLE_ROUND_TRIPS):
            idle.append(round_trip(sock, payload))
            time.sleep(GAP_S)

        cpu_before = cpu_seconds(server.pid)
        wall_before = time.monotonic()
        flooder = subprocess.Popen(
            [sys.executable, "-c", FLOODER, str(port), str(FLOOD_SECONDS), str(FLOOD_RATE),
             str(FLOOD_SIZE), str(FLOOD_SOCKETS)],
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: flooder.poll() is None and flooder.kill())
        loaded = []
        failures = 0
        deadline = wall_before + FLOOD_SECONDS
        while time.monotonic() < deadline:
            try:
                loaded.append(round_trip(sock, payload))
            except (OSError, AssertionError):
                failures += 1
                break
            time.sleep(GAP_S)
        out, _ = flooder.communicate(timeout=FLOOD_SECONDS + 10)
        wall = time.monotonic() - wall_before
        cores = (cpu_seconds(server.pid) - cpu_before) / wall
        summary = h.stopped_udp_summary(self, server)
        return {
            "users": USERS + 1,  # the -k user besides the configured ones
            "flood_datagrams": int(out.strip() or 0),
            "flood_seconds": round(wall, 2),
            "datagram_bytes": FLOOD_SIZE,
            "idle_p50_us": round(statistics.median(idle) * 1e6),
            "idle_p99_us": round(percentile(idle, 99) * 1e6),
            "flood_p50_us": round(statistics.median(loaded) * 1e6) if loaded else None,
            "flood_p99_us": round(percentile(loaded, 99) * 1e6) if loaded else None,
            "round_trips": len(loaded),
            "failures": failures,
            "server_cores": round(cores, 3),
            "dropped_open": summary.get("open", 0),
            "dropped_trial_budget": summary.get("trial_budget", 0),
        }

    def test_a_keyless_flood_costs_a_bounded_share_of_a_core(self):
        result = self.measure()
        print(f"  flood: {json.dumps(result)}", file=sys.stderr)
        self.assertEqual(result["failures"], 0)
        self.assertGreater(result["round_trips"], 100)
        self.assertGreater(result["flood_datagrams"], FLOOD_RATE * FLOOD_SECONDS * 0.9)
        self.assertLessEqual(result["flood_p50_us"], MAX_SLOWDOWN * result["idle_p50_us"],
                             result)
        self.assertLessEqual(result["server_cores"], MAX_CORES, result)
        self.assertGreater(result["dropped_trial_budget"], 0, result)


if __name__ == "__main__":
    h.main()
