#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Shadowsocks 2022 over TCP (PROTOCOL.md §2.4), one PSK per port.

- Our tunnel and our local -> our server for each 2022 method: an 8 MiB download from nginx
  (SHA-256 checked) and a 4 MiB upload echoed.
- An independent client written from the spec (ss2022_wire.py: BLAKE3 from blake3_ref.py, the
  test fixture of shared/vectors; AES-GCM and ChaCha20-Poly1305 from python3-cryptography) drives
  our server on the wire: a good request gets the target's bytes back in a valid response
  (type 1, a fresh timestamp, our request salt echoed); a replayed request, a timestamp 120 s
  off and a wrong key get no byte and a FIN at the handshake deadline (--handshake-timeout 2).
  Its SIP023 identity header is checked against the §2.8 vector here; users_2022_e2e_test
  drives users with it.
UDP and UDP over TCP are in ss2022_udp_e2e_test.py."""
import base64
import os
import re
import socket
import struct
import subprocess
import time
import urllib.parse

import e2e_harness as h
from ss2022_wire import (HANDSHAKE_TIMEOUT, ResponseReader, Sealer, assert_refused, b64, chunk,
                         identity_header, psk_of, request, user_hash)


class Ss2022Test(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("Shadowsocks 2022 is our server's")

    def start_2022_server(self, method, psk):
        return self.start_server(method, password=b64(psk), handshake_timeout=HANDSHAKE_TIMEOUT)

    # Our clients -> our server.

    def download_through_tunnel_and_local(self, method):
        psk = psk_of(method)
        web = h.nginx()
        server_port = self.start_2022_server(method, psk)
        tunnel_port = self.start_tunnel(server_port, method, f"{h.LOOPBACK}:{web.port}",
                                        password=b64(psk))
        local_port = self.start_local(server_port, method, password=b64(psk))
        size, digest = web.files[h.Nginx.BIG]
        for result in (h.curl(f"http://{h.LOOPBACK}:{tunnel_port}/{h.Nginx.BIG}"),
                       h.curl(web.url(h.Nginx.BIG), socks5_port=local_port)):
            self.assertEqual(result.code, 0, f"curl failed: {result}")
            self.assertEqual((len(result.body), h.sha256(result.body)), (size, digest),
                             f"wrong body: {result}")
        echo = self.add_peer(h.EchoServer())
        with h.socks5_connect(local_port, h.LOOPBACK, echo.port) as sock:
            h.echo_roundtrip(sock, os.urandom(4 << 20), f"{method} upload echoed")

    def test_ours_aes_128_gcm(self):
        self.download_through_tunnel_and_local("2022-blake3-aes-128-gcm")

    def test_ours_aes_256_gcm(self):
        self.download_through_tunnel_and_local("2022-blake3-aes-256-gcm")

    def test_ours_chacha20_poly1305(self):
        self.download_through_tunnel_and_local("2022-blake3-chacha20-poly1305")

    def test_silent_client_sends_padding_and_is_served(self):
        # No data within the first-data wait: the request goes with padding only; the echo of
        # what follows proves the server took it.
        method = "2022-blake3-aes-128-gcm"
        psk = psk_of(method)
        echo = self.add_peer(h.EchoServer())
        server_port = self.start_2022_server(method, psk)
        tunnel_port = self.start_tunnel(server_port, method, f"{h.LOOPBACK}:{echo.port}",
                                        password=b64(psk))
        with socket.create_connection((h.LOOPBACK, tunnel_port), timeout=10) as sock:
            time.sleep(0.5)
            h.echo_roundtrip(sock, b"after a silent start", "padded request")

    # The independent client on the wire.

    def test_spec_client_matches_the_protocol_vector(self):
        # PROTOCOL.md §2.8: aes-128 request, PSK16 = 00..0f, salt 10..1f, timestamp 1700000000.
        sealer = Sealer("2022-blake3-aes-128-gcm", bytes(range(16)), bytes(range(0x10, 0x20)))
        fixed = struct.pack(">BQH", 0, 1700000000, 0x23)
        variable = bytes.fromhex("030b6578616d706c652e636f6d00500000") + b"GET / HTTP/1.0\r\n\r\n"
        self.assertEqual(sealer.seal(fixed).hex(),
                         "f62b42ac395d4aead07a5076ae261fd1d4082be96c7968100f4b5a")
        self.assertEqual(sealer.seal(variable).hex(),
                         "e19e0c3dc0253175322489f04f23b87d6f7bc5813bd29ae35227a4d97b65f0bc"
                         "ad93da44e50c74403d6f5bd23c459c3139f4da")

    def test_spec_client_matches_the_identity_header_vector(self):
        # PROTOCOL.md §2.8, SIP023 aes-128: iPSK = 00..0f, uPSK = ff fe .. f0, salt 10..1f.
        upsk = bytes(range(0xFF, 0xEF, -1))
        self.assertEqual(user_hash(upsk).hex(), "9b4a4b2e89211e24036becf02bed2372")
        eih = identity_header("2022-blake3-aes-128-gcm", bytes(range(16)),
                              bytes(range(0x10, 0x20)), upsk)
        self.assertEqual(eih.hex(), "5ab8fe05371fe01e73004fda29f18e1c")

    def wire_roundtrip(self, method):
        psk = psk_of(method, seed=3)
        echo = self.add_peer(h.EchoServer())
        server_port = self.start_2022_server(method, psk)
        wire, salt, sealer = request(method, psk, h.LOOPBACK, echo.port, b"first bytes",
                                     padding=os.urandom(17))
        with socket.create_connection((h.LOOPBACK, server_port), timeout=10) as sock:
            sock.sendall(wire + chunk(sealer, b" and a chunk") + chunk(sealer, b"x" * 0xFFFF))
            sock.shutdown(socket.SHUT_WR)
            got = ResponseReader(self, sock, method, psk, salt).read_all()
        self.assertEqual(got, b"first bytes and a chunk" + b"x" * 0xFFFF)

    def test_spec_client_aes_128_gcm(self):
        self.wire_roundtrip("2022-blake3-aes-128-gcm")

    def test_spec_client_aes_256_gcm(self):
        self.wire_roundtrip("2022-blake3-aes-256-gcm")

    def test_spec_client_chacha20_poly1305(self):
        self.wire_roundtrip("2022-blake3-chacha20-poly1305")

    def probe(self, server_port, wire, what):
        assert_refused(self, server_port, wire, what)

    def test_replayed_request_gets_nothing(self):
        method = "2022-blake3-aes-256-gcm"
        psk = psk_of(method, seed=5)
        echo = self.add_peer(h.EchoServer())
        server_port = self.start_2022_server(method, psk)
        wire, salt, _ = request(method, psk, h.LOOPBACK, echo.port, b"once")
        with socket.create_connection((h.LOOPBACK, server_port), timeout=10) as sock:
            sock.sendall(wire)
            sock.shutdown(socket.SHUT_WR)
            self.assertEqual(ResponseReader(self, sock, method, psk, salt).read_all(), b"once")
        accepted = echo.accepted
        self.probe(server_port, wire, "a replayed 2022 request")
        self.assertEqual(echo.accepted, accepted, "the replay reached the target")

    def test_timestamp_120_s_off_gets_nothing(self):
        method = "2022-blake3-chacha20-poly1305"
        psk = psk_of(method, seed=7)
        echo = self.add_peer(h.EchoServer())
        server_port = self.start_server(method, password=b64(psk),
                                        handshake_timeout=HANDSHAKE_TIMEOUT,
                                        extra=["--metrics-listen", f"{h.LOOPBACK}:0"])
        metrics_port = self.last_child.ready.metrics[1]
        for offset in (-120, 120):
            wire, _, _ = request(method, psk, h.LOOPBACK, echo.port, b"stale",
                                 timestamp=int(time.time()) + offset)
            self.probe(server_port, wire, f"a request stamped {offset:+d} s")
        self.assertEqual(echo.accepted, 0, "a stale request reached the target")
        # Counted under a close status of its own (not as a replayed salt).
        closed = "shadowrelay_tcp_connections_closed_total"
        h.wait_until(lambda: h.metric_sum(metrics_port, closed, {"status": "stale_timestamp"}) >= 2,
                     10, "two closes with status stale_timestamp")
        self.assertEqual(h.metric_sum(metrics_port, closed, {"status": "stale_timestamp"}), 2)
        self.assertEqual(h.metric_sum(metrics_port, closed, {"status": "replay"}), 0)

    def test_wrong_key_gets_nothing(self):
        method = "2022-blake3-aes-128-gcm"
        echo = self.add_peer(h.EchoServer())
        server_port = self.start_2022_server(method, psk_of(method, seed=9))
        wire, _, _ = request(method, psk_of(method, seed=10), h.LOOPBACK, echo.port, b"x")
        self.probe(server_port, wire, "a request under another PSK")
        self.assertEqual(echo.accepted, 0)

    # Configuration.

    def test_bad_psk_exits_2(self):
        method = "2022-blake3-aes-256-gcm"
        for extra, field in ((["-k", b64(bytes(16))], "password"),
                             (["-k", "not base64!"], "password"),
                             (["-u", "-k", "AAEC"], "password")):
            argv = [h.Config.relay, "server", "-s", h.LOOPBACK, "-p", "0", "-m", method] + extra
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            self.assertEqual(done.returncode, 2, f"{extra}: {done.stderr}")
            self.assertIn(f"config: {field}:", done.stderr)
        done = subprocess.run([h.Config.relay, "server", "-p", "0", "-m", method,
                               "-k", b64(bytes(16))], capture_output=True, text=True, timeout=30)
        self.assertIn("needs 32", done.stderr)

    def test_a_generated_psk_is_kept_beside_an_earlier_password(self):
        """Without a key and with a state directory the server generates the method's PSK, keeps
        it and prints its URI (`./dev run -m 2022-...`). A directory that already holds the 2017
        default's password (a plain `./dev run` before) keeps both, each for its method."""
        state = h.scratch_path("state")
        method = "2022-blake3-aes-128-gcm"

        def serve(m):
            argv = h.server_argv("ours", 0, m, extra=["--state-dir", state])
            at = argv.index("-k")
            del argv[at:at + 2]
            return self.start_ours(f"ours-server-generated-{m}", argv)

        h.stopped_log(self, serve("chacha20-ietf-poly1305"))
        with open(os.path.join(state, "password")) as f:
            earlier = f.read()
        server = serve(method)
        psk_file = os.path.join(state, f"password-{method}")
        with open(psk_file) as f:
            psk = f.read().strip()
        self.assertEqual(len(base64.b64decode(psk, validate=True)), 16, "a PSK of the key size")
        self.assertEqual(os.stat(psk_file).st_mode & 0o077, 0, "readable by others")
        echo = self.add_peer(h.EchoServer())
        tunnel = self.start_tunnel(server.ready.port, method, f"{h.LOOPBACK}:{echo.port}",
                                   password=psk)
        with socket.create_connection((h.LOOPBACK, tunnel), timeout=10) as sock:
            h.echo_roundtrip(sock, os.urandom(4096), "through the generated PSK")
        log = h.stopped_log(self, server)
        self.assertIn(f"generated the password in {state}/password-{method}", log)
        self.assertRegex(log, r"(?m)^ss://%s:%s@127\.0\.0\.1:%d#shadowrelay$"
                         % (method, re.escape(urllib.parse.quote(psk, safe="")),
                            server.ready.port))
        with open(os.path.join(state, "password")) as f:
            self.assertEqual(f.read(), earlier, "the 2017 password was replaced")
        again = h.stopped_log(self, serve(method))
        self.assertIn(f"using the password in {state}/password-{method}", again)
        with open(psk_file) as f:
            self.assertEqual(f.read().strip(), psk, "a restart changed the PSK")


if __name__ == "__main__":
    h.main()
