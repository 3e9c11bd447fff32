# SPDX-License-Identifier: Apache-2.0
"""The AEAD-2017 replay filter survives a restart (issue 15 §2): what a real client
(shadowsocks-libev's ss-local / ss-tunnel -u) sent to our server is recorded on the way, the
server is stopped and started again on the same --state-dir, and the recording is replayed:
nothing reaches the target and nothing comes back. The control: the same bytes given to a server
with a fresh state dir are relayed, so the test fails when the filter is not carried over."""

import socket
import threading
import time

import e2e_harness as h

HANDSHAKE_TIMEOUT = 2
CLOSE_AFTER = 1.8
CLOSE_BEFORE = 5.0
METHOD = "aes-128-gcm"


class UdpRecordingProxy:
    """Forwards datagrams from one client to 127.0.0.1:upstream_port and the replies back,
    recording what the client sent. On a thread, until stopped."""

    def __init__(self, upstream_port):
        self.upstream = (h.LOOPBACK, upstream_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.bind((h.LOOPBACK, 0))
        self.up.settimeout(0.2)
        self.sent = []
        self.client = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._forward, daemon=True),
                         threading.Thread(target=self._back, daemon=True)]
        for t in self._threads:
            t.start()

    def _forward(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.client = peer
            self.sent.append(data)
            self.up.sendto(data, self.upstream)

    def _back(self):
        while not self._stop.is_set():
            try:
                data, _ = self.up.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if self.client:
                self.sock.sendto(data, self.client)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.sock.close()
        self.up.close()


class ReplayRestartTest(h.RelayTestCase):
    def start_stateful(self, state_dir, udp=False):
        extra = ["--state-dir", state_dir]
        if udp:
            extra.append("-u")
        self.start_server(METHOD, handshake_timeout=HANDSHAKE_TIMEOUT, extra=extra)
        server = self.last_child
        # With -u the UDP port may differ from the TCP one (port 0 picks each).
        return (server.ready.udp if udp else server.ready.tcp)[0][1], server

    def restart(self, server, state_dir, udp=False):
        code, killed = server.stop()
        server.stopped_by_test = True
        self.assertEqual((code, killed), (0, False), f"server stop: {server.log_tail()}")
        return self.start_stateful(state_dir, udp)

    def test_tcp_replay_after_restart_gets_nothing(self):
        self.require_ours("the replay filter kept in --state-dir")
        web = h.nginx()
        state = h.scratch_path("state-tcp")
        port, server = self.start_stateful(state)
        proxy = self.add_peer(h.RecordingProxy(port))
        local_port = self.start_local(proxy.port, METHOD, impl="libev")
        result = h.curl(web.url(h.Nginx.SMALL), socks5_port=local_port)
        self.assertEqual(result.code, 0, f"the original request failed: {result}")
        recorded = bytes(proxy.recorded(0))
        self.assertGreater(len(recorded), 50, f"recorded only {len(recorded)} client bytes")

        port, _ = self.restart(server, state)
        before = web.requests_logged()
        sock = socket.create_connection((h.LOOPBACK, port), timeout=10.0)
        connected_at = time.monotonic()
        with sock:
            sock.sendall(recorded)
            h.assert_silent_then_fin(self, sock, connected_at, CLOSE_AFTER, CLOSE_BEFORE,
                                     "restarted server given a replay")
        self.assertEqual(web.requests_logged(), before, "the replay reached nginx after a restart")

        # Control: a server without the saved filter relays the very same bytes.
        fresh, _ = self.start_stateful(h.scratch_path("state-tcp-fresh"))
        with socket.create_connection((h.LOOPBACK, fresh), timeout=10.0) as sock:
            sock.sendall(recorded)
            h.wait_until(lambda: web.requests_logged() > before, 10,
                         "the recorded request relayed by a server with a fresh state dir")

    def test_udp_replay_after_restart_gets_nothing(self):
        self.require_ours("the replay filter kept in --state-dir")
        echo = h.UdpEcho()
        self.addCleanup(echo.stop)
        state = h.scratch_path("state-udp")
        port, server = self.start_stateful(state, udp=True)
        proxy = UdpRecordingProxy(port)
        self.addCleanup(proxy.stop)
        client = self.start_ss_tunnel_u(proxy.port, METHOD, h.PASSWORD, echo.port, "replay")
        # ss-tunnel may bind its UDP port after its TCP one (what start_ss_tunnel_u waits for):
        # until it does, a datagram is refused or lost. Send until one comes back (bounded).
        client.settimeout(0.5)
        for _ in range(40):
            try:
                client.send(b"first datagram")
                if client.recv(65535) == b"first datagram":
                    break
            except (ConnectionRefusedError, socket.timeout):
                time.sleep(0.1)
        else:
            self.fail("no echo through ss-tunnel -u within 40 tries")
        h.wait_until(lambda: echo.received == len(proxy.sent), 5,
                     "every recorded datagram at the echo server")
        recorded = list(proxy.sent)
        received = echo.received

        port, _ = self.restart(server, state, udp=True)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(probe.close)
        probe.settimeout(2)
        for datagram in recorded:
            probe.sendto(datagram, (h.LOOPBACK, port))
        with self.assertRaises(socket.timeout, msg="a reply to a replayed datagram"):
            probe.recv(65535)
        self.assertEqual(echo.received, received, "a replayed datagram reached the target")

        fresh, _ = self.start_stateful(h.scratch_path("state-udp-fresh"), udp=True)
        probe.sendto(recorded[-1], (h.LOOPBACK, fresh))
        self.assertGreater(len(probe.recv(65535)), 0)
        self.assertEqual(echo.received, received + 1)


if __name__ == "__main__":
    h.main()
