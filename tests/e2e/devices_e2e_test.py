#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Per-user device limits (issue 18 §1) on our server, with clients written from the specs
that bind their source address: devices are 127.0.0.2, 127.0.0.3, 127.0.0.4 (all loopback).

For an AEAD-2017 user (SIP004/SIP007 client here) and a Shadowsocks 2022 user with identity
headers (ss2022_wire.py), created through the control API with limits.max_devices 2 and a short
--device-window:

  * two devices relay TCP (echo round trips); a third is refused quietly (no byte, the
    connection ends, nothing reaches the target) and counted in
    shadowrelay_user_refused_total{reason="over_devices"}; shadowrelay_user_devices says 2;
  * the two counted devices keep working: their open sessions go on, new sessions of theirs
    are admitted, and so are UDP associations of theirs; a UDP association from the third
    device is refused (no reply, nothing reaches the UDP echo) and counted;
  * GetUser's devices: count 2, each active, the addresses shown as a keyed hash (16 hex
    digits, stable between calls) or, with --show-client-addresses, as the addresses;
  * once a device's sessions end, it still counts within the window (the third is still
    refused) and stops counting after it: the third device is admitted then;
  * UpdateUser with limits.maxDevices raises the limit at once;
  * a config file user with "max_devices" (and "device_window": 0, a device counts while it is
    connected) is limited the same way; --check-config shows the limit, a bad value exits 2
    naming users[0].max_devices.

Every wait is bounded (socket timeouts, wait_until)."""
import json
import os
import re
import socket
import struct
import subprocess
import time

import e2e_harness as h
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import aead_wire
import ss2022_wire as w

TOKEN = "e2e-devices-token-0123456789abcdef"
METHOD_2017 = "aes-256-gcm"
METHOD_2022 = "2022-blake3-aes-128-gcm"
WINDOW = 3  # --device-window, seconds
HANDSHAKE_TIMEOUT = 2
DEVICES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
QUIET = 1.0  # seconds a refused datagram is given to (wrongly) produce a reply


def socks_ipv4(host, port):
    return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)


class Session2017:
    def __init__(self, sock, master):
        self.sock, self.master = sock, master
        self.salt = os.urandom(len(master))
        self.sealer = aead_wire.AeadStream(master, self.salt, AESGCM)
        self.opener = None

    def start(self, target_port, payload):
        self.sock.sendall(self.salt + self.sealer.seal(socks_ipv4(h.LOOPBACK, target_port) +
                                                        payload))

    def send(self, payload):
        self.sock.sendall(self.sealer.seal(payload))

    def recv(self, n):
        deadline = time.monotonic() + 10
        if self.opener is None:
            salt = aead_wire.recv_until(self.sock, len(self.master), deadline)
            if salt is None:
                raise AssertionError("the server closed without a response")
            self.opener = aead_wire.AeadStream(self.master, salt, AESGCM)
        got = b""
        while len(got) < n:
            more = self.opener.open_from(self.sock, deadline)
            if more is None:
                raise AssertionError("the server closed the stream early")
            got += more
        return got


class Session2022:
    def __init__(self, sock, keys, test):
        self.sock, self.keys, self.test = sock, keys, test
        self.reader = None
        self.sealer = None
        self.pending = b""

    def start(self, target_port, payload):
        wire, salt, self.sealer = w.request(METHOD_2022, self.keys, h.LOOPBACK, target_port,
                                            payload)
        self.sock.sendall(wire)
        self.reader = w.ResponseReader(self.test, self.sock, METHOD_2022, self.keys[-1], salt)
        self.first = True

    def send(self, payload):
        self.sock.sendall(w.chunk(self.sealer, payload))

    def recv(self, n):
        got = b""
        while len(got) < n:
            if self.first:
                got += self.reader.read_first()
                self.first = False
            else:
                got += self.reader.read_chunk() or self.test.fail("the echo ended early")
        return got


class DevicesTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("device limits are our server's")
        self.echo = self.add_peer(h.EchoServer())
        self.udp_echo = h.UdpEcho()
        self.addCleanup(self.udp_echo.stop)

    def start_controlled(self, extra):
        token_file = h.scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        argv = [h.Config.relay, "server", "-s", h.LOOPBACK, "-p", 0, "--allow-private", "-u",
                "--metrics-listen", f"{h.LOOPBACK}:0", "--control-listen", f"{h.LOOPBACK}:0",
                "--control-token-file", token_file, "--handshake-timeout", HANDSHAKE_TIMEOUT,
                "--device-window", WINDOW] + list(extra)
        if h.Config.verbose:
            argv.append("-v")
        self.server = self.start_ours("ours-server-devices", argv)
        self.relay_port = self.server.ready.port
        self.api_port = self.server.ready.control[1]
        self.metrics_port = self.server.ready.metrics[1]

    def call(self, method, request_json):
        return h.grpc_api(self.api_port, f"shadowrelay.v1.UserService/{method}", request_json,
                          TOKEN)

    def metric(self, name, **labels):
        return h.metric_sum(self.metrics_port, name, labels)

    def refusals(self, user):
        return self.metric("shadowrelay_user_refused_total", user=user, reason="over_devices")

    # --- the client of one user, from a chosen source address -----------------------------

    def tcp_socket(self, source):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect((h.LOOPBACK, self.relay_port))
        return sock

    def session(self, source):
        sock = self.tcp_socket(source)
        if self.edition == 2017:
            return Session2017(sock, self.master)
        return Session2022(sock, self.keys, self)

    def open_session(self, source, payload=b"hello"):
        """A session from `source` to the echo server; returns it once `payload` came back."""
        session = self.session(source)
        session.start(self.echo.port, payload)
        self.assertEqual(session.recv(len(payload)), payload, f"echo through {source}")
        return session

    def still_works(self, session, what):
        payload = os.urandom(700)
        session.send(payload)
        self.assertEqual(session.recv(len(payload)), payload, what)

    def assert_refused(self, source):
        """A session from `source` gets no byte and ends; nothing reaches the target."""
        accepted = self.echo.accepted
        session = self.session(source)
        session.start(self.echo.port, b"let me in")
        sock = session.sock
        sock.settimeout(HANDSHAKE_TIMEOUT + 5.0)
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            self.fail(f"the session from {source} was neither answered nor closed")
        self.assertEqual(data, b"", f"the refused session from {source} got bytes")
        self.assertEqual(self.echo.accepted, accepted, f"{source} reached the target")

    def udp_socket(self, source):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((source, 0))
        sock.settimeout(5)
        return sock

    def udp_packet(self, payload, session_id):
        address = socks_ipv4(h.LOOPBACK, self.udp_echo.port)
        if self.edition == 2017:
            return aead_wire.seal_packet(self.master, address + payload, AESGCM)
        return w.client_packet(METHOD_2022, self.keys, session_id, 1, address, payload)

    def open_udp_reply(self, data):
        if self.edition == 2017:
            return aead_wire.open_packet(self.master, data, AESGCM)[7:]  # after the source
        return w.ServerPacket(METHOD_2022, self.keys[-1], data).payload

    def udp_exchange(self, source):
        sock = self.udp_socket(source)
        payload = os.urandom(64)
        sock.sendto(self.udp_packet(payload, os.urandom(8)), (h.LOOPBACK, self.relay_port))
        data, _ = sock.recvfrom(70000)
        self.assertEqual(self.open_udp_reply(data), payload, f"UDP echo through {source}")

    def assert_udp_refused(self, source):
        received = self.udp_echo.received
        sock = self.udp_socket(source)
        sock.sendto(self.udp_packet(b"let me in", os.urandom(8)), (h.LOOPBACK, self.relay_port))
        sock.settimeout(QUIET)
        with self.assertRaises(socket.timeout, msg=f"UDP from {source} was answered"):
            sock.recvfrom(70000)
        self.assertEqual(self.udp_echo.received, received, f"UDP from {source} reached the echo")

    def devices(self, name):
        return self.call("GetUser", {"name": name}).get("devices", {})

    # --- the scenario, for both editions --------------------------------------------------

    def run_scenario(self, name, shown):
        a, b, c = DEVICES
        first = self.open_session(a)
        second = self.open_session(b)
        self.assertEqual(self.metric("shadowrelay_user_devices", user=name), 2)

        refused = self.refusals(name)
        self.assert_refused(c)
        h.wait_until(lambda: self.refusals(name) > refused, 5, "the over_devices refusal")

        # The counted devices keep working: open sessions, new sessions, UDP associations.
        self.still_works(first, f"{a}'s open session")
        self.still_works(second, f"{b}'s open session")
        third = self.open_session(a, b"again")
        self.udp_exchange(a)
        refused = self.refusals(name)
        self.assert_udp_refused(c)
        h.wait_until(lambda: self.refusals(name) > refused, 5, "the UDP over_devices refusal")

        devices = self.devices(name)
        self.assertEqual(devices.get("count"), 2, devices)
        listed = devices.get("list", [])
        self.assertEqual(len(listed), 2, devices)
        self.assertTrue(all(d.get("active") for d in listed), devices)
        self.assertTrue(all(re.fullmatch(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", d.get("last_seen", ""))
                            for d in listed), devices)
        addresses = sorted(d["address"] for d in listed)
        if shown:
            self.assertEqual(addresses, [a, b])
        else:
            for address in addresses:
                self.assertRegex(address, r"^[0-9a-f]{16}$")
            self.assertEqual(sorted(d["address"] for d in self.devices(name)["list"]),
                             addresses, "a device's hash changed between two calls")
        self.assertEqual(self.metric("shadowrelay_user_devices", user=name), 2)

        # b's session ends: it counts for the window still, then makes room for c.
        second.sock.close()
        h.wait_until(lambda: sum(1 for d in self.devices(name)["list"] if d.get("active")) == 1,
                     5, f"{b} no longer active")
        ended = time.monotonic()
        self.assert_refused(c)
        self.assertLess(time.monotonic() - ended, WINDOW,
                        "the refusal within the window came too late to prove anything")
        h.wait_until(lambda: self.devices(name).get("count") == 1, WINDOW + 5,
                     f"{b} to stop counting after the window")
        fourth = self.open_session(c)
        self.still_works(first, f"{a}'s open session after {c} joined")
        self.still_works(third, f"{a}'s second session after {c} joined")
        self.still_works(fourth, f"{c}'s session")
        self.assertEqual(self.metric("shadowrelay_user_devices", user=name), 2)
        # b is new again now, beyond the limit; raising the limit admits it at once.
        self.assert_refused(b)
        self.call("UpdateUser", {"user": {"name": name, "limits": {"maxDevices": 3}},
                                 "update_mask": "limits.maxDevices"})
        self.open_session(b)
        self.assertEqual(self.call("GetUser", {"name": name})["limits"].get("max_devices"), 3)

    def test_aead_2017_user(self):
        self.start_controlled(["--show-client-addresses"])
        user = self.call("CreateUser", {"name": "alice", "method": METHOD_2017,
                                        "limits": {"max_devices": 2}})
        self.assertEqual(user["limits"].get("max_devices"), 2)
        self.edition = 2017
        self.master = aead_wire.master_key(user["password"], 32)
        self.run_scenario("alice", shown=True)

    def test_2022_user_with_identity_headers(self):
        ipsk = w.psk_of(METHOD_2022, seed=7)
        self.start_controlled(["-m", METHOD_2022, "-k", w.b64(ipsk)])
        user = self.call("CreateUser", {"name": "bob", "method": METHOD_2022,
                                        "limits": {"max_devices": 2}})
        self.edition = 2022
        self.keys = [ipsk, w.keys_of(user["password"])[0]]
        self.run_scenario("bob", shown=False)

    def test_config_file_user(self):
        password = "carol-secret-pw"
        config = {"method": METHOD_2017, "device_window": 0,
                  "users": [{"name": "carol", "password": password, "max_devices": 1}]}
        path = h.scratch_path("devices-config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        base = [h.Config.relay, "server", "-c", path, "-s", h.LOOPBACK, "--allow-private",
                "--metrics-listen", "off", "--control-listen", "off",
                "--handshake-timeout", str(HANDSHAKE_TIMEOUT)]
        check = subprocess.run(base + ["-p", "8388", "--check-config"], capture_output=True,
                               text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("carol (max_devices 1)", check.stdout)
        self.assertRegex(check.stdout, r"device_window\s+0\b")
        self.relay_port = self.start_ours("ours-server-devices-config", base + ["-p", 0]).ready.port
        self.edition = 2017
        self.master = aead_wire.master_key(password, 32)
        a, b, _ = DEVICES
        first = self.open_session(a)
        self.assert_refused(b)
        self.still_works(first, f"{a}'s session")
        first.sock.close()
        # A window of 0: b is admitted as soon as a's session ended on the server.
        end = time.monotonic() + 5
        while True:
            try:
                self.open_session(b)
                break
            except (AssertionError, OSError):
                self.assertLess(time.monotonic(), end, f"{b} still refused after {a} left")
                time.sleep(0.1)

        config["users"][0]["max_devices"] = -1
        with open(path, "w") as f:
            json.dump(config, f)
        bad = subprocess.run(base + ["-p", "8388"], capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2, bad.stderr)
        self.assertIn("users[0].max_devices: must be a whole number", bad.stderr)


if __name__ == "__main__":
    h.main()
