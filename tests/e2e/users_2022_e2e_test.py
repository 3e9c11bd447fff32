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
  * The config file as shadowsocks-rust reads it ("password" the identity key, "users" with
    uPSKs); --check-config shows secrets as (set); a bad uPSK exits 2 naming users[i].password.

Every wait is bounded (socket timeouts, wait_until, subprocess timeouts)."""
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse

import e2e_harness as h
from ss2022_wire import (HANDSHAKE_TIMEOUT, ResponseReader, assert_refused, b64, chunk, keys_of,
                         psk_of, request)

TOKEN = "e2e-users-2022-token-0123456789"
AES128 = "2022-blake3-aes-128-gcm"
AES256 = "2022-blake3-aes-256-gcm"
# A live session of a rotated or deleted user ends once the new table reaches its worker, which
# is posted before the API call returns (as in users_e2e_test); slack for sanitizer builds.
CUT_DEADLINE = 1.5
TRAFFIC_DEADLINE = 10.0


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

        self.relay_port = self.start_ours("ours-server-config-users", base + ["-p", 0]).ready.port
        for name, upsk in upsks.items():
            self.roundtrip([ipsk, upsk], f"{name} from the config file".encode(), method=AES256)
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
