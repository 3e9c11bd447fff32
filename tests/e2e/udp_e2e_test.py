#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""UDP relay: our `server -u` behind shadowsocks-libev's `ss-local -u`, our `local -u` (SOCKS5
UDP ASSOCIATE) in front of `ss-server -u` and of our server, and `tunnel -u` both ways; a SOCKS5
UDP client here and a UDP echo server as the target. Bad datagrams are dropped and counted,
private targets refused, the association table bounded, associations end with their control
connection."""
import os
import re
import socket
import struct
import time

import e2e_harness as h
from e2e_harness import SocksUdp, UdpEcho, stopped_udp_summary

METHODS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]


class UdpTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)

    def start_pair(self, method, allow_private=True, extra=()):
        server_port = self.start_server(method, allow_private=allow_private,
                                        extra=["-u"] + list(extra))
        self.server = self.last_child
        local_port = h.free_port()  # ss-local reports no port: a probed one
        argv = h.local_argv("libev", server_port, local_port, method) + ["-u"]
        local = self.spawn(f"ss-local-u-{method}", argv, ours=False)
        h.wait_listening(local_port, local)
        return server_port, local_port

    def stop_server_log(self):
        code, killed = self.server.stop()
        self.server.exit_code = code
        self.assertFalse(killed, "server did not stop on SIGTERM")
        self.assertEqual(code, 0, f"server exit code {code}:\n{self.server.log_tail()}")
        with open(self.server.log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        match = re.search(r"stopped: udp (.*)", text)
        self.assertIsNotNone(match, "no UDP summary in the server log")
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}

    def check_echo(self, method):
        _, local_port = self.start_pair(method)
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        ok = 0
        for _ in range(20):
            payload = os.urandom(1200)  # libev's packet size limit is 1397
            if client.roundtrip(self.echo.port, payload) == payload:
                ok += 1
        self.assertEqual(ok, 20, f"{ok}/20 datagrams came back through ss-local -u -> server -u")
        stats = self.stop_server_log()
        self.assertEqual(stats["packets_in"], 20)

    def test_junk_before_valid_is_dropped_and_counted(self):
        server_port, local_port = self.start_pair("chacha20-ietf-poly1305")
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(raw.close)
        raw.settimeout(0.5)
        for junk in (os.urandom(200), os.urandom(10), b"", os.urandom(1500)):
            raw.sendto(junk, (h.LOOPBACK, server_port))
        with self.assertRaises(socket.timeout, msg="the server answered a junk datagram"):
            raw.recvfrom(70000)
        # A client with the wrong password: its datagrams do not open either.
        wrong_port = h.free_port()  # ss-local again
        argv = h.local_argv("libev", server_port, wrong_port, "chacha20-ietf-poly1305",
                            password="wrong-password") + ["-u"]
        wrong = self.spawn("ss-local-u-wrong", argv, ours=False)
        h.wait_listening(wrong_port, wrong)
        bad_client = SocksUdp(wrong_port)
        self.addCleanup(bad_client.close)
        self.assertIsNone(bad_client.roundtrip(self.echo.port, b"x" * 100))
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        self.assertEqual(client.roundtrip(self.echo.port, b"still served"), b"still served")
        stats = self.stop_server_log()
        self.assertGreaterEqual(stats["open"], 4, stats)  # 3 junk (the empty one may not arrive) + wrong key
        self.assertEqual(stats["packets_in"], 1)

    def test_private_target_refused_without_allow_private(self):
        _, local_port = self.start_pair("aes-128-gcm", allow_private=False)
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        self.assertIsNone(client.roundtrip(self.echo.port, b"to loopback"))
        self.assertEqual(self.echo.received, 0)
        stats = self.stop_server_log()
        self.assertGreaterEqual(stats["refused"], 1, stats)

    def test_association_table_is_bounded(self):
        _, local_port = self.start_pair(
            "aes-256-gcm", extra=["--workers", "1", "--udp-max-associations", "10"])
        clients = []
        for i in range(30):  # 30 source ports: 30 associations at the server
            client = SocksUdp(local_port)
            self.addCleanup(client.close)
            clients.append(client)
            payload = f"datagram {i}".encode()
            self.assertEqual(client.roundtrip(self.echo.port, payload), payload)
        stats = self.stop_server_log()
        self.assertEqual(stats["associations"], 30, stats)
        self.assertEqual(stats["evictions"], 20, stats)


class LocalUdpTest(h.RelayTestCase):
    """Our `local -u`: SOCKS5 UDP ASSOCIATE (RFC 1928 §7)."""

    def setUp(self):
        super().setUp()
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)

    def start_local_u(self, server_port, method, extra=()):
        port = self.start_local(server_port, method, extra=["-u"] + list(extra))
        self.local = self.last_child
        return port

    def start_ss_server_u(self, method):
        port = h.free_port()  # ss-server reports no port: a probed one
        server = self.spawn(f"ss-server-u-{method}",
                            h.server_argv("libev", port, method) + ["-u"], ours=False)
        h.wait_listening(port, server)
        return port

    def roundtrips(self, client, sizes):
        for size in sizes:
            payload = os.urandom(size)
            self.assertEqual(client.roundtrip(self.echo.port, payload), payload,
                             f"{size}-byte datagram did not come back unchanged")

    def test_our_local_to_ss_server(self):
        for method in METHODS:
            with self.subTest(method=method):
                local_port = self.start_local_u(self.start_ss_server_u(method), method)
                client = SocksUdp(local_port)
                self.addCleanup(client.close)
                self.assertEqual(client.relay[0], h.LOOPBACK)
                self.assertNotEqual(client.relay[1], 0)
                self.assertNotEqual(client.relay[1], local_port)  # a socket per association
                self.roundtrips(client, [1, 100, 1200, 1200, 1200])
                stats = stopped_udp_summary(self, self.local)
                self.assertEqual(stats["packets_in"], 5, stats)
                self.assertEqual(stats["packets_out"], 5, stats)
                self.assertEqual(stats["associations"], 1, stats)

    def test_our_local_to_our_server_up_to_32k(self):
        method = "chacha20-ietf-poly1305"
        server_port = self.start_server(method, extra=["-u"])
        client = SocksUdp(self.start_local_u(server_port, method))
        self.addCleanup(client.close)
        self.roundtrips(client, [1, 1200, 8 << 10, 32 << 10])

    def test_fragments_and_foreign_sources_are_dropped(self):
        method = "aes-128-gcm"
        local_port = self.start_local_u(self.start_ss_server_u(method), method)
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        client.udp.settimeout(0.5)
        self.assertIsNone(client.roundtrip(self.echo.port, b"fragment 1", frag=1))
        # Another IP (127.0.0.2 is loopback too) sends to the association's port: dropped.
        foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(foreign.close)
        foreign.bind(("127.0.0.2", 0))
        foreign.settimeout(0.5)
        header = b"\x00\x00\x00\x01" + socket.inet_aton(h.LOOPBACK) + \
            struct.pack(">H", self.echo.port)
        foreign.sendto(header + b"from elsewhere", client.relay)
        with self.assertRaises(socket.timeout):
            foreign.recvfrom(70000)
        client.udp.sendto(b"\x00\x00\x00\x07junk", client.relay)  # bad ATYP
        client.udp.settimeout(3)
        self.assertEqual(client.roundtrip(self.echo.port, b"valid"), b"valid")
        self.assertEqual(self.echo.received, 1)
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual(stats["fragment"], 1, stats)
        self.assertEqual(stats["foreign"], 1, stats)
        self.assertEqual(stats["address"], 1, stats)
        self.assertEqual(stats["packets_in"], 1, stats)

    def test_association_ends_with_control_connection(self):
        method = "aes-256-gcm"
        local_port = self.start_local_u(self.start_ss_server_u(method), method)
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        self.roundtrips(client, [64])
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(probe.close)
        probe.connect(client.relay)
        probe.settimeout(0.2)
        client.control.close()
        # Once the association is gone its port is closed: the kernel answers ICMP port
        # unreachable, which a connected UDP socket reports as ECONNREFUSED.
        refused = False
        deadline = time.monotonic() + 5
        while not refused and time.monotonic() < deadline:
            probe.send(b"\x00\x00\x00\x01" + socket.inet_aton(h.LOOPBACK) +
                       struct.pack(">H", self.echo.port) + b"after close")
            try:
                probe.recv(70000)
            except ConnectionRefusedError:
                refused = True
            except socket.timeout:
                time.sleep(0.1)
        self.assertTrue(refused, "the association's UDP port stayed open after its control "
                                 "connection closed")

    def test_many_associations_release_their_sockets(self):
        method = "chacha20-ietf-poly1305"
        local_port = self.start_local_u(self.start_ss_server_u(method), method,
                                        extra=["--workers", "1"])
        fd_dir = f"/proc/{self.local.popen.pid}/fd"

        def socket_links():
            links = {}
            for fd in os.listdir(fd_dir):
                try:
                    link = os.readlink(os.path.join(fd_dir, fd))
                except FileNotFoundError:
                    continue
                if link.startswith("socket:"):
                    links[int(fd)] = link
            return links

        def sockets():
            """The process's open sockets (other fds, e.g. a sanitizer's files, come and go)."""
            count = 0
            for fd in os.listdir(fd_dir):
                try:
                    count += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
                except FileNotFoundError:
                    pass
            return count

        # One association first, so that what a worker opens once (lazily) is in the baseline;
        # then count once the readiness probe's and that association's sockets settled.
        warm = SocksUdp(local_port)
        self.assertEqual(warm.roundtrip(self.echo.port, b"warm-up"), b"warm-up")
        warm.close()
        before = sockets()
        for _ in range(40):
            time.sleep(0.05)
            before = min(before, sockets())
        for round_ in range(3):
            clients = [SocksUdp(local_port) for _ in range(50)]
            for i, client in enumerate(clients):
                payload = f"round {round_} client {i}".encode()
                self.assertEqual(client.roundtrip(self.echo.port, payload), payload)
            # Every association holds three sockets of its own: its control connection, its
            # relay socket and its server socket. (Relay sockets bound with SO_REUSEADDR could
            # share a port: the datagrams of one went to the other, which then showed one server
            # socket less, or, when the shared port was ss-server's, no answer at all.)
            self.assertEqual(len({client.relay for client in clients}), 50,
                             f"round {round_}: associations share a relay port")
            during = max(sockets() for _ in range(3))
            self.assertGreaterEqual(during, before + 50 * 3, f"round {round_}: too few sockets")
            for client in clients:
                client.close()
            # Closing them frees every one: back to the baseline, round after round.
            deadline = time.monotonic() + 10
            while sockets() > before and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertLessEqual(sockets(), before,
                                 f"round {round_}: sockets left after the associations closed: "
                                 f"{sorted(socket_links().items())}")
        deadline = time.monotonic() + 5
        while sockets() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertLessEqual(sockets(), before,
                             "sockets of closed associations were not released")
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual(stats["associations"], 151, stats)
        self.assertEqual(stats["packets_in"], 151, stats)


class UdpTunnelTest(h.RelayTestCase):
    """`tunnel -u`: datagrams to the local port go to the fixed -L destination."""

    def setUp(self):
        super().setUp()
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)

    def tunnel_roundtrips(self, tunnel_port, sizes):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(2)
        earlier = set()  # a late echo of an earlier try is no answer to this datagram
        for size in sizes:
            payload = os.urandom(size)
            data = None
            # UDP: a datagram may be sent before a just-started tunnel's UDP socket reads (libev
            # ss-tunnel reports only its TCP port), so each one gets up to three tries.
            for _ in range(3):
                sock.sendto(payload, (h.LOOPBACK, tunnel_port))
                try:
                    data, _ = sock.recvfrom(70000)
                    while data in earlier:
                        data, _ = sock.recvfrom(70000)
                    break
                except socket.timeout:
                    data = None
            self.assertIsNotNone(data, f"{size}-byte datagram: no reply through the tunnel (3 tries)")
            self.assertEqual(data, payload, f"{size}-byte datagram came back changed")
            earlier.add(payload)

    def start_tunnel_u(self, server_port, method, impl="ours"):
        return self.start_tunnel(server_port, method, f"127.0.0.1:{self.echo.port}", impl=impl,
                                 extra=["-u"])

    def test_our_tunnel_to_our_server_up_to_32k(self):
        for method in METHODS:
            server_port = self.start_server(method, extra=["-u"])
            tunnel_port = self.start_tunnel_u(server_port, method)
            self.tunnel_roundtrips(tunnel_port, [1, 1200, 8 << 10, 32 << 10])

    def test_our_tunnel_to_ss_server(self):
        server_port = h.free_port()  # ss-server reports no port: a probed one
        argv = h.server_argv("libev", server_port, "chacha20-ietf-poly1305") + ["-u"]
        server = self.spawn("ss-server-u", argv, ours=False)
        h.wait_listening(server_port, server)
        tunnel_port = self.start_tunnel_u(server_port, "chacha20-ietf-poly1305")
        self.tunnel_roundtrips(tunnel_port, [100, 1200])

    def test_ss_tunnel_to_our_server(self):
        server_port = self.start_server("aes-256-gcm", extra=["-u"])
        tunnel_port = self.start_tunnel_u(server_port, "aes-256-gcm", impl="libev")
        self.tunnel_roundtrips(tunnel_port, [100, 1200])

    def test_thousand_associations_stay_within_the_bound(self):
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
        method = "aes-128-gcm"
        server_port = self.start_server(
            method, extra=["-u", "--workers", "1", "--udp-max-associations", "100"])
        server = self.last_child
        tunnel_port = self.start_tunnel_u(server_port, method)
        fd_dir = f"/proc/{server.popen.pid}/fd"
        baseline = len(os.listdir(fd_dir))
        peak = baseline
        socks = []
        try:
            for i in range(1000):  # 1000 source ports: 1000 associations at the server
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.settimeout(3)
                payload = f"association {i}".encode()
                sock.sendto(payload, (h.LOOPBACK, tunnel_port))
                self.assertEqual(sock.recvfrom(70000)[0], payload, f"association {i}")
                if i % 50 == 0:
                    peak = max(peak, len(os.listdir(fd_dir)))
        finally:
            for sock in socks:
                sock.close()
        self.assertLessEqual(peak, baseline + 100 + 2,
                             "the server's descriptors grew past the association bound")
        stats = stopped_udp_summary(self, server)
        self.assertEqual(stats["associations"], 1000, stats)
        self.assertEqual(stats["evictions"], 900, stats)
        self.assertEqual(stats["packets_in"], 1000, stats)

    def test_idle_associations_expire(self):
        server_port = self.start_server("aes-128-gcm", extra=["-u", "--udp-timeout", "1"])
        server = self.last_child
        tunnel_port = self.start_tunnel_u(server_port, "aes-128-gcm")
        self.tunnel_roundtrips(tunnel_port, [64])
        time.sleep(3)  # bounded: > the 1 s timeout + the 1 s sweep interval
        code, _ = server.stop()
        server.exit_code = code
        self.assertEqual(code, 0)
        with open(server.log_path, encoding="utf-8", errors="replace") as f:
            summary = re.search(r"stopped: udp (.*)", f.read()).group(1)
        self.assertIn("expirations=1", summary)


for _method in METHODS:
    setattr(UdpTest, "test_ss_local_to_our_server_" + _method.replace("-", "_"),
            lambda self, m=_method: self.check_echo(m))


if __name__ == "__main__":
    h.main()
