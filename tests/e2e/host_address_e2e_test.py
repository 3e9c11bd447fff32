# SPDX-License-Identifier: Apache-2.0
"""Target policy: a target that is one of this host's own interface addresses is refused, over
TCP, UDP and UDP over TCP, even when the address is public, while a service bound to 0.0.0.0
would answer there. An address added while the server runs is refused too (netlink).

The module runs in a network namespace of its own (it re-executes itself under
`unshare --net`, which needs root or CAP_SYS_ADMIN): loopback is brought up and a veth pair
carries the public-looking "own" addresses below. Nothing can leave the namespace, so those
addresses are never reached on the Internet; and the machine's real interfaces (whose address
may be private, and so refused by the ranges alone) cannot make the test pass for the wrong
reason."""

import os
import shutil
import socket
import subprocess
import sys

import e2e_harness as h
from e2e_harness import SocksUdp, UdpEcho, stopped_log, stopped_udp_summary

METHOD = "chacha20-ietf-poly1305"
NETNS_ENV = "SHADOWRELAY_E2E_NETNS"
LINK = "sr-own0"
OWN4 = "11.22.33.44"       # on LINK from the start
LATE4 = "11.22.33.45"      # added while a server runs
OWN6 = "2001:470:1:2::44"  # on LINK from the start


def ip(*args):
    subprocess.run([h.tool("ip"), *args], check=True, capture_output=True, text=True)


def enter_network_namespace():
    """Re-executes this module under `unshare --net` once; inside, sets up lo and LINK."""
    if os.environ.get(NETNS_ENV) != "1":
        os.environ[NETNS_ENV] = "1"
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        os.execv(unshare, [unshare, "--net", "--", sys.executable, "-B", *sys.argv])
    ip("link", "set", "lo", "up")
    ip("link", "add", LINK, "type", "veth", "peer", "name", LINK + "p")
    ip("link", "set", LINK, "up")
    ip("link", "set", LINK + "p", "up")
    ip("addr", "add", f"{OWN4}/32", "dev", LINK)
    ip("-6", "addr", "add", f"{OWN6}/128", "dev", LINK, "nodad")


class OwnAddressTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("libev has no target policy")
        self.echo = self.add_peer(h.EchoServer(host="0.0.0.0"))

    def start_pair(self, allow_private=False, server_extra=(), local_extra=()):
        port = self.start_server(METHOD, allow_private=allow_private, extra=list(server_extra))
        self.server = self.last_child
        return self.start_local(port, METHOD, extra=list(local_extra))

    def relayed(self, local_port, host, port):
        """Whether an echo round trip through local -> server -> host:port comes back."""
        try:
            sock = h.socks5_connect(local_port, host, port, timeout=5)
        except (AssertionError, OSError):
            return False
        with sock:
            try:
                sock.sendall(b"ping")
                return h.recv_exact(sock, 4, "echo") == b"ping"
            except (AssertionError, OSError):
                return False

    def test_own_ipv4_address_is_refused_and_reachable_with_allow_private(self):
        local_port = self.start_pair()
        self.assertFalse(self.relayed(local_port, OWN4, self.echo.port),
                         f"{OWN4}, this host's own address, was relayed")
        self.assertEqual(self.echo.accepted, 0)
        # The same address is reachable: the refusal above was the policy, not routing.
        local_port = self.start_pair(allow_private=True)
        self.assertTrue(self.relayed(local_port, OWN4, self.echo.port))
        self.assertEqual(self.echo.accepted, 1)

    def test_own_ipv6_address_is_refused(self):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
            listener.bind(("::", 0))
            listener.listen(4)
            listener.settimeout(0.5)
            local_port = self.start_pair()
            self.assertFalse(self.relayed(local_port, OWN6, listener.getsockname()[1]))
            with self.assertRaises(socket.timeout):
                listener.accept()

    def test_address_added_while_running_is_refused(self):
        local_port = self.start_pair(server_extra=["-v"])
        ip("addr", "add", f"{LATE4}/32", "dev", LINK)
        self.addCleanup(ip, "addr", "del", f"{LATE4}/32", "dev", LINK)
        h.wait_until(lambda: f"+{LATE4}" in open(self.server.log_path).read(), 5,
                     "the server to see the new address (netlink)")
        self.assertFalse(self.relayed(local_port, LATE4, self.echo.port),
                         f"{LATE4}, added after start, was relayed")
        self.assertEqual(self.echo.accepted, 0)
        self.assertIn("refused (not public unicast, or this host)", stopped_log(self, self.server))

    def test_udp_to_own_address_is_refused(self):
        echo = self.add_peer(UdpEcho(host="0.0.0.0"))
        local_port = self.start_pair(server_extra=["-u"], local_extra=["-u"])
        udp = SocksUdp(local_port)
        self.addCleanup(udp.close)
        self.assertIsNone(udp.roundtrip(echo.port, b"to myself", host=OWN4))
        self.assertEqual(echo.received, 0)
        self.assertGreaterEqual(stopped_udp_summary(self, self.server)["refused"], 1)
        # With --allow-private the same datagram comes back.
        local_port = self.start_pair(allow_private=True, server_extra=["-u"], local_extra=["-u"])
        udp = SocksUdp(local_port)
        self.addCleanup(udp.close)
        self.assertEqual(udp.roundtrip(echo.port, b"to myself", host=OWN4), b"to myself")

    def test_udp_over_tcp_to_own_address_is_refused(self):
        echo = self.add_peer(UdpEcho(host="0.0.0.0"))
        port = self.start_server(METHOD, allow_private=False)
        server = self.last_child
        tunnel_port = self.start_tunnel(port, METHOD, f"{OWN4}:{echo.port}",
                                        extra=["-U", "--udp-over-tcp"])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.sendto(b"to myself over tcp", (h.LOOPBACK, tunnel_port))
            with self.assertRaises(socket.timeout):
                sock.recvfrom(70000)
        self.assertEqual(echo.received, 0)
        self.assertGreaterEqual(stopped_udp_summary(self, server)["refused"], 1)


if __name__ == "__main__":
    enter_network_namespace()
    h.main()
