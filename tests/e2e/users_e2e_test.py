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

Every wait is bounded (wait_until, socket timeouts, subprocess timeouts).
"""
import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time

from e2e_harness import (LOOPBACK, ApiError, Config, Nginx, RelayTestCase, UdpEcho, curl,
                         free_port, grpc_api, local_argv, main, nginx, sha256, socks5_connect,
                         stopped_log, stopped_udp_summary, tool, wait_listening, wait_until)

TOKEN = "e2e-users-token-0123456789"
# Traffic reaches the registry once a second (worker sample, then the registry tick): counters
# and quota decisions follow within about two seconds. Waits allow for slow sanitizer builds.
TRAFFIC_DEADLINE = 10.0


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


class UsersTestCase(RelayTestCase):
    """Our server with the control API on free ports."""

    def setUp(self):
        super().setUp()
        self.require_ours("the control API")
        self.api_tls = ()  # grpc_call options for this server's API

    def start_controlled(self, extra=(), name="ours-server-api"):
        """Starts the server (no -k unless in `extra`); returns the relay port."""
        token_file = os.path.join(Config.tmp, f"token-{free_port()}")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        self.api_port = free_port()
        self.relay_port = free_port()
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", self.relay_port, "--allow-private",
                "--metrics-listen", "off", "--control-listen", f"{LOOPBACK}:{self.api_port}",
                "--control-token-file", token_file] + list(extra)
        if Config.verbose:
            argv.append("-v")
        self.server = self.spawn(name, argv, ours=True)
        wait_listening(self.relay_port, self.server)
        wait_listening(self.api_port, self.server)
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

    def ss_tunnel_u(self, user, echo_port):
        """shadowsocks-libev's ss-tunnel -u for `user`, forwarding to the UDP echo; a UDP
        socket that talks to it."""
        port = free_port()
        argv = local_argv("libev", self.relay_port, port, user["method"],
                          password=user["password"], tunnel_to=f"{LOOPBACK}:{echo_port}")
        tunnel = self.spawn(f"ss-tunnel-u-{user['name']}", argv + ["-u"], ours=False)
        wait_listening(port, tunnel)  # -u: TCP and UDP on the same port
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((LOOPBACK, 0))
        sock.connect((LOOPBACK, port))
        return sock

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
                            "update_mask": "limits.data_quota_bytes"})
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
                            "update_mask": "limits.data_quota_bytes"})
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
        self.pki = make_pki(os.path.join(Config.tmp, f"pki-{free_port()}"))

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
        self.assertEqual(len(ciphers), 5, ciphers)
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


if __name__ == "__main__":
    main()
