#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Legacy stream methods (PROTOCOL.md §4, issue 16 §1) against shadowsocks-libev, which still
speaks them: for each of the 14 methods, shadowsocks-libev's ss-local in front of our server and
our local in front of ss-server, TCP (a 256 KiB echo through SOCKS5 CONNECT) and UDP (datagrams
through SOCKS5 UDP ASSOCIATE), plus our tunnel (TCP and UDP) in front of ss-server. Without
--allow-insecure-ciphers a stream method is refused (exit 2, the message names the flag); with
it the server warns at start and exports shadowrelay_insecure_cipher_in_use{method}; a stream
method serves one user per port; one-time auth is refused."""
import json
import os
import re
import socket
import subprocess
import urllib.request

import e2e_harness as h
from e2e_harness import SocksUdp, UdpEcho

METHODS = (
    "aes-128-cfb", "aes-192-cfb", "aes-256-cfb",
    "aes-128-ctr", "aes-192-ctr", "aes-256-ctr",
    "camellia-128-cfb", "camellia-192-cfb", "camellia-256-cfb",
    "bf-cfb", "chacha20-ietf", "chacha20", "salsa20", "rc4-md5",
)
FLAG = "--allow-insecure-ciphers"
TCP_PAYLOAD = os.urandom(256 << 10)
UDP_ROUNDS = 10


def allow(impl):
    """Our flag, for our binary only (libev takes these methods without one)."""
    return [FLAG] if h._resolve_impl(impl) == "ours" else []


class StreamInteropTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.echo = self.add_peer(h.EchoServer())
        self.udp_echo = UdpEcho()
        self.addCleanup(self.udp_echo.stop)

    def start_pair(self, method, client_impl, server_impl):
        server_port = self.start_server(method, impl=server_impl,
                                        extra=["-u"] + allow(server_impl))
        if h._resolve_impl(client_impl) == "libev":
            local_port = h.free_port()  # ss-local reports no port: a probed one
            argv = h.local_argv("libev", server_port, local_port, method) + ["-u"]
            h.wait_listening(local_port, self.spawn(f"ss-local-u-{method}", argv, ours=False))
        else:
            local_port = self.start_local(server_port, method, impl=client_impl,
                                          extra=["-u"] + allow(client_impl))
        return server_port, local_port

    def tcp_through(self, method, client_impl, server_impl):
        _, local_port = self.start_pair(method, client_impl, server_impl)
        with h.socks5_connect(local_port, h.LOOPBACK, self.echo.port) as sock:
            h.echo_roundtrip(sock, TCP_PAYLOAD,
                             f"{method}: 256 KiB echo, {client_impl} local -> {server_impl} server")

    def udp_through(self, method, client_impl, server_impl):
        _, local_port = self.start_pair(method, client_impl, server_impl)
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        ok = 0
        for i in range(UDP_ROUNDS):
            payload = os.urandom(100 + 100 * i)  # under libev's 1397-byte packet limit
            if client.roundtrip(self.udp_echo.port, payload) == payload:
                ok += 1
        # UDP may lose a datagram on a busy machine; most must come back, intact.
        self.assertGreaterEqual(ok, UDP_ROUNDS - 2,
                                f"{method}: {ok}/{UDP_ROUNDS} datagrams came back, "
                                f"{client_impl} local -> {server_impl} server")

    def tunnel_to_ssserver(self, method):
        server_port = self.start_server(method, impl="libev", extra=["-u"])
        tunnel_port = self.start_tunnel(server_port, method, f"{h.LOOPBACK}:{self.echo.port}",
                                        extra=allow("ours"))
        with socket.create_connection((h.LOOPBACK, tunnel_port), timeout=20) as sock:
            h.echo_roundtrip(sock, TCP_PAYLOAD[:64 << 10], f"{method}: tunnel -> ss-server")
        udp_tunnel = self.start_tunnel(server_port, method, f"{h.LOOPBACK}:{self.udp_echo.port}",
                                       extra=["-U"] + allow("ours"))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(3)
        ok = 0
        for i in range(UDP_ROUNDS):
            payload = os.urandom(64 + i)
            sock.sendto(payload, (h.LOOPBACK, udp_tunnel))
            try:
                ok += sock.recvfrom(65536)[0] == payload
            except socket.timeout:
                pass
        self.assertGreaterEqual(ok, UDP_ROUNDS - 2, f"{method}: {ok}/{UDP_ROUNDS} via tunnel -U")


def _add_cases(method):
    m = method.replace("-", "_")
    for name, client_impl, server_impl in (("sslocal_to_ours_server", "libev", "ours"),
                                           ("ours_local_to_ssserver", "ours", "libev")):
        def tcp(self, client_impl=client_impl, server_impl=server_impl):
            self.tcp_through(method, client_impl, server_impl)

        def udp(self, client_impl=client_impl, server_impl=server_impl):
            self.udp_through(method, client_impl, server_impl)
        setattr(StreamInteropTest, f"test_{m}_tcp_{name}", tcp)
        setattr(StreamInteropTest, f"test_{m}_udp_{name}", udp)

    def tunnel(self):
        self.tunnel_to_ssserver(method)
    setattr(StreamInteropTest, f"test_{m}_tunnel_tcp_and_udp_to_ssserver", tunnel)


for _method in METHODS:
    _add_cases(_method)


def run_ours(argv, timeout=20):
    return subprocess.run([h.Config.relay] + argv, capture_output=True, text=True,
                          timeout=timeout)


class StreamPolicyTest(h.RelayTestCase):
    def test_stream_method_without_the_flag_exits_2_naming_it(self):
        for role in ("server", "local", "tunnel"):
            argv = [role, "-s", h.LOOPBACK, "-p", "8388", "-k", "pw", "-m", "aes-256-cfb",
                    "-b", h.LOOPBACK, "-l", "0", "-L", "127.0.0.1:80",
                    "--control-listen", "off", "--metrics-listen", "off"]
            out = run_ours(argv)
            self.assertEqual(out.returncode, 2, f"{role}: {out}")
            self.assertIn(FLAG, out.stderr, role)
            self.assertIn("aes-256-cfb", out.stderr, role)

    def test_json_key_allows_it(self):
        path = h.scratch_path("stream.json")
        with open(path, "w") as f:
            json.dump({"server": h.LOOPBACK, "server_port": 0, "password": "pw",
                       "method": "rc4-md5", "allow_insecure_ciphers": True}, f)
        child = self.start_ours("server-json", [h.Config.relay, "server", "-c", path,
                                                "--allow-private", "--control-listen", "off",
                                                "--metrics-listen", "off"])
        self.assertTrue(child.ready.tcp, child.ready)

    def test_one_time_auth_is_refused(self):
        path = h.scratch_path("ota.json")
        with open(path, "w") as f:
            json.dump({"server_port": 0, "password": "pw", "method": "aes-256-cfb",
                       "allow_insecure_ciphers": True, "one_time_auth": True}, f)
        out = run_ours(["server", "-c", path, "--control-listen", "off"])
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("one_time_auth", out.stderr)
        self.assertIn("one-time auth (OTA)", out.stderr)
        out = run_ours(["server", "-p", "0", "-k", "pw", "-m", "aes-256-cfb-auth", FLAG,
                        "--control-listen", "off"])
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("deprecated and broken", out.stderr)

    def test_one_user_per_port(self):
        path = h.scratch_path("users.json")
        with open(path, "w") as f:
            json.dump({"server_port": 0, "password": "pw", "method": "aes-256-cfb",
                       "allow_insecure_ciphers": True,
                       "users": [{"name": "second", "password": "other"}]}, f)
        out = run_ours(["server", "-c", path, "--control-listen", "off"])
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("one user", out.stderr)

    def test_warning_and_metric_when_in_use(self):
        self.require_ours("the metrics exporter")
        self.start_server("salsa20", extra=[FLAG, "--metrics-listen", f"{h.LOOPBACK}:0"])
        child = self.last_child
        with urllib.request.urlopen(f"http://{h.LOOPBACK}:{child.ready.metrics[1]}/metrics",
                                    timeout=5) as r:
            text = r.read().decode()
        self.assertRegex(text, r'(?m)^shadowrelay_insecure_cipher_in_use\{method="salsa20"\} 1$')
        with open(child.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertRegex(log, r"W .*--allow-insecure-ciphers: legacy stream methods .*in use: "
                              r"salsa20")

    def test_no_metric_for_an_aead_server(self):
        self.require_ours("the metrics exporter")
        self.start_server("aes-256-gcm", extra=["--metrics-listen", f"{h.LOOPBACK}:0"])
        port = self.last_child.ready.metrics[1]
        with urllib.request.urlopen(f"http://{h.LOOPBACK}:{port}/metrics", timeout=5) as r:
            self.assertNotIn("shadowrelay_insecure_cipher_in_use", r.read().decode())

    def test_ciphers_command_lists_stream_methods_only_with_the_flag(self):
        plain = run_ours(["ciphers"])
        self.assertEqual(plain.returncode, 0, plain)
        self.assertNotIn("aes-256-cfb", plain.stdout)
        insecure = run_ours(["ciphers", FLAG])
        self.assertEqual(insecure.returncode, 0, insecure)
        for method in METHODS:
            self.assertRegex(insecure.stdout, rf"(?m)^{re.escape(method)} .* stream ")


if __name__ == "__main__":
    h.main()
