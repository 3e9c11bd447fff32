# SPDX-License-Identifier: Apache-2.0
"""Target policy: without --allow-private our server refuses loopback/private targets, whether
given as an address or as a host name that resolves to one; no request reaches nginx. And a
target name a client sends is escaped in the server's log (no forged lines, no raw control
bytes). The host's own addresses: host_address_e2e_test."""

import re

import e2e_harness as h

METHOD = "chacha20-ietf-poly1305"


class PrivateTargetTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("libev has no default target policy")

    def assert_refused(self, web, requests_before, result):
        self.assertEqual(len(result.body), 0,
                         f"a private target answered through the relay: {result}")
        self.assertNotEqual(result.code, 0, f"curl succeeded to a private target: {result}")
        self.assertEqual(web.requests_logged(), requests_before,
                         "a request reached nginx without --allow-private")

    def refused(self, client_impl, host):
        web = h.nginx()
        server_port = self.start_server(METHOD, allow_private=False)
        local_port = self.start_local(server_port, METHOD, impl=client_impl)
        before = web.requests_logged()
        result = h.curl(web.url(h.Nginx.SMALL, host), socks5_port=local_port, max_time=15)
        self.assert_refused(web, before, result)

    def test_loopback_address_refused_via_ours_local(self):
        self.refused("ours", h.LOOPBACK)

    def test_loopback_address_refused_via_sslocal(self):
        self.refused("libev", h.LOOPBACK)

    def test_hostname_resolving_to_loopback_refused(self):
        self.refused("ours", "localhost")

    def test_tunnel_to_loopback_refused(self):
        web = h.nginx()
        server_port = self.start_server(METHOD, allow_private=False)
        tunnel_port = self.start_tunnel(server_port, METHOD, f"{h.LOOPBACK}:{web.port}")
        before = web.requests_logged()
        result = h.curl(f"http://{h.LOOPBACK}:{tunnel_port}/{h.Nginx.SMALL}", max_time=15)
        self.assert_refused(web, before, result)


class LoggedNameTest(h.RelayTestCase):
    def test_target_name_with_control_bytes_is_escaped_in_the_log(self):
        self.require_ours("our log format")
        server_port = self.start_server(METHOD, allow_private=False, extra=["-v"])
        server = self.last_child
        local_port = self.start_local(server_port, METHOD)
        # A name no resolver accepts (answered locally, no query leaves): a newline that would
        # start a forged log line, a terminal escape and a NUL.
        name = "bad\n2030-01-01T00:00:00.000Z E main: INJECTED\x1b[2J\x00end"
        with h.socks5_open(local_port) as sock:
            sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name.encode("latin-1") +
                         b"\x00\x50")
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass
        h.wait_until(lambda: "cannot resolve" in open(server.log_path, errors="replace").read(),
                     10, "the server to log the failed lookup")
        with open(server.log_path, "rb") as f:
            log = f.read()
        for line in log.split(b"\n"):
            self.assertNotIn(b"INJECTED", line[:40], f"a forged log line: {line!r}")
            self.assertIsNone(re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", line),
                              f"a raw control byte in {line!r}")
        # absl::CHexEscape: \x00 followed by "e" (a hex digit) is written \x00\x65.
        self.assertIn(rb"cannot resolve bad\n2030-01-01T00:00:00.000Z E main: INJECTED\x1b[2J"
                      rb"\x00\x65nd: invalid_name", log)


if __name__ == "__main__":
    h.main()
