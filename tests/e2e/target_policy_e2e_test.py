# SPDX-License-Identifier: Apache-2.0
"""Target policy: without --allow-private our server refuses loopback/private targets, whether
given as an address or as a host name that resolves to one; no request reaches nginx."""

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


if __name__ == "__main__":
    h.main()
