#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Memory held for datagrams is bounded in bytes per worker (issue 15 §5).

500 UDP-over-TCP streams (the spec-written client of uot_e2e_test.py) each send 8 datagrams of
60 000 bytes to names that a silent name server (metrics_e2e_test.SilentDns) never answers.
Every datagram would wait on DNS in the server: 500 x 8 x 60 000 bytes = 229 MiB, which the
per-stream count bound (64 waiting datagrams) alone allows. The worker's --udp-queue-bytes
bound (here 8 MiB; two workers) drops the rest (counted as dropped reason memory), and the
server's RSS stays under the budget README.md documents for this case:

    RSS growth <= workers x --udp-queue-bytes + streams x PER_STREAM

PER_STREAM (README, "Memory budgets") is a stream's fixed share: the TCP session's buffers and
the UoT channel's partial frame: about 64 KiB measured here (47 MiB of growth in all, of
which the two queues' 16 MiB), 128 KiB allowed.
"""
import os
import socket
import struct
import time

import e2e_harness as h
import metrics_e2e_test as m
from uot_e2e_test import METHOD, UotClient

STREAMS = 500
DATAGRAMS = 8
SIZE = 60000
WORKERS = 2
QUEUE_BYTES = 8 << 20
PER_STREAM = 128 << 10
SETTLE_S = 3.0


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def name_frame(name, port, payload):
    """A non-connect UoT v2 frame to a name: type 02, length, name, port, length, payload."""
    return (b"\x02" + bytes([len(name)]) + name + struct.pack(">H", port) +
            struct.pack(">H", len(payload)) + payload)


class UotMemoryTest(h.RelayTestCase):
    def test_datagrams_waiting_on_a_silent_name_server_stay_within_the_byte_budget(self):
        # ASan builds keep freed memory in a quarantine (256 MiB by default): RSS would measure
        # the sanitizer, not the relay. Harmless for other builds.
        os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [
            os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=1",
            "thread_local_quarantine_size_kb=64"]))
        silent = m.SilentDns()
        self.addCleanup(silent.stop)
        port = self.start_server(METHOD, extra=[
            "-d", silent.address, "--workers", str(WORKERS),
            "--udp-queue-bytes", str(QUEUE_BYTES)])
        server = self.last_child
        base = rss_bytes(server.pid)
        payload = os.urandom(SIZE)
        peak = base
        clients = []
        try:
            for i in range(STREAMS):
                client = UotClient(port, 2, destination=(h.LOOPBACK, 9))
                clients.append(client)
                name = f"silent-{i}.test".encode()
                for _ in range(DATAGRAMS):
                    client.send_raw(name_frame(name, 53, payload))
                if i % 50 == 49:
                    peak = max(peak, rss_bytes(server.pid))
            deadline = time.monotonic() + SETTLE_S
            while time.monotonic() < deadline:
                peak = max(peak, rss_bytes(server.pid))
                time.sleep(0.1)
            # The streams are all alive: the server read them and holds what the budget lets.
            for client in clients[-5:]:
                client.sock.settimeout(0.01)
                try:
                    self.assertNotEqual(client.sock.recv(1, socket.MSG_PEEK), b"",
                                        "a stream was closed")
                except socket.timeout:
                    pass
        finally:
            for client in clients:
                client.close()
        budget = WORKERS * QUEUE_BYTES + STREAMS * PER_STREAM
        growth = peak - base
        print(f"  RSS {base >> 20} MiB at start, peak {peak >> 20} MiB: growth "
              f"{growth / (1 << 20):.1f} MiB for {STREAMS} streams, budget "
              f"{budget / (1 << 20):.1f} MiB; {silent.queries} queries reached the silent "
              f"server", file=__import__("sys").stderr)
        stats = h.stopped_udp_summary(self, server)
        print(f"  udp: {stats}", file=__import__("sys").stderr)
        self.assertGreater(stats.get("memory", 0), 0, stats)
        self.assertLessEqual(growth, budget, stats)


if __name__ == "__main__":
    h.main(min_fds=4096)
