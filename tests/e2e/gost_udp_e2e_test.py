#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""gost-style UDP over TCP on our local's SOCKS5 side (docs/UDP_OVER_TCP.md, "gost-style").

The client is written here from the description: SOCKS5 greeting, UDP ASSOCIATE (or gost's
extended command 0xF3), then datagrams framed on the same TCP connection, each a SOCKS5 UDP
request header whose RSV field holds the data length (big-endian), then the data; the replies
come back framed alike. Targets on loopback: a UDP echo and dnsmasq (a real DNS query and
answer). Servers: our server -u, shadowsocks-libev's ss-server -u, and our server without -u
behind `local --udp-over-tcp`."""
import os
import socket
import struct
import time

import e2e_harness as h
import metrics_e2e_test as m
from e2e_harness import UdpEcho, stopped_udp_summary

METHOD = "chacha20-ietf-poly1305"
DNS_NAME = "gost-frames.test"
DNS_ADDRESS = "10.20.30.40"


def frame(port, payload, host=h.LOOPBACK, frag=0):
    """One gost frame: LEN(2, big-endian: the data only) FRAG ATYP(1) ADDR PORT DATA."""
    return struct.pack(">H", len(payload)) + bytes([frag]) + b"\x01" + \
        socket.inet_aton(host) + struct.pack(">H", port) + payload


class GostClient:
    """One SOCKS5 control connection carrying framed datagrams."""

    def __init__(self, local_port, command=0x03, rcvbuf=None):
        if rcvbuf is None:
            self.sock = h.socks5_open(local_port, timeout=10)
        else:  # a small receive window, set before connecting: a slow reader
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(10)
            self.sock.connect((h.LOOPBACK, local_port))
            self.sock.sendall(b"\x05\x01\x00")
            if h.recv_exact(self.sock, 2, "SOCKS5 method") != b"\x05\x00":
                raise AssertionError("SOCKS5 greeting refused")
        self.sock.sendall(b"\x05" + bytes([command]) + b"\x00\x01" + bytes(6))
        rep, raw = h.read_socks5_reply(self.sock, "UDP ASSOCIATE reply")
        if rep != 0:
            raise AssertionError(f"command 0x{command:02x} refused with 0x{rep:02x}")
        self.relay = (socket.inet_ntoa(raw[4:8]), struct.unpack(">H", raw[8:10])[0])

    def send(self, data):
        self.sock.sendall(data)

    def recv_frame(self, timeout=5.0):
        """(FRAG, (host, port), data) of the next reply frame; raises on timeout or EOF."""
        deadline = time.monotonic() + timeout
        head = self._recv(4, deadline)
        length, frag, atyp = struct.unpack(">HB", head[:3]) + (head[3],)
        if atyp != 1:
            raise AssertionError(f"reply frame with ATYP {atyp}: {head.hex()}")
        addr = self._recv(6, deadline)
        source = (socket.inet_ntoa(addr[:4]), struct.unpack(">H", addr[4:])[0])
        return frag, source, self._recv(length, deadline)

    def _recv(self, n, deadline):
        data = b""
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"{len(data)} of {n} bytes of a reply frame")
            self.sock.settimeout(left)
            part = self.sock.recv(n - len(data))
            if not part:
                raise EOFError(f"control connection closed after {len(data)} of {n} bytes")
            data += part
        return data

    def closed_within(self, seconds):
        """True if the local closes the connection within `seconds` (bytes before it ignored)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
        return False

    def close(self):
        self.sock.close()


class GostUdpTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)
        self.dns = m.Dnsmasq(self, [f"--host-record={DNS_NAME},{DNS_ADDRESS}"])

    def start_local_u(self, server_port, extra=()):
        port = self.start_local(server_port, METHOD, extra=["-u"] + list(extra))
        self.local = self.last_child
        return port

    def client(self, local_port, command=0x03, rcvbuf=None):
        client = GostClient(local_port, command, rcvbuf)
        self.addCleanup(client.close)
        return client

    def echo_roundtrips(self, client, sizes, frag=0):
        """Sends every size's frame in one write (several frames per segment), then reads the
        echoes; each must come framed, from the echo's address, unchanged."""
        payloads = [os.urandom(size) for size in sizes]
        client.send(b"".join(frame(self.echo.port, p, frag=frag) for p in payloads))
        got = {}
        for _ in payloads:
            rfrag, source, data = client.recv_frame()
            self.assertEqual(rfrag, 0)
            self.assertEqual(source, (h.LOOPBACK, self.echo.port))
            got[data] = got.get(data, 0) + 1
        want = {}
        for p in payloads:
            want[p] = want.get(p, 0) + 1
        self.assertEqual(got, want, "echoes differ from what was sent")

    def dns_roundtrip(self, client, qid):
        """A real DNS query to dnsmasq, its frame written one byte at a time."""
        query = m.dns_query(DNS_NAME, qid)
        for b in frame(self.dns.port, query):
            client.send(bytes([b]))
        _, source, answer = client.recv_frame()
        self.assertEqual(source, (h.LOOPBACK, self.dns.port))
        self.assertEqual(struct.unpack(">H", answer[:2])[0], qid)
        self.assertEqual(answer[3] & 0x0F, 0, f"DNS rcode in {answer[:4].hex()}")
        self.assertEqual(struct.unpack(">H", answer[6:8])[0], 1, "one answer record")
        self.assertIn(socket.inet_aton(DNS_ADDRESS), answer[len(query):])
        self.assertGreaterEqual(self.dns.queries_for(DNS_NAME), 1)

    def test_our_server_over_udp(self):
        server_port = self.start_server(METHOD, extra=["-u"])
        server = self.last_child
        client = self.client(self.start_local_u(server_port))
        self.echo_roundtrips(client, [1, 100, 1200, 8 << 10, 32 << 10, 60000])
        self.dns_roundtrip(client, 0x4711)
        self.echo_roundtrips(client, [1200] * 20)
        # Framed mode: the association's UDP socket is closed (the kernel answers ICMP port
        # unreachable, which a connected UDP socket reports as ECONNREFUSED); framing goes on.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(client.relay)
            probe.settimeout(0.2)
            header = b"\x00\x00\x00\x01" + socket.inet_aton(h.LOOPBACK) + \
                struct.pack(">H", self.echo.port)
            refused = False
            for _ in range(20):
                probe.send(header + b"plain")
                try:
                    probe.recv(70000)
                    self.fail("a plain datagram was answered in framed mode")
                except ConnectionRefusedError:
                    refused = True
                    break
                except socket.timeout:
                    pass
            self.assertTrue(refused, "the association's UDP port stayed open in framed mode")
        self.echo_roundtrips(client, [10])
        client.close()
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual(stats["in"], 28, stats)   # gost{in=..}: frames from the client
        self.assertEqual(stats["out"], 28, stats)  # gost{out=..}: frames back to it
        self.assertEqual(stats["packets_in"], 28, stats)
        self.assertEqual(stats["packets_out"], 28, stats)
        self.assertEqual(stats["gost_malformed"], 0, stats)
        self.assertEqual(stats["gost_queue"], 0, stats)
        server_stats = stopped_udp_summary(self, server)
        self.assertEqual(server_stats["packets_in"], 28, server_stats)

    def test_ss_server(self):
        server_port = h.free_port()  # ss-server reports no port: a probed one
        ss = self.spawn("ss-server-u", h.server_argv("libev", server_port, METHOD) + ["-u"],
                        ours=False)
        h.wait_listening(server_port, ss)
        client = self.client(self.start_local_u(server_port))
        self.echo_roundtrips(client, [1, 100, 1200, 1200])  # libev's packets: up to 1397 bytes
        self.dns_roundtrip(client, 0x0102)
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual((stats["in"], stats["out"]), (5, 5), stats)

    def test_udp_over_tcp_to_our_server(self):
        server_port = self.start_server(METHOD)  # no -u: nothing can go over UDP
        server = self.last_child
        client = self.client(self.start_local_u(server_port, ["--udp-over-tcp"]))
        self.echo_roundtrips(client, [1, 1200, 32 << 10, 60000])
        self.dns_roundtrip(client, 0x2222)
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual((stats["in"], stats["out"]), (5, 5), stats)
        server_stats = stopped_udp_summary(self, server)
        self.assertEqual(server_stats["packets_in"], 5, server_stats)

    def test_gost_tunnel_command_and_frag_ff(self):
        """gost 3 asks with command 0xF3 and marks its frames FRAG 0xFF."""
        server_port = self.start_server(METHOD, extra=["-u"])
        client = self.client(self.start_local_u(server_port), command=0xF3)
        self.echo_roundtrips(client, [1, 1200, 9000], frag=0xFF)
        self.dns_roundtrip(client, 0x3333)

    def test_malformed_frames_close_the_control_connection(self):
        server_port = self.start_server(METHOD, extra=["-u"])
        local_port = self.start_local_u(server_port)
        bad_frames = [
            frame(self.echo.port, b"x", frag=1),                      # FRAG 1
            b"\x00\x01\x00\x02" + bytes(6) + b"x",                    # ATYP 2
            b"\x00\x01\x00\x03\x00\x00\x35x",                         # empty name
        ]
        for bad in bad_frames:
            client = self.client(local_port)
            self.echo_roundtrips(client, [64])  # a good one first
            client.send(bad + frame(self.echo.port, b"after"))
            self.assertTrue(client.closed_within(5.0), f"not closed after {bad.hex()}")
        # The local keeps serving; a frame cut short by the client's close is no error.
        client = self.client(local_port)
        self.echo_roundtrips(client, [5])
        client.send(frame(self.echo.port, bytes(100))[:50])
        client.close()
        time.sleep(0.2)
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual(stats["gost_malformed"], len(bad_frames), stats)
        self.assertEqual((stats["in"], stats["out"]), (len(bad_frames) + 1,) * 2, stats)

    def test_replies_to_a_slow_reader_are_bounded_and_stay_framed(self):
        """The client writes ~19 MB of frames without reading: the local parks at most 256 KiB
        of replies beyond what the kernel holds, drops the rest (counted), and what the client
        then reads is whole frames, each an echo of one it sent."""
        server_port = self.start_server(METHOD)
        client = self.client(self.start_local_u(server_port, ["--udp-over-tcp"]), rcvbuf=4096)
        sent = set()
        for batch in range(30):
            payloads = [os.urandom(16000) for _ in range(40)]
            sent.update(payloads)
            client.send(b"".join(frame(self.echo.port, p) for p in payloads))
            time.sleep(0.02)
        time.sleep(1.0)
        received = 0
        for _ in range(len(sent)):
            try:
                _, source, data = client.recv_frame(timeout=2.0)
            except socket.timeout:
                break
            self.assertEqual(source, (h.LOOPBACK, self.echo.port))
            self.assertIn(data, sent, "a reply frame that is no echo of a sent one")
            received += 1
        stats = stopped_udp_summary(self, self.local)
        self.assertEqual(stats["in"], len(sent), stats)
        self.assertGreater(stats["gost_queue"], 0, stats)
        self.assertEqual(stats["out"], received, stats)
        self.assertGreater(received, 0)
        self.assertEqual(stats["gost_malformed"], 0, stats)


if __name__ == "__main__":
    h.main()
