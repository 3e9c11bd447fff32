# SPDX-License-Identifier: Apache-2.0
"""Faults around the server (issue 15 §9), each bounded in time: a name server that is silent,
answers SERVFAIL, refuses (a real dnsmasq without an upstream) or is slow (dnsmasq behind a
delaying forwarder); a target that resets mid-transfer; SIGTERM with 1000 sessions open. The
affected sessions end with the right status, and nothing else stalls: the server runs one
worker, so a lookup or a reset that blocked it would delay the literal-address sessions timed
meanwhile.

The SERVFAIL server and the delaying forwarder are small Python fault injectors: no packaged DNS
server here answers SERVFAIL on demand (dnsmasq refuses names it has no upstream for, and stays
silent when its upstream is down; both are tested with dnsmasq itself)."""

import selectors
import socket
import struct
import threading
import time

import e2e_harness as h
import metrics_e2e_test as m

METHOD = "aes-128-gcm"
FAST = 1.0  # seconds: a literal-address round trip while a fault is in progress takes less
CLOSED = "shadowrelay_tcp_connections_closed_total"


class ServfailDns:
    """Answers every query with its own header as a response, rcode 2 (SERVFAIL), no records."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.address = f"{h.LOOPBACK}:{self.sock.getsockname()[1]}"
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            self.queries += 1
            qid, flags = struct.unpack(">HH", data[:4])
            reply_flags = 0x8000 | (flags & 0x0100) | 0x0080 | 2  # QR, RD copied, RA, SERVFAIL
            self.sock.sendto(struct.pack(">HH", qid, reply_flags) + data[4:], peer)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class DelayingDns:
    """Forwards each query to `upstream` (host:port) and its answer back `delay` s later."""

    def __init__(self, upstream, delay):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((h.LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.address = f"{h.LOOPBACK}:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _answer(self, query, peer):
        time.sleep(self.delay)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(5)
            up.sendto(query, self.upstream)
            try:
                self.sock.sendto(up.recv(4096), peer)
            except OSError:
                pass

    def _run(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(data, peer), daemon=True).start()

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class ResetAfterServer(h._ThreadedServer):
    """Sends `size` bytes to each connection, then closes it with an RST (SO_LINGER 0)."""

    def __init__(self, size):
        self.size = size
        super().__init__("reset-after")

    def serve(self, conn):
        conn.sendall(bytes(self.size))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class FaultsTest(h.RelayTestCase):
    def start_chain(self, extra=()):
        self.require_ours("our server's metrics and drain")
        self.echo = self.add_peer(h.EchoServer())
        server = self.start_server(METHOD, extra=["--workers", "1", "--metrics-listen",
                                                  f"{h.LOOPBACK}:0"] + list(extra))
        self.server = self.last_child
        self.metrics_port = self.server.ready.metrics[1]
        return self.start_local(server, METHOD)

    def closes(self, status):
        return m.value(m.scrape(self.metrics_port), CLOSED, status=status)

    def assert_literal_sessions_fast(self, local, count=20):
        """`count` sessions to the echo server by IP literal, each a round trip under FAST."""
        slowest = 0.0
        for i in range(count):
            start = time.monotonic()
            with h.socks5_connect(local, h.LOOPBACK, self.echo.port) as sock:
                payload = f"ping {i}".encode()
                sock.sendall(payload)
                self.assertEqual(h.recv_exact(sock, len(payload), "echo"), payload)
            slowest = max(slowest, time.monotonic() - start)
        self.assertLess(slowest, FAST, f"a literal-address session took {slowest:.2f} s while "
                                       "a fault was in progress: the worker stalled")
        return slowest

    def open_named(self, local, names):
        """Sessions to `names` (the echo port) whose requests are sent; the sockets."""
        socks = []
        for name in names:
            sock = h.socks5_connect(local, name, self.echo.port)
            self.addCleanup(sock.close)
            sock.sendall(b"hello")
            socks.append(sock)
        return socks

    def assert_closed_without_a_byte(self, socks, within, what):
        deadline = time.monotonic() + within
        for sock in socks:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                got, _ = m.read_until_closed(sock)
            except socket.timeout:
                self.fail(f"{what}: not closed within {within} s")
            self.assertEqual(got, b"", f"{what}: bytes came back")

    def wait_closes(self, status, expected, before):
        h.wait_until(lambda: self.closes(status) - before >= expected, 10,
                     f"{expected} closes with status {status}")

    # DNS

    def test_silent_name_server_stalls_nothing_else(self):
        silent = m.SilentDns()
        self.addCleanup(silent.stop)
        local = self.start_chain(["-d", silent.address, "--connect-timeout", "8"])
        before = self.closes("dns_failed") + self.closes("timeout_connect")
        pending = self.open_named(local, [f"silent-{i}.test" for i in range(5)])
        took = self.assert_literal_sessions_fast(local)
        print(f"  silent DNS: slowest literal session {took:.3f} s", flush=True)
        self.assert_closed_without_a_byte(pending, 20, "sessions to names nobody answers")
        h.wait_until(lambda: self.closes("dns_failed") + self.closes("timeout_connect") - before
                     >= 5, 10, "5 sessions closed as dns_failed or timeout_connect")
        self.assertGreaterEqual(silent.queries, 5)

    def test_servfail_ends_sessions_at_once_as_dns_failed(self):
        servfail = ServfailDns()
        self.addCleanup(servfail.stop)
        local = self.start_chain(["-d", servfail.address])
        before = self.closes("dns_failed")
        start = time.monotonic()
        pending = self.open_named(local, [f"fail-{i}.test" for i in range(5)])
        self.assert_closed_without_a_byte(pending, 5, "sessions to names answered SERVFAIL")
        self.assertLess(time.monotonic() - start, 3.0, "SERVFAIL was not taken as final")
        self.wait_closes("dns_failed", 5, before)
        self.assert_literal_sessions_fast(local)
        self.assertGreaterEqual(servfail.queries, 5)

    def test_refused_by_dnsmasq_ends_sessions_as_dns_failed(self):
        dns = m.Dnsmasq(self)  # no upstream: names outside .test are REFUSED
        local = self.start_chain(["-d", dns.address])
        before = self.closes("dns_failed")
        pending = self.open_named(local, [f"host-{i}.example" for i in range(3)])
        self.assert_closed_without_a_byte(pending, 5, "sessions to names dnsmasq refuses")
        self.wait_closes("dns_failed", 3, before)
        self.assert_literal_sessions_fast(local)

    def test_slow_name_server_delays_only_its_sessions(self):
        dns = m.Dnsmasq(self, ["--host-record=slow.test,127.0.0.1"])
        slow = DelayingDns(dns.address, delay=2.0)
        self.addCleanup(slow.stop)
        local = self.start_chain(["-d", slow.address])
        start = time.monotonic()
        sock = h.socks5_connect(local, "slow.test", self.echo.port)
        self.addCleanup(sock.close)
        sock.sendall(b"late")
        self.assert_literal_sessions_fast(local)
        sock.settimeout(15)
        self.assertEqual(h.recv_exact(sock, 4, "echo through a slow lookup"), b"late")
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 2.0, "the answer came before the name server's delay")
        print(f"  slow DNS (2 s): the session's echo after {took:.2f} s", flush=True)

    # Targets and shutdown

    def test_target_reset_mid_transfer(self):
        local = self.start_chain()
        target = self.add_peer(ResetAfterServer(256 * 1024))
        before = self.closes("error") + self.closes("ok")
        with h.socks5_connect(local, h.LOOPBACK, target.port) as sock:
            sock.settimeout(10)
            got = 0
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    got += len(data)
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail(f"the relay kept the session open after the target's reset ({got} B)")
        self.assertLessEqual(got, 256 * 1024)
        h.wait_until(lambda: self.closes("error") + self.closes("ok") - before >= 1, 10,
                     "the reset session closed as ok or error")
        # Connected, then reset: not a failed connect, whenever the reset reached the server.
        self.assertEqual(self.closes("target_refused"), 0)
        print(f"  target reset after 256 KiB: {got} bytes reached the client", flush=True)
        self.assertIsNone(self.server.poll(), "the server exited")
        self.assert_literal_sessions_fast(local, count=5)

    def test_sigterm_with_1000_sessions_drains_and_exits_cleanly(self):
        local = self.start_chain(["--drain-timeout", "3"])
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(1000):
            socks.append(h.socks5_connect(local, h.LOOPBACK, self.echo.port))
        h.wait_until(lambda: self.echo.open == 1000, 10, "1000 sessions open at the target")
        self.server.signal(15)
        # Draining: sessions already relayed keep working.
        for i, sock in enumerate(socks[:10]):
            payload = f"during drain {i}".encode()
            sock.sendall(payload)
            self.assertEqual(h.recv_exact(sock, len(payload), "echo during the drain"), payload)
        code = self.server.wait(3 + 10)
        self.server.stopped_by_test = True
        self.assertEqual(code, 0, f"server exit after SIGTERM: {self.server.log_tail()}")
        # Every client connection ends (the local closes its side when the server's goes).
        sel = selectors.DefaultSelector()
        for sock in socks:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        open_ = len(socks)
        deadline = time.monotonic() + 15
        while open_ and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    open_ -= 1
        sel.close()
        self.assertEqual(open_, 0, f"{open_} client connections still open after the drain")


if __name__ == "__main__":
    h.main(min_fds=4096)
