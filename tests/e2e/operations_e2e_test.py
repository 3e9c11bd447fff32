# SPDX-License-Identifier: Apache-2.0
"""Python shadowsocks and sslocal-style operations (issue 16 §2): a Python 2.x server config
file (port_password, its other keys) served to shadowsocks-libev's ss-local, forbidden_ip, a
hosts file for the relay's resolver (server: the target names; local: the server's name), a pid
file written once listening and removed at exit, and -a dropping root once the ports are
bound, with the state directory still writable."""

import hashlib
import json
import os
import pwd
import signal
import tempfile
import time

import e2e_harness as h

METHOD = "chacha20-ietf-poly1305"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class OperationsTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("our flags")

    def hosts_file(self, lines):
        path = h.scratch_path("hosts")
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        return path

    def fetch_small(self, local_port, host):
        web = h.nginx()
        result = h.curl(web.url(h.Nginx.SMALL, host), socks5_port=local_port, max_time=20)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(sha256(result.body), web.files[h.Nginx.SMALL][1], str(result))

    def test_python_config_with_port_password_serves_each_port_to_ss_local(self):
        ports = [h.free_port(), h.free_port()]
        config = h.scratch_path("python-server.json")
        with open(config, "w") as f:
            json.dump({"server": h.LOOPBACK, "server_port": h.free_port(),
                       "password": "not-served",
                       "port_password": {str(ports[0]): "foobar1", str(ports[1]): "foobar2"},
                       "timeout": 300, "method": METHOD, "fast_open": False, "workers": 1,
                       "pid-file": h.scratch_path("py.pid"),
                       "log-file": "/var/log/shadowsocks.log", "prefer_ipv6": False,
                       "one_time_auth": False, "control_listen": "off",
                       "metrics_listen": "off"}, f)
        argv = [h.Config.relay, "server", "-c", config, "--allow-private"]
        self.start_ours("python-config-server", argv)
        for port, password in zip(ports, ["foobar1", "foobar2"]):
            local_port = self.start_local(port, METHOD, impl="libev", password=password)
            self.fetch_small(local_port, h.LOOPBACK)
        # Each port knows only its own password.
        local_port = self.start_local(ports[0], METHOD, impl="libev", password="foobar2")
        web = h.nginx()
        result = h.curl(web.url(h.Nginx.SMALL, h.LOOPBACK), socks5_port=local_port, max_time=10)
        self.assertEqual(result.body, b"", str(result))
        with open(self.children[0].log_path) as f:
            log = f.read()
        self.assertIn("log-file: ignored", log)
        self.assertIn(f"dedicated port {ports[0]} open for user port-{ports[0]}", log)

    def test_forbidden_ip_is_refused_even_with_allow_private(self):
        web = h.nginx()
        server_port = self.start_server(METHOD, extra=["--forbidden-ip", "10.0.0.0/8,127.0.0.1"])
        local_port = self.start_local(server_port, METHOD)
        before = web.requests_logged()
        result = h.curl(web.url(h.Nginx.SMALL, h.LOOPBACK), socks5_port=local_port, max_time=10)
        self.assertNotEqual(result.code, 0, str(result))
        self.assertEqual(result.body, b"", str(result))
        self.assertEqual(web.requests_logged(), before, "a forbidden target was reached")

    def test_server_resolves_targets_from_its_hosts_file(self):
        # A name no DNS server knows (the name server is a closed port): only the file has it.
        hosts = self.hosts_file([f"{h.LOOPBACK} relay-target.test"])
        server_port = self.start_server(METHOD, extra=[
            "--hosts-file", hosts, "-d", f"{h.LOOPBACK}:{h.free_port()}"])
        local_port = self.start_local(server_port, METHOD)
        self.fetch_small(local_port, "relay-target.test")

    def test_a_name_missing_from_the_hosts_file_is_not_found(self):
        hosts = self.hosts_file([f"{h.LOOPBACK} relay-target.test"])
        server_port = self.start_server(METHOD, extra=[
            "--hosts-file", hosts, "-d", f"{h.LOOPBACK}:{h.free_port()}"])
        local_port = self.start_local(server_port, METHOD)
        web = h.nginx()
        before = web.requests_logged()
        result = h.curl(web.url(h.Nginx.SMALL, "other-target.test"), socks5_port=local_port,
                        max_time=20)
        self.assertNotEqual(result.code, 0, str(result))
        self.assertEqual(web.requests_logged(), before)

    def test_local_finds_its_server_by_a_name_in_its_hosts_file(self):
        hosts = self.hosts_file([f"{h.LOOPBACK} relay-server.test"])
        server_port = self.start_server(METHOD)
        argv = [h.Config.relay, "local", "-s", "relay-server.test", "-p", server_port,
                "-b", h.LOOPBACK, "-l", 0, "-k", h.PASSWORD, "-m", METHOD,
                "--hosts-file", hosts, "-d", f"{h.LOOPBACK}:{h.free_port()}"]
        local_port = self.start_ours("local-by-name", argv).ready.port
        self.fetch_small(local_port, h.LOOPBACK)

    def test_a_missing_hosts_file_is_a_configuration_error(self):
        missing = h.scratch_path("no-such-hosts")
        argv = [h.Config.relay, "server", "-s", h.LOOPBACK, "-p", 0, "-k", h.PASSWORD,
                "-m", METHOD, "--hosts-file", missing, "--control-listen", "off"]
        child = self.spawn("server-missing-hosts", argv, ours=True)
        child.stopped_by_test = True
        code = child.wait(20)
        self.assertEqual(code, 2, child.log_tail())
        with open(child.log_path) as f:
            self.assertIn(f"hosts_file: {missing}: cannot be read", f.read())

    def test_pid_file_written_once_listening_and_removed_at_exit(self):
        pid_path = h.scratch_path("relay.pid")
        self.start_server(METHOD, extra=["-f", pid_path])
        child = self.last_child
        child.stopped_by_test = True
        deadline = time.monotonic() + 10
        while not os.path.exists(pid_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(pid_path) as f:
            self.assertEqual(f.read(), f"{child.pid}\n")
        code, killed = child.stop()
        self.assertEqual((code, killed), (0, False), child.log_tail())
        self.assertFalse(os.path.exists(pid_path), "the pid file outlived the server")

    def test_user_drops_root_and_keeps_the_state_directory_writable(self):
        if os.geteuid() != 0:
            self.fail("this test runs as root (CI and ./dev test do): -a needs root to drop")
        nobody = pwd.getpwnam("nobody")
        # Under /tmp: the user must be able to reach the directory, not only own it.
        state = tempfile.mkdtemp(prefix="sr-runas-", dir="/tmp")
        self.addCleanup(lambda: os.system(f"rm -rf '{state}'"))
        server_port = self.start_server(METHOD, extra=["-a", "nobody", "--state-dir", state])
        child = self.last_child
        child.stopped_by_test = True
        deadline = time.monotonic() + 10
        uids = None
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/status") as f:
                uids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
            if uids == [str(nobody.pw_uid)] * 4:
                break
            time.sleep(0.02)
        self.assertEqual(uids, [str(nobody.pw_uid)] * 4, "real, effective, saved, fs uid")
        local_port = self.start_local(server_port, METHOD)
        self.fetch_small(local_port, h.LOOPBACK)
        code, killed = child.stop()
        self.assertEqual((code, killed), (0, False), child.log_tail())
        # The replay filters are saved at stop, as nobody, into the state directory.
        saved = os.path.join(state, "replay_filter_tcp")
        self.assertTrue(os.path.exists(saved), child.log_tail())
        self.assertEqual(os.stat(saved).st_uid, nobody.pw_uid)
        self.assertEqual(os.stat(state).st_uid, nobody.pw_uid)
        with open(child.log_path) as f:
            self.assertIn("running as user nobody", f.read())


if __name__ == "__main__":
    h.main()
