# SPDX-License-Identifier: Apache-2.0
"""Per-user bandwidth (issue 18 §3) end to end, with real processes on loopback: our server
(two workers) with users of the config file, shadowsocks-libev's ss-local and ss-tunnel -u as
the clients, nginx and curl, Python sinks and UDP responders.

  * A user limited to 1 MiB/s downloading over 4 parallel connections for 8 s gets 1 MiB/s
    +- 10% in total (the connections land on both workers: the rate is shared), and the time it
    waited shows in shadowrelay_user_rate_limited_seconds_total; an unlimited user on the same
    server meanwhile keeps its throughput (compared with its own, measured alone in the test).
  * Uploads are limited the same way (measured at the target).
  * UDP over the rate is dropped and counted (reason over_rate), upload and download apart.
  * The same for a Shadowsocks 2022 user (our local and tunnel -U as clients), whose rate is
    --default-bytes-per-second.
  * The control API: bytes_per_second set by CreateUser, changed by UpdateUser with the mask
    limits.bytesPerSecond (open sessions follow), and --default-bytes-per-second for users that
    name none.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

import e2e_harness as h

METHOD = "aes-128-gcm"
MIB = 1 << 20
RATE = MIB            # the limited user's bytes_per_second
WINDOW = 8            # seconds the limited user downloads
CONNECTIONS = 4
TOLERANCE = 0.10      # the issue's +- 10%
BIG = "bandwidth-64m.bin"
BIG_SIZE = 64 << 20
# The unlimited user's throughput next to the limited downloads, as a share of its throughput
# alone. Not "within noise" in the statistical sense: this 2-core machine is shared (other
# builds and tests run beside this one) and, while both run, curl, ss-local, nginx and the
# server's two workers of the unlimited transfer compete for the same two cores with the limited
# user's four curls and ss-local; throughput alone and together, a few seconds each, was seen to
# vary by a third between runs with no shaping at all. Half is far above what a shaper that
# stalled the worker (a blocking wait, a lock, a busy loop of a paused session) would leave:
# those take the unlimited user down to the limited user's 1 MiB/s or stop it.
MIN_SHARE_OF_ALONE = 0.5
UDP_RATE = 100_000  # the UDP tests' limit: a burst of 10000 bytes (100 ms)
PACE = 0.001  # seconds between the datagrams of the UDP test (sleeps at least this long)


def big_file_url():
    nginx = h.nginx()
    path = os.path.join(nginx.dir, "www", BIG)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            chunk = os.urandom(MIB)
            for _ in range(BIG_SIZE // MIB):
                f.write(chunk)
    return nginx.url(BIG, host=h.LOOPBACK)


def curl_argv(url, socks5_port, max_time):
    return [h.tool("curl"), "-q", "-sS", "--max-time", str(max_time), "-o", "/dev/null",
            "-w", "%{size_download} %{time_total}", "--socks5-hostname",
            f"{h.LOOPBACK}:{socks5_port}", url]


def parse_curl(proc, out, err, allow_timeout):
    # 28: --max-time reached, which is how a timed download ends.
    ok = (0, 28) if allow_timeout else (0,)
    if proc.returncode not in ok:
        raise AssertionError(f"curl exited {proc.returncode}: {err.strip()!r}")
    size, seconds = out.split()
    return int(size), float(seconds)


def throughput(url, socks5_port, seconds):
    """Bytes per second of whole downloads of `url`, one after another for about `seconds`."""
    total = 0
    spent = 0.0
    end = time.monotonic() + seconds
    for _ in range(1000):  # bounded; ends by time long before
        if time.monotonic() >= end:
            break
        proc = subprocess.run(curl_argv(url, socks5_port, 30), capture_output=True, text=True,
                              timeout=45)
        size, took = parse_curl(proc, proc.stdout, proc.stderr, allow_timeout=False)
        total += size
        spent += took
    return total / spent


def start_downloads(test, url, socks5_port, seconds, count=CONNECTIONS):
    """`count` curls downloading `url` at once for `seconds` (their --max-time)."""
    procs = [subprocess.Popen(curl_argv(url, socks5_port, seconds), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    for proc in procs:
        test.addCleanup(lambda p=proc: p.poll() is None and p.kill())
    return procs


def downloaded(procs, seconds):
    """The bytes each of start_downloads()'s curls got, once they ended."""
    sizes = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 20)
        sizes.append(parse_curl(proc, out, err, allow_timeout=True)[0])
    return sizes


class TimedReads:
    """Reads a stream to its end on a thread, noting (time, bytes) of each read."""

    def __init__(self):
        self.reads = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def connection(self):
        """The stream to read (on the thread); None when there is none."""
        raise NotImplementedError

    def _run(self):
        conn = self.connection()
        if conn is None:
            return
        conn.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data = conn.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.reads.append((time.monotonic(), len(data)))

    def bytes_between(self, start, end):
        return sum(n for t, n in list(self.reads) if start <= t < end)

    def rate(self, seconds, settle=0.5):
        """Bytes per second over the next `seconds`, after `settle` s (the wait included)."""
        time.sleep(settle)
        start = time.monotonic()
        time.sleep(seconds)
        return self.bytes_between(start, start + seconds) / seconds

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=5)


class Sink(TimedReads):
    """Accepts one TCP connection and reads it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((h.LOOPBACK, 0))
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        super().__init__()

    def connection(self):
        try:
            return self.sock.accept()[0]
        except OSError:
            return None

    def stop(self):
        super().stop()
        self.sock.close()


class Reader(TimedReads):
    """A download through a SOCKS5 connection: `socks5_port` is a client's, the download an
    HTTP GET of `name` from nginx."""

    def __init__(self, socks5_port, name):
        self.sock = h.socks5_connect(socks5_port, h.LOOPBACK, h.nginx().port)
        self.sock.sendall(f"GET /{name} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        super().__init__()

    def connection(self):
        return self.sock

    def stop(self):
        super().stop()
        self.sock.close()


class Amplifier(h.UdpEcho):
    """A UDP responder: a datagram whose first byte is k gets k replies of REPLY bytes, paced
    as the client's requests are."""

    REPLY = bytes(1000)  # the content does not matter: the server encrypts it

    def reply(self, data, peer):
        for _ in range(data[0] if data else 0):
            try:
                self.sock.sendto(self.REPLY, peer)
            except OSError:
                pass
            time.sleep(PACE)


def drain_udp(sock, quiet=0.5, limit=10.0):
    """Datagrams received on `sock` until none came for `quiet` s (at most `limit` s)."""
    count = 0
    sock.settimeout(quiet)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            sock.recv(65535)
        except socket.timeout:
            break
        count += 1
    return count


def check_udp_drops(test, sock, amplifier, rate):
    """Through `sock` (a UDP client of a user limited to `rate` bytes/s, connected to
    `amplifier`): datagrams over the rate are dropped and counted (reason over_rate) upload and
    download apart, and about the rate gets through. `test` has metric()."""
    def send(count, size, asked):
        """`count` datagrams of `size` bytes, one every PACE or so, each asking for `asked`
        replies. Returns the replies that came back and how many datagrams of 1000 bytes
        may pass in that time: the burst plus the rate (generously)."""
        sent_at = time.monotonic()
        for _ in range(count):
            sock.send(bytes([asked]) + os.urandom(size - 1))
            time.sleep(PACE)
        replies = drain_udp(sock)
        spent = time.monotonic() - sent_at
        return replies, (rate / 10 + rate * spent) / len(Amplifier.REPLY) + 5

    def drops_reach(count, what):
        h.wait_until(lambda: test.metric("shadowrelay_udp_dropped_total",
                                         reason="over_rate") >= count, 5, what)
        return test.metric("shadowrelay_udp_dropped_total", reason="over_rate")

    # Upload: 300 datagrams of 1000 bytes in about 0.3 s (ten times the rate; paced, so
    # that no socket buffer on the way overflows), each asking for one reply.
    replies, may_pass = send(300, 1000, 1)
    # Most of the rest is dropped by the server, over the rate (a few may be lost by a
    # socket buffer on the way, which the server cannot count).
    dropped_up = drops_reach(0.8 * (300 - may_pass), "upload drops in /metrics")
    print(f"  udp up: {amplifier.received} of 300 reached the target, {replies} replies, "
          f"{dropped_up:.0f} dropped", file=sys.stderr)
    test.assertGreater(amplifier.received, 0)  # the rate lets some through
    test.assertLessEqual(amplifier.received, may_pass)
    test.assertLessEqual(dropped_up, 300)

    # Download: 10 small requests (well under the rate) each asking for 30 replies of 1000
    # bytes: 300 kB back within about 0.3 s, ten times the rate.
    time.sleep(0.3)  # both buckets full again
    before = amplifier.received
    replies, may_pass = send(10, 100, 30)
    dropped_down = drops_reach(dropped_up + 0.6 * (300 - may_pass),
                               "download drops in /metrics") - dropped_up
    print(f"  udp down: {replies} of 300 replies came back, {dropped_down:.0f} dropped",
          file=sys.stderr)
    test.assertEqual(amplifier.received - before, 10)  # the requests were under the rate
    test.assertGreater(replies, 0)
    test.assertLessEqual(replies, may_pass)
    test.assertLessEqual(dropped_down + replies, 300)


class ServerCase(h.RelayTestCase):
    """Our server with UDP, /metrics on port 0 and two workers."""

    def setUp(self):
        super().setUp()
        self.require_ours("per-user bandwidth is ours")

    def start_server(self, users=None, method=METHOD, password=h.PASSWORD, extra=()):
        """`users`: the config file's list (none: no file). The -k user of server_argv stays:
        with users, a port with several (trial decryption)."""
        args = ["-u", "--workers", "2", "--metrics-listen", f"{h.LOOPBACK}:0"]
        if users is not None:
            config = h.scratch_path("bandwidth-users.json")
            with open(config, "w") as f:
                json.dump({"users": users}, f)
            args += ["-c", config]
        self.server = self.start_ours("ours-server-bandwidth", h.server_argv(
            "ours", 0, method, password=password, extra=args + list(extra)))
        self.metrics_port = self.server.ready.metrics[1]
        return self.server.ready.port

    def metric(self, name, **labels):
        return h.metric_sum(self.metrics_port, name, labels)


class BandwidthTest(ServerCase):
    """AEAD-2017 users of the config file, shadowsocks-libev's clients."""

    def ss_local(self, port, password):
        return self.start_local(port, METHOD, impl="libev", password=password)

    def test_limited_download_keeps_the_rate_and_the_unlimited_user_its_throughput(self):
        port = self.start_server([
            {"name": "slow", "password": "slow-password", "bytes_per_second": RATE},
            {"name": "fast", "password": "fast-password"},
        ])
        url = big_file_url()
        slow_local = self.ss_local(port, "slow-password")
        fast_local = self.ss_local(port, "fast-password")
        alone = throughput(url, fast_local, 3)

        started = time.monotonic()
        procs = start_downloads(self, url, slow_local, WINDOW)
        time.sleep(1)  # past the first burst: the limited user is being shaped
        together = throughput(url, fast_local, WINDOW - 3)
        sizes = downloaded(procs, WINDOW)
        elapsed = time.monotonic() - started
        rate = sum(sizes) / WINDOW
        print(f"  limited: {sizes} bytes in {WINDOW} s ({elapsed:.1f} s with curl's start "
              f"and exit) = {rate / MIB:.3f} MiB/s; unlimited alone {alone / MIB:.0f} MiB/s, "
              f"beside it {together / MIB:.0f} MiB/s", file=sys.stderr)
        self.assertGreaterEqual(rate, RATE * (1 - TOLERANCE), sizes)
        self.assertLessEqual(rate, RATE * (1 + TOLERANCE), sizes)
        # Each connection got a share: the four share one rate, none starves.
        for size in sizes:
            self.assertGreater(size, RATE * WINDOW / CONNECTIONS / 4, sizes)
        self.assertGreaterEqual(together, MIN_SHARE_OF_ALONE * alone,
                                f"alone {alone:.0f} B/s, beside the limited user "
                                f"{together:.0f} B/s")
        # The unlimited user was never near 1 MiB/s (the limit is not applied to everyone).
        self.assertGreater(alone, 20 * RATE)

        # The limited user waited most of the window (once, not once per connection); the
        # unlimited one never; nobody waited on the upload side of a download.
        h.wait_until(lambda: self.metric("shadowrelay_user_rate_limited_seconds_total",
                                         user="slow", direction="down") >= WINDOW / 2,
                     5, "the limited user's waits in /metrics")
        waited = self.metric("shadowrelay_user_rate_limited_seconds_total", user="slow",
                             direction="down")
        self.assertLessEqual(waited, elapsed + 1)
        self.assertEqual(self.metric("shadowrelay_user_rate_limited_seconds_total",
                                     user="fast"), 0)
        self.assertEqual(self.metric("shadowrelay_user_rate_limited_seconds_total",
                                     user="slow", direction="up"), 0)

    def test_upload_is_limited_at_the_target(self):
        port = self.start_server([
            {"name": "uploader", "password": "up-password", "bytes_per_second": RATE // 2},
        ])
        local = self.ss_local(port, "up-password")
        sink = self.add_peer(Sink())
        sock = h.socks5_connect(local, h.LOOPBACK, sink.port)
        self.addCleanup(sock.close)
        sock.settimeout(0.2)
        payload = os.urandom(64 << 10)
        started = time.monotonic()
        seconds = 6
        while time.monotonic() < started + seconds:
            try:
                sock.send(payload)
            except socket.timeout:
                continue  # the path is full: the server reads slowly
        # Steady state: from the second second on (socket buffers and the first burst aside).
        got = sink.bytes_between(started + 1, started + seconds)
        rate = got / (seconds - 1)
        print(f"  upload: {rate / MIB:.3f} MiB/s at a limit of {RATE / 2 / MIB:.3f}",
              file=sys.stderr)
        self.assertGreaterEqual(rate, RATE / 2 * (1 - TOLERANCE))
        self.assertLessEqual(rate, RATE / 2 * (1 + TOLERANCE))
        h.wait_until(lambda: self.metric("shadowrelay_user_rate_limited_seconds_total",
                                         user="uploader", direction="up") >= 2,
                     5, "the uploader's waits in /metrics")

    def test_udp_over_the_rate_is_dropped_and_counted_both_ways(self):
        port = self.start_server([
            {"name": "udp-slow", "password": "udp-password", "bytes_per_second": UDP_RATE},
        ])
        amplifier = self.add_peer(Amplifier())
        sock = self.start_ss_tunnel_u(port, METHOD, "udp-password", amplifier.port, "udp-slow")
        check_udp_drops(self, sock, amplifier, UDP_RATE)

class Bandwidth2022Test(ServerCase):
    """A Shadowsocks 2022 server whose user (-k) has --default-bytes-per-second, with our own
    local and tunnel as clients (shadowsocks-libev has no 2022)."""

    METHOD_2022 = "2022-blake3-aes-128-gcm"
    PSK = base64.b64encode(bytes(range(16))).decode()

    def test_tcp_is_shaped_and_udp_dropped_for_a_2022_user(self):
        port = self.start_server(method=self.METHOD_2022, password=self.PSK,
                                 extra=["--default-bytes-per-second", str(RATE)])
        local = self.start_local(port, self.METHOD_2022, password=self.PSK)
        seconds = 5
        sizes = downloaded(start_downloads(self, big_file_url(), local, seconds), seconds)
        rate = sum(sizes) / seconds
        print(f"  2022 tcp: {sizes} = {rate / MIB:.3f} MiB/s", file=sys.stderr)
        self.assertGreaterEqual(rate, RATE * (1 - TOLERANCE), sizes)
        self.assertLessEqual(rate, RATE * (1 + TOLERANCE), sizes)

        # UDP (a -U tunnel) at a smaller default rate: the server again with it.
        h.stopped_log(self, self.server)  # exits 0 on SIGTERM
        port = self.start_server(method=self.METHOD_2022, password=self.PSK,
                                 extra=["--default-bytes-per-second", str(UDP_RATE)])
        amplifier = self.add_peer(Amplifier())
        tunnel = self.start_tunnel(port, self.METHOD_2022, f"{h.LOOPBACK}:{amplifier.port}",
                                   password=self.PSK, extra=["-U"])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.connect((h.LOOPBACK, tunnel))
        check_udp_drops(self, sock, amplifier, UDP_RATE)


class BandwidthApiTest(h.RelayTestCase):
    """bytes_per_second through the control API, and --default-bytes-per-second."""

    TOKEN = "e2e-bandwidth-token-0123456789"
    DEFAULT = 512 << 10

    def setUp(self):
        super().setUp()
        self.require_ours("the control API")
        token_file = h.scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(self.TOKEN + "\n")
        os.chmod(token_file, 0o600)
        self.server = self.start_ours("ours-server-bandwidth-api", h.server_argv(
            "ours", 0, METHOD, extra=[
                "--workers", "2", "--control-listen", f"{h.LOOPBACK}:0",
                "--control-token-file", token_file,
                "--default-bytes-per-second", str(self.DEFAULT)]))
        self.api_port = self.server.ready.control[1]
        big_file_url()  # written into nginx's root

    def api(self, method, request):
        return h.grpc_api(self.api_port, f"shadowrelay.v1.UserService/{method}", request,
                          self.TOKEN)

    def assert_rate(self, measured, want, what):
        print(f"  {what}: {measured / 1024:.0f} KiB/s (limit {want / 1024:.0f})",
              file=sys.stderr)
        self.assertGreaterEqual(measured, want * (1 - 1.5 * TOLERANCE), what)
        self.assertLessEqual(measured, want * (1 + 1.5 * TOLERANCE), what)

    def test_api_limit_applies_to_open_sessions_and_the_default_to_users_without(self):
        fixed = self.api("CreateUser", {"name": "api-fixed", "method": METHOD,
                                        "limits": {"bytes_per_second": 2 * MIB}})
        self.assertEqual(int(fixed["limits"]["bytes_per_second"]), 2 * MIB)
        plain = self.api("CreateUser", {"name": "api-plain", "method": METHOD})
        self.assertEqual(int(plain["limits"]["bytes_per_second"]), 0)  # 0: the default

        fixed_local = self.start_local(self.server.ready.port, METHOD, impl="libev",
                                       password=fixed["password"])
        plain_local = self.start_local(self.server.ready.port, METHOD, impl="libev",
                                       password=plain["password"])
        reader = self.add_peer(Reader(fixed_local, BIG))
        self.assert_rate(reader.rate(3), 2 * MIB, "api-fixed, created with 2 MiB/s")

        # The same open connection follows an UpdateUser (camelCase path, as grpcurl sends).
        updated = self.api("UpdateUser", {"user": {"name": "api-fixed",
                                                   "limits": {"bytes_per_second": 256 << 10}},
                                          "update_mask": "limits.bytesPerSecond"})
        self.assertEqual(int(updated["limits"]["bytes_per_second"]), 256 << 10)
        self.assert_rate(reader.rate(3, settle=1.0), 256 << 10, "api-fixed, updated to 256 KiB/s")
        reader.stop()

        # A user that names no rate has the server's default.
        other = self.add_peer(Reader(plain_local, BIG))
        self.assert_rate(other.rate(3), self.DEFAULT, "api-plain, the default")
        other.stop()

        # Back to 0 through the "limits" path: the default again, not unlimited.
        self.api("UpdateUser", {"user": {"name": "api-fixed", "limits": {}},
                                "update_mask": "limits"})
        again = self.add_peer(Reader(fixed_local, BIG))
        self.assert_rate(again.rate(3), self.DEFAULT, "api-fixed, limit removed")
        again.stop()
        listed = {u["name"]: u for u in self.api("ListUsers", {})["users"]}
        self.assertEqual(int(listed["api-fixed"]["limits"]["bytes_per_second"]), 0)


if __name__ == "__main__":
    h.main()
