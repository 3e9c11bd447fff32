# SPDX-License-Identifier: Apache-2.0
"""The control plane end to end: our server with its gRPC API, driven by grpc_call (a grpcurl
stand-in), and shadowsocks-libev's ss-local as the client of the users it creates.

A user created through the API relays at once; users of different methods share a port; a
deleted user's download is cut within a second and its new connections fail; users survive a
restart and a kill -9 in the middle of API writes; API calls run concurrently with traffic; a
dedicated port opens with its user and closes with it; max_connections refuses the extra
session. Port 0 for the relay (TCP and UDP), the API and /metrics: the ready line names four
addresses, and each of them works.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from e2e_harness import (LOOPBACK, PASSWORD, ApiError, Config, Nginx, RelayTestCase, UdpEcho,
                         curl, free_port, grpc_api, main, nginx, parse_ready_line, scratch_path,
                         sha256, socks5_connect, wait_listening, wait_until)

TOKEN = "e2e-control-token-0123456789"


def api(port, method, request, token=TOKEN, timeout=20):
    return grpc_api(port, method, request, token, timeout=timeout)


class Source:
    """A TCP server that streams bytes to whoever connects, for up to `seconds` (bounded)."""

    def __init__(self, seconds=20):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seconds = seconds
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn):
        end = time.monotonic() + self.seconds
        chunk = os.urandom(16384)
        with conn:
            try:
                while not self.stopped and time.monotonic() < end:
                    conn.sendall(chunk)
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.sock.close()


class ControlTest(RelayTestCase):
    def setUp(self):
        super().setUp()
        self.nginx = nginx()

    def start_controlled(self, state_dir=None, extra=(), users_config=None):
        """Our server with the API, both on port 0; sets self.relay_port and self.api_port
        from its ready line and returns the relay port."""
        self.require_ours("the control API")
        token_file = scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        args = ["--control-listen", f"{LOOPBACK}:0", "--control-token-file", token_file]
        if state_dir:
            args += ["--state-dir", state_dir]
        if users_config is not None:
            path = scratch_path("users.json")
            with open(path, "w") as f:
                json.dump({"users": users_config}, f)
            args += ["-c", path]
        if not any(str(arg).startswith("--metrics-listen") for arg in extra):
            args += ["--metrics-listen", "off"]
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", 0, "--allow-private"] + args + \
            list(extra)
        self.server = self.start_ours("ours-server-api", argv)
        self.relay_port = self.server.ready.port
        self.api_port = self.server.ready.control[1]
        return self.relay_port

    def create(self, name, method=None, port=None, **fields):
        request = {"name": name}
        if method:
            request["method"] = method
        if port:
            request["port"] = port
        request.update(fields)
        return api(self.api_port, "shadowrelay.v1.UserService/CreateUser", request)

    def ss_local(self, user, server_port=None):
        return self.start_local(server_port or self.relay_port, user["method"], impl="libev",
                                password=user["password"])

    def fetch_ok(self, local_port, name=Nginx.SMALL):
        result = curl(self.nginx.url(name), socks5_port=local_port, max_time=20)
        size, digest = self.nginx.files[name]
        self.assertEqual(result.code, 0, f"curl failed: {result.stderr}")
        self.assertEqual(len(result.body), size)
        self.assertEqual(sha256(result.body), digest)

    def fetch_fails(self, local_port):
        result = curl(self.nginx.url(Nginx.SMALL), socks5_port=local_port, max_time=5)
        self.assertNotEqual(result.code, 0, "the fetch should have failed")

    # ----------------------------------------------------------------------------------------

    def test_created_user_relays_at_once_on_a_server_started_without_users(self):
        self.start_controlled()
        self.assertEqual(api(self.api_port, "shadowrelay.v1.UserService/ListUsers", {})
                         .get("users", []), [])
        alice = self.create("alice", "aes-256-gcm")
        self.assertTrue(alice["password"])  # generated
        self.assertTrue(alice["access_url"].startswith("ss://"))
        self.fetch_ok(self.ss_local(alice))
        got = api(self.api_port, "shadowrelay.v1.UserService/GetUser", {"name": "alice"})
        self.assertEqual(got["password"], alice["password"])
        # Traffic reaches the user's counters within a couple of seconds.
        wait_until(lambda: int(api(self.api_port, "shadowrelay.v1.UserService/GetUser",
                                   {"name": "alice"})["traffic"]["bytes_down"] or 0)
                   >= 64 << 10, 10, "alice's bytes_down to count the download")

    def test_users_with_different_methods_share_the_port(self):
        self.start_controlled()
        users = [self.create(name, method) for name, method in
                 (("bob", "chacha20-ietf-poly1305"), ("carol", "aes-128-gcm"),
                  ("dave", "aes-256-gcm"))]
        locals_ = [self.ss_local(u) for u in users]
        for _ in range(2):
            for port in locals_:
                self.fetch_ok(port)
        # A client with a key nobody has gets nothing.
        self.fetch_fails(self.start_local(self.relay_port, "aes-256-gcm", impl="libev",
                                          password="not-a-user"))

    def test_delete_cuts_a_running_download_within_a_second(self):
        self.start_controlled()
        erin = self.create("erin", "chacha20-ietf-poly1305")
        local = self.ss_local(erin)
        source = Source(seconds=30)
        self.addCleanup(source.stop)
        sock = socks5_connect(local, LOOPBACK, source.port)
        self.addCleanup(sock.close)
        received = 0
        while received < 1 << 20:  # the download runs
            data = sock.recv(65536)
            self.assertTrue(data, "the download ended early")
            received += len(data)
        api(self.api_port, "shadowrelay.v1.UserService/DeleteUser", {"name": "erin"})
        deleted_at = time.monotonic()
        sock.settimeout(5)
        ended = None
        try:
            while time.monotonic() - deleted_at < 5:
                if not sock.recv(65536):
                    break
        except OSError:
            pass
        ended = time.monotonic() - deleted_at
        # ss-local may still hand over what it had buffered; the cut itself is immediate.
        self.assertLess(ended, 1.0, f"download still running {ended:.2f} s after DeleteUser")
        self.fetch_fails(local)
        with self.assertRaises(ApiError) as err:
            api(self.api_port, "shadowrelay.v1.UserService/GetUser", {"name": "erin"})
        self.assertEqual(err.exception.code, "NOT_FOUND")

    def test_users_survive_restart_and_kill_9_during_writes(self):
        state = scratch_path("state")
        self.start_controlled(state_dir=state)
        frank = self.create("frank", "aes-128-gcm")
        self.server.stop()
        self.server.stopped_by_test = True
        self.start_controlled(state_dir=state)
        got = api(self.api_port, "shadowrelay.v1.UserService/GetUser", {"name": "frank"})
        self.assertEqual(got["password"], frank["password"])
        self.fetch_ok(self.ss_local(got))

        # A burst of writes, then kill -9 in the middle of it.
        acknowledged = []
        stop = threading.Event()

        def writer():
            for i in range(400):
                if stop.is_set():
                    return
                try:
                    self.create(f"burst{i}", "aes-256-gcm")
                    acknowledged.append(f"burst{i}")
                except (ApiError, AssertionError, subprocess.TimeoutExpired):
                    return

        thread = threading.Thread(target=writer)
        thread.start()
        wait_until(lambda: len(acknowledged) >= 5, 30, "the first API writes")
        self.server.signal(signal.SIGKILL)
        self.server.wait(10)
        self.server.stopped_by_test = True
        stop.set()
        thread.join(60)
        self.start_controlled(state_dir=state)
        names = {u["name"] for u in api(self.api_port, "shadowrelay.v1.UserService/ListUsers",
                                        {}).get("users", [])}
        self.assertIn("frank", names)
        missing = [n for n in acknowledged if n not in names]
        self.assertEqual(missing, [], "users acknowledged before the kill were lost")

    def test_api_calls_during_traffic(self):
        self.start_controlled()
        grace = self.create("grace", "aes-256-gcm")
        local = self.ss_local(grace)
        errors = []

        def churn(worker):
            try:
                for i in range(15):
                    name = f"churn{worker}-{i}"
                    self.create(name, "chacha20-ietf-poly1305")
                    api(self.api_port, "shadowrelay.v1.UserService/UpdateUser",
                        {"user": {"name": name, "enabled": False},
                         "update_mask": "enabled"})
                    api(self.api_port, "shadowrelay.v1.UserService/DeleteUser", {"name": name})
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=churn, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        for _ in range(10):
            self.fetch_ok(local)
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.fetch_ok(local, Nginx.BIG)

    def test_dedicated_port_opens_and_closes_with_its_user(self):
        self.start_controlled()
        port = free_port()  # CreateUser names the port: a probed one
        heidi = self.create("heidi", "aes-256-gcm", port=port)
        self.assertEqual(heidi["port"], port)
        wait_listening(port, self.server)
        self.fetch_ok(self.ss_local(heidi, server_port=port))
        # heidi's key does not open on the shared port.
        self.fetch_fails(self.ss_local(heidi))
        status = api(self.api_port, "shadowrelay.v1.ServerService/GetStatus", {})
        self.assertIn(port, [int(l["port"]) for l in status["listeners"]])
        api(self.api_port, "shadowrelay.v1.UserService/DeleteUser", {"name": "heidi"})

        def closed():
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1):
                    return False
            except OSError:
                return True
        wait_until(closed, 5, f"port {port} to close with its user")

    def test_max_connections_refuses_the_extra_session(self):
        self.start_controlled()
        ivan = self.create("ivan", "aes-128-gcm", limits={"max_connections": 1})
        local = self.ss_local(ivan)
        source = Source(seconds=20)
        self.addCleanup(source.stop)
        first = socks5_connect(local, LOOPBACK, source.port)
        self.addCleanup(first.close)
        self.assertTrue(first.recv(1024))
        self.fetch_fails(local)  # a second concurrent session
        first.close()
        wait_until(lambda: self._fetch_works(local), 10, "a session once the first closed")

    def _fetch_works(self, local):
        try:
            self.fetch_ok(local)
            return True
        except AssertionError:
            return False

    def test_config_users_relay_and_are_read_only(self):
        self.start_controlled(users_config=[
            {"name": "judy", "password": "judy-secret", "method": "aes-256-gcm"}])
        self.fetch_ok(self.start_local(self.relay_port, "aes-256-gcm", impl="libev",
                                       password="judy-secret"))
        for call, request in (("UpdateUser", {"user": {"name": "judy", "enabled": False},
                                              "update_mask": "enabled"}),
                              ("DeleteUser", {"name": "judy"})):
            with self.assertRaises(ApiError) as err:
                api(self.api_port, f"shadowrelay.v1.UserService/{call}", request)
            self.assertEqual(err.exception.code, "FAILED_PRECONDITION")
        with self.assertRaises(ApiError) as err:
            api(self.api_port, "shadowrelay.v1.UserService/ListUsers", {}, token="wrong")
        self.assertEqual(err.exception.code, "UNAUTHENTICATED")

    def test_deleted_users_series_end_and_a_new_user_of_that_name_starts_from_zero(self):
        self.start_controlled(extra=["--metrics-listen", f"{LOOPBACK}:0"])
        metrics_port = self.server.ready.metrics[1]

        def series(user):
            """The user's data_bytes_total values by (proto, direction), from a real scrape."""
            with urllib.request.urlopen(f"http://{LOOPBACK}:{metrics_port}/metrics",
                                        timeout=10) as r:
                text = r.read().decode()
            out = {}
            for m in re.finditer(r'^shadowrelay_data_bytes_total\{([^}]*)\} (\S+)$', text, re.M):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                if labels.get("user") == user:
                    out[(labels["proto"], labels["direction"])] = float(m.group(2))
            return out

        def user_down(name):
            got = api(self.api_port, "shadowrelay.v1.UserService/GetUser", {"name": name})
            return int(got["traffic"].get("bytes_down") or 0)

        one_fetch = self.nginx.files[Nginx.SMALL][0]
        gone, kept = self.create("gone", "aes-128-gcm"), self.create("kept", "aes-256-gcm")
        for _ in range(3):
            self.fetch_ok(self.ss_local(gone))
        self.fetch_ok(self.ss_local(kept))
        wait_until(lambda: series("gone").get(("tcp", "download"), 0) >= 3 * one_fetch, 10,
                   "gone's three downloads in the scrape")
        api(self.api_port, "shadowrelay.v1.UserService/DeleteUser", {"name": "gone"})
        wait_until(lambda: not series("gone"), 5, "gone's series to leave the scrape")
        self.assertGreaterEqual(series("kept").get(("tcp", "download"), 0), one_fetch)

        # A new user of the same name: counters from zero, in the scrape and in the API (the
        # old entry's larger totals must not turn the new deltas into an underflow).
        again = self.create("gone", "chacha20-ietf-poly1305")
        self.fetch_ok(self.ss_local(again))
        wait_until(lambda: series("gone").get(("tcp", "download"), 0) >= one_fetch, 10,
                   "the new gone's download in the scrape")
        wait_until(lambda: user_down("gone") >= one_fetch, 10, "the new gone's bytes_down")
        time.sleep(1.5)  # another registry tick: nothing more may arrive
        self.assertLess(series("gone")[("tcp", "download")], 2 * one_fetch)
        self.assertLess(user_down("gone"), 2 * one_fetch)


class ReadyLineTest(RelayTestCase):
    """Every listener on port 0: the server's one ready line names what it bound."""

    def test_port_zero_everywhere_names_four_working_addresses(self):
        self.require_ours("port 0 and the ready line")
        token_file = scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        method = "aes-256-gcm"
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", 0, "-u", "-k", PASSWORD,
                "-m", method, "--allow-private", "--control-listen", f"{LOOPBACK}:0",
                "--control-token-file", token_file, "--metrics-listen", f"{LOOPBACK}:0"]
        server = self.start_ours("ours-server-port-0", argv)
        ready = server.ready
        self.assertEqual(ready.role, "server", ready)
        self.assertEqual(len(ready.tcp), 1, ready)
        self.assertEqual(len(ready.udp), 1, ready)
        addresses = {"tcp": ready.tcp[0], "udp": ready.udp[0], "control": ready.control,
                     "metrics": ready.metrics}
        for name, address in addresses.items():
            self.assertIsInstance(address, tuple, f"{name}: {ready}")
            self.assertEqual(address[0], LOOPBACK, f"{name}: {ready}")
            self.assertNotEqual(address[1], 0, f"{name}: {ready}")
        # Four distinct (protocol, address) pairs: UDP on the TCP port, the API and /metrics on
        # ports of their own.
        self.assertEqual(ready.tcp, ready.udp, "UDP is not on the TCP port")
        ports = {name: address[1] for name, address in addresses.items()}
        self.assertEqual(len({ports["tcp"], ports["control"], ports["metrics"]}), 3, ready)
        with open(server.log_path, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if parse_ready_line(line) is not None]
        self.assertEqual(len(lines), 1, f"ready lines: {lines}")

        # TCP: a download through shadowsocks-libev's ss-local.
        web = nginx()
        local = self.start_local(ports["tcp"], method, impl="libev")
        result = curl(web.url(Nginx.SMALL), socks5_port=local, max_time=20)
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual(sha256(result.body), web.files[Nginx.SMALL][1], f"{result}")
        # UDP: a datagram there and back through ss-tunnel -u.
        echo = UdpEcho()
        self.addCleanup(echo.stop)
        sock = self.start_ss_tunnel_u(ports["udp"], method, PASSWORD, echo.port, "port-0")
        sock.settimeout(3)
        payload = os.urandom(600)
        sock.send(payload)
        try:
            self.assertEqual(sock.recv(70000), payload, "the datagram came back changed")
        except socket.timeout:
            self.fail(f"no answer within 3 s through the UDP port {ports['udp']}")
        # /metrics answers.
        with urllib.request.urlopen(f"http://{LOOPBACK}:{ports['metrics']}/metrics",
                                    timeout=10) as response:
            self.assertEqual(response.status, 200)
            self.assertIn("shadowrelay_", response.read().decode())
        # The control API's health check answers (it needs no token).
        self.assertEqual(api(ports["control"], "grpc.health.v1.Health/Check", {}, token="-"),
                         {"status": "SERVING"})


if __name__ == "__main__":
    main()
