#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""UDP over TCP (sing-box UoT v1 and v2, docs/UDP_OVER_TCP.md) through our server, which runs
without -u here so that nothing can go over UDP between client and server.

The client side is either a Shadowsocks AEAD stream written from the specs (aead_wire.py:
PROTOCOL.md §1, with python3-cryptography's ChaCha20-Poly1305 and HKDF) that sends the UoT
bytes of the documented layout, or our own `tunnel -U --udp-over-tcp` and `local -u --udp-over-tcp`."""
import os
import re
import socket
import struct
import time

import e2e_harness as h
from aead_wire import AeadStream, master_key, recv_until
from e2e_harness import SocksUdp, UdpEcho, stopped_udp_summary

METHOD = "chacha20-ietf-poly1305"
KEY_SIZE = 32
MAGIC_V1 = b"sp.udp-over-tcp.arpa"
MAGIC_V2 = b"sp.v2.udp-over-tcp.arpa"


def socks_ipv4(ip, port):
    return b"\x01" + socket.inet_aton(ip) + struct.pack(">H", port)


def uot_ipv4(ip, port):
    return b"\x00" + socket.inet_aton(ip) + struct.pack(">H", port)


class UotClient:
    """A Shadowsocks TCP stream to `server_port` asking for UoT `version`."""

    def __init__(self, server_port, version, connect=False, destination=None):
        self.master = master_key(h.PASSWORD)
        self.sock = socket.create_connection((h.LOOPBACK, server_port), timeout=5)
        salt = os.urandom(KEY_SIZE)
        self.up = AeadStream(self.master, salt)
        self.down = None
        self.buffer = b""
        magic = MAGIC_V2 if version == 2 else MAGIC_V1
        self.connect = connect
        first = b"\x03" + bytes([len(magic)]) + magic + b"\x00\x00"
        if version == 2:
            first += (b"\x01" if connect else b"\x00") + socks_ipv4(*destination)
        self.pending = salt + self.up.seal(first)  # goes with the first datagram, as sing does

    def send_datagram(self, payload, destination=None):
        frame = struct.pack(">H", len(payload)) + payload
        if not self.connect:
            frame = uot_ipv4(*destination) + frame
        self.send_raw(frame)

    def send_raw(self, plain):
        self.sock.sendall(self.pending + self.up.seal(plain))
        self.pending = b""

    def _fill(self, n, deadline):
        while len(self.buffer) < n:
            if self.down is None:
                salt = recv_until(self.sock, KEY_SIZE, deadline)
                if salt is None:
                    return False
                self.down = AeadStream(self.master, salt)
            chunk = self.down.open_from(self.sock, deadline)
            if chunk is None:
                return False
            self.buffer += chunk
        return True

    def recv_frame(self, timeout=3):
        """(source (ip, port) or None in connect mode, payload); None on EOF."""
        deadline = time.monotonic() + timeout
        source = None
        if not self.connect:
            if not self._fill(7, deadline):
                return None
            if self.buffer[0] != 0:
                raise AssertionError(f"reply address type {self.buffer[0]}: expected 00 (IPv4)")
            source = (socket.inet_ntoa(self.buffer[1:5]), struct.unpack(">H", self.buffer[5:7])[0])
            self.buffer = self.buffer[7:]
        if not self._fill(2, deadline):
            return None
        length = struct.unpack(">H", self.buffer[:2])[0]
        if not self._fill(2 + length, deadline):
            return None
        payload = self.buffer[2:2 + length]
        self.buffer = self.buffer[2 + length:]
        return source, payload

    def close(self):
        self.sock.close()


class UotTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)
        self.echo2 = UdpEcho()
        self.addCleanup(self.echo2.stop)

    def start_tcp_only_server(self, allow_private=True):
        port = self.start_server(METHOD, allow_private=allow_private)
        self.server = self.last_child
        return port

    def client(self, port, version, connect=False, destination=None):
        client = UotClient(port, version, connect, destination)
        self.addCleanup(client.close)
        return client

    def test_v2_non_connect_frames_carry_each_address(self):
        port = self.start_tcp_only_server()
        first = (h.LOOPBACK, self.echo.port)
        client = self.client(port, 2, destination=first)
        for size in (0, 1, 1200, 8 << 10, 60000):
            for echo in (self.echo, self.echo2):
                payload = os.urandom(size)
                client.send_datagram(payload, (h.LOOPBACK, echo.port))
                source, data = client.recv_frame()
                self.assertEqual(source, (h.LOOPBACK, echo.port), "reply source")
                self.assertEqual(data, payload, f"{size}-byte datagram")
        stats = stopped_udp_summary(self, self.server)
        self.assertEqual(stats["associations"], 1, stats)
        self.assertEqual(stats["packets_in"], 10, stats)
        self.assertEqual(stats["packets_out"], 10, stats)

    def test_v2_connect_frames_have_no_address(self):
        port = self.start_tcp_only_server()
        client = self.client(port, 2, connect=True, destination=(h.LOOPBACK, self.echo.port))
        for size in (5, 1200, 30000):
            payload = os.urandom(size)
            client.send_datagram(payload)
            source, data = client.recv_frame()
            self.assertIsNone(source)
            self.assertEqual(data, payload)
        self.assertEqual(self.echo2.received, 0)

    def test_v1_has_no_request_header(self):
        port = self.start_tcp_only_server()
        client = self.client(port, 1)
        payload = b"legacy datagram"
        client.send_datagram(payload, (h.LOOPBACK, self.echo.port))
        self.assertEqual(client.recv_frame(), ((h.LOOPBACK, self.echo.port), payload))

    def test_several_frames_in_one_chunk_and_one_frame_across_chunks(self):
        port = self.start_tcp_only_server()
        client = self.client(port, 2, destination=(h.LOOPBACK, self.echo.port))
        to = uot_ipv4(h.LOOPBACK, self.echo.port)
        frames = b"".join(to + struct.pack(">H", 3) + bytes([i]) * 3 for i in range(5))
        big = os.urandom(40000)  # spans three AEAD chunks (payload limit 0x3FFF)
        client.send_raw(frames + to + struct.pack(">H", len(big)) + big)
        got = [client.recv_frame()[1] for _ in range(6)]
        self.assertEqual(got, [bytes([i]) * 3 for i in range(5)] + [big])

    def test_bad_frame_ends_the_stream_and_the_server_keeps_serving(self):
        port = self.start_tcp_only_server()
        bad = self.client(port, 2, destination=(h.LOOPBACK, self.echo.port))
        bad.send_raw(b"\x05" + b"\x00" * 10)  # address type 05 does not exist
        self.assertIsNone(bad.recv_frame(), "the stream stayed open after a bad frame")
        good = self.client(port, 2, destination=(h.LOOPBACK, self.echo.port))
        good.send_datagram(b"after a bad stream", (h.LOOPBACK, self.echo.port))
        self.assertEqual(good.recv_frame()[1], b"after a bad stream")

    def test_private_destination_refused_by_default(self):
        port = self.start_tcp_only_server(allow_private=False)
        client = self.client(port, 2, destination=(h.LOOPBACK, self.echo.port))
        client.send_datagram(b"to loopback", (h.LOOPBACK, self.echo.port))
        with self.assertRaises(socket.timeout):
            client.recv_frame(timeout=1)
        self.assertEqual(self.echo.received, 0)
        stats = stopped_udp_summary(self, self.server)
        self.assertEqual(stats["refused"], 1, stats)

    def test_our_tunnel_over_tcp(self):
        port = self.start_tcp_only_server()
        # UDP only: the ready line names its UDP port (there is no TCP listener).
        tunnel_port = self.start_tunnel(port, METHOD, f"127.0.0.1:{self.echo.port}",
                                        extra=["-U", "--udp-over-tcp"])
        self.assertEqual(self.last_child.ready.tcp, [], self.last_child.ready)
        socks = []
        for flow in range(3):  # three senders: three streams
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.addCleanup(sock.close)
            sock.settimeout(3)
            socks.append(sock)
            for size in (1, 1200, 8 << 10, 32 << 10, 60000):
                payload = os.urandom(size)
                sock.sendto(payload, (h.LOOPBACK, tunnel_port))
                self.assertEqual(sock.recvfrom(70000)[0], payload, f"flow {flow}, {size} bytes")
        stats = stopped_udp_summary(self, self.server)
        self.assertEqual(stats["associations"], 3, stats)  # one UoT stream per sender
        self.assertEqual(stats["packets_in"], 15, stats)

    def test_our_local_over_tcp(self):
        port = self.start_tcp_only_server()
        local_port = self.start_local(port, METHOD, extra=["-u", "--udp-over-tcp"])
        local = self.last_child
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        for size in (1, 1200, 32 << 10):
            for echo in (self.echo, self.echo2):
                payload = os.urandom(size)
                header = b"\x00\x00\x00" + socks_ipv4(h.LOOPBACK, echo.port)
                client.udp.sendto(header + payload, client.relay)
                data, _ = client.udp.recvfrom(70000)
                self.assertEqual(data[:len(header)], header, "reply header names the source")
                self.assertEqual(data[len(header):], payload)
        local_stats = stopped_udp_summary(self, local)
        self.assertEqual(local_stats["packets_in"], 6, local_stats)
        self.assertEqual(local_stats["packets_out"], 6, local_stats)
        server_stats = stopped_udp_summary(self, self.server)
        self.assertEqual(server_stats["associations"], 1, server_stats)

    def test_flag_rejected_on_the_server(self):
        argv = h.server_argv("ours", 0, METHOD) + ["--udp-over-tcp"]
        child = self.spawn("server-uot-flag", argv, ours=True)
        code = child.wait(10)
        child.exit_code = code
        self.assertEqual(code, 2)
        with open(child.log_path, encoding="utf-8", errors="replace") as f:
            self.assertRegex(f.read(), re.compile(r"udp_over_tcp"))


if __name__ == "__main__":
    h.main()
