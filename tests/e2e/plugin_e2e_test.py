# SPDX-License-Identifier: Apache-2.0
"""SIP003 plugins with real peers from Debian: simple-obfs (obfs-server/obfs-local, http and tls)
and shadowsocks-v2ray-plugin (websocket, and websocket over TLS with a certificate made here).

  * our server + plugin <- shadowsocks-libev ss-local --plugin, and our local + plugin ->
    ss-server --plugin, curl through each, for every transport; our tunnel + plugin -> our
    server + plugin once;
  * UDP never goes through the plugin: the server's UDP keeps the public port (ss-tunnel -u),
    our local -u sends UDP to the server's real port (SOCKS5 UDP ASSOCIATE);
  * a plugin that dies is restarted (counted in shadowrelay_plugin_restarts_total) and relaying
    resumes; SIGTERM stops the plugin and leaves no process of its group; a plugin that cannot
    be found exits 2 naming the field, one that exits at once ends start-up with a clear error;
  * the plugin's output reaches our log prefixed; the printed ss:// URI carries ?plugin=.
"""

import os
import re
import signal
import subprocess
import time
import urllib.request

import e2e_harness as h

METHOD = "chacha20-ietf-poly1305"
CERT_HOST = "plugin.test"  # v2ray-plugin's TLS server name; no DNS needed, it dials an address


def make_certificate(directory):
    """A self-signed P-256 certificate for CERT_HOST; (cert, key) paths."""
    os.makedirs(directory)
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run([h.tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={CERT_HOST}",
                    "-addext", f"subjectAltName=DNS:{CERT_HOST}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def transports(cert, key):
    """name -> (server program, server options, client program, client options)."""
    return {
        "obfs_http": ("obfs-server", "obfs=http", "obfs-local",
                      "obfs=http;obfs-host=www.example.com"),
        "obfs_tls": ("obfs-server", "obfs=tls", "obfs-local",
                     "obfs=tls;obfs-host=www.example.com"),
        "v2ray_websocket": ("ss-v2ray-plugin", "server;path=/ws", "ss-v2ray-plugin", "path=/ws"),
        # The client trusts the test certificate through its cert= option.
        "v2ray_websocket_tls": ("ss-v2ray-plugin",
                                f"server;tls;host={CERT_HOST};cert={cert};key={key}",
                                "ss-v2ray-plugin", f"tls;host={CERT_HOST};cert={cert}"),
    }


def plugin_flags(program, options):
    return ["--plugin", program] + (["--plugin-opts", options] if options else [])


def children_of(pid):
    """Pids whose parent is `pid` (from /proc/*/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return found


def process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_exists(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def scrape(port):
    with urllib.request.urlopen(f"http://{h.LOOPBACK}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def plugin_restarts(metrics_port, program):
    match = re.search(r'^shadowrelay_plugin_restarts_total\{plugin="%s"\} (\S+)$'
                      % re.escape(program), scrape(metrics_port), re.M)
    return None if match is None else float(match.group(1))


class PluginTestCase(h.RelayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cert, cls.key = make_certificate(h.scratch_path("tls"))
        cls.transports = transports(cls.cert, cls.key)

    # Our roles with a plugin: port 0, the ready line says where clients connect.

    def start_our_server(self, program, options, extra=()):
        argv = h.server_argv("ours", 0, METHOD, extra=list(plugin_flags(program, options))
                             + list(extra))
        return self.start_ours(f"ours-server-{program}", argv)

    def start_our_client(self, server_port, program, options, tunnel_to=None, extra=()):
        argv = h.local_argv("ours", server_port, 0, METHOD, tunnel_to=tunnel_to)
        return self.start_ours(f"ours-{'tunnel' if tunnel_to else 'local'}-{program}",
                               argv + plugin_flags(program, options) + list(extra))

    # shadowsocks-libev with a plugin: probed free ports, ready when they accept.

    def start_ss_local(self, server_port, program, options):
        port = h.free_port()
        argv = h.local_argv("libev", server_port, port, METHOD) + plugin_flags(program, options)
        child = self.spawn(f"ss-local-{program}", argv, ours=False)
        h.wait_listening(port, child)
        return port

    def start_ss_server(self, program, options, extra=()):
        port = h.free_port()  # the plugin's: libev's ss-server listens behind it
        argv = h.server_argv("libev", port, METHOD, extra=list(extra)) + plugin_flags(
            program, options)
        child = self.spawn(f"ss-server-{program}", argv, ours=False)
        h.wait_listening(port, child)
        return port

    def curl_small(self, socks5_port=None, url=None, deadline=10.0):
        """curl of nginx's small file, retried (bounded) while libev's plugin, which it starts
        after its own port listens, comes up; returns the last result."""
        web = h.nginx()
        url = url or web.url(h.Nginx.SMALL)
        end = time.monotonic() + deadline
        while True:
            result = h.curl(url, socks5_port=socks5_port, max_time=10)
            if result.code == 0 or time.monotonic() > end:
                return result
            time.sleep(0.2)

    def assert_small(self, result):
        size, digest = h.nginx().files[h.Nginx.SMALL]
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual(len(result.body), size, f"wrong size: {result}")
        self.assertEqual(h.sha256(result.body), digest, f"SHA-256 mismatch: {result}")

    def assert_big(self, socks5_port):
        web = h.nginx()
        result = h.curl(web.url(h.Nginx.BIG), socks5_port=socks5_port)
        size, digest = web.files[h.Nginx.BIG]
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual((len(result.body), h.sha256(result.body)), (size, digest), str(result))

    def our_plugin_pid(self, child):
        pids = children_of(child.pid)
        self.assertEqual(len(pids), 1, f"{child.name}: expected one plugin process, got {pids}")
        return pids[0]


class TransportTest(PluginTestCase):
    """Each transport both ways: our server behind its plugin for libev's ss-local, our local
    in front of its plugin for libev's ss-server."""

    def server_side(self, name):
        server_program, server_options, client_program, client_options = self.transports[name]
        server = self.start_our_server(server_program, server_options)
        local_port = self.start_ss_local(server.ready.port, client_program, client_options)
        self.assert_small(self.curl_small(socks5_port=local_port))
        self.assert_big(local_port)
        return server

    def client_side(self, name):
        server_program, server_options, client_program, client_options = self.transports[name]
        server_port = self.start_ss_server(server_program, server_options)
        local = self.start_our_client(server_port, client_program, client_options)
        self.assert_small(self.curl_small(socks5_port=local.ready.port))
        self.assert_big(local.ready.port)


def _add_transport_cases():
    for name in ("obfs_http", "obfs_tls", "v2ray_websocket", "v2ray_websocket_tls"):
        setattr(TransportTest, f"test_{name}_ss_local_to_our_server",
                lambda self, name=name: self.server_side(name))
        setattr(TransportTest, f"test_{name}_our_local_to_ss_server",
                lambda self, name=name: self.client_side(name))


_add_transport_cases()


class RolesTest(PluginTestCase):
    def test_our_tunnel_to_our_server_over_v2ray_tls(self):
        server_program, server_options, client_program, client_options = \
            self.transports["v2ray_websocket_tls"]
        server = self.start_our_server(server_program, server_options)
        web = h.nginx()
        tunnel = self.start_our_client(server.ready.port, client_program, client_options,
                                       tunnel_to=f"{h.LOOPBACK}:{web.port}")
        self.assert_small(self.curl_small(
            url=f"http://{h.LOOPBACK}:{tunnel.ready.port}/{h.Nginx.SMALL}"))

    def test_plugin_output_is_logged_with_a_prefix(self):
        server = self.start_our_server("obfs-server", "obfs=http")
        port = server.ready.port
        log = h.stopped_log(self, server)
        # simple-obfs says where it listens: its line, under our prefix, on our log.
        self.assertRegex(log, r"(?m)^\S+ I plugin: plugin obfs-server: .*listening at "
                              + re.escape(f"{h.LOOPBACK}:{port}") + "$")
        self.assertIn("plugin obfs-server started (pid ", log)
        ours = log.split("\n", 1)[1]  # after the harness's "$ argv" line
        self.assertNotIn("obfs=http", ours, "the plugin's options are not ours to log")

    def test_printed_uri_names_the_client_plugin(self):
        state = h.scratch_path("state")
        argv = h.server_argv("ours", 0, METHOD, extra=[
            "--plugin", "obfs-server", "--plugin-opts", "obfs=tls;failover=127.0.0.1:9",
            "--state-dir", state])
        argv.remove("-k")
        argv.remove(h.PASSWORD)  # a generated password: the server prints its ss:// URI
        server = self.start_ours("ours-server-uri", argv)
        port = server.ready.port
        log = h.stopped_log(self, server)
        self.assertRegex(log, r"(?m)^ss://[A-Za-z0-9_-]+@127\.0\.0\.1:%d/\?plugin="
                              r"obfs-local%%3Bobfs%%3Dtls#shadowrelay$" % port)


class UdpBesideThePluginTest(PluginTestCase):
    def test_server_udp_keeps_the_public_port(self):
        echo = h.UdpEcho()
        self.addCleanup(echo.stop)
        server = self.start_our_server("obfs-server", "obfs=http", extra=["-u"])
        self.assertEqual(server.ready.tcp, server.ready.udp,
                         "UDP keeps the plugin's public address and port")
        # TCP goes through the plugin, UDP straight to our port (ss-tunnel -u has no plugin).
        local_port = self.start_ss_local(server.ready.port, "obfs-local", "obfs=http")
        self.assert_small(self.curl_small(socks5_port=local_port))
        sock = self.start_ss_tunnel_u(server.ready.port, METHOD, h.PASSWORD, echo.port, "plugin")
        sock.settimeout(5)
        sock.send(b"beside the plugin")
        self.assertEqual(sock.recv(65535), b"beside the plugin")

    def test_local_udp_goes_to_the_real_server_port(self):
        echo = h.UdpEcho()
        self.addCleanup(echo.stop)
        server_port = self.start_ss_server("obfs-server", "obfs=http", extra=["-u"])
        local = self.start_our_client(server_port, "obfs-local", "obfs=http", extra=["-u"])
        self.assert_small(self.curl_small(socks5_port=local.ready.port))
        udp = h.SocksUdp(local.ready.port)
        self.addCleanup(udp.close)
        self.assertEqual(udp.roundtrip(echo.port, b"not through the plugin"),
                         b"not through the plugin")


class SupervisionTest(PluginTestCase):
    def test_a_plugin_that_dies_is_restarted_and_relaying_resumes(self):
        server = self.start_our_server("obfs-server", "obfs=http",
                                       extra=["--metrics-listen", f"{h.LOOPBACK}:0"])
        metrics_port = server.ready.metrics[1]
        local_port = self.start_ss_local(server.ready.port, "obfs-local", "obfs=http")
        self.assert_small(self.curl_small(socks5_port=local_port))
        self.assertEqual(plugin_restarts(metrics_port, "obfs-server"), 0)
        first = self.our_plugin_pid(server)
        os.kill(first, signal.SIGKILL)
        h.wait_until(lambda: children_of(server.pid) not in ([], [first]), 10,
                     "a new plugin process")
        # The restart comes after 0.5 s of backoff; relaying resumes once it listens again.
        self.assert_small(self.curl_small(socks5_port=local_port))
        self.assertEqual(plugin_restarts(metrics_port, "obfs-server"), 1)
        self.assertNotEqual(self.our_plugin_pid(server), first)
        log = h.stopped_log(self, server)
        self.assertRegex(log, r"plugin obfs-server \(pid %d\) was killed by signal 9 after "
                              r"[0-9.]+ s; restarting in 0\.5 s" % first)

    def stop_leaves_no_plugin(self, child):
        pid = self.our_plugin_pid(child)
        self.assertEqual(os.getpgid(pid), pid, "the plugin leads its own process group")
        h.stopped_log(self, child)  # SIGTERM; exits 0
        self.assertFalse(process_exists(pid), "the plugin outlived us")
        self.assertFalse(group_exists(pid), "a process of the plugin's group outlived us")

    def test_sigterm_stops_the_server_plugin(self):
        self.stop_leaves_no_plugin(self.start_our_server("ss-v2ray-plugin", "server"))

    def test_sigterm_stops_the_local_plugin(self):
        self.stop_leaves_no_plugin(self.start_our_client(h.free_port(), "obfs-local", "obfs=http"))

    def test_an_unknown_plugin_exits_2_naming_the_field(self):
        for role, argv in (
                ("server", h.server_argv("ours", 0, METHOD)),
                ("local", h.local_argv("ours", 8388, 0, METHOD))):
            argv = [str(a) for a in argv] + ["--plugin", "no-such-plugin-e2e"]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, f"{role}: {out.stderr}")
            self.assertIn("config: plugin: \"no-such-plugin-e2e\" not found in PATH", out.stderr)

    def test_a_plugin_that_exits_at_once_ends_startup_clearly(self):
        argv = [str(a) for a in h.server_argv("ours", 0, METHOD)] + ["--plugin", h.tool("false")]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertRegex(out.stderr, r"plugin \S+false exited before listening on port \d+")


if __name__ == "__main__":
    h.main()
