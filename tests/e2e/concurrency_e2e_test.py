# SPDX-License-Identifier: Apache-2.0
"""1000 and 10,000 concurrent connections through our local -> our server to a Python echo
server (in a child process): all are open end to end at the same time, each echoes its own
payload, none fails."""

import multiprocessing
import resource

import os
import selectors
import socket
import time

import e2e_harness as h

BATCH = 100  # connections opened (and their SOCKS5 handshakes completed) per step
PAYLOAD = 4096  # bytes each connection sends and expects back
METHOD = "aes-128-gcm"


class Conn:
    def __init__(self, index, sock):
        self.index = index
        self.sock = sock
        self.out = bytearray()
        self.inbuf = bytearray()
        self.need = None  # function(inbuf) -> bytes needed, or None when the step is done
        self.error = None


def socks5_reply_length(buf):
    if len(buf) < 5:
        return 5
    atyp = buf[3]
    return {1: 10, 4: 22}.get(atyp, 7 + buf[4] if atyp == 3 else 10)


def pump(conns, deadline, what):
    """Runs one step on all `conns`: send .out, read until len(inbuf) >= need(inbuf)."""
    sel = selectors.DefaultSelector()
    active = 0
    try:
        for c in conns:
            sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            active += 1
        while active:
            if time.monotonic() > deadline:
                waiting = [c.index for c in conns if c.need is not None][:10]
                raise AssertionError(f"{what}: {active} connections still waiting at the "
                                     f"deadline (e.g. #{waiting})")
            for key, mask in sel.select(timeout=0.5):
                c = key.data
                try:
                    if mask & selectors.EVENT_WRITE and c.out:
                        n = c.sock.send(c.out)
                        del c.out[:n]
                    if mask & selectors.EVENT_READ:
                        data = c.sock.recv(65536)
                        if not data:
                            raise ConnectionError(
                                f"closed by the relay after {len(c.inbuf)} bytes of this step")
                        c.inbuf += data
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise AssertionError(f"{what}: connection #{c.index}: {e}") from e
                if not c.out and len(c.inbuf) >= c.need(c.inbuf):
                    sel.unregister(c.sock)
                    c.need = None
                    active -= 1
                else:
                    sel.modify(c.sock, selectors.EVENT_READ |
                               (selectors.EVENT_WRITE if c.out else 0), c)
    finally:
        sel.close()


def ensure_fds(want):
    """Soft RLIMIT_NOFILE of this process (inherited by the relays) at least `want`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        raise AssertionError(f"{want} descriptors needed per process, the hard limit is {hard}")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class EchoProcess:
    """h.EchoServer in a child process, so that its descriptors do not count against this
    one's limit. counts() asks it for (accepted, open, errors)."""

    def __init__(self):
        ctx = multiprocessing.get_context("fork")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=EchoProcess._serve, args=(child,), daemon=True)
        self.process.start()
        if not self.pipe.poll(10):
            raise AssertionError("the echo process did not start")
        self.port = self.pipe.recv()

    @staticmethod
    def _serve(pipe):
        echo = h.EchoServer(backlog=4096)
        pipe.send(echo.port)
        while True:
            if not pipe.poll(600):
                break
            if pipe.recv() != "counts":
                break
            pipe.send((echo.accepted, echo.open, list(echo.errors)))
        echo.stop()

    def counts(self):
        self.pipe.send("counts")
        if not self.pipe.poll(10):
            raise AssertionError("the echo process did not answer")
        return self.pipe.recv()

    def stop(self):
        try:
            self.pipe.send("stop")
        except OSError:
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


class ConcurrencyTest(h.RelayTestCase):
    def test_1000_concurrent_connections(self):
        self.concurrent(1000, chains=1, deadline_s=90.0)

    def test_10000_concurrent_connections(self):
        # Each relay process holds two descriptors per session; the hard RLIMIT_NOFILE here is
        # 20,000 and cannot be raised (no CAP_SYS_RESOURCE), so 10,000 sessions go through two
        # local -> server chains of 5,000 each, all open at once.
        self.concurrent(10000, chains=2, deadline_s=300.0)

    def concurrent(self, connections, chains, deadline_s):
        ensure_fds(2 * connections // chains + 1024)
        ensure_fds(connections + 1024)  # this process: the client sockets
        echo = EchoProcess()
        self.addCleanup(echo.stop)
        local_ports = []
        for _ in range(chains):
            server_port = self.start_server(METHOD)
            local_ports.append(self.start_local(server_port, METHOD))
        deadline = time.monotonic() + deadline_s
        request = b"\x05\x01\x00" + h.socks5_address(h.LOOPBACK, echo.port)
        conns = []
        self.addCleanup(lambda: [c.sock.close() for c in conns])

        # Open in batches; each batch completes greeting + CONNECT before the next one starts,
        # so every connection is a live session in the relay while the others are opened.
        for start in range(0, connections, BATCH):
            batch = []
            for i in range(start, min(start + BATCH, connections)):
                port = local_ports[i % chains]
                sock = socket.create_connection((h.LOOPBACK, port), timeout=10.0)
                sock.setblocking(False)
                c = Conn(i, sock)
                c.out += b"\x05\x01\x00"
                c.need = lambda buf: 2
                batch.append(c)
                conns.append(c)
            what = f"connections {start}..{start + len(batch) - 1}"
            pump(batch, deadline, f"SOCKS5 method selection, {what}")
            for c in batch:
                self.assertEqual(bytes(c.inbuf), b"\x05\x00", f"#{c.index}: method selection")
                c.inbuf.clear()
                c.out += request
                c.need = socks5_reply_length
            pump(batch, deadline, f"SOCKS5 CONNECT, {what}")
            for c in batch:
                self.assertEqual(bytes(c.inbuf[:3]), b"\x05\x00\x00",
                                 f"#{c.index}: CONNECT reply {c.inbuf.hex()}")
                c.inbuf.clear()

        # All sessions are open; now each sends its payload and reads the echo.
        payloads = {}
        for c in conns:
            payloads[c.index] = os.urandom(PAYLOAD)
            c.out += payloads[c.index]
            c.need = lambda buf: PAYLOAD
        pump(conns, deadline, f"echo of {PAYLOAD} bytes on {connections} connections")
        bad = [c.index for c in conns if bytes(c.inbuf) != payloads[c.index]]
        self.assertEqual(bad, [], f"{len(bad)} connections got a wrong echo")
        accepted, still_open, errors = echo.counts()
        self.assertEqual(accepted, connections, "the echo server saw a different number of "
                                                "connections")
        self.assertEqual(still_open, connections, "not all connections were open at once at the "
                                                  "echo server")
        self.assertEqual(errors, [], "echo server errors")


if __name__ == "__main__":
    h.main(min_fds=4096)
