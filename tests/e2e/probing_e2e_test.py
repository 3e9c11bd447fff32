# SPDX-License-Identifier: Apache-2.0
"""Active-probing resistance of our server (PROTOCOL.md §5): a client with the wrong password,
random bytes and a replayed client stream all get no byte back, and the connection is closed
with a FIN only at the handshake deadline (--handshake-timeout 2)."""

import os
import socket
import time

import e2e_harness as h

HANDSHAKE_TIMEOUT = 2
# The server closes a failed handshake at the deadline measured from accept: not before
# CLOSE_AFTER, and by CLOSE_BEFORE (slack for slow sanitizer builds).
CLOSE_AFTER = 1.8
CLOSE_BEFORE = 5.0


class ProbingTest(h.RelayTestCase):
    def start_probed_server(self, method):
        return self.start_server(method, handshake_timeout=HANDSHAKE_TIMEOUT)

    def assert_rejected_silently(self, sock, connected_at, what):
        if h.Config.libev_mode():
            # libev keeps a failed handshake open for 24 h: check only that it stays silent.
            h.assert_silent_for(self, sock, 3.0, what)
        else:
            h.assert_silent_then_fin(self, sock, connected_at, CLOSE_AFTER, CLOSE_BEFORE, what)

    def probe(self, server_port, payload, what):
        sock = socket.create_connection((h.LOOPBACK, server_port), timeout=10.0)
        connected_at = time.monotonic()
        with sock:
            try:
                sock.sendall(payload)
            except socket.timeout:
                self.fail(f"{what}: the server stopped reading our bytes (it must drain them)")
            self.assert_rejected_silently(sock, connected_at, what)

    # Wrong password, through a real client.

    def wrong_password_client(self, client_impl):
        web = h.nginx()
        method = "aes-256-gcm"
        server_port = self.start_probed_server(method)
        local_port = self.start_local(server_port, method, impl=client_impl,
                                      password=h.WRONG_PASSWORD)
        before = web.requests_logged()
        # libev never closes the failed handshake, so bound curl; ours closes at 2 s.
        result = h.curl(web.url(h.Nginx.SMALL), socks5_port=local_port, max_time=8)
        self.assertEqual(len(result.body), 0,
                         f"bytes came back through a wrong password: {result}")
        self.assertNotEqual(result.code, 0, f"curl succeeded with a wrong password: {result}")
        self.assertEqual(web.requests_logged(), before,
                         "a request reached nginx through a client with the wrong password")

    def test_wrong_password_sslocal_gets_nothing(self):
        self.wrong_password_client("libev")

    def test_wrong_password_ours_local_gets_nothing(self):
        self.wrong_password_client("ours")

    # Raw probes.

    def test_random_200_bytes_aes_128_gcm(self):
        port = self.start_probed_server("aes-128-gcm")
        self.probe(port, os.urandom(200), "server probed with 200 random bytes")

    def test_random_200_bytes_chacha20(self):
        port = self.start_probed_server("chacha20-ietf-poly1305")
        self.probe(port, os.urandom(200), "server probed with 200 random bytes")

    def test_large_junk_is_drained(self):
        # After the failure the server keeps reading and discarding: closing with unread data
        # would send an RST instead of the FIN.
        port = self.start_probed_server("aes-256-gcm")
        self.probe(port, os.urandom(1 << 20), "server probed with 1 MiB of random bytes")

    def test_short_probe_less_than_a_salt(self):
        port = self.start_probed_server("aes-256-gcm")
        self.probe(port, os.urandom(10), "server probed with 10 random bytes")

    def test_silent_connection(self):
        port = self.start_probed_server("aes-256-gcm")
        self.probe(port, b"", "server with a connection that sends nothing")

    # Replay: record what a real client sent for one request, send it again.

    def replay(self, client_impl, method):
        web = h.nginx()
        server_port = self.start_probed_server(method)
        proxy = self.add_peer(h.RecordingProxy(server_port))
        local_port = self.start_local(proxy.port, method, impl=client_impl)
        result = h.curl(web.url(h.Nginx.SMALL), socks5_port=local_port)
        self.assertEqual(result.code, 0, f"the original request failed: {result}")
        self.assertEqual(h.sha256(result.body), web.files[h.Nginx.SMALL][1],
                         f"the original request got a wrong body: {result}")
        # Connection 0 of the proxy is the request (readiness probes go to the local, not here).
        recorded = proxy.recorded(0)
        self.assertGreater(len(recorded), 50, f"recorded only {len(recorded)} client bytes")
        before = web.requests_logged()
        self.probe(server_port, recorded, f"server given a replay of {len(recorded)} bytes")
        self.assertEqual(web.requests_logged(), before, "the replayed request reached nginx")

    def test_replay_of_sslocal_stream(self):
        self.replay("libev", "aes-128-gcm")

    def test_replay_of_ours_local_stream(self):
        self.replay("ours", "chacha20-ietf-poly1305")


if __name__ == "__main__":
    h.main()
