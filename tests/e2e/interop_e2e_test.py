# SPDX-License-Identifier: Apache-2.0
"""Interoperability: curl downloads an 8 MiB file from nginx through every client/server pairing
of our binary and shadowsocks-libev, for all five SIP004 methods, and checks its SHA-256;
host names are resolved by the server, address literals of both families are connected to; one
shadowsocks JSON file (-c) configures our binary and ss-local alike; 4 MiB uploads are echoed
back across implementations."""

import json
import os

import e2e_harness as h

# (name, client kind, client implementation, server implementation)
PAIRINGS = (
    ("sslocal_to_ours_server", "local", "libev", "ours"),
    ("ours_local_to_ssserver", "local", "ours", "libev"),
    ("ours_local_to_ours_server", "local", "ours", "ours"),
    ("ours_tunnel_to_ours_server", "tunnel", "ours", "ours"),
)


class InteropTest(h.RelayTestCase):
    def download_through(self, method, client, client_impl, server_impl, host="localhost",
                         name=h.Nginx.BIG):
        web = h.nginx()
        server_port = self.start_server(method, impl=server_impl)
        if client == "local":
            local_port = self.start_local(server_port, method, impl=client_impl)
            result = h.curl(web.url(name, host), socks5_port=local_port)
        else:
            tunnel_port = self.start_tunnel(server_port, method, f"{host}:{web.port}",
                                            impl=client_impl)
            result = h.curl(f"http://{h.LOOPBACK}:{tunnel_port}/{name}")
        size, digest = web.files[name]
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual(len(result.body), size, f"wrong size: {result}")
        self.assertEqual(h.sha256(result.body), digest, f"SHA-256 mismatch: {result}")


    def upload_through(self, method, client_impl, server_impl):
        echo = self.add_peer(h.EchoServer())
        server_port = self.start_server(method, impl=server_impl)
        local_port = self.start_local(server_port, method, impl=client_impl)
        with h.socks5_connect(local_port, h.LOOPBACK, echo.port) as sock:
            h.echo_roundtrip(sock, UPLOAD, f"4 MiB echo, {client_impl} local -> "
                                           f"{server_impl} server")


UPLOAD = os.urandom(4 << 20)  # the download covers the other direction


def _add_cases(method):
    m = method.replace("-", "_")
    for name, client, client_impl, server_impl in PAIRINGS:
        def test(self, client=client, client_impl=client_impl, server_impl=server_impl):
            self.download_through(method, client, client_impl, server_impl)
        setattr(InteropTest, f"test_{m}_{name}", test)
    # Client-to-server bulk data, across implementations (libev chunks at 16383 bytes).
    for name, client_impl, server_impl in (("sslocal_to_ours_server", "libev", "ours"),
                                           ("ours_local_to_ssserver", "ours", "libev")):
        def test(self, client_impl=client_impl, server_impl=server_impl):
            self.upload_through(method, client_impl, server_impl)
        setattr(InteropTest, f"test_{m}_upload_{name}", test)


for _method in h.METHODS:
    _add_cases(_method)


class TargetAddressTest(h.RelayTestCase):
    """The server resolves host names (ATYP 0x03; /etc/hosts is honoured) and connects to
    IPv4 literals (curl sends 127.0.0.1 as ATYP 0x01 even with --socks5-hostname)."""

    METHOD = "chacha20-ietf-poly1305"

    def fetch_small(self, local_port, host):
        web = h.nginx()
        result = h.curl(web.url(h.Nginx.SMALL, host), socks5_port=local_port)
        size, digest = web.files[h.Nginx.SMALL]
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual((len(result.body), h.sha256(result.body)), (size, digest),
                         f"wrong body: {result}")

    def test_hostname_resolved_by_server_via_sslocal(self):
        server_port = self.start_server(self.METHOD)
        local_port = self.start_local(server_port, self.METHOD, impl="libev")
        self.fetch_small(local_port, "localhost")

    def test_hostname_resolved_by_server_via_ours_local(self):
        server_port = self.start_server(self.METHOD)
        local_port = self.start_local(server_port, self.METHOD)
        self.fetch_small(local_port, "localhost")

    def test_hostname_tunnel_destination(self):
        web = h.nginx()
        server_port = self.start_server(self.METHOD)
        tunnel_port = self.start_tunnel(server_port, self.METHOD, f"localhost:{web.port}")
        result = h.curl(f"http://{h.LOOPBACK}:{tunnel_port}/{h.Nginx.SMALL}")
        self.assertEqual(result.code, 0, f"curl failed: {result}")
        self.assertEqual(h.sha256(result.body), web.files[h.Nginx.SMALL][1], f"{result}")

    def test_ipv4_literal_target(self):
        server_port = self.start_server(self.METHOD)
        local_port = self.start_local(server_port, self.METHOD)
        self.fetch_small(local_port, h.LOOPBACK)

    def test_ipv6_literal_target(self):
        if not h.nginx().ipv6:
            self.skipTest("no IPv6 loopback on this host")
        server_port = self.start_server(self.METHOD)
        local_port = self.start_local(server_port, self.METHOD)
        self.fetch_small(local_port, "[::1]")  # curl sends ATYP 0x04


class ConfigFileTest(h.RelayTestCase):
    """One shadowsocks JSON file (-c) drives our server, ss-local and our local."""

    def test_shared_json_config(self):
        web = h.nginx()
        # The one file names the server's port for the server and both clients, so it is
        # probed before anything starts; ss-local's port is probed as libev cannot report one.
        # Our local takes "local_port": 0 and says the port it bound on its ready line.
        server_port, sslocal_port = h.free_port(), h.free_port()
        local_port = h.free_port() if h.Config.libev_mode() else 0
        config = {"server": h.LOOPBACK, "server_port": server_port, "password": h.PASSWORD,
                  "method": "aes-256-gcm", "local_address": h.LOOPBACK, "timeout": 60}

        def write(local_port):
            path = h.scratch_path("config.json")
            with open(path, "w") as f:
                json.dump(dict(config, local_port=local_port), f)
            return path

        sslocal_config, ours_config = write(sslocal_port), write(local_port)
        if h.Config.libev_mode():
            server_argv = [h.tool("ss-server"), "-c", ours_config]
            local_argv = [h.tool("ss-local"), "-c", ours_config]
            h.wait_listening(server_port, self.spawn("server-json", server_argv, ours=True))
            h.wait_listening(local_port, self.spawn("local-json", local_argv, ours=True))
        else:
            # As server_argv(): no control API or /metrics on their fixed default ports.
            server_argv = [h.Config.relay, "server", "-c", ours_config, "--allow-private",
                           "--control-listen", "off", "--metrics-listen", "off"]
            local_argv = [h.Config.relay, "local", "-c", ours_config]
            ready = self.start_ours("server-json", server_argv).ready
            self.assertEqual(ready.tcp, [(h.LOOPBACK, server_port)], ready)
            local_port = self.start_ours("local-json", local_argv).ready.port
        h.wait_listening(sslocal_port, self.spawn(
            "ss-local-json", [h.tool("ss-local"), "-c", sslocal_config], ours=False))
        size, digest = web.files[h.Nginx.SMALL]
        for port in (sslocal_port, local_port):
            result = h.curl(web.url(h.Nginx.SMALL), socks5_port=port)
            self.assertEqual(result.code, 0, f"curl failed: {result}")
            self.assertEqual((len(result.body), h.sha256(result.body)), (size, digest),
                             f"wrong body: {result}")


if __name__ == "__main__":
    h.main()
