#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Several servers for `local` and `tunnel` (issue 16 §2), with real components only: our
server and shadowsocks-libev's ss-server as the servers (each with its own method and password
from the local's "servers" list), curl as the SOCKS5 client and nginx as the target.

- Both servers carry connections (the local's shadowrelay_upstream_sessions_total of each
  grows), and every curl succeeds.
- A server goes away (its port closed): every curl still succeeds, failed connects moved on to
  the other server (connect_failures_total), it is marked down (shadowrelay_upstream_up 0); it
  comes back on the same port: the probe marks it up and it carries connections again.
- tunnel -u with two servers, the first down: datagrams go through the second.
Every loop is bounded in count and time.
"""

import json
import os
import re
import socket
import time
import urllib.request

import e2e_harness as h
from e2e_harness import UdpEcho

LOOPBACK = h.LOOPBACK
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')

OURS_METHOD, OURS_PASSWORD = "aes-128-gcm", "alpha-e2e-password"
LIBEV_METHOD, LIBEV_PASSWORD = "chacha20-ietf-poly1305", "beta-e2e-password"
MAX_CURLS = 200  # per waiting loop (about 12 s with the pauses; 30 s at most)


def scrape(port):
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def series(text, name, server):
    """The value of `name`{server="..."} in a scrape, or None."""
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m.group(1) == name and f'server="{server}"' in (m.group(2) or ""):
            return float(m.group(3))
    return None


class BalanceTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("several servers are our local's")
        self.nginx = h.nginx()

    def start_ss_server(self, port, name):
        argv = h.server_argv("libev", port, LIBEV_METHOD, LIBEV_PASSWORD) + ["-u"]
        child = self.spawn(name, argv, ours=False)
        h.wait_listening(port, child)
        return child

    def write_config(self, servers):
        path = h.scratch_path("balance.json")
        with open(path, "w") as f:
            json.dump({"servers": servers}, f)
        return path

    def start_client(self, role, servers, probe_interval, extra=()):
        argv = [h.Config.relay, role, "-c", self.write_config(servers), "-b", LOOPBACK,
                "-l", 0, "--metrics-listen", f"{LOOPBACK}:0",
                "--server-probe-interval", probe_interval, "-v"] + list(extra)
        child = self.start_ours(f"{role}-balance", argv)
        self.metrics_port = child.ready.metrics[1]
        return child

    def metric(self, name, server):
        return series(scrape(self.metrics_port), name, server)

    def curl_ok(self, local_port):
        result = h.curl(self.nginx.url("index.html"), socks5_port=local_port, max_time=20)
        self.assertEqual(result.code, 0, str(result))
        return result

    def curl_until(self, local_port, predicate, what):
        """Curls (each must succeed) until `predicate()` holds: at most MAX_CURLS, 30 s. A pause
        between curls lets the probes (every second) re-measure a server whose connect time
        spiked on a loaded machine (a sanitizer build): otherwise 60 quick curls all fall in
        one probe interval and go to the server that measured fastest."""
        end = time.monotonic() + 30
        for _ in range(MAX_CURLS):
            if predicate():
                return
            self.curl_ok(local_port)
            if time.monotonic() > end:
                break
            time.sleep(0.05)
        self.assertTrue(predicate(), what)

    def test_two_servers_with_their_own_methods_both_carry_connections(self):
        ours_port = self.start_server(OURS_METHOD, password=OURS_PASSWORD)
        libev_port = h.free_port()  # ss-server reports no port: a probed one
        self.start_ss_server(libev_port, "ss-server-beta")
        local = self.start_client("local", [
            {"server": LOOPBACK, "server_port": ours_port, "method": OURS_METHOD,
             "password": OURS_PASSWORD, "name": "alpha"},
            {"address": LOOPBACK, "port": libev_port, "method": LIBEV_METHOD,
             "password": LIBEV_PASSWORD, "remarks": "beta"},
        ], probe_interval=1)
        port = local.ready.port
        both = lambda: all((self.metric("shadowrelay_upstream_sessions_total", s) or 0) > 0
                           for s in ("alpha", "beta"))
        self.curl_until(port, both, "both servers carried connections")
        text = scrape(self.metrics_port)
        for server in ("alpha", "beta"):
            self.assertEqual(series(text, "shadowrelay_upstream_up", server), 1.0, text)
            self.assertEqual(series(text, "shadowrelay_upstream_connect_failures_total", server),
                             0.0, text)
        self.assertNotIn(OURS_PASSWORD, text)
        self.assertNotIn(LIBEV_PASSWORD, text)

    def test_failover_while_a_server_is_down_and_back_after_a_probe(self):
        ours_port = self.start_server(OURS_METHOD, password=OURS_PASSWORD)
        libev_port = h.free_port()
        libev = self.start_ss_server(libev_port, "ss-server-beta")
        local = self.start_client("local", [
            {"server": LOOPBACK, "server_port": ours_port, "method": OURS_METHOD,
             "password": OURS_PASSWORD, "name": "alpha"},
            {"server": LOOPBACK, "server_port": libev_port, "method": LIBEV_METHOD,
             "password": LIBEV_PASSWORD, "name": "beta"},
        ], probe_interval=4)
        port = local.ready.port
        self.curl_until(port, lambda: (self.metric("shadowrelay_upstream_sessions_total", "beta")
                                       or 0) > 0, "beta carried a connection")

        # beta goes away: its port refuses. Until a probe or three failures mark it down,
        # connections that pick it fail over to alpha; the SOCKS5 client sees no error.
        libev.stop()
        libev.stopped_by_test = True
        self.curl_until(port, lambda: self.metric("shadowrelay_upstream_up", "beta") == 0.0,
                        "beta marked down")
        for _ in range(10):
            self.curl_ok(port)  # beta is skipped now
        failures = self.metric("shadowrelay_upstream_connect_failures_total", "beta")
        sessions_down = self.metric("shadowrelay_upstream_sessions_total", "beta")
        self.assertEqual(self.metric("shadowrelay_upstream_up", "alpha"), 1.0)

        # beta comes back on the same port: the next probe marks it up and it is used again.
        self.start_ss_server(libev_port, "ss-server-beta-again")
        h.wait_until(lambda: self.metric("shadowrelay_upstream_up", "beta") == 1.0, 15,
                     "a probe marking beta up")
        self.curl_until(port, lambda: self.metric("shadowrelay_upstream_sessions_total", "beta")
                        > sessions_down, "beta used again after it came back")
        with open(local.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("server beta marked down", log)
        self.assertIn("server beta marked up", log)
        if failures > 0:  # a connection picked beta before the probe saw it gone
            self.assertIn("failing over to alpha", log)

    def test_tunnel_udp_relays_through_the_second_server_when_the_first_is_down(self):
        echo = UdpEcho()
        self.addCleanup(echo.stop)
        ours_port = self.start_server(OURS_METHOD, password=OURS_PASSWORD, extra=["-u"])
        down_port = h.free_port()  # nothing listens there, TCP or UDP
        tunnel = self.start_client("tunnel", [
            {"server": LOOPBACK, "server_port": down_port, "method": LIBEV_METHOD,
             "password": LIBEV_PASSWORD, "name": "first"},
            {"server": LOOPBACK, "server_port": ours_port, "method": OURS_METHOD,
             "password": OURS_PASSWORD, "name": "second"},
        ], probe_interval=1, extra=["-U", "-L", f"{LOOPBACK}:{echo.port}"])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(0.5)
        payload = os.urandom(200)
        got = None
        end = time.monotonic() + 15
        for _ in range(30):  # a datagram every 0.5 s until the reply
            sock.sendto(payload, (LOOPBACK, tunnel.ready.port))
            try:
                got, _ = sock.recvfrom(70000)
                break
            except socket.timeout:
                if time.monotonic() > end:
                    break
        self.assertEqual(got, payload, "no echo through the second server")
        self.assertEqual(self.metric("shadowrelay_upstream_up", "first"), 0.0)
        self.assertEqual(self.metric("shadowrelay_upstream_up", "second"), 1.0)


if __name__ == "__main__":
    h.main()
