# SPDX-License-Identifier: Apache-2.0
"""ACL files (issue 16 §5), in shadowsocks-libev's format, against real targets on loopback
(nginx): the server's /metrics prove which path each request took.

- local --acl: [bypass_all] with a [proxy_list] name rule: the named target goes through the
  server (its accepted count rises), an address target is connected directly (it does not);
  SIGHUP with the file rewritten to [proxy_all] sends the address target through the server.
  The same file given to shadowsocks-libev's ss-local makes the same choices.
- tunnel --acl: its fixed destination bypassed.
- server --acl: [outbound_block_list] refuses targets by address and by name, for our local and
  for libev's ss-local; nginx sees no request; counted in shadowrelay_acl_decisions_total.
- a bad ACL file exits 2 naming the file and line; a bad file at SIGHUP keeps the old one."""

import signal
import time

import e2e_harness as h

METHOD = "aes-128-gcm"
OPENED = "shadowrelay_tcp_connections_opened_total"
DECISIONS = "shadowrelay_acl_decisions_total"


class AclTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("--acl on our roles")
        self.web = h.nginx()

    def acl_file(self, text, name="rules.acl"):
        path = h.scratch_path(name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def server_with_metrics(self, extra=()):
        port = self.start_server(METHOD, extra=["--metrics-listen", f"{h.LOOPBACK}:0"] +
                                 list(extra))
        child = self.last_child
        return port, child, child.ready.metrics[1]

    def opened(self, metrics_port):
        return h.metric_sum(metrics_port, OPENED)

    def assert_opened_stays(self, metrics_port, want, what):
        # Past one publishing interval (1 s), so that a connection that did reach the server
        # would show.
        time.sleep(1.5)
        self.assertEqual(self.opened(metrics_port), want, what)

    def wait_metric(self, metrics_port, name, labels, want, what):
        # Workers publish their counters once a second.
        h.wait_until(lambda: h.metric_sum(metrics_port, name, labels) == want, 10, what)

    def fetch(self, local_port, host):
        result = h.curl(self.web.url(h.Nginx.SMALL, host), socks5_port=local_port, max_time=15)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(h.sha256(result.body), self.web.files[h.Nginx.SMALL][1])

    def test_local_bypasses_and_proxies_as_the_file_says_and_reloads_on_sighup(self):
        server_port, _, metrics = self.server_with_metrics()
        acl = self.acl_file("[bypass_all]\n\n[proxy_list]\n^localhost$\n")
        local_port = self.start_local(server_port, METHOD, extra=[
            "--acl", acl, "--metrics-listen", f"{h.LOOPBACK}:0"])
        local = self.last_child
        local_metrics = local.ready.metrics[1]

        self.fetch(local_port, "localhost")  # named in [proxy_list]: through the server
        self.wait_metric(metrics, OPENED, {}, 1, "the server's first connection")
        self.fetch(local_port, h.LOOPBACK)  # an address: [bypass_all] connects it directly
        self.fetch(local_port, h.LOOPBACK)
        self.wait_metric(local_metrics, DECISIONS, {"decision": "bypass"}, 2,
                         "two bypass decisions")
        self.assert_opened_stays(metrics, 1, "a bypassed request reached the server")
        self.assertEqual(h.metric_sum(local_metrics, DECISIONS, {"decision": "proxy"}), 1)

        # The file rewritten, then SIGHUP: everything through the server now.
        with open(acl, "w") as f:
            f.write("[proxy_all]\n")
        local.signal(signal.SIGHUP)
        h.wait_until(lambda: "acl " + acl + " reloaded" in open(local.log_path).read(), 10,
                     "the reload logged")
        self.fetch(local_port, h.LOOPBACK)
        self.wait_metric(metrics, OPENED, {}, 2, "the reloaded ACL proxies the address")

        # A bad file at SIGHUP keeps the ACL in force.
        with open(acl, "w") as f:
            f.write("[bypass_all]\n(unclosed\n")
        local.signal(signal.SIGHUP)
        h.wait_until(lambda: "acl not reloaded" in open(local.log_path).read(), 10,
                     "the refused reload logged")
        self.fetch(local_port, h.LOOPBACK)
        self.wait_metric(metrics, OPENED, {}, 3, "still proxied after a bad reload")

    def test_libev_ss_local_reads_the_file_the_same_way(self):
        # Rules both read alike: an address rule and a name rule (libev resolves names that no
        # rule names to match their address: docs/ACL.md; not exercised here).
        server_port, _, metrics = self.server_with_metrics()
        acl = self.acl_file("[proxy_all]\n[bypass_list]\n127.0.0.1\n")
        ours = self.start_local(server_port, METHOD, extra=["--acl", acl])
        libev = self.start_local(server_port, METHOD, impl="libev", extra=["--acl", acl])
        for port in (ours, libev):
            self.fetch(port, h.LOOPBACK)  # bypassed by both
        self.assert_opened_stays(metrics, 0, "a bypassed address reached the server")
        acl2 = self.acl_file("[bypass_all]\n[proxy_list]\n127.0.0.0/8\n", "rules2.acl")
        ours2 = self.start_local(server_port, METHOD, extra=["--acl", acl2])
        libev2 = self.start_local(server_port, METHOD, impl="libev", extra=["--acl", acl2])
        for port in (ours2, libev2):
            self.fetch(port, h.LOOPBACK)  # proxied by both
        self.wait_metric(metrics, OPENED, {}, 2, "both locals proxied 127.0.0.1")

    def test_tunnel_bypasses_its_destination(self):
        server_port, _, metrics = self.server_with_metrics()
        acl = self.acl_file("[bypass_list]\n127.0.0.0/8\n")
        tunnel_port = self.start_tunnel(server_port, METHOD, f"{h.LOOPBACK}:{self.web.port}",
                                        extra=["--acl", acl])
        result = h.curl(f"http://{h.LOOPBACK}:{tunnel_port}/{h.Nginx.SMALL}", max_time=15)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(h.sha256(result.body), self.web.files[h.Nginx.SMALL][1])
        self.assert_opened_stays(metrics, 0, "the tunnel's bypassed connection went through")

    def test_server_refuses_its_outbound_block_list(self):
        acl = self.acl_file("[outbound_block_list]\n127.0.0.1/32\n(^|\\.)localhost$\n")
        server_port, server, metrics = self.server_with_metrics(["--acl", acl])
        before = self.web.requests_logged()
        for impl in ("ours", "libev"):
            local_port = self.start_local(server_port, METHOD, impl=impl)
            for host in (h.LOOPBACK, "localhost"):
                result = h.curl(self.web.url(h.Nginx.SMALL, host), socks5_port=local_port,
                                max_time=10)
                self.assertEqual(result.body, b"", f"{impl} -> {host}: {result}")
        self.assertEqual(self.web.requests_logged(), before, "a blocked target was reached")
        self.wait_metric(metrics, DECISIONS, {"decision": "block"}, 4, "4 blocks counted")
        # What is not in the list still goes through (the server has --allow-private).
        other = self.acl_file("[outbound_block_list]\n10.0.0.0/8\n", "other.acl")
        server_port2 = self.start_server(METHOD, extra=["--acl", other])
        self.fetch(self.start_local(server_port2, METHOD), h.LOOPBACK)

    def test_a_bad_acl_file_exits_2_naming_the_line(self):
        acl = self.acl_file("[proxy_all]\n[bypass_list]\n10.0.0.0/8\n(a)\\1\n")
        argv = [h.Config.relay, "local", "-s", h.LOOPBACK, "-p", 1, "-b", h.LOOPBACK, "-l", 0,
                "-k", h.PASSWORD, "-m", METHOD, "--acl", acl]
        child = self.spawn("local-bad-acl", argv, ours=True)
        child.stopped_by_test = True
        self.assertEqual(child.wait(20), 2, child.log_tail())
        with open(child.log_path) as f:
            self.assertIn(f"config: acl: {acl}:4: not a regular expression", f.read())


if __name__ == "__main__":
    h.main()
