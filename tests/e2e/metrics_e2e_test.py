# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics of the real server: exact payload bytes each way, the per-connection
histogram, failed handshakes and timeouts driving their counters, `promtool check metrics` on a
real scrape, and every metric of the Grafana dashboard and the example alerts present in it.
"""
import os
import re
import socket
import subprocess
import time
import urllib.request

from e2e_harness import (LOOPBACK, Config, EchoServer, RelayTestCase, free_port, main,
                         socks5_connect, tool, wait_until)

METHOD = "chacha20-ietf-poly1305"
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def scrape(port):
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def value(text, name, **labels):
    """Sum of the series of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


class MetricsTest(RelayTestCase):
    def start_with_metrics(self):
        self.require_ours("the metrics exporter")
        self.metrics_port = free_port()
        port = self.start_server(METHOD, handshake_timeout=1,
                                 extra=["--metrics-listen", f"{LOOPBACK}:{self.metrics_port}"])
        return port

    def test_exact_bytes_and_the_connection_histogram(self):
        server = self.start_with_metrics()
        local = self.start_local(server, METHOD)
        echo = EchoServer()
        self.addCleanup(echo.stop)
        time.sleep(1.2)  # the readiness probes' closes reach the exporter first
        before = scrape(self.metrics_port)
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
        # Visible within 2 s of the close (workers publish once a second).
        wait_until(lambda: grown("shadowrelay_tcp_connection_bytes_count") >= 1, 3,
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
        sock = socks5_connect(local, LOOPBACK, echo.port)
        sock.sendall(b"x" * 1000)
        sock.recv(1000)
        sock.close()
        time.sleep(1.5)
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
             f"--rules={os.path.join(root, 'deploy/prometheus/alerts.yml')}"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(dash.returncode, 0, dash.stdout + dash.stderr)


if __name__ == "__main__":
    main()
