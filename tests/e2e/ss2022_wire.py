# SPDX-License-Identifier: Apache-2.0
"""A Shadowsocks 2022 TCP client written from the spec (PROTOCOL.md §2.4, SIP023 identity headers
§2.7), independent of our C++: BLAKE3 from blake3_ref.py (the test fixture of shared/vectors),
AES-GCM, ChaCha20-Poly1305 and AES-ECB from python3-cryptography. The e2e tests drive our server
with it on the wire, as another implementation's client would."""
import base64
import os
import socket
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

import blake3_ref
import e2e_harness as h

METHODS = {  # name: (key and salt size, AEAD)
    "2022-blake3-aes-128-gcm": (16, AESGCM),
    "2022-blake3-aes-256-gcm": (32, AESGCM),
    "2022-blake3-chacha20-poly1305": (32, ChaCha20Poly1305),
}
TAG = 16
# What the tests give the server (--handshake-timeout): a refused request's FIN comes between
# CLOSE_AFTER and CLOSE_BEFORE seconds after connecting.
HANDSHAKE_TIMEOUT = 2
CLOSE_AFTER = 1.8
CLOSE_BEFORE = 5.0


def psk_of(method, seed=0):
    size = METHODS[method][0]
    return bytes((seed + i) & 0xFF for i in range(size))


def b64(key):
    return base64.b64encode(key).decode()


def keys_of(password):
    """A client password "iPSK_1:...:uPSK" (or one PSK) as the list of raw keys."""
    return [base64.b64decode(part) for part in password.split(":")]


class Sealer:
    """One direction of a 2022 stream: the session subkey BLAKE3-derive_key("shadowsocks 2022
    session subkey", PSK || salt), a 12-byte little-endian nonce counter from 0."""

    def __init__(self, method, psk, salt):
        size, aead = METHODS[method]
        key = blake3_ref.blake3_derive_key("shadowsocks 2022 session subkey", psk + salt, size)
        self.aead = aead(key)
        self.nonce = 0

    def _nonce(self):
        n = self.nonce.to_bytes(12, "little")
        self.nonce += 1
        return n

    def seal(self, plain):
        return self.aead.encrypt(self._nonce(), plain, None)

    def open(self, sealed):
        return self.aead.decrypt(self._nonce(), sealed, None)  # raises InvalidTag


def user_hash(psk):
    """What an identity header carries: BLAKE3(PSK)[0..16]."""
    return blake3_ref.blake3_hash(psk, 16)


def identity_header(method, ipsk, salt, next_psk):
    """SIP023 TCP identity header: AES-ECB under BLAKE3-derive_key("shadowsocks 2022 identity
    subkey", iPSK || salt) of the next key's user hash."""
    size = METHODS[method][0]
    subkey = blake3_ref.blake3_derive_key("shadowsocks 2022 identity subkey", ipsk + salt, size)
    aes = Cipher(algorithms.AES(subkey), modes.ECB()).encryptor()
    return aes.update(user_hash(next_psk)) + aes.finalize()


def request(method, keys, host, port, payload, timestamp=None, salt=None, padding=b""):
    """salt | EIH... | Seal(type 0, timestamp, H) | Seal(address, P, padding, payload).
    `keys`: one PSK, or [iPSK_1, ..., iPSK_k, uPSK] (one identity header per iPSK; the uPSK
    keys the stream). Returns (wire, salt, sealer)."""
    keys = [keys] if isinstance(keys, bytes) else list(keys)
    size = METHODS[method][0]
    salt = salt or os.urandom(size)
    headers = b"".join(identity_header(method, keys[i], salt, keys[i + 1])
                       for i in range(len(keys) - 1))
    sealer = Sealer(method, keys[-1], salt)
    address = b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)
    variable = address + struct.pack(">H", len(padding)) + padding + payload
    ts = int(time.time()) if timestamp is None else timestamp
    fixed = struct.pack(">BQH", 0, ts, len(variable))
    return salt + headers + sealer.seal(fixed) + sealer.seal(variable), salt, sealer


def chunk(sealer, payload):
    return sealer.seal(struct.pack(">H", len(payload))) + sealer.seal(payload)


class ResponseReader:
    """The server's stream: salt | Seal(type 1, timestamp, request salt, L) | Seal(L bytes) |
    then Seal(be16 L) | Seal(L bytes) chunks, keyed with `psk` (the user's). Every check of
    §2.4 is asserted."""

    def __init__(self, test, sock, method, psk, request_salt):
        self.test, self.sock, self.method, self.psk = test, sock, method, psk
        self.request_salt = request_salt
        self.opener = None

    def read_first(self):
        """The salt, the header and the first payload."""
        size = METHODS[self.method][0]
        sock = self.sock
        salt = h.recv_exact(sock, size, "response salt")
        self.opener = Sealer(self.method, self.psk, salt)
        header = self.opener.open(h.recv_exact(sock, 1 + 8 + size + 2 + TAG, "response header"))
        kind, ts = struct.unpack(">BQ", header[:9])
        self.test.assertEqual(kind, 1, "response type byte")
        self.test.assertLessEqual(abs(int(time.time()) - ts), 30, "response timestamp")
        self.test.assertEqual(header[9:9 + size], self.request_salt, "echoed request salt")
        (length,) = struct.unpack(">H", header[9 + size:])
        return self.opener.open(h.recv_exact(sock, length + TAG, "first payload"))

    def read_chunk(self):
        """The next payload, or None at EOF."""
        head = self.sock.recv(2 + TAG, socket.MSG_WAITALL)
        if not head:
            return None
        (length,) = struct.unpack(">H", self.opener.open(head))
        return self.opener.open(h.recv_exact(self.sock, length + TAG, "payload chunk"))

    def read_all(self):
        data = bytearray(self.read_first())
        while True:
            more = self.read_chunk()
            if more is None:
                return bytes(data)
            data += more


def assert_refused(test, server_port, wire, what):
    """`wire` sent to our server (--handshake-timeout HANDSHAKE_TIMEOUT) gets no byte and a FIN
    at the handshake deadline, as any probe does."""
    sock = socket.create_connection((h.LOOPBACK, server_port), timeout=10.0)
    connected_at = time.monotonic()
    with sock:
        sock.sendall(wire)
        h.assert_silent_then_fin(test, sock, connected_at, CLOSE_AFTER, CLOSE_BEFORE, what)
