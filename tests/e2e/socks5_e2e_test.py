# SPDX-License-Identifier: Apache-2.0
"""The SOCKS5 front end of our `local`, driven by a raw Python client: TCP half-close in both
directions through local -> server, and the reply codes for unsupported requests (RFC 1928,
PROTOCOL.md Appendix A)."""

import hashlib
import os
import socket
import struct

import e2e_harness as h

METHOD = "aes-128-gcm"


class HalfCloseTest(h.RelayTestCase):
    """A client that shuts down its write side must still receive the target's reply, and a
    target that shuts down first must still receive what the client sends afterwards."""

    def setUp(self):
        super().setUp()
        self.require_ours("libev closes both directions on the first EOF")

    def chain(self):
        """Our local -> our server; returns the local's SOCKS5 port."""
        server_port = self.start_server(METHOD)
        return self.start_local(server_port, METHOD)

    def client_half_close(self, local_port):
        target = self.add_peer(h.EofThenHashServer())
        payload = os.urandom(1 << 20)
        with h.socks5_connect(local_port, h.LOOPBACK, target.port) as sock:
            sock.settimeout(30.0)
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            reply = h.recv_until_eof(sock, "reply after the client's half-close")
        self.assertEqual(len(reply), 40,
                         f"expected sha256+length (40 bytes) after half-close, got {len(reply)} "
                         f"bytes; target saw {target.results}, errors {target.errors}")
        digest, length = reply[:32], struct.unpack(">Q", reply[32:])[0]
        self.assertEqual(length, len(payload), "the target read a different number of bytes")
        self.assertEqual(digest, hashlib.sha256(payload).digest(),
                         "the target read different bytes")

    def test_client_half_close_ours_local_to_ours_server(self):
        self.client_half_close(self.chain())

    def test_target_half_close_ours_local_to_ours_server(self):
        greeting = os.urandom(64 << 10)
        target = self.add_peer(h.SpeakFirstServer(greeting))
        local_port = self.chain()
        payload = os.urandom(64 << 10)
        with h.socks5_connect(local_port, h.LOOPBACK, target.port) as sock:
            sock.settimeout(30.0)
            got = h.recv_until_eof(sock, "greeting before the target's half-close")
            self.assertEqual(h.sha256(got), h.sha256(greeting),
                             f"greeting differs ({len(got)} of {len(greeting)} bytes)")
            # The target closed its write side only; the client can still send.
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            rest = h.recv_until_eof(sock, "close after both sides shut down")
            self.assertEqual(rest, b"", "bytes after the target's EOF")
            h.wait_until(lambda: target.results or target.errors, 20,
                         "the target to see the client's EOF after its own half-close")
        self.assertEqual(target.errors, [], "target errors")
        self.assertEqual(target.results, [(len(payload), h.sha256(payload))],
                         "the target did not read the client's data sent after its half-close")


class Socks5RepliesTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        # libev answers UDP ASSOCIATE with 00 and truncates error replies to 4 bytes.
        self.require_ours("libev's replies differ")

    def request(self, body):
        """Sends a SOCKS5 request after the no-auth greeting; returns (REP, raw reply)."""
        server_port = self.start_server(METHOD)
        local_port = self.start_local(server_port, METHOD)
        with h.socks5_open(local_port) as sock:
            sock.sendall(body)
            rep, raw = h.read_socks5_reply(sock)
            return rep, raw

    def test_bind_is_command_not_supported(self):
        rep, raw = self.request(b"\x05\x02\x00" + h.socks5_address(h.LOOPBACK, 80))
        self.assertEqual(rep, 0x07, f"BIND: expected reply 07, got {raw.hex()}")

    def test_unknown_atyp_is_address_type_not_supported(self):
        rep, raw = self.request(b"\x05\x01\x00\x05" + bytes([127, 0, 0, 1]) + b"\x00\x50")
        self.assertEqual(rep, 0x08, f"ATYP 05: expected reply 08, got {raw.hex()}")

    def test_udp_associate_reply(self):
        rep, raw = self.request(b"\x05\x03\x00" + h.socks5_address("0.0.0.0", 0))
        self.assertEqual(rep, h.UDP_ASSOCIATE_REPLY,
                         f"UDP ASSOCIATE: expected reply {h.UDP_ASSOCIATE_REPLY:02x}, "
                         f"got {raw.hex()}")

    def test_no_acceptable_auth_method(self):
        server_port = self.start_server(METHOD)
        local_port = self.start_local(server_port, METHOD)
        with socket.create_connection((h.LOOPBACK, local_port), timeout=20.0) as sock:
            sock.sendall(b"\x05\x01\x02")  # only username/password offered
            reply = h.recv_exact(sock, 2, "method selection")
            self.assertEqual(reply, b"\x05\xff", f"expected 05ff, got {reply.hex()}")


if __name__ == "__main__":
    h.main()
