#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Shadowsocks 2022 over UDP (PROTOCOL.md §2.5, §2.6) and UDP over TCP, one PSK per port.

- An independent packet codec written from the spec (ss2022_wire.py): AES methods seal a separate header
  (session ID, packet ID) with one AES block under the PSK and the body with AES-GCM under the
  session subkey BLAKE3-derive_key("shadowsocks 2022 session subkey", PSK || session ID), nonce =
  separate header[4..16]; ChaCha seals everything with XChaCha20-Poly1305 under the PSK, whose
  HChaCha20 is built here from draft-irtf-cfrg-xchacha-03 (python3-cryptography has the ChaCha20
  block function only as a stream cipher and no XChaCha). Both are checked against the §2.8
  vectors, then drive our server on the wire: a valid packet reaches a UDP echo and the reply
  is checked (type 1, our client session ID, a fresh timestamp, the echo's address); a replayed
  packet ID, a timestamp 120 s off and a wrong key get nothing; the same session from new
  source ports keeps its association and server session (replies to the newest port).
- Our tunnel -u and local -u -> our server for each 2022 method, over UDP and over UDP over TCP;
  a server restart is taken by the client (a new server session)."""
import os
import socket
import struct
import time

import e2e_harness as h
from e2e_harness import SocksUdp, UdpEcho, stopped_udp_summary
from ss2022_wire import (SERVER_TYPE, ServerPacket, b64, client_packet, hchacha20, psk_of,
                         seal_packet, session_subkey, socks_ipv4)

AES_128 = "2022-blake3-aes-128-gcm"
AES_256 = "2022-blake3-aes-256-gcm"
CHACHA = "2022-blake3-chacha20-poly1305"
QUIET = 1.0  # seconds a dropped packet is given to (wrongly) produce a reply


class Ss2022UdpSpecTest(h.RelayTestCase):
    """The codec above against the spec's vectors, then against our server."""

    def setUp(self):
        super().setUp()
        self.require_ours("Shadowsocks 2022 is our server's")
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)

    def test_codec_matches_the_protocol_vectors(self):
        # §2.8: PSK16 = 00..0f, session 0102030405060708, packet 0, 8.8.8.8:53 "hello", ts 1700000000.
        session = bytes(range(1, 9))
        packet = client_packet(AES_128, bytes(range(16)), session, 0,
                               socks_ipv4("8.8.8.8", 53), b"hello", timestamp=1700000000)
        self.assertEqual(packet[:16].hex(), "18ba69bb4661fee5a7cc9ec1a731e278")
        self.assertEqual(session_subkey(AES_128, bytes(range(16)), session).hex(),
                         "b8473b44792f673ee36a405dfa755cc4")
        self.assertEqual(packet[16:].hex(),
                         "0f887748f59fbaddc74035aaf8f098481910937ae67325a1e9fa830835febf4b"
                         "858e07cc4388a2")
        # SIP023: the same packet for uPSK ff..f0 behind iPSK PSK16 (one identity header).
        upsk = bytes(range(0xff, 0xef, -1))
        packet = client_packet(AES_128, [bytes(range(16)), upsk], session, 0,
                               socks_ipv4("8.8.8.8", 53), b"hello", timestamp=1700000000)
        self.assertEqual(packet[:16].hex(), "18ba69bb4661fee5a7cc9ec1a731e278")
        self.assertEqual(packet[16:32].hex(), "fc75266e5be59a6ca2ff5517b80bad7d")
        self.assertEqual(session_subkey(AES_128, upsk, session).hex(),
                         "fe38e988e2835b762419032647148386")
        # ChaCha: PSK32 = 00..1f, nonce 50..67, the same body.
        body = struct.pack(">BQH", 0, 1700000000, 0) + socks_ipv4("8.8.8.8", 53) + b"hello"
        packet = seal_packet(CHACHA, bytes(range(32)), session, 0, body,
                             nonce=bytes(range(0x50, 0x68)))
        self.assertEqual(packet.hex(),
                         "505152535455565758595a5b5c5d5e5f6061626364656667"
                         "a90713ee6a4190db733d6e0b4980c7f95bd3c450897357b8c7e765515158705f"
                         "e3053f4596138e6badecb8b2243e16319accdafd781445")
        # HChaCha20, draft-irtf-cfrg-xchacha-03 §2.2.1.
        self.assertEqual(
            hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")).hex(),
            "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")

    def start_2022_server(self, method, psk, extra=()):
        port = self.start_server(method, password=b64(psk), extra=["-U"] + list(extra))
        self.server = self.last_child
        return port

    def client_socket(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((h.LOOPBACK, 0))
        sock.settimeout(5)
        return sock

    def exchange(self, sock, server_port, method, psk, packet, payload):
        """Sends `packet` (to the echo, carrying `payload`) and returns the checked reply."""
        sock.sendto(packet, (h.LOOPBACK, server_port))
        data, sender = sock.recvfrom(70000)
        self.assertEqual(sender, (h.LOOPBACK, server_port), "the reply's source")
        reply = ServerPacket(method, psk, data)
        self.assertEqual(reply.type, SERVER_TYPE, "reply type")
        self.assertLessEqual(abs(int(time.time()) - reply.timestamp), 30, "reply timestamp")
        self.assertEqual(reply.source, (h.LOOPBACK, self.echo.port), "reply source address")
        self.assertEqual(reply.payload, payload)
        return reply

    def assert_no_reply(self, sock, what):
        sock.settimeout(QUIET)
        with self.assertRaises(socket.timeout, msg=f"the server answered {what}"):
            sock.recvfrom(70000)
        sock.settimeout(5)

    def wire_roundtrip(self, method):
        psk = psk_of(method, seed=11)
        port = self.start_2022_server(method, psk)
        sock = self.client_socket()
        session = os.urandom(8)
        address = socks_ipv4(h.LOOPBACK, self.echo.port)
        server_sessions = set()
        for packet_id in range(5):  # padding (here, before the address) as §2.5 lays it out
            payload = os.urandom(100 * packet_id + 1)
            packet = client_packet(method, psk, session, packet_id, address, payload,
                                   padding=os.urandom(packet_id * 7))
            reply = self.exchange(sock, port, method, psk, packet, payload)
            self.assertEqual(reply.client_session_id, session, "the reply names our session")
            self.assertNotEqual(reply.session_id, session, "the server's own session ID")
            self.assertEqual(reply.packet_id, packet_id, "the server's packet counter")
            server_sessions.add(reply.session_id)
        self.assertEqual(len(server_sessions), 1, "one server session for our session")
        stats = stopped_udp_summary(self, self.server)
        self.assertEqual((stats["packets_in"], stats["packets_out"], stats["associations"]),
                         (5, 5, 1), stats)

    def test_spec_client_aes_128_gcm(self):
        self.wire_roundtrip(AES_128)

    def test_spec_client_aes_256_gcm(self):
        self.wire_roundtrip(AES_256)

    def test_spec_client_chacha20_poly1305(self):
        self.wire_roundtrip(CHACHA)

    def test_replayed_packet_id_gets_nothing(self):
        for method in (AES_256, CHACHA):
            with self.subTest(method=method):
                psk = psk_of(method, seed=13)
                port = self.start_2022_server(method, psk)
                sock = self.client_socket()
                session = os.urandom(8)
                address = socks_ipv4(h.LOOPBACK, self.echo.port)
                first = client_packet(method, psk, session, 7, address, b"seven")
                self.exchange(sock, port, method, psk, first, b"seven")
                received = self.echo.received
                sock.sendto(first, (h.LOOPBACK, port))  # the same bytes
                # The same packet ID sealed anew (ChaCha: another nonce) and from another port.
                other = self.client_socket()
                other.sendto(client_packet(method, psk, session, 7, address, b"again"),
                             (h.LOOPBACK, port))
                self.assert_no_reply(sock, "a replayed packet")
                self.assert_no_reply(other, "a replayed packet ID from another port")
                self.assertEqual(self.echo.received, received, "a replay reached the target")
                # Older IDs inside the window are new; the session goes on where it was.
                self.exchange(sock, port, method, psk,
                              client_packet(method, psk, session, 3, address, b"three"), b"three")
                stats = stopped_udp_summary(self, self.server)
                self.assertEqual(stats["replayed_packet_id"], 2, stats)
                self.assertEqual(stats["packets_in"], 2, stats)

    def test_timestamp_120_s_off_gets_nothing(self):
        method = AES_128
        psk = psk_of(method, seed=17)
        port = self.start_2022_server(method, psk)
        sock = self.client_socket()
        session = os.urandom(8)
        address = socks_ipv4(h.LOOPBACK, self.echo.port)
        for packet_id, offset in enumerate((-120, 120)):
            sock.sendto(client_packet(method, psk, session, packet_id, address, b"stale",
                                      timestamp=int(time.time()) + offset), (h.LOOPBACK, port))
        self.assert_no_reply(sock, "a packet stamped 120 s off")
        # The stale packets moved no window: their IDs are still new.
        self.exchange(sock, port, method, psk,
                      client_packet(method, psk, session, 0, address, b"fresh"), b"fresh")
        self.assertEqual(self.echo.received, 1)
        stats = stopped_udp_summary(self, self.server)
        self.assertEqual(stats["stale_timestamp"], 2, stats)

    def test_wrong_key_gets_nothing(self):
        for method in (AES_128, CHACHA):
            with self.subTest(method=method):
                port = self.start_2022_server(method, psk_of(method, seed=19))
                sock = self.client_socket()
                address = socks_ipv4(h.LOOPBACK, self.echo.port)
                wrong = psk_of(method, seed=20)
                for packet_id in range(3):
                    sock.sendto(client_packet(method, wrong, os.urandom(8), packet_id, address,
                                              b"x"), (h.LOOPBACK, port))
                sock.sendto(os.urandom(60), (h.LOOPBACK, port))
                self.assert_no_reply(sock, "a packet under another PSK")
                self.assertEqual(self.echo.received, 0)
                stats = stopped_udp_summary(self, self.server)
                self.assertEqual(stats["open"], 4, stats)
                self.assertEqual(stats["associations"], 0, stats)

    def test_a_session_keeps_its_association_from_new_source_ports(self):
        # Several workers: the kernel would spread the source ports over their sockets if the
        # 2022 port had one per worker.
        for method in (AES_128, CHACHA):
            with self.subTest(method=method):
                psk = psk_of(method, seed=23)
                port = self.start_2022_server(method, psk, extra=["--workers", "4"])
                session = os.urandom(8)
                address = socks_ipv4(h.LOOPBACK, self.echo.port)
                server_session = None
                for packet_id in range(12):  # a new source port every time
                    sock = self.client_socket()
                    payload = f"roamed {packet_id}".encode()
                    reply = self.exchange(sock, port, method, psk, client_packet(
                        method, psk, session, packet_id, address, payload), payload)
                    self.assertEqual(reply.client_session_id, session)
                    if server_session is None:
                        server_session = reply.session_id
                    self.assertEqual(reply.session_id, server_session, "same server session")
                    self.assertEqual(reply.packet_id, packet_id, "one server packet counter")
                    sock.close()
                stats = stopped_udp_summary(self, self.server)
                self.assertEqual(stats["associations"], 1, stats)
                self.assertEqual(stats["packets_out"], 12, stats)


class Ss2022UdpClientsTest(h.RelayTestCase):
    """Our tunnel -u and local -u against our server, over UDP and UDP over TCP."""

    def setUp(self):
        super().setUp()
        self.require_ours("Shadowsocks 2022 is our server's")
        self.echo = UdpEcho()
        self.addCleanup(self.echo.stop)

    def tunnel_roundtrips(self, tunnel_port, count, what):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(5)
        for i in range(count):
            payload = os.urandom(1 + 997 * i % 9000)
            sock.sendto(payload, (h.LOOPBACK, tunnel_port))
            self.assertEqual(sock.recvfrom(70000)[0], payload, f"{what}: datagram {i}")
        return sock

    def local_roundtrips(self, local_port, count, what):
        client = SocksUdp(local_port)
        self.addCleanup(client.close)
        for i in range(count):
            payload = os.urandom(1 + 997 * i % 9000)
            self.assertEqual(client.roundtrip(self.echo.port, payload), payload,
                             f"{what}: datagram {i}")

    def through_our_clients(self, method):
        psk = psk_of(method, seed=29)
        key = b64(psk)
        destination = f"{h.LOOPBACK}:{self.echo.port}"
        server_port = self.start_server(method, password=key, extra=["-u"])
        server = self.last_child
        over_udp = self.start_tunnel(server_port, method, destination, password=key,
                                     extra=["-U"])
        over_tcp = self.start_tunnel(server_port, method, destination, password=key,
                                     extra=["-U", "--udp-over-tcp"])
        local_udp = self.start_local(server_port, method, password=key, extra=["-u"])
        local_tcp = self.start_local(server_port, method, password=key,
                                     extra=["-u", "--udp-over-tcp"])
        self.tunnel_roundtrips(over_udp, 10, f"{method} tunnel -U")
        self.tunnel_roundtrips(over_tcp, 10, f"{method} tunnel -U --udp-over-tcp")
        self.local_roundtrips(local_udp, 10, f"{method} local -u")
        self.local_roundtrips(local_tcp, 10, f"{method} local -u --udp-over-tcp")
        self.assertEqual(self.echo.received, 40)
        stats = stopped_udp_summary(self, server)
        self.assertEqual(stats["packets_in"], 40, stats)
        self.assertEqual(stats["packets_out"], 40, stats)
        # Two 2022 UDP sessions (tunnel, local) and two UoT streams.
        self.assertEqual(stats["associations"], 4, stats)
        dropped = {k: v for k, v in stats.items() if k not in (
            "packets_in", "packets_out", "bytes_in", "bytes_out", "associations", "evictions",
            "expirations")}
        self.assertEqual(set(dropped.values()), {0}, stats)

    def test_ours_aes_128_gcm(self):
        self.through_our_clients(AES_128)

    def test_ours_aes_256_gcm(self):
        self.through_our_clients(AES_256)

    def test_ours_chacha20_poly1305(self):
        self.through_our_clients(CHACHA)

    def test_tunnel_takes_a_restarted_servers_new_session(self):
        method = AES_256
        key = b64(psk_of(method, seed=31))
        server_port = self.start_server(method, password=key, extra=["-U"])
        first = self.last_child
        tunnel_port = self.start_tunnel(server_port, method, f"{h.LOOPBACK}:{self.echo.port}",
                                        password=key, extra=["-U"])
        tunnel = self.last_child
        sock = self.tunnel_roundtrips(tunnel_port, 3, "before the restart")
        stopped_udp_summary(self, first)
        self.start_ours("server-again", h.server_argv("ours", server_port, method, key,
                                                      extra=["-U"]))
        # The same sender, so the same client session, answered by a new server session.
        for i in range(3):
            payload = f"after the restart {i}".encode()
            sock.sendto(payload, (h.LOOPBACK, tunnel_port))
            self.assertEqual(sock.recvfrom(70000)[0], payload)
        stats = stopped_udp_summary(self, tunnel)
        self.assertEqual((stats["packets_in"], stats["packets_out"]), (6, 6), stats)
        self.assertEqual(stats["associations"], 1, stats)
        self.assertEqual(stats["session"], 0, stats)


if __name__ == "__main__":
    h.main()
