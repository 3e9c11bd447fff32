# SPDX-License-Identifier: Apache-2.0
"""A Shadowsocks 2022 client written from the spec (TCP §2.4, UDP §2.5 and §2.6, SIP023 identity
headers §2.7 over both), independent of our C++: BLAKE3 from blake3_ref.py (the test fixture of shared/vectors),
AES-GCM, ChaCha20-Poly1305 and AES-ECB from python3-cryptography. The e2e tests drive our server
with it on the wire, as another implementation's client would."""
import base64
import functools
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
CHACHA = "2022-blake3-chacha20-poly1305"
CLIENT_TYPE, SERVER_TYPE = 0, 1
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


@functools.lru_cache(maxsize=1 << 16)  # pure; BLAKE3 in Python costs ~0.1 ms a call
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


# --- XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03) ---

def _rotl(v, n):
    return ((v << n) | (v >> (32 - n))) & 0xFFFFFFFF


def _quarter_round(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF
    s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF
    s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    """§2.2: the ChaCha20 state (constants, key, 16-byte nonce), 20 rounds, no final addition;
    the subkey is words 0..3 and 12..15."""
    state = list(struct.unpack("<4I", b"expand 32-byte k")) + \
        list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _quarter_round(state, 0, 4, 8, 12)
        _quarter_round(state, 1, 5, 9, 13)
        _quarter_round(state, 2, 6, 10, 14)
        _quarter_round(state, 3, 7, 11, 15)
        _quarter_round(state, 0, 5, 10, 15)
        _quarter_round(state, 1, 6, 11, 12)
        _quarter_round(state, 2, 7, 8, 13)
        _quarter_round(state, 3, 4, 9, 14)
    return struct.pack("<8I", *(state[0:4] + state[12:16]))


def xchacha_aead(key, nonce24):
    """§2.3: ChaCha20-Poly1305 under HChaCha20(key, nonce[0..16]) with the 12-byte nonce
    0^4 || nonce[16..24]. Returns (aead, nonce12)."""
    return ChaCha20Poly1305(hchacha20(key, nonce24[:16])), b"\x00" * 4 + nonce24[16:]


# --- Shadowsocks 2022 UDP packets ---

def socks_ipv4(host, port):
    return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)


def parse_socks_address(data):
    """(address, size) of the SOCKS5 address at the start of `data` (IPv4, name or IPv6)."""
    kind = data[0]
    if kind == 1:
        return (socket.inet_ntoa(data[1:5]), struct.unpack(">H", data[5:7])[0]), 7
    if kind == 3:
        n = data[1]
        return (data[2:2 + n].decode(), struct.unpack(">H", data[2 + n:4 + n])[0]), 4 + n
    if kind == 4:
        host = socket.inet_ntop(socket.AF_INET6, data[1:17])
        return (host, struct.unpack(">H", data[17:19])[0]), 19
    raise AssertionError(f"address type {kind}")


def aes_block(psk):
    return Cipher(algorithms.AES(psk), modes.ECB())


@functools.lru_cache(maxsize=1 << 16)  # pure: one derivation per session (cluster bench)
def session_subkey(method, psk, session_id):
    size = METHODS[method][0]
    return blake3_ref.blake3_derive_key("shadowsocks 2022 session subkey", psk + session_id, size)


def udp_identity_header(ipsk, next_psk, separate_header):
    """SIP023 UDP identity header (§2.7): AES-ECB(iPSK, BLAKE3(next key)[0..16] XOR the
    plaintext separate header)."""
    plain = bytes(a ^ b for a, b in zip(user_hash(next_psk), separate_header))
    encryptor = aes_block(ipsk).encryptor()
    return encryptor.update(plain) + encryptor.finalize()


def seal_packet(method, keys, session_id, packet_id, body, nonce=None):
    """One packet whose body (from the type byte on) is `body`. `keys`: one PSK, or (AES
    methods) [iPSK_1, ..., iPSK_k, uPSK]: the separate header under iPSK_1, one identity header
    per iPSK, the body under the uPSK."""
    keys = [keys] if isinstance(keys, bytes) else list(keys)
    header = session_id + struct.pack(">Q", packet_id)
    if method == CHACHA:
        assert len(keys) == 1, "ChaCha 2022 has no identity headers"
        nonce = nonce or os.urandom(24)
        aead, n12 = xchacha_aead(keys[0], nonce)
        return nonce + aead.encrypt(n12, header + body, None)
    encryptor = aes_block(keys[0]).encryptor()
    sealed_header = encryptor.update(header) + encryptor.finalize()
    identity = b"".join(udp_identity_header(keys[i], keys[i + 1], header)
                        for i in range(len(keys) - 1))
    return sealed_header + identity + AESGCM(session_subkey(method, keys[-1], session_id)).encrypt(
        header[4:], body, None)


def client_packet(method, keys, session_id, packet_id, address, payload, timestamp=None,
                  padding=b""):
    ts = int(time.time()) if timestamp is None else timestamp
    body = struct.pack(">BQH", CLIENT_TYPE, ts, len(padding)) + padding + address + payload
    return seal_packet(method, keys, session_id, packet_id, body)


def open_packet(method, psk, packet):
    """(session ID, packet ID, body) of a packet; raises InvalidTag if it does not open."""
    if method == CHACHA:
        aead, n12 = xchacha_aead(psk, packet[:24])
        plain = aead.decrypt(n12, packet[24:], None)
        return plain[:8], struct.unpack(">Q", plain[8:16])[0], plain[16:]
    decryptor = aes_block(psk).decryptor()
    header = decryptor.update(packet[:16]) + decryptor.finalize()
    body = AESGCM(session_subkey(method, psk, header[:8])).decrypt(header[4:], packet[16:], None)
    return header[:8], struct.unpack(">Q", header[8:])[0], body


class ServerPacket:
    """A server packet opened and parsed: type 1 | timestamp | client session ID | P | padding
    | source address | payload."""

    def __init__(self, method, psk, packet):
        self.session_id, self.packet_id, body = open_packet(method, psk, packet)
        self.type, self.timestamp = struct.unpack(">BQ", body[:9])
        self.client_session_id = body[9:17]
        (padding,) = struct.unpack(">H", body[17:19])
        self.source, size = parse_socks_address(body[19 + padding:])
        self.payload = body[19 + padding + size:]
