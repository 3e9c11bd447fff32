# SPDX-License-Identifier: Apache-2.0
"""An AEAD-2017 Shadowsocks client's crypto written from the specs (PROTOCOL.md §1: SIP004
chunks, the EVP_BytesToKey master key, the HKDF-SHA1 "ss-subkey" session key; SIP007's UDP
packet form), independent of our C++, with python3-cryptography's AEADs. The e2e tests speak
it on the wire, as another implementation's client would."""
import hashlib
import os
import struct
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TAG = 16
MAX_CHUNK = 0x3FFF


def master_key(password, size=32):
    """EVP_BytesToKey with MD5, as every Shadowsocks implementation derives it."""
    key, prev = b"", b""
    while len(key) < size:
        prev = hashlib.md5(prev + password.encode()).digest()
        key += prev
    return key[:size]


def subkey(master, salt):
    return HKDF(algorithm=hashes.SHA1(), length=len(master), salt=salt,
                info=b"ss-subkey").derive(master)


def recv_until(sock, n, deadline):
    """Exactly n bytes, or None on EOF; raises socket.timeout past the deadline."""
    data = b""
    while len(data) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        part = sock.recv(n - len(data))
        if not part:
            return None
        data += part
    return data


class AeadStream:
    """One direction of a SIP004 stream: salt, then [len+tag][payload+tag] chunks, a 12-byte
    little-endian nonce counter from 0. `aead`: the AEAD class (ChaCha20Poly1305, AESGCM)."""

    def __init__(self, master, salt, aead=ChaCha20Poly1305):
        self.aead = aead(subkey(master, salt))
        self.nonce = 0

    def _next(self):
        nonce = self.nonce.to_bytes(12, "little")
        self.nonce += 1
        return nonce

    def seal(self, data):
        out = b""
        for i in range(0, len(data), MAX_CHUNK):
            chunk = data[i:i + MAX_CHUNK]
            out += self.aead.encrypt(self._next(), struct.pack(">H", len(chunk)), None)
            out += self.aead.encrypt(self._next(), chunk, None)
        return out

    def open_from(self, sock, deadline):
        """The next chunk's payload, or None at EOF."""
        header = recv_until(sock, 2 + TAG, deadline)
        if header is None:
            return None
        length = struct.unpack(">H", self.aead.decrypt(self._next(), header, None))[0]
        body = recv_until(sock, length + TAG, deadline)
        if body is None:
            return None
        return self.aead.decrypt(self._next(), body, None)


def seal_packet(master, plain, aead=ChaCha20Poly1305):
    """A UDP packet: salt | AEAD(subkey, nonce 0, address + payload)."""
    salt = os.urandom(len(master))
    return salt + aead(subkey(master, salt)).encrypt(bytes(12), plain, None)


def open_packet(master, packet, aead=ChaCha20Poly1305):
    """The address + payload of a UDP packet; raises InvalidTag if it does not open."""
    size = len(master)
    return aead(subkey(master, packet[:size])).decrypt(bytes(12), packet[size:], None)
