#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of tests/fuzz/corpus/<target>/seed-*: small valid messages for the
parsers, and for the structured targets the decision bytes that tests/fuzz/fuzz_input.h reads
(one method, one key, one real message of each kind...). The fuzzer starts from these; what it
finds goes into its own working directory (./dev fuzz), never here. Files named regression-*
are inputs of crashes found, kept by hand and never rewritten by this script.

    tests/fuzz/make_corpus.py          # rewrites the seed-* files
"""
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# ---- FuzzInput's encoding (fuzz_input.h): what each read takes ----

def u8(v):
    return bytes([v & 0xFF])


def u16(v):
    return struct.pack(">H", v)


def u64(v):
    return struct.pack(">Q", v)


def boolean(v):
    return u8(1 if v else 0)


def piece16(data):
    """piece(max) with 256 <= max < 65536: a two-byte length, then the bytes."""
    return u16(len(data)) + data


def cut_seeds(cuts):
    """cutSeeds(max_cuts) with max_cuts < 255: a count, then two bytes each."""
    return u8(len(cuts)) + b"".join(u16(c) for c in cuts)


def damage(kind=0, keep=0, at=0, mask=1):
    """Damage::read: kind (1 cut short, 2 one byte changed, 3 both), keep, at, mask - 1."""
    return u8(kind) + u16(keep) + u16(at) + u8(mask - 1)


# ---- messages ----

def socks_ipv4(ip, port):
    return b"\x01" + bytes(ip) + u16(port)


def socks_ipv6(ip, port):
    return b"\x04" + bytes(ip) + u16(port)


def socks_domain(host, port):
    return b"\x03" + u8(len(host)) + host + u16(port)


def read_address(kind, port, value):
    """readAddress in crypto_fuzzing.h: port, type (0 IPv4, 1 IPv6, 2 name), bytes."""
    if kind == 2:
        return u16(port) + u8(2) + value[:1] + u8(len(value) - 1) + value[1:]
    return u16(port) + u8(kind) + value


LOOPBACK6 = bytes(15) + b"\x01"
PAYLOAD = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"

# Method indices as pickMethod sees methodTable().
M2017 = {"aes-128-gcm": (0, 16), "aes-192-gcm": (1, 24), "aes-256-gcm": (2, 32),
         "chacha20-ietf-poly1305": (3, 32), "xchacha20-ietf-poly1305": (4, 32)}
M2022 = {"2022-blake3-aes-128-gcm": (0, 16), "2022-blake3-aes-256-gcm": (1, 32),
         "2022-blake3-chacha20-poly1305": (2, 32)}


def seeds_address():
    return {
        "ipv4": socks_ipv4([127, 0, 0, 1], 80),
        "ipv6": socks_ipv6(LOOPBACK6, 443),
        "domain": socks_domain(b"example.com", 443),
        "domain-then-data": socks_domain(b"a", 1) + PAYLOAD,
        "empty-domain": b"\x03\x00\x00\x50",
        "unknown-type": b"\x05\x01\x02\x03",
    }


def seeds_socks5():
    return {
        "greeting": b"\x05\x01\x00",
        "greeting-gssapi-and-none": b"\x05\x02\x01\x00",
        "connect-ipv4": b"\x05\x01\x00" + socks_ipv4([10, 0, 0, 1], 8080),
        "connect-domain": b"\x05\x01\x00" + socks_domain(b"example.com", 80),
        "udp-associate-ipv6": b"\x05\x03\x00" + socks_ipv6(bytes(16), 0),
        "udp-header": b"\x00\x00\x00" + socks_ipv4([8, 8, 8, 8], 53) + b"\x12\x34",
        "udp-header-fragment": b"\x00\x00\x01" + socks_domain(b"dns.example", 53),
    }


def uot_frame(kind, address, payload):
    """A non-connect frame: UoT address type (0 IPv4, 1 IPv6, 2 name), address, length, data."""
    return u8(kind) + address[1:] + u16(len(payload)) + payload


def seeds_uot():
    v4 = socks_ipv4([1, 1, 1, 1], 53)
    frames = uot_frame(0, v4, b"\x12\x34query") + uot_frame(2, socks_domain(b"a.b", 53), b"x")
    v2_request = b"\x00" + v4
    connect = b"\x01" + socks_domain(b"example.com", 53)
    return {
        "wire-request": b"\x00" + v2_request,
        "wire-frame": b"\x00" + frames,
        "wire-connect-frame": b"\x00" + u16(3) + b"abc",
        "channel-v1": b"\x01" + cut_seeds([5, 20]) + frames,
        "channel-v2": b"\x03" + cut_seeds([1, 9]) + v2_request + frames,
        "channel-v2-connect": b"\x03" + cut_seeds([4]) + connect + u16(2) + b"hi" + u16(0),
        "channel-v2-bad-frame": b"\x03" + cut_seeds([]) + v2_request + b"\x03\x00",
    }


def stream2017(method, real=True, max_payload=0x3FFF, writes=1, dmg=None, cuts=(), plain=PAYLOAD):
    index, salt = M2017[method]
    return (u8(index) + u8(0) + boolean(real) + bytes(range(salt)) + u16(max_payload - 1) +
            u8(writes - 1) + (dmg or damage()) + cut_seeds(list(cuts)) + plain)


def seeds_aead_stream():
    return {
        "aes-128-gcm": stream2017("aes-128-gcm"),
        "chacha-small-chunks": stream2017("chacha20-ietf-poly1305", max_payload=7, writes=3,
                                          cuts=[1, 30, 40, 200]),
        "xchacha-cut-short": stream2017("xchacha20-ietf-poly1305", dmg=damage(1, keep=70)),
        "aes-256-one-byte-changed": stream2017("aes-256-gcm", dmg=damage(2, at=40, mask=0x80)),
        "aes-192-raw": u8(1) + u8(0) + boolean(False) + bytes(24) + u16(0) + u8(0) + damage() +
                       cut_seeds([3]) + bytes(range(80)),
    }


def seeds_udp_codec():
    def packet(method, real=True, dmg=None, plain=socks_ipv4([8, 8, 8, 8], 53) + b"\x12\x34"):
        return u8(M2017[method][0]) + u8(0) + boolean(real) + (dmg or damage()) + plain
    return {
        "aes-128-gcm": packet("aes-128-gcm"),
        "chacha": packet("chacha20-ietf-poly1305"),
        "xchacha-changed": packet("xchacha20-ietf-poly1305", dmg=damage(2, at=3, mask=4)),
        "aes-256-cut": packet("aes-256-gcm", dmg=damage(1, keep=20)),
        "raw": u8(1) + u8(0) + boolean(False) + damage() + bytes(range(64)),
    }


def head2022(mode, method, users=None, skew=0):
    """The common decisions of both 2022 targets before the mode's own: mode, method, key,
    (users: only read for the AES methods), clock skew."""
    index, salt = M2022[method]
    out = u8(mode) + u8(index) + u8(0)
    if users is not None:
        out += boolean(users)
    return out + u8(skew + 40), salt


def seeds_aead2022_stream():
    seeds = {}
    aes, chacha = "2022-blake3-aes-128-gcm", "2022-blake3-chacha20-poly1305"

    def request(method, users, padding=(1, None), dmg=None, cuts=(), plain=PAYLOAD, skew=0,
                known=True):
        out, salt = head2022(0, method, users if "aes" in method else None, skew)
        if users:
            out += u8(1 if known else 0)
        out += read_address(2, 443, b"example.com")
        out += u8(padding[0]) + (u16(padding[1]) if padding[0] == 2 else b"")
        return (out + bytes(range(salt)) + u16(0xFFFE) + u8(0) + (dmg or damage()) +
                cut_seeds(list(cuts)) + plain)

    seeds["request-aes"] = request(aes, False)
    seeds["request-aes-users"] = request(aes, True, cuts=[16, 50, 100])
    seeds["request-aes256-unknown-user"] = request("2022-blake3-aes-256-gcm", True, known=False)
    seeds["request-chacha-padded-empty"] = request(chacha, None, padding=(2, 100), plain=b"")
    seeds["request-stale"] = request(chacha, None, skew=35)
    seeds["request-changed"] = request(aes, False, dmg=damage(2, at=60, mask=1))

    def response(method, other=False, cuts=(), plain=PAYLOAD):
        out, salt = head2022(1, method, False if "aes" in method else None)
        return (out + bytes(range(salt)) + bytes(range(100, 100 + salt)) +
                u8(0 if other else 1) + u16(0xFFFE) + u8(1) + damage() + cut_seeds(list(cuts)) +
                plain)

    seeds["response-aes"] = response(aes, cuts=[5, 70])
    seeds["response-other-request"] = response(chacha, other=True)

    def crafted_request(method, users, variable, length=None):
        out, salt = head2022(2, method, users if "aes" in method else None)
        out += bytes(range(salt))
        if users:
            out += u8(0)  # the configured user
        out += boolean(False) + boolean(False)  # client type, the sender's clock
        out += piece16(variable)
        out += boolean(length is not None) + (u16(length) if length is not None else b"")
        out += u8(1) + piece16(b"more") + boolean(False)  # one honest chunk
        return out + cut_seeds([])

    variable = socks_ipv4([127, 0, 0, 1], 80) + u16(3) + bytes(3) + b"hello"
    seeds["crafted-request"] = crafted_request(aes, False, variable)
    seeds["crafted-request-users"] = crafted_request(aes, True, variable)
    seeds["crafted-request-bad-length"] = crafted_request(chacha, None, variable, length=5)
    seeds["crafted-request-padding-overrun"] = crafted_request(
        aes, False, socks_domain(b"a", 1) + u16(500) + b"x")

    out, salt = head2022(3, chacha, None)
    seeds["crafted-response"] = (out + bytes(range(salt)) + bytes(range(salt)) + boolean(False) +
                                 boolean(False) + boolean(False) + piece16(b"first") +
                                 boolean(False) + u8(1) + piece16(b"second") + boolean(False) +
                                 cut_seeds([3]))
    out, salt = head2022(4, aes, True)
    seeds["raw-request-users"] = out + boolean(False) + bytes(salt) + cut_seeds([]) + bytes(range(90))
    return seeds


def seeds_aead2022_udp():
    seeds = {}
    aes, chacha = "2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305"

    def sealed(method, server, users, dmg=None, type_=None, skew=0, known=True):
        index, _ = M2022[method]
        out = u8(0) + u8(index) + u8(0) + boolean(server)
        if server and "aes" in method:
            out += boolean(users)
        out += u8(skew + 40)
        if users:
            out += u8(1 if known else 0)
        out += u8(1) if type_ is None else u8(0) + u8(type_)
        out += bytes(range(1, 9)) + u64(7) + bytes(range(11, 19)) + u16(16)
        out += read_address(0, 53, bytes([8, 8, 8, 8]))
        return out + (dmg or damage()) + b"\x12\x34query"

    seeds["sealed-aes-server"] = sealed(aes, True, False)
    seeds["sealed-aes-server-users"] = sealed(aes, True, True)
    seeds["sealed-aes-unknown-user"] = sealed(aes, True, True, known=False)
    seeds["sealed-aes-client"] = sealed("2022-blake3-aes-128-gcm", False, False)
    seeds["sealed-chacha-server"] = sealed(chacha, True, False)
    seeds["sealed-chacha-client-reflected"] = sealed(chacha, False, False, type_=0)
    seeds["sealed-stale"] = sealed(aes, True, False, skew=-31)
    seeds["sealed-changed"] = sealed(aes, True, False, dmg=damage(2, at=5, mask=0x10))

    def hand(method, server, users, body, named_user=True):
        index, _ = M2022[method]
        out = u8(1) + u8(index) + u8(0) + boolean(server)
        if server and "aes" in method:
            out += boolean(users)
        out += u8(40) + boolean(True) + piece16(body)
        if "chacha" in method:
            return out + bytes(range(24))
        out += bytes(range(16))
        if users:
            out += boolean(named_user)
        return out

    client_body = u8(0) + u64(0) + u16(2) + bytes(2) + socks_ipv4([1, 1, 1, 1], 53) + b"data"
    seeds["hand-aes-server"] = hand(aes, True, False, client_body)
    seeds["hand-aes-users"] = hand(aes, True, True, client_body)
    seeds["hand-chacha-server"] = hand(chacha, True, False, bytes(16) + client_body)
    server_body = u8(1) + u64(0) + bytes(8) + u16(0) + socks_domain(b"example.com", 53) + b"x"
    seeds["hand-aes-client"] = hand(aes, False, False, server_body)
    seeds["hand-padding-overrun"] = hand(aes, True, False, u8(0) + u64(0) + u16(900) + b"x")
    seeds["raw"] = u8(2) + u8(1) + u8(0) + boolean(True) + boolean(True) + u8(40) + bytes(range(80))
    return seeds


def seeds_config():
    server = {
        "server": ["0.0.0.0", "::"], "server_port": 8388, "method": "chacha20-ietf-poly1305",
        "mode": "tcp_and_udp", "timeout": 300, "nameserver": "1.1.1.1", "password": "secret-pass-1",
        "users": [{"name": "alice", "password": "alice-pass-1", "method": "aes-256-gcm"},
                  {"name": "bob", "key": "AAAAAAAAAAAAAAAAAAAAAA==", "method": "aes-128-gcm",
                   "port": 8389}],
    }
    local = {"server": "relay.example.com", "server_port": 8388, "password": "p",
             "method": "aes-256-gcm", "local_address": "127.0.0.1", "local_port": 1080,
             "mode": "tcp_and_udp", "udp_over_tcp": True}
    tunnel = {"server": "127.0.0.1", "server_port": 8388, "key": "AAAAAAAAAAAAAAAAAAAAAA==",
              "method": "aes-128-gcm", "tunnel_address": "1.1.1.1:53", "mode": "udp_only"}
    return {
        "server": u8(0) + json.dumps(server, indent=1).encode(),
        "local": u8(1) + json.dumps(local).encode(),
        "tunnel": u8(2) + json.dumps(tunnel).encode(),
        "comments": u8(0) + b'{\n  // a comment\n  "server_port": 0\n}',
        "not-an-object": u8(1) + b"[1, 2]",
        "wrong-type": u8(2) + b'{"timeout": "soon"}',
    }


def store_body(users):
    return {"generation": 3, "default_method": "aes-256-gcm", "users": users}


def store_file(body):
    """The user store's file: the body's SHA-256 over its compact, key-sorted text."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    doc = {"format": "shadowrelay-users", "version": 1, "body": body, "sha256": digest}
    return json.dumps(doc, indent=2).encode() + b"\n"


def seeds_user_store():
    user = {"name": "alice", "method": "aes-128-gcm", "password": "alice-password-1",
            "port": 0, "enabled": True,
            "limits": {"max_connections": 10, "data_quota_bytes": 1 << 30},
            "created": "2024-01-02T03:04:05.123456789Z",
            "traffic": {"bytes_up": 1, "bytes_down": 2, "tcp_connections": 3, "udp_packets": 4}}
    keyed = dict(user, name="bob", key="AAAAAAAAAAAAAAAAAAAAAA==", port=8389, enabled=False)
    del keyed["password"]
    body = store_body([user, keyed])
    good = store_file(body)
    body_text = json.dumps(body).encode()
    bad_user = json.dumps(store_body([dict(user, password="", key="")])).encode()
    return {
        "file": u8(0) + good,
        "file-empty": u8(0) + store_file({"generation": 0, "users": []}),
        "file-bad-checksum": u8(0) + good.replace(b'"generation": 3', b'"generation": 4'),
        "body": u8(1) + body_text,
        "body-no-secret": u8(1) + bad_user,
        "load-main": u8(2) + u8(1) + piece16(body_text) + u8(0),
        "load-falls-back": u8(2) + u8(2) + piece16(good[:40]) + u8(1) + piece16(body_text),
        "load-neither": u8(2) + u8(2) + piece16(b"{") + u8(1) + piece16(bad_user),
        "load-first-start": u8(2) + u8(0) + u8(0),
    }


TARGETS = {
    "address": seeds_address,
    "socks5": seeds_socks5,
    "uot": seeds_uot,
    "aead_stream": seeds_aead_stream,
    "udp_codec": seeds_udp_codec,
    "aead2022_stream": seeds_aead2022_stream,
    "aead2022_udp": seeds_aead2022_udp,
    "config": seeds_config,
    "user_store": seeds_user_store,
}


def main():
    for target, make in TARGETS.items():
        folder = os.path.join(HERE, "corpus", target)
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.startswith("seed-"):
                os.remove(os.path.join(folder, name))
        for name, data in make().items():
            with open(os.path.join(folder, "seed-" + name), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
