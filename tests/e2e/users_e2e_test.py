# SPDX-License-Identifier: Apache-2.0
"""Users of the control plane end to end, beyond control_e2e_test: our server with its gRPC API
(driven by grpc_call), shadowsocks-libev's ss-local and ss-tunnel as the clients.

  * UDP: users of three methods on one shared port (trial decryption in UdpServer), each behind
    its own `ss-tunnel -u`; a deleted user's datagrams stop coming back, the others' do not;
    per-user UDP counters exact.
  * Data quota: a download beyond the quota, then new sessions refused (GetUser shows the
    counters and quota_exceeded) until UpdateUser raises it; a running session is closed once
    the quota is reached (UserTable::keeps, Worker::setUsers); UDP datagrams of a user over
    its quota are dropped, the port's other users still served.
  * TLS on the control API in the process that loaded the BoringSSL plugin: TLS, mutual TLS,
    plaintext refused; relaying through the plugin's AEADs.
  * `-m METHOD` without `-k`: GetDefaults and CreateUser without a method use it.
  * No password, generated key or API token reaches the server's log, even with -v.
  * Disabling a user (UpdateUser enabled=false) cuts its running download like a deletion,
    refuses its new sessions before the target, leaves the port's other users running;
    re-enabling relays again at once.
  * A dedicated port with -u: UDP relayed through ss-tunnel -u at once, listed by GetStatus,
    closed with its user (ICMP port unreachable, bindable again).
  * Server reflection as grpcurl uses it (reflection_call): the services listed, each one's
    file and every dependency by name resolve into a DescriptorPool; the token is needed.
  * Sessions refused over max_connections are counted exactly in
    shadowrelay_tcp_refused_over_limit_total{user}; limits set with camelCase mask paths.

Every wait is bounded (wait_until, socket timeouts, subprocess timeouts).
"""
import base64
import errno
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from e2e_harness import (LOOPBACK, ApiError, Config, Nginx, RelayTestCase, UdpEcho, curl,
                         free_port, grpc_api, main, nginx, scratch_path, sha256, socks5_connect,
                         stopped_log, stopped_udp_summary, tool, wait_listening, wait_until)

TOKEN = "e2e-users-token-0123456789"
# Traffic reaches the registry once a second (worker sample, then the registry tick): counters
# and quota decisions follow within about two seconds. Waits allow for slow sanitizer builds.
TRAFFIC_DEADLINE = 10.0
# A running session of a disabled (or deleted) user ends once the new table reaches its worker,
# which is posted before UpdateUser returns; control_e2e_test holds a deletion to 1 s. The
# slack is for sanitizer builds.
CUT_DEADLINE = 1.5


def api(port, method, request, token=TOKEN, tls=(), timeout=30):
    return grpc_api(port, method, request, token, tls=tls, timeout=timeout)


def traffic(user, field):
    """A TrafficCounters field of a User in JSON (uint64 are strings there)."""
    return int(user.get("traffic", {}).get(field) or 0)


class ThrottledSource:
    """A TCP server that streams random bytes to each client at about `rate` bytes/s, for at
    most `seconds` (bounded either way)."""

    CHUNK = 16 << 10

    def __init__(self, rate=4 << 20, seconds=30):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.interval = self.CHUNK / rate
        self.seconds = seconds
        self.accepted = 0  # connections that reached this target
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn):
        end = time.monotonic() + self.seconds
        chunk = os.urandom(self.CHUNK)
        conn.settimeout(5)
        with conn:
            try:
                while time.monotonic() < end and not self.stopping.wait(self.interval):
                    conn.sendall(chunk)
            except OSError:
                pass

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(5)


def drain_until_closed(sock, limit):
    """Reads `sock` until EOF or an error, for at most `limit` s: (bytes read, seconds taken,
    how it ended: "EOF", the error's name, or "still open")."""
    start = time.monotonic()
    got = 0
    sock.settimeout(0.25)
    while time.monotonic() - start < limit:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError as e:
            return got, time.monotonic() - start, type(e).__name__
        if not data:
            return got, time.monotonic() - start, "EOF"
        got += len(data)
    return got, time.monotonic() - start, "still open"


class UsersTestCase(RelayTestCase):
    """Our server with the control API, every listener on port 0."""

    def setUp(self):
        super().setUp()
        self.require_ours("the control API")
        self.api_tls = ()  # grpc_call options for this server's API

    def start_controlled(self, extra=(), name="ours-server-api", metrics_listen="off"):
        """Starts the server (no -k unless in `extra`); sets self.relay_port and self.api_port
        (and self.metrics_port with /metrics on) from its ready line; returns the relay port."""
        token_file = scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", 0, "--allow-private",
                "--metrics-listen", metrics_listen,
                "--control-listen", f"{LOOPBACK}:0",
                "--control-token-file", token_file] + list(extra)
        if Config.verbose:
            argv.append("-v")
        self.server = self.start_ours(name, argv)
        ready = self.server.ready
        self.relay_port = ready.port
        self.api_port = ready.control[1]
        if ready.metrics is not None:
            self.metrics_port = ready.metrics[1]
        return self.relay_port

    def call(self, method, request=None, **kwargs):
        kwargs.setdefault("tls", self.api_tls)
        return api(self.api_port, method, request or {}, **kwargs)

    def create(self, name, method=None, **fields):
        request = {"name": name}
        if method:
            request["method"] = method
        request.update(fields)
        return self.call("shadowrelay.v1.UserService/CreateUser", request)

    def get(self, name):
        return self.call("shadowrelay.v1.UserService/GetUser", {"name": name})

    def ss_local(self, user):
        return self.start_local(self.relay_port, user["method"], impl="libev",
                                password=user["password"])

    def ss_tunnel_u(self, user, echo_port, server_port=None):
        """shadowsocks-libev's ss-tunnel -u for `user` (to the shared port unless
        `server_port`), forwarding to the UDP echo; a UDP socket that talks to it."""
        return self.start_ss_tunnel_u(server_port or self.relay_port, user["method"],
                                      user["password"], echo_port, user["name"])

    @staticmethod
    def roundtrip(sock, payload, timeout):
        """Sends `payload`; the reply, or None if nothing came back within `timeout` s."""
        sock.settimeout(timeout)
        sock.send(payload)
        try:
            return sock.recv(70000)
        except socket.timeout:
            return None

    def fetch_ok(self, local_port, name=Nginx.SMALL):
        site = nginx()
        result = curl(site.url(name), socks5_port=local_port, max_time=20)
        size, digest = site.files[name]
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual(len(result.body), size)
        self.assertEqual(sha256(result.body), digest)

    def fetch_fails(self, local_port):
        result = curl(nginx().url(Nginx.SMALL), socks5_port=local_port, max_time=5)
        self.assertNotEqual(result.code, 0, f"the fetch should have failed: {result}")
        self.assertEqual(result.body, b"", "bytes came back through a refused session")

    def download(self, local_port, source, at_least, what):
        """A SOCKS5 session to `source` through ss-local, read until `at_least` bytes came."""
        sock = socks5_connect(local_port, LOOPBACK, source.port)
        self.addCleanup(sock.close)
        sock.settimeout(10)
        received = 0
        end = time.monotonic() + 20
        while received < at_least and time.monotonic() < end:
            data = sock.recv(65536)
            self.assertTrue(data, f"{what}: the stream ended after {received} bytes")
            received += len(data)
        self.assertGreaterEqual(received, at_least, f"{what}: too slow")
        return sock

    def assert_no_byte(self, local_port, source, what, wait=2.0):
        """A new session through ss-local to `source` gets no byte within `wait` s (ss-local
        answers SOCKS5 before the server decides, so the refusal shows as a silent or closed
        stream)."""
        try:
            sock = socks5_connect(local_port, LOOPBACK, source.port, timeout=10)
        except (AssertionError, OSError):
            return  # refused already at the SOCKS5 step
        with sock:
            got, took, how = drain_until_closed(sock, wait)
        self.assertEqual(got, 0, f"{what}: {got} bytes came back ({how} after {took:.2f} s)")


# --------------------------------------------------------------------------------------------
# 1. UDP, several users on the shared port


class UdpUsersTest(UsersTestCase):
    SIZES = (1, 100, 512, 900, 1200)  # ss-tunnel's UDP packets stay under 1397 bytes

    def test_users_of_three_methods_share_the_udp_port_until_one_is_deleted(self):
        self.start_controlled(extra=["-u"])
        echo = UdpEcho()
        self.addCleanup(echo.stop)
        # Salts of 16 (aes-128-gcm) and 32 bytes: a trial with the wrong method must fail
        # cleanly too.
        users = [self.create(name, method) for name, method in
                 (("uma", "aes-128-gcm"), ("ulf", "chacha20-ietf-poly1305"),
                  ("ute", "aes-256-gcm"))]
        socks = {u["name"]: self.ss_tunnel_u(u, echo.port) for u in users}
        sent = {u["name"]: [0, 0] for u in users}  # datagrams, payload bytes

        def rounds(names, count):
            # Interleaved: from one client IP, the user matched last is never the next one,
            # so the per-IP hint misses and the port's users are tried in turn.
            for i in range(count):
                for name in names:
                    payload = os.urandom(self.SIZES[i % len(self.SIZES)])
                    reply = self.roundtrip(socks[name], payload, timeout=3)
                    self.assertEqual(reply, payload,
                                     f"round {i}: {name}'s {len(payload)}-byte datagram "
                                     f"{'did not come back' if reply is None else 'changed'}")
                    sent[name][0] += 1
                    sent[name][1] += len(payload)

        rounds(["uma", "ulf", "ute"], 5)
        self.call("shadowrelay.v1.UserService/DeleteUser", {"name": "ulf"})
        # The table swap is posted to the workers before DeleteUser returns: ulf's datagrams
        # no longer open (its association is dropped, and no key of the port opens them).
        lost = 0
        for i in range(3):
            reply = self.roundtrip(socks["ulf"], f"after delete {i}".encode(), timeout=1)
            self.assertIsNone(reply, f"datagram {i} of the deleted user came back")
            lost += 1
        rounds(["uma", "ute"], 3)
        with self.assertRaises(ApiError) as err:
            self.get("ulf")
        self.assertEqual(err.exception.code, "NOT_FOUND")

        # Per-user counters: every datagram both ways, payload bytes exactly (the TCP
        # readiness probe through each ss-tunnel moved no byte).
        for name in ("uma", "ute"):
            packets, size = sent[name]
            wait_until(lambda: traffic(self.get(name), "udp_packets") >= 2 * packets,
                       TRAFFIC_DEADLINE, f"{name}'s udp_packets to reach {2 * packets}")
            got = self.get(name)
            self.assertEqual(traffic(got, "udp_packets"), 2 * packets, got)
            self.assertEqual(traffic(got, "bytes_up"), size, got)
            self.assertEqual(traffic(got, "bytes_down"), size, got)

        stats = stopped_udp_summary(self, self.server)
        relayed = sum(n for n, _ in sent.values())
        self.assertEqual(stats["packets_in"], relayed, stats)
        self.assertEqual(stats["packets_out"], relayed, stats)
        self.assertEqual(stats["open"], lost, stats)  # only the deleted user's, counted
        self.assertEqual(stats["associations"], 3, stats)  # one per ss-tunnel
        self.assertEqual(echo.received, relayed)


# --------------------------------------------------------------------------------------------
# 2. Data quota


class QuotaTest(UsersTestCase):
    def test_quota_refuses_new_sessions_until_raised(self):
        self.start_controlled()
        quota = 32 << 10  # one 64 KiB download is beyond it
        quinn = self.create("quinn", "aes-256-gcm", limits={"data_quota_bytes": quota})
        self.assertEqual(int(quinn["limits"]["data_quota_bytes"]), quota)
        self.assertFalse(quinn["quota_exceeded"])
        local = self.ss_local(quinn)
        # The download is over (milliseconds) long before the registry hears of its bytes
        # (once a second), so it runs to its end.
        self.fetch_ok(local)
        done = time.monotonic()
        wait_until(lambda: self.get("quinn")["quota_exceeded"], TRAFFIC_DEADLINE,
                   "GetUser to report quinn's quota exceeded")
        self.assertLess(time.monotonic() - done, 5.0, "the quota was noticed late")
        got = self.get("quinn")
        size = nginx().files[Nginx.SMALL][0]
        self.assertGreaterEqual(traffic(got, "bytes_down"), size, got)
        self.assertGreater(traffic(got, "bytes_up"), 0, got)  # the HTTP request
        self.assertEqual(traffic(got, "tcp_connections"), 1, got)
        self.assertGreaterEqual(traffic(got, "bytes_up") + traffic(got, "bytes_down"), quota)
        listed = {u["name"]: u for u in
                  self.call("shadowrelay.v1.UserService/ListUsers")["users"]}
        self.assertTrue(listed["quinn"]["quota_exceeded"])

        # A new session is refused before it reaches the target.
        requests = nginx().requests_logged()
        self.fetch_fails(local)
        self.assertEqual(nginx().requests_logged(), requests, "a refused session reached nginx")

        # Raising the quota lets quinn relay again, at once; the counters are kept.
        raised = self.call("shadowrelay.v1.UserService/UpdateUser",
                           {"user": {"name": "quinn", "limits": {"data_quota_bytes": 64 << 20}},
                            "update_mask": "limits.dataQuotaBytes"})
        self.assertFalse(raised["quota_exceeded"], raised)
        self.assertEqual(int(raised["limits"]["data_quota_bytes"]), 64 << 20)
        self.assertGreaterEqual(traffic(raised, "bytes_down"), size, raised)
        self.fetch_ok(local)
        self.assertFalse(self.get("quinn")["quota_exceeded"])

    def test_udp_datagrams_over_the_quota_are_dropped(self):
        self.start_controlled(extra=["-u"])
        echo = UdpEcho()
        self.addCleanup(echo.stop)
        uday = self.create("uday", "aes-128-gcm", limits={"data_quota_bytes": 4096})
        ulla = self.create("ulla", "aes-256-gcm")  # the same port, no quota
        capped = self.ss_tunnel_u(uday, echo.port)
        free = self.ss_tunnel_u(ulla, echo.port)
        payload = os.urandom(1000)
        for i in range(5):  # 10000 bytes up and down: beyond the quota
            self.assertEqual(self.roundtrip(capped, payload, timeout=3), payload, f"datagram {i}")
        wait_until(lambda: self.get("uday")["quota_exceeded"], TRAFFIC_DEADLINE,
                   "GetUser to report uday's quota exceeded")
        got = self.get("uday")
        self.assertEqual(traffic(got, "bytes_up"), 5000, got)
        self.assertEqual(traffic(got, "udp_packets"), 10, got)
        # Over the quota, uday's datagrams are refused before they reach the target; ulla's
        # still go through.
        for i in range(3):
            self.assertIsNone(self.roundtrip(capped, payload, timeout=1),
                              f"datagram {i} over the quota came back")
            self.assertEqual(self.roundtrip(free, payload, timeout=3), payload)
        self.assertEqual(echo.received, 5 + 3, "datagrams over the quota reached the target")
        raised = self.call("shadowrelay.v1.UserService/UpdateUser",
                           {"user": {"name": "uday", "limits": {"data_quota_bytes": 1 << 20}},
                            "update_mask": "limits.dataQuotaBytes"})
        self.assertFalse(raised["quota_exceeded"], raised)
        self.assertEqual(self.roundtrip(capped, payload, timeout=3), payload,
                         "a datagram once the quota was raised")
        stats = stopped_udp_summary(self, self.server)
        self.assertEqual(stats["over_quota"], 3, stats)
        self.assertEqual(stats["packets_in"], 5 + 3 + 1, stats)

    def test_reaching_the_quota_closes_a_running_session(self):
        # UserTable::keeps(): a session of a user over its quota does not go on once the new
        # table reaches its worker (Worker::setUsers closes it) - not only new sessions.
        self.start_controlled()
        quota = 1 << 20
        rhea = self.create("rhea", "chacha20-ietf-poly1305",
                           limits={"data_quota_bytes": quota})
        local = self.ss_local(rhea)
        source = ThrottledSource(rate=4 << 20, seconds=30)
        self.addCleanup(source.stop)
        sock = socks5_connect(local, LOOPBACK, source.port)
        self.addCleanup(sock.close)
        sock.settimeout(10)
        received = 0
        crossed = None
        started = time.monotonic()
        try:
            while time.monotonic() - started < 25:
                data = sock.recv(65536)
                if not data:
                    break
                received += len(data)
                if crossed is None and received >= quota:
                    crossed = time.monotonic()
        except (ConnectionResetError, socket.timeout):
            pass
        ended = time.monotonic()
        self.assertIsNotNone(crossed, f"the stream ended after {received} bytes, before the "
                                      f"quota of {quota}")
        # Up to ~2 s for the bytes to reach the registry, then the swap closes the session.
        self.assertLess(ended - crossed, 5.0,
                        f"the session ran {ended - crossed:.1f} s past the quota "
                        f"({received} bytes)")
        got = self.get("rhea")
        self.assertTrue(got["quota_exceeded"], got)
        self.assertGreaterEqual(traffic(got, "bytes_down"), quota, got)
        self.fetch_fails(local)


# --------------------------------------------------------------------------------------------
# 3. TLS on the control API, in the process of the BoringSSL plugin


def _openssl(*args, cwd):
    out = subprocess.run([tool("openssl"), *args], cwd=cwd, capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {out.stderr}")


def make_pki(directory):
    """A CA, a server certificate (localhost, 127.0.0.1), a client certificate of that CA and
    one of another CA, all P-256, in `directory`. Returns the file paths by name."""
    os.makedirs(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                 "-subj", f"/CN=e2e {ca}", "-days", "2",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    leaves = (("server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                               "extendedKeyUsage=serverAuth\n"),
              ("client", "ca", "extendedKeyUsage=clientAuth\n"),
              ("rogue-client", "rogue-ca", "extendedKeyUsage=clientAuth\n"))
    for name, ca, ext in leaves:
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=e2e {name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=directory)
    return {name: os.path.join(directory, name) for name in os.listdir(directory)}


def boringssl_plugin():
    """(True, "") when our binary loads the BoringSSL plugin; (False, why) in sanitizer builds,
    which cannot load it (RTLD_DEEPBIND). Any other failure fails the test."""
    out = subprocess.run([Config.relay, "ciphers", "--crypto-provider=boringssl"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0 and "sanitizer builds" in out.stderr:
        return False, out.stderr.strip()
    if out.returncode != 0:
        raise AssertionError(f"the BoringSSL plugin did not load: {out.stderr}")
    return True, ""


class ControlTlsTest(UsersTestCase):
    def setUp(self):
        super().setUp()
        self.pki = make_pki(scratch_path("pki"))

    def tls(self, client=None, server_name="localhost"):
        """grpc_call options: trust our CA; present `client`'s certificate if given."""
        options = ["--tls-ca", self.pki["ca.pem"], "--tls-server-name", server_name]
        if client:
            options += ["--tls-cert", self.pki[f"{client}.pem"],
                        "--tls-key", self.pki[f"{client}.key"]]
        return tuple(options)

    def start_tls(self, provider, client_ca=False):
        extra = ["--crypto-provider", provider,
                 "--control-tls-cert", self.pki["server.pem"],
                 "--control-tls-key", self.pki["server.key"]]
        if client_ca:
            extra += ["--control-tls-client-ca", self.pki["ca.pem"]]
        return self.start_controlled(extra=extra, name=f"ours-server-tls-{provider}")

    def assert_refused(self, why, **kwargs):
        with self.assertRaises(ApiError, msg=why) as err:
            self.call("shadowrelay.v1.ServerService/GetStatus", **kwargs)
        self.assertEqual(err.exception.code, "UNAVAILABLE", f"{why}: {err.exception}")

    def assert_providers(self, provider):
        """Every method is served by `provider` in the server process."""
        ciphers = self.call("shadowrelay.v1.CipherService/ListCiphers")["ciphers"]
        self.assertEqual(len(ciphers), 8, ciphers)  # 5 AEAD-2017 and 3 Shadowsocks 2022 methods
        self.assertEqual(sum(c.get("edition") == "EDITION_2022" for c in ciphers), 3, ciphers)
        for cipher in ciphers:
            self.assertEqual(cipher["selected_provider"], provider, cipher)
        status = self.call("shadowrelay.v1.ServerService/GetStatus")
        served = {p["name"]: p.get("algorithms", []) for p in status["crypto_providers"]}
        self.assertEqual(len(served.get(provider, [])), 5, status["crypto_providers"])

    def provider(self):
        """boringssl, so that the plugin is in the process of gRPC's TLS; sanitizer builds
        cannot load it (they refuse RTLD_DEEPBIND) and test TLS with OpenSSL alone."""
        loaded, why = boringssl_plugin()
        if not loaded:
            print(f"  (TLS without the BoringSSL plugin: {why})", file=sys.stderr)
        return "boringssl" if loaded else "openssl"

    def test_tls_api_beside_the_boringssl_plugin(self):
        provider = self.provider()
        self.start_tls(provider)
        self.api_tls = self.tls()
        self.assert_providers(provider)
        tess = self.create("tess", "aes-256-gcm")
        self.assertEqual(self.get("tess")["password"], tess["password"])
        # The data plane's AEADs come from the plugin; gRPC's TLS from the system OpenSSL.
        # An 8 MiB download: thousands of chunks through the plugin's AEAD.
        local = self.ss_local(tess)
        self.fetch_ok(local)
        self.fetch_ok(local, Nginx.BIG)
        with self.assertRaises(ApiError) as err:
            self.call("shadowrelay.v1.UserService/ListUsers", token="wrong-token")
        self.assertEqual(err.exception.code, "UNAUTHENTICATED", "TLS does not replace the token")
        self.assert_refused("a plaintext call to the TLS port", tls=())
        self.assert_refused("a certificate for another name",
                            tls=self.tls(server_name="not-the-server.example"))
        with open(self.server.log_path, encoding="utf-8", errors="replace") as f:
            self.assertIn(f"control API on {LOOPBACK}:{self.api_port} (TLS, bearer token)",
                          f.read())

    def test_mutual_tls_api(self):
        provider = self.provider()
        self.start_tls(provider, client_ca=True)
        self.assert_refused("a call without a client certificate", tls=self.tls())
        self.assert_refused("a client certificate of another CA",
                            tls=self.tls(client="rogue-client"))
        self.assert_refused("a plaintext call to the TLS port", tls=())
        self.api_tls = self.tls(client="client")
        self.assert_providers(provider)
        mtls = self.create("mtls", "chacha20-ietf-poly1305")
        self.fetch_ok(self.ss_local(mtls))
        with self.assertRaises(ApiError) as err:
            self.call("shadowrelay.v1.UserService/ListUsers", token="wrong-token")
        self.assertEqual(err.exception.code, "UNAUTHENTICATED")
        with open(self.server.log_path, encoding="utf-8", errors="replace") as f:
            self.assertIn(f"control API on {LOOPBACK}:{self.api_port} (mutual TLS, bearer token)",
                          f.read())


# --------------------------------------------------------------------------------------------
# 4. -m without -k


class DefaultMethodTest(UsersTestCase):
    def test_method_flag_without_key_is_the_api_default(self):
        method = "aes-128-gcm"  # not the built-in default (chacha20-ietf-poly1305)
        self.start_controlled(extra=["-m", method])
        self.assertEqual(self.call("shadowrelay.v1.CipherService/GetDefaults"),
                         {"method": method})
        # No -k: no "default" user.
        self.assertEqual(self.call("shadowrelay.v1.UserService/ListUsers").get("users", []), [])
        dora = self.create("dora")
        self.assertEqual(dora["method"], method)
        got = self.get("dora")
        self.assertEqual(got["method"], method)
        self.assertEqual(got["source"], "USER_SOURCE_API")
        # The ss:// URL names the method too (SIP002 userinfo: base64url of method:password).
        userinfo = re.match(r"ss://([^@]+)@", got["access_url"]).group(1)
        decoded = base64.urlsafe_b64decode(userinfo + "=" * (-len(userinfo) % 4)).decode()
        self.assertEqual(decoded, f"{method}:{got['password']}")
        self.fetch_ok(self.ss_local(got))
        # The key is bound to that method: the same password with another method gets nothing.
        self.fetch_fails(self.start_local(self.relay_port, "chacha20-ietf-poly1305",
                                          impl="libev", password=got["password"]))

    def test_no_secret_reaches_the_log(self):
        """Passwords, keys and the API token never appear in the server's log, even verbose,
        through create, rotation, relaying, a failed authentication and a bad request."""
        self.start_controlled(extra=["-v"] if not Config.verbose else [])
        given = "log-test-password-9f8e7d"
        erin = self.create("erin", "aes-256-gcm", password=given)
        self.fetch_ok(self.ss_local(erin))
        rotated = self.call("shadowrelay.v1.UserService/UpdateUser",
                            {"user": {"name": "erin", "password": ""},
                             "update_mask": "password"})
        generated = self.get("erin")["password"]
        self.assertNotEqual(generated, given, rotated)
        self.fetch_ok(self.ss_local(self.get("erin")))
        self.fetch_fails(self.start_local(self.relay_port, "aes-256-gcm", impl="libev",
                                          password=given))  # the old key: auth failure
        with self.assertRaises(ApiError):
            self.call("shadowrelay.v1.UserService/GetUser", {"name": "erin"},
                      token="wrong-" + TOKEN)
        with self.assertRaises(ApiError):
            self.create("bad name!", password="another-secret-5c4b3a")
        log = stopped_log(self, self.server)
        self.assertIn("erin", log, "the log is not verbose enough to mean anything")
        for secret in (given, generated, TOKEN, "another-secret-5c4b3a",
                       base64.b64encode(given.encode()).decode().rstrip("=")):
            self.assertNotIn(secret, log)


# --------------------------------------------------------------------------------------------
# 5. Disabling a user


class DisableTest(UsersTestCase):
    def set_enabled(self, name, enabled):
        return self.call("shadowrelay.v1.UserService/UpdateUser",
                         {"user": {"name": name, "enabled": enabled}, "update_mask": "enabled"})

    def test_disabling_cuts_a_running_download_like_deletion(self):
        self.start_controlled()
        dana = self.create("dana", "chacha20-ietf-poly1305")
        dirk = self.create("dirk", "aes-256-gcm")  # the same port, left enabled
        local = self.ss_local(dana)
        other = self.ss_local(dirk)
        source = ThrottledSource(rate=4 << 20, seconds=30)  # runs far beyond this test's cut
        self.addCleanup(source.stop)
        sock = self.download(local, source, 1 << 20, "dana's download")
        bystander = self.download(other, source, 64 << 10, "dirk's download")

        asked = time.monotonic()
        disabled = self.set_enabled("dana", False)
        returned = time.monotonic()
        self.assertFalse(disabled["enabled"], disabled)
        after, took, how = drain_until_closed(sock, 5.0)
        print(f"  (dana's download cut {took * 1000:.0f} ms after UpdateUser returned, "
              f"{(returned - asked) * 1000:.0f} ms call; {how}, {after} bytes after)",
              file=sys.stderr)
        self.assertNotEqual(how, "still open",
                            f"the download still ran 5 s after UpdateUser ({after} bytes)")
        self.assertLess(took, CUT_DEADLINE,
                        f"the download ran {took:.2f} s after UpdateUser returned ({how})")
        # Only dana: dirk's session on the same port goes on.
        bystander.settimeout(5)
        got = 0
        end = time.monotonic() + 10
        while got < 256 << 10 and time.monotonic() < end:
            data = bystander.recv(65536)
            self.assertTrue(data, "disabling dana ended dirk's session")
            got += len(data)
        self.assertGreaterEqual(got, 256 << 10)

        accepted = source.accepted
        self.assert_no_byte(local, source, "a new session of the disabled user")
        self.assertEqual(source.accepted, accepted, "a session of the disabled user reached "
                                                    "the target")
        got = self.get("dana")
        self.assertFalse(got["enabled"], got)
        listed = {u["name"]: u for u in
                  self.call("shadowrelay.v1.UserService/ListUsers")["users"]}
        self.assertFalse(listed["dana"]["enabled"], listed["dana"])
        self.assertTrue(listed["dirk"]["enabled"], listed["dirk"])

        # Enabled again: the same key relays at once (no retry).
        enabled = self.set_enabled("dana", True)
        self.assertTrue(enabled["enabled"], enabled)
        self.assertEqual(enabled["password"], dana["password"], "re-enabling changed the key")
        self.download(local, source, 64 << 10, "dana's download once re-enabled")
        self.assertEqual(source.accepted, accepted + 1)
        self.fetch_ok(local)
        self.assertTrue(self.get("dana")["enabled"])


# --------------------------------------------------------------------------------------------
# 6. A dedicated port with UDP


def free_tcp_udp_port():
    """A port free for TCP and for UDP on LOOPBACK (bounded tries): a dedicated user port, which
    CreateUser names before the server opens it, and ss-tunnel needs to know."""
    for _ in range(50):
        port = free_port()
        if udp_bindable(port):
            return port
    raise AssertionError("no port free for both TCP and UDP on loopback")


def udp_bindable(port):
    """True if this process can bind UDP LOOPBACK:port (nobody holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOOPBACK, port))
            return True
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise


def udp_port_refuses(port):
    """True if a datagram to LOOPBACK:port draws ICMP port unreachable (ECONNREFUSED on the
    connected socket): no socket is bound there. A live relay port drops the probe silently."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((LOOPBACK, port))
        s.settimeout(0.2)
        try:
            s.send(b"is anybody there")
            s.recv(1)
        except ConnectionRefusedError:
            return True
        except socket.timeout:
            return False
        return False


class DedicatedUdpPortTest(UsersTestCase):
    def test_dedicated_port_relays_udp_at_once_and_closes_with_its_user(self):
        self.start_controlled(extra=["-u"])
        echo = UdpEcho()
        self.addCleanup(echo.stop)
        port = free_tcp_udp_port()  # CreateUser names the port: a probed one
        self.assertTrue(udp_port_refuses(port), f"UDP port {port} answered before it was given")
        password = "uwe-dedicated-udp-password"
        # The tunnel first, so that the first datagram leaves as soon as CreateUser returns.
        sock = self.ss_tunnel_u({"name": "uwe", "method": "aes-256-gcm", "password": password},
                                echo.port, server_port=port)
        uwe = self.create("uwe", "aes-256-gcm", password=password, port=port)
        created = time.monotonic()
        self.assertEqual(uwe["port"], port, uwe)
        self.assertTrue(uwe["dedicated_port"], uwe)
        payload = os.urandom(512)
        self.assertEqual(self.roundtrip(sock, payload, timeout=3), payload,
                         "the first datagram to the new port (no retry)")
        first = time.monotonic() - created
        relayed = 1
        for size in (1, 100, 900, 1300):
            payload = os.urandom(size)
            self.assertEqual(self.roundtrip(sock, payload, timeout=3), payload, f"{size} bytes")
            relayed += 1
        self.assertFalse(udp_bindable(port), "the server does not hold the UDP port")
        # uwe's key opens only on the dedicated port, not on the shared one.
        shared = self.ss_tunnel_u(uwe, echo.port)
        self.assertIsNone(self.roundtrip(shared, b"to the shared port", timeout=1),
                          "a dedicated-port user's datagram came back through the shared port")
        self.assertEqual(echo.received, relayed)

        listeners = self.call("shadowrelay.v1.ServerService/GetStatus")["listeners"]
        mine = sorted((l["protocol"], l.get("user", "")) for l in listeners
                      if int(l["port"]) == port)
        self.assertEqual(mine, [("tcp", "uwe"), ("udp", "uwe")], listeners)
        self.assertIn(("udp", ""), [(l["protocol"], l.get("user", "")) for l in listeners
                                    if int(l["port"]) == self.relay_port], listeners)
        wait_until(lambda: traffic(self.get("uwe"), "udp_packets") >= 2 * relayed,
                   TRAFFIC_DEADLINE, f"uwe's udp_packets to reach {2 * relayed}")
        self.assertEqual(traffic(self.get("uwe"), "udp_packets"), 2 * relayed)

        self.call("shadowrelay.v1.UserService/DeleteUser", {"name": "uwe"})
        deleted = time.monotonic()
        wait_until(lambda: udp_port_refuses(port), 5, f"UDP port {port} to close with uwe")
        closed = time.monotonic() - deleted
        print(f"  (first datagram back {first * 1000:.0f} ms after CreateUser returned; UDP "
              f"port closed {closed * 1000:.0f} ms after DeleteUser returned)", file=sys.stderr)
        self.assertLess(closed, 2.0, f"UDP port {port} closed {closed:.2f} s after DeleteUser")
        self.assertTrue(udp_bindable(port), f"UDP port {port} still held after DeleteUser")
        self.assertIsNone(self.roundtrip(sock, b"after the delete", timeout=1),
                          "a datagram to the closed port came back")
        self.assertEqual(echo.received, relayed, "a datagram reached the echo after the delete")
        listeners = self.call("shadowrelay.v1.ServerService/GetStatus")["listeners"]
        self.assertNotIn(port, [int(l["port"]) for l in listeners], listeners)
        with self.assertRaises(ApiError) as err:
            self.get("uwe")
        self.assertEqual(err.exception.code, "NOT_FOUND")


# --------------------------------------------------------------------------------------------
# 7. Server reflection, as grpcurl uses it


class ReflectionTest(UsersTestCase):
    SERVICES = {"shadowrelay.v1.UserService", "shadowrelay.v1.CipherService",
                "shadowrelay.v1.ServerService", "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection"}
    IMPORTS = {"google/protobuf/timestamp.proto", "google/protobuf/field_mask.proto",
               "google/protobuf/duration.proto"}

    def reflect(self, token):
        self.assertIsNotNone(Config.reflection_call,
                             "run with --reflection-call=PATH (the BUILD file does)")
        out = subprocess.run([Config.reflection_call, f"{LOOPBACK}:{self.api_port}", token],
                             capture_output=True, text=True, timeout=60)
        if out.returncode == 3:
            code, _, message = out.stdout.strip()[len("ERROR "):].partition(": ")
            raise ApiError(code, message)
        self.assertEqual(out.returncode, 0, f"reflection_call: {out.stderr}")
        return json.loads(out.stdout)

    def test_reflection_lists_and_resolves_every_service_like_grpcurl(self):
        self.start_controlled()
        got = self.reflect(TOKEN)
        self.assertEqual(got["errors"], [], "reflection_call could not resolve everything")
        services = set(got["services"])
        self.assertEqual(self.SERVICES - services, set(), f"not listed; listed: {services}")
        self.assertEqual(got["symbol_files"].get("shadowrelay.v1.UserService"),
                         "shadowrelay/v1/users.proto")
        for service in sorted(services):
            with self.subTest(service=service):
                self.assertIn(service, got["symbol_files"], "no file declares it")
                methods = got["resolved"].get(service)
                self.assertTrue(methods, "no methods resolved from the served descriptors")
                if service in self.SERVICES:
                    # Names, request and response types and streaming: as compiled from the
                    # protos the server was built from.
                    self.assertEqual(methods, got["compiled"].get(service))
        # Every import was served by name (what grpcurl asks for when it describes a type).
        by_name = set(got["by_name"])
        self.assertEqual(self.IMPORTS - by_name, set(), f"served by name: {by_name}")
        for name, imports in got["dependencies"].items():
            for dep in imports:
                self.assertIn(dep, by_name, f"{name} imports {dep}, not served by name")
        user_service = {m["name"]: m for m in got["resolved"]["shadowrelay.v1.UserService"]}
        self.assertEqual(user_service["UpdateUser"]["input"], "shadowrelay.v1.UpdateUserRequest")

        # Reflection needs the token like every service but health (README).
        for token, why in (("-", "no token"), ("wrong-" + TOKEN, "a wrong token")):
            with self.assertRaises(ApiError, msg=why) as err:
                self.reflect(token)
            self.assertEqual(err.exception.code, "UNAUTHENTICATED", why)
        self.assertEqual(self.call("grpc.health.v1.Health/Check", token="-"),
                         {"status": "SERVING"})


# --------------------------------------------------------------------------------------------
# 8. Refusals over max_connections in /metrics


REFUSED_METRIC = "shadowrelay_tcp_refused_over_limit_total"
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as r:
        return r.read().decode("utf-8")


def scrape_value(port, name, labels):
    """The value of the series `name` whose labels include `labels`, from /metrics (text
    format); None if there is no such series. Fails if several match."""
    found = []
    for line in scrape(port).splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        have = dict(_LABEL.findall(match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            found.append(float(match.group(3)))
    if len(found) > 1:
        raise AssertionError(f"{len(found)} series of {name} match {labels}")
    return found[0] if found else None


class OverLimitMetricsTest(UsersTestCase):
    REFUSED = 3

    def refused(self):
        value = scrape_value(self.metrics_port, REFUSED_METRIC, {"user": "ivy"})
        return 0 if value is None else value

    def test_sessions_refused_over_max_connections_are_counted(self):
        self.start_controlled(metrics_listen=f"{LOOPBACK}:0")  # sets self.metrics_port
        ivy = self.create("ivy", "aes-128-gcm")
        # grpcurl sends a FieldMask as Go's protojson writes it: one string, comma-separated
        # lowerCamelCase paths ("limits.max_connections" is an error there).
        limited = self.call("shadowrelay.v1.UserService/UpdateUser",
                            {"user": {"name": "ivy", "limits": {"max_connections": 1,
                                                                "data_quota_bytes": 1 << 30}},
                             "update_mask": "limits.maxConnections,limits.dataQuotaBytes"})
        self.assertEqual(limited["limits"]["max_connections"], 1, limited)
        self.assertEqual(int(limited["limits"]["data_quota_bytes"]), 1 << 30, limited)
        self.assertEqual(self.get("ivy")["limits"], limited["limits"])
        self.assertIn(f"# TYPE {REFUSED_METRIC} counter", scrape(self.metrics_port))
        base = self.refused()

        local = self.ss_local(ivy)
        source = ThrottledSource(rate=1 << 20, seconds=30)
        self.addCleanup(source.stop)
        first = self.download(local, source, 16 << 10, "ivy's one allowed session")
        for i in range(self.REFUSED):
            self.assert_no_byte(local, source, f"extra session {i} over max_connections 1")
        self.assertEqual(source.accepted, 1, "a session over the limit reached the target")
        want = base + self.REFUSED
        wait_until(lambda: self.refused() >= want, TRAFFIC_DEADLINE,
                   f"{REFUSED_METRIC}{{user=\"ivy\"}} to reach {want}")
        self.assertEqual(self.refused(), want)

        # The slot frees with the first session. Until the server has closed it, a new session
        # is refused (and counted); the admitted one is not.
        first.close()
        late = self.admitted_after_refusals(local, source)
        self.assertEqual(source.accepted, 2)
        want += late
        wait_until(lambda: self.refused() >= want, TRAFFIC_DEADLINE,
                   f"{REFUSED_METRIC}{{user=\"ivy\"}} to reach {want}")
        end = time.monotonic() + 2.5  # two samples and more: nothing else comes in late
        while time.monotonic() < end:
            self.assertEqual(self.refused(), want, f"{late} refused after the first closed")
            time.sleep(0.25)
        print(f"  ({REFUSED_METRIC}{{user=\"ivy\"}}: {base:g} -> {want:g}; {self.REFUSED} "
              f"refused while the first ran, {late} while it was closing)", file=sys.stderr)

    def admitted_after_refusals(self, local, source):
        """New sessions until one relays (bounded); the number refused (closed, no byte)."""
        refused = 0
        end = time.monotonic() + 10
        while time.monotonic() < end:
            sock = socks5_connect(local, LOOPBACK, source.port, timeout=10)
            self.addCleanup(sock.close)
            sock.settimeout(5)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                return refused
            refused += 1
            time.sleep(0.05)
        raise AssertionError(f"no session admitted within 10 s of the first closing "
                             f"({refused} refused)")


def child_programs(pid):
    """The command names of `pid`'s child processes."""
    names = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            names.append(fields.get("Name", "").strip())
    return names


class UserPluginTest(UsersTestCase):
    """A user on a dedicated port with a SIP003 plugin (simple-obfs): the server runs
    obfs-server in front of that port, the access URL names obfs-local, and shadowsocks-libev's
    ss-local with obfs-local relays through it; removing the plugin or the user stops it."""

    METHOD = "aes-256-gcm"

    def start_ss_local(self, port, password, plugin=()):
        local_port = free_port()
        argv = [tool("ss-local"), "-s", LOOPBACK, "-p", port, "-b", LOOPBACK, "-l", local_port,
                "-k", password, "-m", self.METHOD] + list(plugin)
        child = self.spawn(f"ss-local-{port}-{len(plugin)}", argv, ours=False)
        wait_listening(local_port, child)
        return local_port

    def fetch_eventually(self, local_port, deadline=15.0):
        """curl retried (bounded) while the plugins on both sides come up."""
        end = time.monotonic() + deadline
        while True:
            site = nginx()
            result = curl(site.url(Nginx.SMALL), socks5_port=local_port, max_time=10)
            if result.code == 0 or time.monotonic() > end:
                break
            time.sleep(0.2)
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual(sha256(result.body), site.files[Nginx.SMALL][1])

    def test_a_dedicated_port_runs_the_users_plugin(self):
        self.start_controlled()
        port = free_tcp_udp_port()
        user = self.create("obfs-user", self.METHOD, port=port, plugin="obfs-server",
                           plugin_opts="obfs=http;obfs-host=example.com")
        self.assertEqual(user["plugin"], "obfs-server")
        self.assertEqual(user["plugin_opts"], "obfs=http;obfs-host=example.com")
        self.assertIn("?plugin=obfs-local%3Bobfs%3Dhttp%3Bobfs-host%3Dexample.com",
                      user["access_url"])
        wait_until(lambda: "obfs-server" in child_programs(self.server.pid), 10,
                   "obfs-server started by the server")
        local_port = self.start_ss_local(port, user["password"], [
            "--plugin", "obfs-local", "--plugin-opts", "obfs=http;obfs-host=example.com"])
        self.fetch_eventually(local_port)
        listed = self.call("shadowrelay.v1.UserService/ListUsers")["users"]
        self.assertEqual([(u.get("plugin"), u.get("plugin_opts", ""))
                          for u in listed if u["name"] == "obfs-user"],
                         [("obfs-server", "")])  # the options (maybe secrets) in GetUser only

        # The plugin removed: the port is served plainly, obfs-server is gone.
        self.call("shadowrelay.v1.UserService/UpdateUser",
                  {"user": {"name": "obfs-user", "plugin": ""}, "update_mask": "plugin"})
        wait_until(lambda: "obfs-server" not in child_programs(self.server.pid), 10,
                   "obfs-server stopped after the plugin was removed")
        self.fetch_eventually(self.start_ss_local(port, user["password"]))

        # The plugin back, then the user deleted: the plugin stops and the port closes.
        self.call("shadowrelay.v1.UserService/UpdateUser",
                  {"user": {"name": "obfs-user", "plugin": "obfs-server",
                            "plugin_opts": "obfs=http"}, "update_mask": "plugin,pluginOpts"})
        wait_until(lambda: "obfs-server" in child_programs(self.server.pid), 10,
                   "obfs-server started again")
        self.call("shadowrelay.v1.UserService/DeleteUser", {"name": "obfs-user"})
        wait_until(lambda: "obfs-server" not in child_programs(self.server.pid), 10,
                   "obfs-server stopped with its user")

    def test_a_plugin_needs_a_dedicated_port_and_a_known_program(self):
        self.start_controlled()
        with self.assertRaises(ApiError) as shared:
            self.create("on-shared", self.METHOD, plugin="obfs-server")
        self.assertIn("INVALID_ARGUMENT", str(shared.exception))
        self.assertIn("plugin: only a user on a dedicated port", str(shared.exception))
        with self.assertRaises(ApiError) as unknown:
            self.create("unknown-plugin", self.METHOD, port=free_tcp_udp_port(),
                        plugin="no-such-plugin-program")
        self.assertIn("plugin: \"no-such-plugin-program\" not found", str(unknown.exception))


if __name__ == "__main__":
    main()
