#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Shadowsocks 2022 users (SIP023 identity headers, PROTOCOL.md §2.7) on our server, created
through the control API (grpc_call) or the config file, driven by a client written from the
spec (ss2022_wire.py) and by our own local and tunnel:

  * Users created on the shared port of a `-k iPSK` server: the access URL is the plain SIP002
    form of method:iPSK:uPSK; each user is served under its own key (the response too), by the
    Python client, our local fed the URL (--server-url) and our tunnel fed -k iPSK:uPSK (TCP,
    and UDP over TCP); the per-user counters see them.
  * An unknown identity, the iPSK named as a user, the iPSK alone (the single-PSK request of
    before) and a header under another iPSK get no byte and a FIN at the handshake deadline.
  * Rotation cuts the user's live session, the old key then gets nothing, the new one works;
    deletion cuts a live session too.
  * One generation per shared port: FAILED_PRECONDITION naming it both ways; a port of its own
    gets an identity key of its own, kept in --state-dir across a restart.
  * UDP (-u) on the shared port: the Python client's packets carry one identity header (§2.7)
    and each user's replies open under its uPSK alone (no identity header), not another's;
    our tunnel -U fed -k iPSK:uPSK and our local -u fed the access URL relay datagrams; the
    per-user counters see them. An unknown identity, the iPSK named as a user, the iPSK alone
    and a header under another iPSK get nothing and reach nothing. Deleting a user closes its
    association's outbound socket (its target then gets "port unreachable") and its packets
    get nothing; another user's association goes on. Rotating a user's key does the same to
    its association, and only the new key is served.
  * A 2022 user on a port of its own beside a 2017 -u server: UDP there is 2022 with the
    port's own identity key. A user of a port of its own switched between 2017 and 2022
    (UpdateUser) gets the UDP server of its new generation each time.
  * The config file as shadowsocks-rust reads it ("password" the identity key, "users" with
    uPSKs), TCP and UDP; --check-config shows secrets as (set); a bad uPSK exits 2 naming
    users[i].password.

Every wait is bounded (socket timeouts, wait_until, subprocess timeouts)."""
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse

import e2e_harness as h
from cryptography.exceptions import InvalidTag

from ss2022_wire import (HANDSHAKE_TIMEOUT, SERVER_TYPE, ResponseReader, ServerPacket,
                         assert_refused, b64, chunk, client_packet, keys_of, psk_of, request,
                         socks_ipv4)

TOKEN = "e2e-users-2022-token-0123456789"
AES128 = "2022-blake3-aes-128-gcm"
AES256 = "2022-blake3-aes-256-gcm"
# A live session of a rotated or deleted user ends once the new table reaches its worker, which
# is posted before the API call returns (as in users_e2e_test); slack for sanitizer builds.
CUT_DEADLINE = 1.5
TRAFFIC_DEADLINE = 10.0
QUIET = 1.0  # seconds a dropped datagram is given to (wrongly) produce a reply


class Users2022Test(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("the control API and Shadowsocks 2022 users are our server's")
        self.echo = self.add_peer(h.EchoServer())

    def start_controlled(self, extra, name="ours-server-2022-users"):
        """Our server with the control API on port 0; sets relay_port and api_port."""
        token_file = h.scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        argv = [h.Config.relay, "server", "-s", h.LOOPBACK, "-p", 0, "--allow-private",
                "--metrics-listen", "off", "--control-listen", f"{h.LOOPBACK}:0",
                "--control-token-file", token_file,
                "--handshake-timeout", HANDSHAKE_TIMEOUT] + list(extra)
        if h.Config.verbose:
            argv.append("-v")
        self.server = self.start_ours(name, argv)
        self.relay_port = self.server.ready.port
        self.api_port = self.server.ready.control[1]

    def call(self, method, request_json):
        return h.grpc_api(self.api_port, f"shadowrelay.v1.UserService/{method}", request_json,
                          TOKEN)

    def create(self, name, method=AES128, **fields):
        return self.call("CreateUser", dict(name=name, method=method, **fields))

    def assert_api_error(self, code, part, method, request_json):
        with self.assertRaises(h.ApiError) as err:
            self.call(method, request_json)
        self.assertEqual(err.exception.code, code, err.exception.message)
        self.assertIn(part, err.exception.message)

    def url_of(self, user, port=None):
        """The user's access URL, checked to be ss://METHOD:pct(iPSK:uPSK)@127.0.0.1:PORT#name
        (SIP002's plain form for 2022, every part percent-encoded); its keys, raw."""
        url = user["access_url"]
        match = re.fullmatch(r"ss://([^:@]+):([^:@]+)@127\.0\.0\.1:(\d+)#(.+)", url)
        self.assertIsNotNone(match, url)
        method, encoded, url_port, tag = match.groups()
        password = urllib.parse.unquote(encoded)
        self.assertEqual(encoded, urllib.parse.quote(password, safe=""), url)
        self.assertEqual(method, user["method"])
        self.assertEqual(int(url_port), port or self.relay_port)
        self.assertEqual(tag, user["name"])
        keys = keys_of(password)
        self.assertEqual(len(keys), 2, f"not iPSK:uPSK: {url}")
        self.assertEqual(b64(keys[1]), user["password"], "the uPSK is the user's password")
        return keys

    def open_session(self, keys, payload, port=None, method=AES128):
        """A request through the Python client to the echo server; returns (socket, reader)
        once `payload` came back in a valid response keyed with the user's key."""
        sock = socket.create_connection((h.LOOPBACK, port or self.relay_port), timeout=10)
        self.addCleanup(sock.close)
        wire, salt, sealer = request(method, keys, h.LOOPBACK, self.echo.port, payload)
        sock.sendall(wire)
        reader = ResponseReader(self, sock, method, keys[-1], salt)
        got = reader.read_first()
        while len(got) < len(payload):
            got += reader.read_chunk() or self.fail("the echo ended early")
        self.assertEqual(got, payload)
        reader.sealer = sealer
        return sock, reader

    def roundtrip(self, keys, payload, port=None, method=AES128):
        sock, reader = self.open_session(keys, payload, port, method)
        sock.sendall(chunk(reader.sealer, b" and more"))
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(reader.read_chunk(), b" and more")
        self.assertIsNone(reader.read_chunk())  # the echo's FIN, relayed

    def probe(self, keys, what, port=None, method=AES128):
        """The request gets no byte and a FIN at the handshake deadline; nothing reaches the
        target."""
        accepted = self.echo.accepted
        wire, _, _ = request(method, keys, h.LOOPBACK, self.echo.port, b"let me in")
        assert_refused(self, port or self.relay_port, wire, what)
        self.assertEqual(self.echo.accepted, accepted, f"{what} reached the target")

    def assert_cut(self, sock, what):
        """`sock` (a live session) ends within CUT_DEADLINE."""
        start = time.monotonic()
        sock.settimeout(CUT_DEADLINE + 2.0)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        took = time.monotonic() - start
        self.assertLessEqual(took, CUT_DEADLINE, f"{what}: the live session ended after {took:.2f} s")

    def udp_socket(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((h.LOOPBACK, 0))
        sock.settimeout(5)
        return sock

    def send_udp(self, sock, keys, session, packet_id, payload, target_port, port=None,
                 method=AES128):
        sock.sendto(client_packet(method, keys, session, packet_id,
                                  socks_ipv4(h.LOOPBACK, target_port), payload),
                    (h.LOOPBACK, port or self.relay_port))

    def udp_exchange(self, sock, keys, session, packet_id, payload, port=None, method=AES128):
        """A packet of `session` under `keys` to the UDP echo; returns the raw reply, checked to
        open under the uPSK alone as the echo's answer to this session."""
        self.send_udp(sock, keys, session, packet_id, payload, self.udp_echo.port, port, method)
        data, sender = sock.recvfrom(70000)
        self.assertEqual(sender, (h.LOOPBACK, port or self.relay_port), "the reply's source")
        reply = ServerPacket(method, keys[-1], data)
        self.assertEqual(reply.type, SERVER_TYPE, "reply type")
        self.assertLessEqual(abs(int(time.time()) - reply.timestamp), 30, "reply timestamp")
        self.assertEqual(reply.client_session_id, session, "the reply names our session")
        self.assertEqual(reply.source, (h.LOOPBACK, self.udp_echo.port), "reply source")
        self.assertEqual(reply.payload, payload)
        return data

    def assert_udp_silent(self, sock, what):
        sock.settimeout(QUIET)
        with self.assertRaises(socket.timeout, msg=f"the server answered {what}"):
            sock.recvfrom(70000)
        sock.settimeout(5)

    def start_udp(self, ipsk):
        self.start_controlled(["-m", AES128, "-k", b64(ipsk), "-u"])
        self.udp_echo = h.UdpEcho()
        self.addCleanup(self.udp_echo.stop)

    # ----------------------------------------------------------------------------------------

    def test_api_users_on_the_shared_port_are_found_by_their_identity(self):
        ipsk = psk_of(AES128, seed=1)
        self.start_controlled(["-m", AES128, "-k", b64(ipsk)])
        alice = self.create("alice")
        given = os.urandom(16)
        bob = self.create("bob", password=b64(given))
        self.assertEqual(bob["password"], b64(given))
        alice_keys = self.url_of(alice)
        bob_keys = self.url_of(bob)
        self.assertEqual(alice_keys[0], ipsk, "the shared port's identity key is -k")
        self.assertEqual(bob_keys[0], ipsk)

        self.roundtrip(alice_keys, b"alice says hello")
        self.roundtrip(bob_keys, b"bob says hello" * 1000)

        # Our local, configured by the URL alone, and our tunnel with -k iPSK:uPSK.
        local = self.start_process("ours-local-alice", "ours", lambda port: [
            h.Config.relay, "local", "--server-url", alice["access_url"], "-b", h.LOOPBACK,
            "-l", port])
        with h.socks5_connect(local, h.LOOPBACK, self.echo.port) as sock:
            h.echo_roundtrip(sock, os.urandom(1 << 20), "through local --server-url")
        tunnel = self.start_tunnel(self.relay_port, AES128, f"{h.LOOPBACK}:{self.echo.port}",
                                   password=f"{b64(ipsk)}:{bob['password']}")
        with socket.create_connection((h.LOOPBACK, tunnel), timeout=10) as sock:
            h.echo_roundtrip(sock, os.urandom(1 << 20), "through tunnel -k iPSK:uPSK")
        # UDP over TCP rides the user's identified stream.
        udp_echo = h.UdpEcho()
        self.addCleanup(udp_echo.stop)
        uot = self.start_tunnel(self.relay_port, AES128, f"{h.LOOPBACK}:{udp_echo.port}",
                                password=f"{b64(ipsk)}:{bob['password']}",
                                extra=["-U", "--udp-over-tcp"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            for size in (1, 1200, 30000):
                payload = os.urandom(size)
                sock.sendto(payload, (h.LOOPBACK, uot))
                self.assertEqual(sock.recvfrom(70000)[0], payload, f"{size} bytes over UoT")

        # Each user's own counters (the registry hears of traffic once a second).
        for name, least in (("alice", (1 << 20) + 16), ("bob", (1 << 20) + 14000)):
            h.wait_until(lambda: int(self.call("GetUser", {"name": name})["traffic"]
                                     .get("bytes_up", 0)) >= least,
                         TRAFFIC_DEADLINE, f"{name}'s bytes_up to reach {least}")

    def test_wrong_identities_get_nothing(self):
        ipsk = psk_of(AES128, seed=2)
        self.start_controlled(["-m", AES128, "-k", b64(ipsk)])
        alice_keys = self.url_of(self.create("alice"))
        self.probe([ipsk, os.urandom(16)], "an unknown identity")
        self.probe([ipsk, ipsk], "the identity key named as a user's")
        # Every user's client has the iPSK: the single-PSK request it made before users came
        # gets nothing now.
        self.probe(ipsk, "the identity key alone, no identity header")
        self.probe([psk_of(AES128, seed=3), alice_keys[1]], "alice under another identity key")
        self.roundtrip(alice_keys, b"alice is still fine")

    def test_api_users_over_udp_on_the_shared_port(self):
        ipsk = psk_of(AES128, seed=8)
        self.start_udp(ipsk)
        alice = self.create("alice")
        bob = self.create("bob")
        alice_keys = self.url_of(alice)
        bob_keys = self.url_of(bob)
        sock = self.udp_socket()
        alice_session, bob_session = os.urandom(8), os.urandom(8)
        for packet_id in range(3):
            self.udp_exchange(sock, alice_keys, alice_session, packet_id, b"alice %d" % packet_id)
        data = self.udp_exchange(sock, bob_keys, bob_session, 0, b"bob over udp")
        # Bob's reply is his alone: it opens neither under alice's key nor under the iPSK.
        for key, whose in ((alice_keys[1], "alice's key"), (ipsk, "the identity key")):
            with self.assertRaises(InvalidTag, msg=f"bob's reply opened under {whose}"):
                ServerPacket(AES128, key, data)

        # Our tunnel fed -k iPSK:uPSK and our local fed the access URL.
        tunnel = self.start_tunnel(self.relay_port, AES128, f"{h.LOOPBACK}:{self.udp_echo.port}",
                                   password=f"{b64(ipsk)}:{bob['password']}", extra=["-U"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            for size in (1, 1200, 30000):
                payload = os.urandom(size)
                client.sendto(payload, (h.LOOPBACK, tunnel))
                self.assertEqual(client.recvfrom(70000)[0], payload, f"{size} bytes, tunnel -U")
        local = self.start_process("ours-local-alice-udp", "ours", lambda port: [
            h.Config.relay, "local", "--server-url", alice["access_url"], "-b", h.LOOPBACK,
            "-l", port, "-u"])
        socks = h.SocksUdp(local)
        self.addCleanup(socks.close)
        for i in range(3):
            payload = os.urandom(100 + i)
            self.assertEqual(socks.roundtrip(self.udp_echo.port, payload), payload,
                             f"datagram {i} through local -u --server-url")
        self.assertEqual(self.udp_echo.received, 3 + 1 + 3 + 3)

        # Each user's own counters, both ways (the registry hears of traffic once a second).
        for name, packets in (("alice", 2 * (3 + 3)), ("bob", 2 * (1 + 3))):
            h.wait_until(lambda: int(self.call("GetUser", {"name": name})["traffic"]
                                     .get("udp_packets", 0)) >= packets,
                         TRAFFIC_DEADLINE, f"{name}'s udp_packets to reach {packets}")
            got = self.call("GetUser", {"name": name})
            self.assertEqual(int(got["traffic"]["udp_packets"]), packets, got)

    def test_wrong_udp_identities_get_nothing(self):
        ipsk = psk_of(AES128, seed=9)
        self.start_udp(ipsk)
        alice_keys = self.url_of(self.create("alice"))
        sock = self.udp_socket()
        for keys, what in (([ipsk, os.urandom(16)], "an unknown identity"),
                           ([ipsk, ipsk], "the identity key named as a user's"),
                           ([ipsk], "the identity key alone, no identity header"),
                           ([alice_keys[1]], "alice's key alone, no identity header"),
                           ([psk_of(AES128, seed=10), alice_keys[1]],
                            "alice under another identity key")):
            self.send_udp(sock, keys, os.urandom(8), 0, b"let me in", self.udp_echo.port)
            self.assert_udp_silent(sock, what)
        self.assertEqual(self.udp_echo.received, 0, "a wrong identity reached the target")
        self.udp_exchange(sock, alice_keys, os.urandom(8), 0, b"alice is still fine")

    def test_deletion_drops_the_udp_association(self):
        self.start_udp(psk_of(AES128, seed=12))
        keys = self.url_of(self.create("bob"))
        carol_keys = self.url_of(self.create("carol"))
        # Bob's datagram to a bare target: its source is his association's outbound socket.
        target = self.udp_socket()
        target_port = target.getsockname()[1]
        sock = self.udp_socket()
        session = os.urandom(8)
        self.send_udp(sock, keys, session, 0, b"bob's first", target_port)
        data, outbound = target.recvfrom(70000)
        self.assertEqual(data, b"bob's first")
        carol = self.udp_socket()
        carol_session = os.urandom(8)
        self.udp_exchange(carol, carol_keys, carol_session, 0, b"carol before")

        self.call("DeleteUser", {"name": "bob"})
        self.wait_outbound_closed(outbound, "bob's")
        self.drain(sock)
        self.assert_udp_silent(sock, "a target's datagram to the deleted user")
        self.send_udp(sock, keys, session, 1, b"bob again", self.udp_echo.port)
        self.assert_udp_silent(sock, "the deleted user")
        self.udp_exchange(carol, carol_keys, carol_session, 1, b"carol after")
        self.assertEqual(self.udp_echo.received, 2, "the deleted user's datagram was relayed")

    def test_rotation_drops_the_udp_association_and_only_the_new_key_is_served(self):
        ipsk = psk_of(AES128, seed=13)
        self.start_udp(ipsk)
        old_keys = self.url_of(self.create("bob"))
        target = self.udp_socket()
        sock = self.udp_socket()
        session = os.urandom(8)
        self.send_udp(sock, old_keys, session, 0, b"bob's first", target.getsockname()[1])
        data, outbound = target.recvfrom(70000)
        self.assertEqual(data, b"bob's first")

        rotated = self.call("UpdateUser", {"user": {"name": "bob"}, "update_mask": "password"})
        new_keys = self.url_of(rotated)
        self.assertNotEqual(new_keys[1], old_keys[1])
        self.assertEqual(new_keys[0], ipsk, "the port's identity key stays")
        self.wait_outbound_closed(outbound, "the rotated-out key's")
        self.drain(sock)
        self.send_udp(sock, old_keys, session, 1, b"old key, old session", self.udp_echo.port)
        self.assert_udp_silent(sock, "the rotated-out key in its session")
        self.send_udp(sock, old_keys, os.urandom(8), 0, b"old key, new session",
                      self.udp_echo.port)
        self.assert_udp_silent(sock, "the rotated-out key in a new session")
        self.udp_exchange(sock, new_keys, os.urandom(8), 0, b"bob's new key")
        self.assertEqual(self.udp_echo.received, 1, "the rotated-out key's datagram was relayed")

    def wait_outbound_closed(self, outbound, whose):
        """The association behind the outbound UDP socket `outbound` is gone with its socket: a
        target's datagrams to it are refused (ICMP port unreachable, reported on a connected
        socket), not relayed to the client."""
        late = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(late.close)
        late.connect(outbound)
        late.settimeout(0.2)

        def refused():
            try:
                late.send(b"late")
                late.recv(1)
            except ConnectionRefusedError:
                return True
            except socket.timeout:
                pass
            return False

        h.wait_until(refused, CUT_DEADLINE + 2.0, f"{whose} outbound socket to close")

    @staticmethod
    def drain(sock):
        """Drops what reached `sock` so far: a target's probe that got through before the
        change reached the worker, relayed back as it should have been then."""
        sock.setblocking(False)
        try:
            while True:
                sock.recvfrom(70000)
        except BlockingIOError:
            pass
        finally:
            sock.settimeout(5)

    def test_rotation_cuts_the_live_session_and_only_the_new_key_connects(self):
        self.start_controlled(["-m", AES128, "-k", b64(psk_of(AES128, seed=4))])
        old_keys = self.url_of(self.create("alice"))
        live, _ = self.open_session(old_keys, b"before the rotation")
        rotated = self.call("UpdateUser", {"user": {"name": "alice"}, "update_mask": "password"})
        self.assert_cut(live, "rotation")
        new_keys = self.url_of(rotated)
        self.assertNotEqual(new_keys[1], old_keys[1])
        self.assertEqual(new_keys[0], old_keys[0], "the port's identity key stays")
        self.probe(old_keys, "the rotated-out key")
        self.roundtrip(new_keys, b"after the rotation")

    def test_deletion_cuts_the_live_session(self):
        self.start_controlled(["-m", AES128, "-k", b64(psk_of(AES128, seed=5))])
        keys = self.url_of(self.create("bob"))
        carol_keys = self.url_of(self.create("carol"))
        live, _ = self.open_session(keys, b"before the deletion")
        carol, carol_reader = self.open_session(carol_keys, b"carol stays")
        self.call("DeleteUser", {"name": "bob"})
        self.assert_cut(live, "deletion")
        self.probe(keys, "the deleted user")
        carol.sendall(chunk(carol_reader.sealer, b" alive"))
        self.assertEqual(carol_reader.read_chunk(), b" alive", "another user's session was cut")

    def test_a_shared_port_serves_one_generation(self):
        self.start_controlled(["-m", AES128, "-k", b64(psk_of(AES128, seed=6))])
        port = self.relay_port
        self.assert_api_error("FAILED_PRECONDITION",
                              f"port {port} serves Shadowsocks 2022 users (user \"default\"",
                              "CreateUser", {"name": "carl", "method": "aes-256-gcm"})
        self.assert_api_error("FAILED_PRECONDITION",
                              f"port {port} serves 2022-blake3-aes-128-gcm (user \"default\"): "
                              "one 2022 method per port",
                              "CreateUser", {"name": "dora", "method": AES256})
        self.assert_api_error("FAILED_PRECONDITION", "has no identity headers", "CreateUser",
                              {"name": "chad", "method": "2022-blake3-chacha20-poly1305"})
        self.assert_api_error("INVALID_ARGUMENT", "password: decodes to 5 bytes but "
                              "2022-blake3-aes-128-gcm needs 16", "CreateUser",
                              {"name": "erin", "method": AES128, "password": b64(b"short")})
        carl = self.create("carl", "aes-256-gcm", port=h.free_port())  # a port of its own
        self.assertTrue(carl["dedicated_port"])

    def test_a_2017_shared_port_and_a_2022_port_of_its_own_with_its_own_key(self):
        state = h.scratch_path("state-2017")
        self.start_controlled(["-m", "aes-256-gcm", "-k", "a 2017 password", "--state-dir",
                               state], name="ours-server-2017")
        self.assert_api_error("FAILED_PRECONDITION",
                              f"port {self.relay_port} serves AEAD-2017 users (user \"default\", "
                              "aes-256-gcm); a user of Shadowsocks 2022 needs another port",
                              "CreateUser", {"name": "dave", "method": AES256})
        own = h.free_port()
        dave = self.create("dave", AES256, port=own)
        keys = self.url_of(dave, port=own)
        self.assertEqual(len(keys[0]), 32)
        self.assertNotEqual(keys[0], keys[1])
        self.roundtrip(keys, b"dave on his own port", port=own, method=AES256)

        # The port's identity key is kept in the state directory: the URL survives a restart.
        h.stopped_log(self, self.server)
        self.start_controlled(["-m", "aes-256-gcm", "-k", "a 2017 password", "--state-dir",
                               state], name="ours-server-2017-again")
        again = self.call("GetUser", {"name": "dave"})
        self.assertEqual(again["access_url"], dave["access_url"])
        h.wait_until(lambda: self._accepts(own), 10, f"dedicated port {own} to open again")
        self.roundtrip(keys, b"dave after the restart", port=own, method=AES256)

    def test_a_2022_port_of_its_own_beside_a_2017_udp_server_relays_udp(self):
        self.start_controlled(["-m", "aes-256-gcm", "-k", "a 2017 password", "-u"],
                              name="ours-server-2017-udp")
        self.udp_echo = h.UdpEcho()
        self.addCleanup(self.udp_echo.stop)
        own = h.free_port()
        keys = self.url_of(self.create("dave", AES256, port=own), port=own)
        sock = self.udp_socket()
        session = os.urandom(8)
        for packet_id in range(3):
            self.udp_exchange(sock, keys, session, packet_id, b"dave %d" % packet_id, port=own,
                              method=AES256)
        self.send_udp(sock, [keys[1]], os.urandom(8), 0, b"no identity", self.udp_echo.port,
                      port=own, method=AES256)
        self.assert_udp_silent(sock, "dave's key without the identity header")
        self.assertEqual(self.udp_echo.received, 3)

    def test_a_port_of_its_own_follows_its_user_between_generations(self):
        """A user of a port of its own switched from AEAD-2017 to 2022 and back (UpdateUser
        method and password): the port's UDP server is replaced each time, so UDP keeps working
        in the new generation, as TCP does."""
        self.start_controlled(["-m", "aes-256-gcm", "-k", "a 2017 password", "-u"],
                              name="ours-server-switching")
        self.udp_echo = h.UdpEcho()
        self.addCleanup(self.udp_echo.stop)
        own = h.free_port()
        dave = self.create("dave", "aes-256-gcm", port=own)
        first = self.start_ss_tunnel_u(own, "aes-256-gcm", dave["password"], self.udp_echo.port,
                                       "dave-2017")
        first.settimeout(5)
        first.send(b"dave in 2017")
        self.assertEqual(first.recv(65535), b"dave in 2017")

        def switch(method):
            return self.call("UpdateUser", {"user": {"name": "dave", "method": method},
                                            "update_mask": "method,password"})

        keys = self.url_of(switch(AES256), port=own)
        self.roundtrip(keys, b"dave over TCP in 2022", port=own, method=AES256)
        sock = self.udp_socket()
        session = os.urandom(8)
        for packet_id in range(3):
            self.udp_exchange(sock, keys, session, packet_id, b"dave %d" % packet_id, port=own,
                              method=AES256)

        back = switch("aes-256-gcm")
        self.assertEqual(back["method"], "aes-256-gcm")
        self.send_udp(sock, keys, session, 3, b"2022 again", self.udp_echo.port, port=own,
                      method=AES256)
        self.assert_udp_silent(sock, "a 2022 packet after the switch back to 2017")
        second = self.start_ss_tunnel_u(own, "aes-256-gcm", back["password"],
                                        self.udp_echo.port, "dave-2017-again")
        second.settimeout(5)
        second.send(b"dave in 2017 again")
        self.assertEqual(second.recv(65535), b"dave in 2017 again")
        log = h.stopped_log(self, self.server)
        self.assertEqual(log.count(f"dedicated port {own} open for user dave"), 3, log[-3000:])

    @staticmethod
    def _accepts(port):
        try:
            with socket.create_connection((h.LOOPBACK, port), timeout=1):
                return True
        except OSError:
            return False

    def test_config_file_users_as_shadowsocks_rust_reads_them(self):
        ipsk = psk_of(AES256, seed=7)
        upsks = {"uma": os.urandom(32), "ulf": os.urandom(32)}
        config = {"method": AES256, "password": b64(ipsk),
                  "users": [{"name": n, "password": b64(k)} for n, k in upsks.items()]}
        path = h.scratch_path("server-2022-users.json")
        with open(path, "w") as f:
            json.dump(config, f)
        base = [h.Config.relay, "server", "-c", path, "-s", h.LOOPBACK, "--allow-private",
                "--control-listen", "off", "--metrics-listen", "off",
                "--handshake-timeout", str(HANDSHAKE_TIMEOUT)]
        check = subprocess.run(base + ["-p", "8388", "--check-config"], capture_output=True,
                               text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("(set)", check.stdout)
        for secret in [b64(ipsk)] + [b64(k) for k in upsks.values()]:
            self.assertNotIn(secret, check.stdout + check.stderr)
        self.assertIn("uma, ulf", check.stdout)

        self.relay_port = self.start_ours("ours-server-config-users",
                                          base + ["-p", 0, "-u"]).ready.port
        self.udp_echo = h.UdpEcho()
        self.addCleanup(self.udp_echo.stop)
        sock = self.udp_socket()
        for name, upsk in upsks.items():
            self.roundtrip([ipsk, upsk], f"{name} from the config file".encode(), method=AES256)
            self.udp_exchange(sock, [ipsk, upsk], os.urandom(8), 0, f"{name} over UDP".encode(),
                              method=AES256)
        self.probe(ipsk, "the identity key alone", method=AES256)

        config["users"][1]["password"] = b64(os.urandom(16))
        with open(path, "w") as f:
            json.dump(config, f)
        bad = subprocess.run(base + ["-p", "8388"], capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2, bad.stderr)
        self.assertIn("config: users[1].password: PSK: decodes to 16 bytes but "
                      "2022-blake3-aes-256-gcm needs 32", bad.stderr)


if __name__ == "__main__":
    h.main()
