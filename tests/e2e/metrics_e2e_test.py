# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics of the real server: exact payload bytes each way, the per-connection
histogram, failed handshakes and timeouts driving their counters, `promtool check metrics` on a
real scrape, and every metric of the Grafana dashboard and the example alerts present in it.

Each way a session can end is driven for real and counted under the `status` label the code
gives it (relay/stats/tcp_stats.cc closeStatusLabel): idle sessions (timeout_idle and
timeouts{kind="idle"}), private targets (target_private), names that do not resolve (dns_failed
and the DNS query result, with dnsmasq as the server's only name server), closed ports
(target_refused) and targets that never answer the SYN (timeout_connect). Under 1000 concurrent
connections through shadowsocks-libev's ss-local, a thread scrapes /metrics every 50 ms and no
counter or histogram series may ever go down.

With users of the control API (created through grpc_call) and the UDP relay on: exact TCP and
UDP payload bytes and datagrams per user through shadowsocks-libev's ss-local and `ss-tunnel
-u`, the association counters and gauge, shadowrelay_users; with --metrics-per-user=false the
same totals under user "". A replayed client stream closes as `replay`, an idle association
expires as timeouts{kind="udp"}, and a name server that never answers gives
timeouts{kind="dns"}, dns_queries{result="timeout"} and closes as `dns_failed`.

The endpoint itself: a scrape over [::1] with --metrics-token-file (401 without the token, 200
with it), a token file others can read refused (exit 2), and 32 stalled clients (silent, or half
a request) that do not delay a scrape.
"""
import os
import pwd
import re
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from e2e_harness import (LOOPBACK, PASSWORD, Config, EchoServer, RecordingProxy, RelayTestCase,
                         UdpEcho, echo_roundtrip, free_port, grpc_api, ipv6_loopback_available,
                         main, recv_exact, scratch_path, socks5_address, socks5_connect,
                         stopped_udp_summary, tool, wait_until)

METHOD = "chacha20-ietf-poly1305"
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')
# Workers hand their counters to the exporter once a second (relay/worker/worker.cc); the servers
# started here do it every 50 ms. Nothing waits for an interval: tests wait for publishes, counted
# by shadowrelay_worker_publishes_total.
os.environ["SHADOWRELAY_PUBLISH_INTERVAL_MS"] = "50"
CONNECTIONS = 1000  # the concurrent load of test_counters_never_go_backwards_under_1000_...
IPV6_LOOPBACK = "::1"


def read_until_closed(sock):
    """Reads until the peer closes; returns (the bytes read, whether it ended with a reset).
    socket.timeout propagates."""
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return got, False
            got += chunk
    except ConnectionResetError:
        return got, True


def _labels(text):
    return dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', text or ""))


def scrape(port):
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def value(text, name, **labels):
    """Sum of the series of `name` whose labels include `labels` (0 if none). A label absent
    from a series matches the value "" (user="": no user, or --metrics-per-user=false)."""
    total = 0.0
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) != name:
            continue
        got = _labels(m.group(2))
        if all(got.get(k, "") == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def cumulative_series(text):
    """{(sample name, label string): value} of every series that may only grow: counters and
    the _bucket, _count and _sum of histograms (by the `# TYPE` lines of the scrape)."""
    types = {}
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) == 4:
                types[parts[2]] = parts[3]
            continue
        m = _LINE.match(line)
        if not m:
            continue
        name = m.group(1)
        kind = types.get(name)
        if kind is None:
            for suffix in ("_bucket", "_count", "_sum"):
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                    kind = "histogram"
        if kind in ("counter", "histogram"):
            out[(name, m.group(2) or "")] = float(m.group(3))
    return out


def histogram_problems(text):
    """Within one scrape: each histogram's buckets are cumulative, the last is +Inf and it
    equals _count."""
    problems = []
    buckets = {}
    counts = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, labels, number = m.group(1), _labels(m.group(2)), float(m.group(3))
        if name.endswith("_bucket"):
            le = labels.pop("le", "?")
            key = (name[:-len("_bucket")], tuple(sorted(labels.items())))
            buckets.setdefault(key, []).append((le, number))
        elif name.endswith("_count"):
            counts[(name[:-len("_count")], tuple(sorted(labels.items())))] = number
    for key, series in buckets.items():
        values = [v for _, v in series]
        if values != sorted(values):
            problems.append(f"{key}: buckets not cumulative: {series}")
        if series[-1][0] != "+Inf":
            problems.append(f"{key}: last bucket is le={series[-1][0]}, not +Inf")
        if counts.get(key) != series[-1][1]:
            problems.append(f"{key}: +Inf bucket {series[-1][1]} != _count {counts.get(key)}")
    return problems


def free_udp_port():
    """A port free on LOOPBACK for UDP and TCP when probed, for dnsmasq (it binds both and
    cannot report what it bound). The TCP probe binds without SO_REUSEADDR, as dnsmasq does, so
    a port still held by TIME_WAIT connections (thousands after the concurrency tests) is
    skipped."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port
    raise AssertionError("no port free for both UDP and TCP on 127.0.0.1 in 200 tries")


def dns_query(name, qid=0x5252):
    """A recursion-desired DNS query for `name`, type A, class IN."""
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


class Dnsmasq:
    """dnsmasq on 127.0.0.1:<free UDP port>, answering only from `records`: .test is local, so
    any other .test name is NXDOMAIN. Given to the server with -d, it makes name resolution
    independent of the machine's DNS. Its query log tells which names reached it."""

    PROBE = "readiness-probe.test"

    def __init__(self, test, records=()):
        self.log_path = None
        last = "never started"
        for _ in range(5):  # another process may take the free port before dnsmasq binds it
            self.port = free_udp_port()
            self.log_path = scratch_path("dnsmasq-queries.log")
            argv = [tool("dnsmasq"), "--keep-in-foreground", "--no-daemon",
                    "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                    "--pid-file=", "--listen-address=127.0.0.1", "--bind-interfaces",
                    f"--port={self.port}", "--cache-size=0", "--local=/test/",
                    "--log-queries", f"--log-facility={self.log_path}",
                    f"--user={pwd.getpwuid(os.geteuid()).pw_name}"] + list(records)
            self.child = test.spawn(f"dnsmasq-{self.port}", argv, ours=False)
            if self._answers_within(5.0):
                return
            last = f"exit {self.child.poll()}:\n{self.child.log_tail()}"
            self.child.kill()
        raise AssertionError(f"dnsmasq did not start: {last}")

    def _answers_within(self, seconds):
        end = time.monotonic() + seconds
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            while time.monotonic() < end:
                if self.child.poll() is not None:
                    return False
                s.sendto(dns_query(self.PROBE), (LOOPBACK, self.port))
                try:
                    if len(s.recv(512)) >= 12:
                        return True
                except OSError:
                    pass
        return False

    @property
    def address(self):
        return f"{LOOPBACK}:{self.port}"

    def queries_for(self, name):
        """Queries dnsmasq logged for `name` (each A or AAAA query is one line)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return sum(1 for line in f if "query[" in line and f"] {name} from " in line)
        except FileNotFoundError:
            return 0


class Scraper:
    """Scrapes /metrics every `interval` s on a thread until stopped (at most `limit` times)."""

    def __init__(self, port, interval=0.05, limit=4000):
        self.port, self.interval, self.limit = port, interval, limit
        self.texts = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set() and len(self.texts) < self.limit:
            try:
                self.texts.append(scrape(self.port))
            except Exception as e:  # reported by the test
                self.errors.append(f"{type(e).__name__}: {e}")
                if len(self.errors) > 20:
                    return
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(10)


class _Conn:
    """One client connection of the load test: bytes to send, bytes read, what completes a step."""

    def __init__(self, index, sock):
        self.index, self.sock = index, sock
        self.out = bytearray()
        self.inbuf = bytearray()
        self.need = 0


def pump(conns, deadline, what):
    """Sends each connection's .out and reads until it has .need bytes; bounded by `deadline`."""
    sel = selectors.DefaultSelector()
    waiting = 0
    try:
        for c in conns:
            sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            waiting += 1
        while waiting:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: {waiting} connections still waiting at the "
                                     "deadline")
            for key, mask in sel.select(timeout=0.5):
                c = key.data
                try:
                    if mask & selectors.EVENT_WRITE and c.out:
                        del c.out[:c.sock.send(c.out)]
                    if mask & selectors.EVENT_READ:
                        data = c.sock.recv(65536)
                        if not data:
                            raise AssertionError(f"{what}: connection #{c.index} closed after "
                                                 f"{len(c.inbuf)} bytes")
                        c.inbuf += data
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    raise AssertionError(f"{what}: connection #{c.index}: {e}") from e
                if not c.out and len(c.inbuf) >= c.need:
                    sel.unregister(c.sock)
                    waiting -= 1
                else:
                    sel.modify(c.sock, selectors.EVENT_READ |
                               (selectors.EVENT_WRITE if c.out else 0), c)
    finally:
        sel.close()


OPENED = "shadowrelay_tcp_connections_opened_total"
CLOSED = "shadowrelay_tcp_connections_closed_total"
ACTIVE = "shadowrelay_tcp_connections_active"
TIMEOUTS = "shadowrelay_timeouts_total"
DNS_QUERIES = "shadowrelay_dns_queries_total"
DATA = "shadowrelay_data_bytes_total"
UDP_PACKETS = "shadowrelay_udp_packets_total"
UDP_ACTIVE = "shadowrelay_udp_associations_active"
UDP_CREATED = "shadowrelay_udp_associations_created_total"
UDP_EVICTED = "shadowrelay_udp_associations_evicted_total"
UDP_DROPPED = "shadowrelay_udp_dropped_total"
USERS = "shadowrelay_users"
PUBLISHES = "shadowrelay_worker_publishes_total"
TOKEN = "e2e-metrics-token-0123456789"  # the control API's bearer token (a file, 0600)


def label_values(text, name, label):
    """The values of `label` over the series of `name` ("" where the label is absent)."""
    out = set()
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m.group(1) == name:
            out.add(_labels(m.group(2)).get(label, ""))
    return out


def publishes(text):
    """{worker label: publishes} of a scrape."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m.group(1) == PUBLISHES:
            out[_labels(m.group(2)).get("worker", "")] = float(m.group(3))
    return out


class SilentDns:
    """A name server that never answers: a UDP socket on 127.0.0.1 whose thread reads the
    queries, counts them and drops them, so that every lookup sent there times out (a closed
    port would answer with ICMP and fail the lookup at once as server_failure)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silent-dns", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) >= 12:  # a DNS header at least
                self.queries += 1

    @property
    def address(self):
        return f"{LOOPBACK}:{self.port}"

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class MetricsTest(RelayTestCase):
    def start_with_metrics(self, allow_private=True, extra=()):
        self.require_ours("the metrics exporter")
        port = self.start_server(METHOD, handshake_timeout=1, allow_private=allow_private,
                                 extra=["--metrics-listen", f"{LOOPBACK}:0"] + list(extra))
        self.metrics_port = self.last_child.ready.metrics[1]
        return port

    def published_since(self, since, what):
        """Waits until every worker has published 3 times more than the scrape `since` shows,
        and returns the scrape that shows it. A loop iteration publishes at most twice (on a
        close, at most every 250 ms, and on its timer), so the third publish comes from an
        iteration that began after `since` was taken: it has seen whatever had reached the
        server's sockets by then. A scrape reads the counts before the samples, so its samples
        are at least that recent."""
        base = publishes(since)
        self.assertTrue(base, f"no {PUBLISHES} series in the scrape")
        last = [since]

        def grown():
            last[0] = scrape(self.metrics_port)
            now = publishes(last[0])
            return all(now.get(w, 0) >= n + 3 for w, n in base.items())
        wait_until(grown, 10, f"3 publishes of every worker ({what})")
        return last[0]

    def quiet_baseline(self):
        """A scrape taken once every session so far (the readiness probes) is closed and
        published: counts after it belong to the test alone."""
        last = [scrape(self.metrics_port)]

        def settled():
            last[0] = self.published_since(last[0], "the readiness probes")
            return (value(last[0], ACTIVE) == 0 and
                    value(last[0], OPENED) == value(last[0], CLOSED))
        wait_until(settled, 20, "every session opened before the test closed and published")
        return last[0]

    def settle_and_measure(self, before, name, expected, what, **labels):
        """Waits until `name{labels}` grew by `expected`, then for every worker to publish
        after that, so that a count that would overshoot shows, and returns a function
        measuring growth since `before`."""
        reached = [None]

        def grown():
            reached[0] = scrape(self.metrics_port)
            return value(reached[0], name, **labels) - value(before, name, **labels) >= expected
        wait_until(grown, 8, what)
        after = self.published_since(reached[0], f"after {what}")
        self.last_scrape = after
        return lambda n, **want: value(after, n, **want) - value(before, n, **want)

    def closed_without_a_byte(self, local, host, port, within):
        """CONNECTs to host:port through our local, sends a request and waits for the relay to
        close; asserts that not one byte came back. Returns the seconds from the request to
        the close."""
        sock = socks5_connect(local, host, port)
        try:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            start = time.monotonic()
            sock.settimeout(within)
            try:
                # A reset is a close all the same; what matters is that nothing came back.
                got, _ = read_until_closed(sock)
            except socket.timeout:
                self.fail(f"{host}:{port}: the relay did not close within {within} s")
            self.assertEqual(got, b"", f"{host}:{port}: bytes came back through the relay")
            return time.monotonic() - start
        finally:
            sock.close()

    def test_exact_bytes_and_the_connection_histogram(self):
        server = self.start_with_metrics()
        local = self.start_local(server, METHOD)
        echo = EchoServer()
        self.addCleanup(echo.stop)
        before = self.quiet_baseline()
        n = 100_003
        payload = os.urandom(n)
        sock = socks5_connect(local, LOOPBACK, echo.port)
        sock.sendall(payload)
        got = b""
        while len(got) < n:
            chunk = sock.recv(65536)
            self.assertTrue(chunk)
            got += chunk
        self.assertEqual(got, payload)
        sock.close()

        def grown(name, **labels):
            return value(scrape(self.metrics_port), name, **labels) - value(before, name, **labels)
        wait_until(lambda: grown("shadowrelay_tcp_connection_bytes_count") >= 1, 10,
                   "the closed session in the per-connection histogram")
        self.assertEqual(grown("shadowrelay_data_bytes_total", proto="tcp", direction="upload"), n)
        self.assertEqual(grown("shadowrelay_data_bytes_total", proto="tcp", direction="download"), n)
        self.assertEqual(grown("shadowrelay_tcp_connection_bytes_sum"), 2 * n)
        self.assertEqual(grown("shadowrelay_tcp_connections_closed_total", status="ok"), 1)
        self.assertEqual(grown("shadowrelay_tcp_connections_opened_total"), 1)

    def test_auth_failure_and_handshake_timeout_drive_their_counters(self):
        server = self.start_with_metrics()
        before = scrape(self.metrics_port)
        with socket.create_connection((LOOPBACK, server)) as probe:
            probe.sendall(os.urandom(100))  # no key opens this
            probe.settimeout(5)
            try:
                while probe.recv(4096):
                    pass
            except OSError:
                pass
        silent = socket.create_connection((LOOPBACK, server))  # sends nothing
        self.addCleanup(silent.close)

        def grown(name, **labels):
            return value(scrape(self.metrics_port), name, **labels) - value(before, name, **labels)
        wait_until(lambda: grown("shadowrelay_timeouts_total", kind="handshake") >= 1, 6,
                   "the handshake timeout counter")
        self.assertGreaterEqual(grown("shadowrelay_tcp_connections_closed_total",
                                      status="auth_failed"), 1)
        self.assertGreaterEqual(grown("shadowrelay_tcp_connections_closed_total",
                                      status="timeout_handshake"), 1)
        self.assertGreaterEqual(grown("shadowrelay_probe_bytes_count"), 2)
        self.assertGreaterEqual(grown("shadowrelay_probe_bytes_sum"), 100)

    def test_promtool_and_dashboard_on_a_real_scrape(self):
        server = self.start_with_metrics()
        local = self.start_local(server, METHOD)
        echo = EchoServer()
        self.addCleanup(echo.stop)
        before = self.quiet_baseline()
        sock = socks5_connect(local, LOOPBACK, echo.port)
        sock.sendall(b"x" * 1000)
        sock.recv(1000)
        sock.close()
        # A scrape with the session in it: its bytes, its close and both histograms.
        wait_until(lambda: value(scrape(self.metrics_port), CLOSED) - value(before, CLOSED) >= 1,
                   10, "the session's close in the scrape")
        text = scrape(self.metrics_port)
        path = os.path.join(Config.tmp, "scrape.txt")
        with open(path, "w") as f:
            f.write(text)
        check = subprocess.run([tool("promtool"), "check", "metrics"], input=text,
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(check.stdout.strip() + check.stderr.strip(), "")
        for name in ("process_resident_memory_bytes", "process_open_fds",
                     "process_cpu_seconds_total", "process_start_time_seconds",
                     "shadowrelay_build_info", "shadowrelay_users"):
            self.assertIn(name, text)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        dash = subprocess.run(
            ["python3", "-B", os.path.join(root, "tests/api/metrics/dashboard_test.py"),
             f"--file={path}",
             f"--dashboard={os.path.join(root, 'deploy/grafana/dashboards/shadowrelay.json')}",
             f"--rules={os.path.join(root, 'deploy/prometheus/alerts.yml')}",
             # This server has no etcd store (cluster_e2e_test scrapes one that has).
             "--optional=shadowrelay_store_"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(dash.returncode, 0, dash.stdout + dash.stderr)

    def test_idle_sessions_count_as_timeout_idle(self):
        server = self.start_with_metrics(extra=["-t", "1"])
        local = self.start_local(server, METHOD)
        echo = self.add_peer(EchoServer())
        before = self.quiet_baseline()
        sessions = 3
        socks = []
        for i in range(sessions):
            sock = socks5_connect(local, LOOPBACK, echo.port)
            self.addCleanup(sock.close)
            payload = os.urandom(1000)
            sock.sendall(payload)
            self.assertEqual(recv_exact(sock, len(payload), f"echo of session {i}"), payload)
            socks.append(sock)
        # Silence from here on: the server ends each session after 1 s without a byte (-t 1),
        # which reaches the client as an EOF through the local. That it was not earlier shows
        # in the server's own durations below, not in the client's clock.
        for i, sock in enumerate(socks):
            sock.settimeout(10)  # a bound for a hang only
            try:
                self.assertEqual(sock.recv(1), b"", f"session {i}: a byte after the echo")
            except socket.timeout:
                self.fail(f"session {i} still open 10 s after its last byte (-t 1)")

        grown = self.settle_and_measure(before, CLOSED, sessions, "the idle closes",
                                        status="timeout_idle")
        self.assertEqual(grown(CLOSED, status="timeout_idle"), sessions)
        self.assertEqual(grown(TIMEOUTS, kind="idle"), sessions)
        self.assertEqual(grown(CLOSED), sessions, "closes under another status too")
        self.assertEqual(grown(OPENED), sessions)
        for kind in ("handshake", "connect", "dns", "udp"):
            self.assertEqual(grown(TIMEOUTS, kind=kind), 0, f"timeouts{{kind={kind}}}")
        self.assertEqual(grown("shadowrelay_tcp_connection_duration_seconds_count"), sessions)
        # Measured by the server from accept to close: at least the idle timeout each.
        self.assertGreaterEqual(grown("shadowrelay_tcp_connection_duration_seconds_sum"),
                                sessions * 1.0, "each session lived at least the idle timeout")
        self.assertEqual(grown("shadowrelay_tcp_connection_duration_seconds_bucket", le="0.5"), 0,
                         "a session closed within 0.5 s")
        self.assertEqual(grown("shadowrelay_data_bytes_total", direction="upload"),
                         sessions * 1000)
        self.assertEqual(value(self.last_scrape, ACTIVE), 0)

    def test_private_targets_count_as_target_private(self):
        dns = Dnsmasq(self, ["--host-record=loopback.test,127.0.0.1"])
        server = self.start_with_metrics(allow_private=False, extra=["-d", dns.address])
        local = self.start_local(server, METHOD)
        echo = self.add_peer(EchoServer())
        before = self.quiet_baseline()
        targets = [LOOPBACK, IPV6_LOOPBACK, "10.0.0.1", "loopback.test"]
        for host in targets:
            self.closed_without_a_byte(local, host, echo.port, within=5)

        grown = self.settle_and_measure(before, CLOSED, len(targets), "the refusals",
                                        status="target_private")
        self.assertEqual(grown(CLOSED, status="target_private"), len(targets))
        self.assertEqual(grown(CLOSED), len(targets), "closes under another status too")
        self.assertEqual(echo.accepted, 0, "a private target was connected to")
        # The name resolved (through dnsmasq): refused for its address, not a DNS failure.
        self.assertGreaterEqual(dns.queries_for("loopback.test"), 1)
        self.assertEqual(grown(DNS_QUERIES, result="ok"), 1)
        self.assertEqual(grown(DNS_QUERIES), 1)
        self.assertEqual(grown("shadowrelay_data_bytes_total"), 0)

    def test_unresolvable_names_count_as_dns_failed(self):
        dns = Dnsmasq(self, ["--host-record=echo.test,127.0.0.1"])
        server = self.start_with_metrics(extra=["-d", dns.address])
        local = self.start_local(server, METHOD)
        echo = self.add_peer(EchoServer())
        before = self.quiet_baseline()
        # One name that resolves, relayed and closed normally ...
        with socks5_connect(local, "echo.test", echo.port) as sock:
            sock.sendall(b"ping")
            self.assertEqual(recv_exact(sock, 4, "echo through echo.test"), b"ping")
        # ... then names dnsmasq does not know (NXDOMAIN); the repeated one may come from the
        # negative cache, which still counts as a lookup with that result.
        missing = ["missing-1.test", "missing-2.test", "missing-1.test"]
        for name in missing:
            self.closed_without_a_byte(local, name, echo.port, within=10)

        grown = self.settle_and_measure(before, CLOSED, len(missing), "the DNS failures",
                                        status="dns_failed")
        self.assertEqual(grown(CLOSED, status="dns_failed"), len(missing))
        self.assertEqual(grown(CLOSED, status="ok"), 1)
        self.assertEqual(grown(CLOSED), len(missing) + 1, "closes under another status too")
        self.assertEqual(echo.accepted, 1)
        for name in set(missing):
            self.assertGreaterEqual(dns.queries_for(name), 1, f"{name} never reached dnsmasq")
        self.assertEqual(grown(DNS_QUERIES, result="nxdomain"), len(missing))
        self.assertEqual(grown(DNS_QUERIES, result="ok"), 1,
                         "lookups that failed were counted as ok as well")
        self.assertEqual(grown(DNS_QUERIES), len(missing) + 1)
        self.assertEqual(grown(TIMEOUTS, kind="dns"), 0)

    def test_closed_and_silent_targets_count_as_target_refused_and_timeout_connect(self):
        server = self.start_with_metrics(extra=["--connect-timeout", "1"])
        local = self.start_local(server, METHOD)
        # A port nothing listens on (probed: it is the point): the connect is refused (RST).
        closed_port = free_port()
        # A listener that never accepts, with its accept queue full (backlog 0: one
        # connection): Linux drops further SYNs, so a connect there neither succeeds nor fails.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(silent.close)
        silent.bind((LOOPBACK, 0))
        silent.listen(0)
        silent_port = silent.getsockname()[1]
        for _ in range(2):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex((LOOPBACK, silent_port))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            probe.connect_ex((LOOPBACK, silent_port))
            sel = selectors.DefaultSelector()
            sel.register(probe, selectors.EVENT_WRITE)
            answered = sel.select(timeout=0.3)
            sel.close()
            self.assertEqual(answered, [], "the full listener still answered a SYN")
        before = self.quiet_baseline()

        self.closed_without_a_byte(local, LOOPBACK, closed_port, within=5)
        took = self.closed_without_a_byte(local, LOOPBACK, silent_port, within=8)
        self.assertGreaterEqual(took, 0.9, "closed before the 1 s connect timeout")

        grown = self.settle_and_measure(before, CLOSED, 1, "the connect timeout",
                                        status="timeout_connect")
        self.assertEqual(grown(CLOSED, status="target_refused"), 1)
        self.assertEqual(grown(CLOSED, status="timeout_connect"), 1)
        self.assertEqual(grown(TIMEOUTS, kind="connect"), 1)
        self.assertEqual(grown(CLOSED), 2, "closes under another status too")
        self.assertEqual(grown(TIMEOUTS), 1)

    def test_counters_never_go_backwards_under_1000_connections(self):
        server = self.start_with_metrics()
        local = self.start_local(server, METHOD, impl="libev")  # shadowsocks-libev's ss-local
        echo = self.add_peer(EchoServer(backlog=1024))
        before = self.quiet_baseline()
        base_active = value(before, ACTIVE)
        scraper = Scraper(self.metrics_port)
        self.addCleanup(scraper.stop)
        conns = []
        self.addCleanup(lambda: [c.sock.close() for c in conns])
        deadline = time.monotonic() + 120
        request = b"\x05\x01\x00" + socks5_address(LOOPBACK, echo.port)
        # Opened, used and closed in paced steps, so that the counters move over several of
        # the workers' publishes (once a second) while the scraper watches: between the end of
        # the first step and the start of the last of each phase lie more than 1.5 s.
        batch_size = 100
        pace = 0.25  # s between batches
        rounds = 5  # echo rounds on all connections, 2 * pace apart
        for start in range(0, CONNECTIONS, batch_size):
            batch = []
            for i in range(start, start + batch_size):
                sock = socket.create_connection((LOOPBACK, local), timeout=10)
                sock.setblocking(False)
                c = _Conn(i, sock)
                c.out += b"\x05\x01\x00"
                c.need = 2
                batch.append(c)
                conns.append(c)
            pump(batch, deadline, f"SOCKS5 greeting of connections {start}..")
            for c in batch:
                self.assertEqual(bytes(c.inbuf), b"\x05\x00", f"#{c.index}: method selection")
                c.inbuf.clear()
                c.out += request
                c.need = 10  # ss-local answers with an IPv4 BND.ADDR
            pump(batch, deadline, f"SOCKS5 CONNECT of connections {start}..")
            for c in batch:
                self.assertEqual(bytes(c.inbuf[:3]), b"\x05\x00\x00", f"#{c.index}: CONNECT")
                c.inbuf.clear()
            time.sleep(pace)
        # All open at once; each echoes its own payload, round after round.
        for round_ in range(rounds):
            payloads = {}
            for c in conns:
                payloads[c.index] = os.urandom(1024)
                c.out += payloads[c.index]
                c.need = 1024
            pump(conns, deadline, f"echo round {round_} on {CONNECTIONS} connections")
            self.assertEqual([c.index for c in conns if bytes(c.inbuf) != payloads[c.index]], [],
                             f"wrong echoes in round {round_}")
            for c in conns:
                c.inbuf.clear()
            time.sleep(2 * pace)
        self.assertEqual(echo.open, CONNECTIONS, "not all connections open at once")
        wait_until(lambda: value(scrape(self.metrics_port), ACTIVE) >= base_active + CONNECTIONS,
                   5, f"shadowrelay_tcp_connections_active to reach {CONNECTIONS}")
        for start in range(0, CONNECTIONS, batch_size):
            for c in conns[start:start + batch_size]:
                c.sock.close()
            time.sleep(pace)

        def drained():
            text = scrape(self.metrics_port)
            return (value(text, ACTIVE) == base_active and
                    value(text, OPENED) == value(text, CLOSED))
        wait_until(drained, 20, "every session closed and published")
        seen = len(scraper.texts)
        wait_until(lambda: len(scraper.texts) >= seen + 4, 10, "4 scrapes more after the drain")
        scraper.stop()
        after = scrape(self.metrics_port)

        self.assertEqual(scraper.errors, [], "scrapes failed under load")
        texts = scraper.texts + [after]
        self.assertGreaterEqual(len(texts), 20, "too few scrapes to judge")
        for name in (OPENED, CLOSED, "shadowrelay_data_bytes_total"):
            seen = sorted({value(t, name) for t in texts})
            self.assertGreaterEqual(len(seen), 3, f"the scrapes hardly saw {name} move: {seen}")
        regressions = []
        shapes = []
        previous = cumulative_series(texts[0])
        for index, text in enumerate(texts[1:], start=1):
            current = cumulative_series(text)
            for key, old in previous.items():
                new = current.get(key)
                if new is None or new < old:
                    regressions.append(f"scrape {index}: {key[0]}{key[1]} {old} -> {new}")
            shapes += [f"scrape {index}: {p}" for p in histogram_problems(text)]
            previous = current
        self.assertEqual(regressions[:20], [], f"{len(regressions)} series went backwards "
                                               f"over {len(texts)} scrapes")
        self.assertEqual(shapes[:20], [], "inconsistent histograms")
        opened = value(after, OPENED) - value(before, OPENED)
        self.assertGreaterEqual(opened, CONNECTIONS)
        self.assertEqual(value(after, CLOSED) - value(before, CLOSED), opened)
        self.assertEqual(value(after, ACTIVE), base_active)
        self.assertEqual(echo.accepted, CONNECTIONS)
        by_status = {s: value(after, CLOSED, status=s) - value(before, CLOSED, status=s)
                     for s in sorted({_labels(m)["status"] for m in re.findall(
                         CLOSED + r"(\{[^}]*\})", after)})}
        # Every client read all its echoes and closed: each session ended cleanly.
        self.assertEqual(by_status.get("ok"), opened, f"closes by status: {by_status}")
        print(f"  {len(texts)} scrapes, opened +{opened:.0f}, closed by status "
              f"{ {s: int(n) for s, n in by_status.items() if n} }", file=sys.stderr)


    # ----------------------------------------------------------------------------------------
    # Users of the control API and the UDP relay; replays; UDP and DNS timeouts

    def start_with_api(self, extra=()):
        """Our server with -u, the control API (token file) and /metrics, all on port 0, and no
        -k: its only users are the ones the test creates. Returns the relay port."""
        self.require_ours("the control API and the metrics exporter")
        self.assertIsNotNone(Config.grpc_call, "no --grpc-call (the BUILD entry passes it)")
        token_file = scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", 0,
                "--allow-private", "-u", "--control-listen", f"{LOOPBACK}:0",
                "--control-token-file", token_file,
                "--metrics-listen", f"{LOOPBACK}:0"] + list(extra)
        if Config.verbose:
            argv.append("-v")
        self.server = self.start_ours("ours-server-api-metrics", argv)
        ready = self.server.ready
        self.relay_port = ready.port
        self.api_port = ready.control[1]
        self.metrics_port = ready.metrics[1]
        return self.relay_port

    def create_user(self, name, method):
        user = grpc_api(self.api_port, "shadowrelay.v1.UserService/CreateUser",
                        {"name": name, "method": method}, TOKEN)
        self.assertEqual((user["name"], user["method"]), (name, method), user)
        return user

    def udp_roundtrips(self, sock, sizes, what):
        """One datagram of each size through a tunnel; each must come back unchanged."""
        sock.settimeout(3)
        for size in sizes:
            payload = os.urandom(size)
            sock.send(payload)
            try:
                reply = sock.recv(70000)
            except socket.timeout:
                reply = None
            self.assertEqual(reply, payload, f"{what}: the {size}-byte datagram "
                             f"{'did not come back' if reply is None else 'came back changed'}")

    def traffic_of_two_users(self, per_user):
        """Two API users of different methods relay known TCP bytes (libev ss-local to an
        echo) and known datagrams (libev ss-tunnel -u to a UDP echo); every per-user series
        must grow by exactly that, under the user's name or, without per-user labels, ""."""
        self.start_with_api([] if per_user else ["--metrics-per-user=false"])
        self.assertEqual(value(scrape(self.metrics_port), USERS), 0, "users before any")
        users = {name: self.create_user(name, method) for name, method in
                 (("alice", "aes-256-gcm"), ("bob", "chacha20-ietf-poly1305"))}
        self.assertEqual(value(scrape(self.metrics_port), USERS), len(users))
        self.assertEqual(value(scrape(self.metrics_port), USERS, state="active"), len(users))
        echo = self.add_peer(EchoServer())
        udp_echo = UdpEcho()
        self.addCleanup(udp_echo.stop)
        tcp_bytes = {"alice": 100_003, "bob": 65_537}
        # ss-tunnel's UDP packets stay under 1397 bytes with their header and tag.
        udp_sizes = {"alice": (1, 100, 512, 900, 1200),
                     "bob": (7, 64, 333, 1000, 1111, 1200, 50)}
        clients = {}
        for name, user in users.items():
            local = self.start_local(self.relay_port, user["method"], impl="libev",
                                     password=user["password"])
            tunnel = self.start_ss_tunnel_u(self.relay_port, user["method"], user["password"],
                                      udp_echo.port, name)
            clients[name] = (local, tunnel)
        before = self.quiet_baseline()
        for name, (local, tunnel) in clients.items():
            with socks5_connect(local, LOOPBACK, echo.port) as sock:
                echo_roundtrip(sock, os.urandom(tcp_bytes[name]), f"{name}'s TCP echo")
            self.udp_roundtrips(tunnel, udp_sizes[name], f"{name}'s UDP echo")
        # One association per ss-tunnel, open while the tunnels run (idle timeout 300 s).
        wait_until(lambda: value(scrape(self.metrics_port), UDP_ACTIVE) -
                   value(before, UDP_ACTIVE) >= len(users), 5,
                   "udp_associations_active to count both tunnels")

        want = {}  # (metric, sorted label items) -> exact growth

        def expect(metric, n, **labels):
            key = (metric, tuple(sorted(labels.items())))
            want[key] = want.get(key, 0) + n

        for name in users:
            who = name if per_user else ""
            for direction in ("upload", "download"):
                expect(DATA, tcp_bytes[name], proto="tcp", direction=direction, user=who)
                expect(DATA, sum(udp_sizes[name]), proto="udp", direction=direction, user=who)
                expect(UDP_PACKETS, len(udp_sizes[name]), direction=direction, user=who)
            expect(CLOSED, 1, user=who, status="ok")
        if per_user:  # nothing of theirs is counted without a user
            for direction in ("upload", "download"):
                expect(DATA, 0, direction=direction, user="")
                expect(UDP_PACKETS, 0, direction=direction, user="")
            expect(CLOSED, 0, user="")

        def grown_in(text, key):
            metric, labels = key
            return value(text, metric, **dict(labels)) - value(before, metric, **dict(labels))
        wait_until(lambda: all(grown_in(scrape(self.metrics_port), key) >= n
                               for key, n in want.items()),
                   10, "every user's bytes and datagrams in the scrape")
        # Every worker publishes after that, so that a count that overshoots shows.
        after = self.published_since(scrape(self.metrics_port), "after the users' traffic")
        wrong = [f"{metric}{dict(labels)}: +{grown_in(after, (metric, labels)):.0f}, "
                 f"expected +{n}" for (metric, labels), n in sorted(want.items())
                 if grown_in(after, (metric, labels)) != n]
        self.assertEqual(wrong, [], "series of the users' traffic")

        def grown(metric, **labels):
            return value(after, metric, **labels) - value(before, metric, **labels)
        # The totals over the user label, whatever it is.
        for direction in ("upload", "download"):
            self.assertEqual(grown(DATA, proto="tcp", direction=direction),
                             sum(tcp_bytes.values()), f"tcp {direction} over all users")
            self.assertEqual(grown(DATA, proto="udp", direction=direction),
                             sum(sum(s) for s in udp_sizes.values()),
                             f"udp {direction} over all users")
            self.assertEqual(grown(UDP_PACKETS, direction=direction),
                             sum(len(s) for s in udp_sizes.values()),
                             f"udp packets {direction} over all users")
        self.assertEqual(grown("shadowrelay_tcp_connection_bytes_sum"),
                         2 * sum(tcp_bytes.values()))
        self.assertEqual(grown(OPENED), len(users))
        self.assertEqual(grown(CLOSED), len(users), "closes under another status or user")
        self.assertEqual(grown(UDP_CREATED), len(users), "one association per ss-tunnel")
        self.assertEqual(value(after, UDP_ACTIVE) - value(before, UDP_ACTIVE), len(users),
                         "udp_associations_active while both tunnels run")
        self.assertEqual(grown(UDP_EVICTED), 0)
        self.assertEqual(grown(UDP_DROPPED), 0)
        self.assertEqual(grown(TIMEOUTS), 0)
        self.assertEqual(value(after, USERS, state="active"), len(users))
        self.assertEqual(udp_echo.received, sum(len(s) for s in udp_sizes.values()))
        self.assertEqual(echo.accepted, len(users))
        if per_user:
            for metric in (DATA, UDP_PACKETS, CLOSED):
                self.assertEqual(label_values(after, metric, "user"), {"", *users}, metric)
        else:
            every = set()
            for line in after.splitlines():
                m = _LINE.match(line)
                if m and m.group(2) and "user" in _labels(m.group(2)):
                    every.add(_labels(m.group(2))["user"])
            self.assertEqual(every, {""}, "a user label survived --metrics-per-user=false")
        return after

    def test_per_user_tcp_and_udp_series_of_api_users(self):
        self.traffic_of_two_users(per_user=True)

    def test_metrics_per_user_false_folds_users_into_one_series(self):
        self.traffic_of_two_users(per_user=False)

    def test_replayed_client_stream_counts_as_replay(self):
        server = self.start_with_metrics()  # handshake deadline 1 s
        echo = self.add_peer(EchoServer())
        # A real client's stream, recorded by a proxy in front of the server (as in
        # probing_e2e_test), then sent to the server again, as is, several times.
        proxy = self.add_peer(RecordingProxy(server))
        local = self.start_local(proxy.port, METHOD)
        before = self.quiet_baseline()
        payload = os.urandom(1000)
        with socks5_connect(local, LOOPBACK, echo.port) as sock:
            sock.sendall(payload)
            self.assertEqual(recv_exact(sock, len(payload), "echo of the original"), payload)
        # Connection 0 of the proxy is that session (the local's readiness probe stays there).
        recorded = proxy.recorded(0)
        self.assertGreater(len(recorded), len(payload), "the recorded client stream")
        replays = 3
        for i in range(replays):
            with socket.create_connection((LOOPBACK, server), timeout=10) as sock:
                sock.sendall(recorded)
                try:
                    got, reset = read_until_closed(sock)
                except socket.timeout:
                    self.fail(f"replay {i}: still open 10 s later (handshake deadline 1 s)")
                self.assertFalse(reset, f"replay {i}: reset instead of closed")
                self.assertEqual(got, b"", f"replay {i}: the server answered")

        grown = self.settle_and_measure(before, CLOSED, replays, "the replays", status="replay")
        self.assertEqual(grown(CLOSED, status="replay"), replays)
        self.assertEqual(grown(CLOSED, status="replay", user=""), replays,
                         "a replay was counted under a user")
        self.assertEqual(grown(CLOSED, status="ok"), 1, "the original session")
        self.assertEqual(grown(CLOSED), replays + 1, "closes under another status too")
        self.assertEqual(grown(OPENED), replays + 1)
        self.assertEqual(grown(TIMEOUTS), 0, "a replay counted as a timeout")
        self.assertEqual(grown("shadowrelay_probe_bytes_count"), replays)
        self.assertEqual(grown("shadowrelay_probe_bytes_sum"), replays * len(recorded),
                         "the probe bytes of the replays")
        self.assertEqual(grown(DATA, proto="tcp", direction="upload"), len(payload),
                         "a replay relayed bytes")
        self.assertEqual(echo.accepted, 1, "a replay reached the target")

    def test_idle_udp_association_expires_as_timeout_udp(self):
        udp_timeout = 3
        server = self.start_with_metrics(extra=["-u", "--udp-timeout", str(udp_timeout)])
        server_child = self.last_child
        udp_echo = UdpEcho()
        self.addCleanup(udp_echo.stop)
        tunnel = self.start_ss_tunnel_u(server, METHOD, PASSWORD, udp_echo.port, "idle")
        before = self.quiet_baseline()
        base_active = value(before, UDP_ACTIVE)
        self.udp_roundtrips(tunnel, (200,), "the datagram that opens the association")
        last_use = time.monotonic()
        # The association lives at least --udp-timeout seconds: it shows as active first (this
        # waits for the publish, not for the timeout).
        wait_until(lambda: value(scrape(self.metrics_port), UDP_ACTIVE) == base_active + 1,
                   10, "the association in udp_associations_active")
        # Then silence: the table's sweep (once a second) expires it.
        wait_until(lambda: value(scrape(self.metrics_port), TIMEOUTS, kind="udp") -
                   value(before, TIMEOUTS, kind="udp") >= 1, udp_timeout + 10,
                   "timeouts{kind=udp} after the association's idle timeout")
        print(f"  association expired (in the scrape) {time.monotonic() - last_use:.2f} s after "
              f"its last datagram", file=sys.stderr)
        reached = scrape(self.metrics_port)
        after = self.published_since(reached, "after the expiry")

        def grown(metric, **labels):
            return value(after, metric, **labels) - value(before, metric, **labels)
        self.assertEqual(grown(TIMEOUTS, kind="udp"), 1)
        self.assertEqual(grown(TIMEOUTS), 1, "timeouts of another kind too")
        self.assertEqual(value(after, UDP_ACTIVE), base_active,
                         "udp_associations_active back to its baseline")
        self.assertEqual(grown(UDP_CREATED), 1)
        self.assertEqual(grown(UDP_EVICTED), 0, "the idle expiry counted as an eviction")
        for direction in ("upload", "download"):
            self.assertEqual(grown(UDP_PACKETS, direction=direction), 1, direction)
            self.assertEqual(grown(DATA, proto="udp", direction=direction), 200, direction)
        stats = stopped_udp_summary(self, server_child)
        self.assertEqual(stats["expirations"], 1, stats)

    def test_unanswered_lookup_counts_as_dns_timeout(self):
        silent = SilentDns()
        self.addCleanup(silent.stop)
        # No flag sets the resolver's bound (worker.cc: ResolverOptions defaults, 1500 ms and
        # 2 tries, 4.5 s with one name server). The session's connect timer also runs while it
        # resolves and would end it first as dns_failed without a DNS timeout: set it longer.
        connect_timeout = 15
        server = self.start_with_metrics(
            extra=["-d", silent.address, "--connect-timeout", str(connect_timeout)])
        local = self.start_local(server, METHOD)
        echo = self.add_peer(EchoServer())
        before = self.quiet_baseline()
        took = self.closed_without_a_byte(local, "unanswered.test", echo.port,
                                          within=connect_timeout + 5)
        # Timed from before the request: the server's lookup began after it.
        self.assertGreaterEqual(took, 1.5, "closed before the first try could time out")
        print(f"  lookup of a silent name server: closed {took:.2f} s after the request",
              file=sys.stderr)

        grown = self.settle_and_measure(before, TIMEOUTS, 1, "the DNS timeout", kind="dns")
        self.assertEqual(grown(TIMEOUTS, kind="dns"), 1)
        self.assertEqual(grown(TIMEOUTS), 1, "timeouts of another kind too (the connect timer?)")
        self.assertEqual(grown(DNS_QUERIES, result="timeout"), 1)
        self.assertEqual(grown(DNS_QUERIES), 1, "the lookup counted under another result too")
        self.assertEqual(grown("shadowrelay_dns_cache_misses_total"), 1)
        self.assertEqual(grown("shadowrelay_dns_cache_hits_total"), 0)
        self.assertEqual(grown("shadowrelay_dns_lookup_duration_seconds_count"), 1)
        self.assertGreaterEqual(grown("shadowrelay_dns_lookup_duration_seconds_sum"), 1.5)
        # relay/tcp/session.cc onResolved: any failed lookup closes as ResolveFailed, whose
        # status is dns_failed (tcp_stats.cc closeStatusLabel).
        self.assertEqual(grown(CLOSED, status="dns_failed"), 1)
        self.assertEqual(grown(CLOSED), 1, "closes under another status too")
        self.assertEqual(grown(OPENED), 1)
        self.assertGreaterEqual(silent.queries, 2, "the A and AAAA queries never arrived")
        self.assertEqual(echo.accepted, 0)

    def test_lookup_longer_than_the_connect_timeout_is_a_connect_timeout(self):
        # The connect deadline covers the lookup: with a silent name server and a connect
        # timeout shorter than the resolver's bound, the session ends at the connect timeout and
        # counts as one (a timeout, not an uncounted dns_failed).
        silent = SilentDns()
        self.addCleanup(silent.stop)
        server = self.start_with_metrics(extra=["-d", silent.address, "--connect-timeout", "2"])
        local = self.start_local(server, METHOD)
        echo = self.add_peer(EchoServer())
        before = self.quiet_baseline()
        took = self.closed_without_a_byte(local, "unanswered.test", echo.port, within=10)
        # Timed from before the request: the server's connect timer started after it. Which
        # timer ended the session, the counters below tell.
        self.assertGreaterEqual(took, 1.8, "closed before the connect timeout")
        grown = self.settle_and_measure(before, TIMEOUTS, 1, "the connect timeout", kind="connect")
        self.assertEqual(grown(TIMEOUTS, kind="connect"), 1)
        self.assertEqual(grown(TIMEOUTS), 1, "timeouts of another kind too")
        self.assertEqual(grown(CLOSED, status="timeout_connect"), 1)
        self.assertEqual(grown(CLOSED), 1, "closes under another status too")
        self.assertEqual(echo.accepted, 0)



class MetricsEndpointTest(RelayTestCase):
    """The /metrics endpoint itself: IPv6, the bearer token, stalled clients."""

    TOKEN = "e2e-metrics-token-42"

    def setUp(self):
        super().setUp()
        self.require_ours("the metrics exporter")

    def token_file(self, mode=0o600):
        path = scratch_path("metrics-token")
        with open(path, "w") as f:
            f.write(self.TOKEN + "\n")
        os.chmod(path, mode)
        return path

    def get(self, host, port, token=None):
        """(status, body) of GET /metrics."""
        url_host = f"[{host}]" if ":" in host else host
        request = urllib.request.Request(f"http://{url_host}:{port}/metrics")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_scrape_over_ipv6_with_a_token(self):
        if not ipv6_loopback_available():
            self.skipTest("no IPv6 loopback")
        self.start_server(METHOD, extra=["--metrics-listen", "[::1]:0",
                                         "--metrics-token-file", self.token_file()])
        host, port = self.last_child.ready.metrics
        self.assertEqual(host, "::1")
        status, body = self.get("::1", port)
        self.assertEqual(status, 401)
        self.assertNotIn("shadowrelay_", body)
        self.assertEqual(self.get("::1", port, token="wrong")[0], 401)
        status, body = self.get("::1", port, token=self.TOKEN)
        self.assertEqual(status, 200)
        self.assertIn("shadowrelay_build_info", body)

    def test_healthz_needs_no_token_and_shows_no_metrics(self):
        self.start_server(METHOD, extra=["--metrics-listen", f"{LOOPBACK}:0",
                                         "--metrics-token-file", self.token_file()])
        port = self.last_child.ready.metrics[1]
        self.assertEqual(self.get(LOOPBACK, port)[0], 401)
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(), b"ok\n")

    def test_a_token_file_others_can_read_is_refused(self):
        path = self.token_file(0o644)
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", "0", "-k", PASSWORD,
                "--control-listen", "off", "--metrics-listen", f"{LOOPBACK}:0",
                "--metrics-token-file", path]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn(f"metrics_token_file: metrics-token-file {path}: permissions 0644",
                      out.stderr)
        self.assertIn(f"chmod 600 {path}", out.stderr)

    def test_stalled_clients_do_not_block_a_scrape(self):
        self.start_server(METHOD, extra=["--metrics-listen", f"{LOOPBACK}:0"])
        port = self.last_child.ready.metrics[1]
        stalled = []
        try:
            for i in range(32):
                sock = socket.create_connection((LOOPBACK, port), timeout=5)
                stalled.append(sock)
                if i % 2:
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # half a request
            for _ in range(3):
                started = time.monotonic()
                status, body = self.get(LOOPBACK, port)
                self.assertEqual(status, 200)
                self.assertIn("shadowrelay_build_info", body)
                self.assertLess(time.monotonic() - started, 2.0)
        finally:
            for sock in stalled:
                sock.close()


if __name__ == "__main__":
    main(min_fds=4 * CONNECTIONS + 512)
