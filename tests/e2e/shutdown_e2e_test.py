# SPDX-License-Identifier: Apache-2.0
"""Graceful stop: SIGTERM makes our processes exit 0 within the drain timeout plus a margin,
also while connections are open (idle in the handshake, or relayed and idle); meanwhile the
server stops accepting and an active session runs to its end (README: "stop accepting and let
sessions finish for --drain-timeout seconds")."""

import signal
import socket
import time

import e2e_harness as h

METHOD = "aes-256-gcm"
DRAIN_TIMEOUT = 3  # --drain-timeout given to the server
MARGIN = 7.0  # seconds on top of the drain timeout (sanitizer builds check leaks at exit)


class GracefulStopTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("SIGTERM/exit-code contract and --drain-timeout are ours")

    def assert_stops(self, child, what, limit):
        child.stopped_by_test = True
        sent_at = time.monotonic()
        child.signal(signal.SIGTERM)
        code = child.wait(limit)
        elapsed = time.monotonic() - sent_at
        if code is None:
            child.kill()
            self.fail(f"{what}: {child.describe()} still running {limit:.0f} s after SIGTERM; "
                      f"its output:\n{child.log_tail()}")
        self.assertEqual(code, 0, f"{what}: exit code {code} after SIGTERM ({elapsed:.1f} s); "
                                  f"its output:\n{child.log_tail()}")
        return elapsed

    def test_server_with_idle_unauthenticated_connection(self):
        port = self.start_server(METHOD, drain_timeout=DRAIN_TIMEOUT)
        server = self.last_child
        with socket.create_connection((h.LOOPBACK, port), timeout=10.0):
            self.assert_stops(server, "server with an idle connection", DRAIN_TIMEOUT + MARGIN)

    def test_server_with_idle_relayed_session(self):
        target = self.add_peer(h.EofThenHashServer())
        server_port = self.start_server(METHOD, drain_timeout=DRAIN_TIMEOUT)
        server = self.last_child
        local_port = self.start_local(server_port, METHOD)
        with h.socks5_connect(local_port, h.LOOPBACK, target.port) as sock:
            sock.sendall(b"hello")  # the session reaches the target, then stays idle
            h.wait_until(lambda: target.conns, 10, "the relayed session to reach the target")
            self.assert_stops(server, "server with an idle relayed session",
                              DRAIN_TIMEOUT + MARGIN)

    def test_active_session_finishes_during_drain(self):
        target = self.add_peer(h.DribbleServer(count=20, size=32 << 10, interval=0.1))
        server_port = self.start_server(METHOD, drain_timeout=10)
        server = self.last_child
        local_port = self.start_local(server_port, METHOD)
        with h.socks5_connect(local_port, h.LOOPBACK, target.port) as sock:
            sock.sendall(b"go")
            first = h.recv_exact(sock, 1, "first byte from the target")
            server.stopped_by_test = True
            server.signal(signal.SIGTERM)
            sock.settimeout(20.0)
            rest = h.recv_until_eof(sock, "the rest of the stream after SIGTERM")
        received = first + rest
        h.wait_until(lambda: target.sent, 10, "the target to finish sending")
        self.assertEqual((len(received), h.sha256(received)),
                         (20 * (32 << 10), target.sent[0]),
                         "the session did not run to its end after SIGTERM")
        # The listener is gone while draining or after exit: new connections are refused.
        def refused():
            try:
                socket.create_connection((h.LOOPBACK, server_port), timeout=1.0).close()
                return False
            except ConnectionRefusedError:
                return True
        h.wait_until(refused, 5, f"the server to stop accepting on {server_port} after SIGTERM")
        code = server.wait(10 + MARGIN)
        self.assertEqual(code, 0, f"server exit code after SIGTERM: {code}; its output:\n"
                                  f"{server.log_tail()}")

    def test_local_with_idle_relayed_session(self):
        target = self.add_peer(h.EofThenHashServer())
        server_port = self.start_server(METHOD)
        local_port = self.start_local(server_port, METHOD)
        local = self.last_child
        with h.socks5_connect(local_port, h.LOOPBACK, target.port) as sock:
            sock.sendall(b"hello")
            h.wait_until(lambda: target.conns, 10, "the relayed session to reach the target")
            # The local has the default drain timeout (10 s).
            self.assert_stops(local, "local with an idle relayed session", 10 + MARGIN)

    def test_idle_tunnel(self):
        web = h.nginx()
        server_port = self.start_server(METHOD)
        self.start_tunnel(server_port, METHOD, f"{h.LOOPBACK}:{web.port}")
        self.assert_stops(self.last_child, "idle tunnel", MARGIN)


if __name__ == "__main__":
    h.main()
