# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the end-to-end tests (tests/e2e/*_e2e_test.py). Python 3 stdlib only.

What is here:
  * the relay under test: `--relay=PATH` (our binary) or `--relay=libev` (shadowsocks-libev's
    ss-server/ss-local/ss-tunnel stand in for ours; used to validate the harness itself);
  * child processes that die with the harness (PR_SET_PDEATHSIG), are stopped after every test
    and, for our binary, must exit 0 on SIGTERM (so sanitizer reports fail the test);
  * ports: our binary binds port 0 for every listener and names what it bound on its one
    `ready:` line (api/app/server_runtime.cc readyLine()), which the harness reads from the
    process's log; third-party peers (shadowsocks-libev, nginx, dnsmasq), which cannot report
    a port, get a probed free port and readiness by poll-connect, both with a deadline;
  * a shared nginx serving generated files, curl, a raw SOCKS5 client, small Python TCP peers
    (EOF-then-reply, echo, a recording proxy);
  * `main()`: runs the module's unittest cases and writes one JUnit <testcase> per case to
    $XML_OUTPUT_FILE, which is what bazel/test_summary.py counts.

Every wait has a deadline; nothing sleeps to synchronise except bounded polling.
"""

import argparse
import ctypes
import hashlib
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import xml.etree.ElementTree as ET

# The five SIP004 methods. shadowsocks-libev 3.3.5 (Debian bookworm, built with libsodium)
# supports all five, including xchacha20-ietf-poly1305, so every method is tested across
# implementations.
METHODS = (
    "aes-128-gcm",
    "aes-192-gcm",
    "aes-256-gcm",
    "chacha20-ietf-poly1305",
    "xchacha20-ietf-poly1305",
)
PASSWORD = "e2e-correct-horse"
WRONG_PASSWORD = "e2e-wrong-horse"

READY_DEADLINE = 10.0  # a started process must be ready (log its ready line, or accept) by this
STOP_DEADLINE = 15.0  # SIGTERM to exit (ASan's leak check at exit is slow)
LOOPBACK = "127.0.0.1"

# SOCKS5 reply our `local` sends for UDP ASSOCIATE when started without -u: 0x07 (command not
# supported). With -u it relays UDP (tests/e2e/udp_e2e_test.py).
UDP_ASSOCIATE_REPLY = 0x07


class Config:
    relay = None  # path to our binary, or None in libev mode
    grpc_call = None  # tests/e2e/grpc_call (control API client), when the test has it
    reflection_call = None  # tests/e2e/reflection_call (server reflection client), likewise
    tmp = None  # per-run scratch directory
    verbose = False

    @classmethod
    def libev_mode(cls):
        return cls.relay is None


# --------------------------------------------------------------------------------------------
# Tools and ports


def tool(name):
    """Absolute path of a system tool; /usr/sbin is searched too (nginx lives there)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
    found = shutil.which(name, path=path)
    if not found:
        raise AssertionError(
            f"required tool '{name}' not found (install it with bazel/install_deps.sh test)")
    return found


def free_port():
    """A TCP port the OS considers free on 127.0.0.1 (bound to 0, read, closed).

    Racy by nature (the port is free when probed, not when used), so only for peers that need
    a fixed number because they cannot report what they bound: shadowsocks-libev's ss-server,
    ss-local and ss-tunnel (and our binary's stand-in in libev mode), nginx, dnsmasq, and a
    port that has to be named before it exists (a config file, a dedicated user port). Our
    binary listens on port 0 and says where on its ready line (Child.wait_ready)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_port_tcp_udp():
    """A port free on 127.0.0.1 for both TCP and UDP when probed (racy as free_port), for peers
    that bind both on one number (ss-tunnel -u, ss-local -u)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise AssertionError("could not find a port free for both TCP and UDP on 127.0.0.1")


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port_both_families():
    """A port free on 127.0.0.1 and on ::1 (when IPv6 loopback exists), for nginx, which
    cannot report a port it bound."""
    if not ipv6_loopback_available():
        return free_port(), False
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind((LOOPBACK, 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
                    return port, True
            except OSError:
                continue
    raise AssertionError("could not find a port free on both 127.0.0.1 and ::1")


def raise_fd_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


_METRIC_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_METRIC_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(port, name, labels=None, host=None):
    """The sum of the series `name` whose labels include `labels`, scraped from our /metrics
    on LOOPBACK:port (0 when there is none)."""
    import urllib.request  # only the tests that scrape need it
    with urllib.request.urlopen(f"http://{host or LOOPBACK}:{port}/metrics", timeout=5) as r:
        text = r.read().decode("utf-8")
    total = 0.0
    for line in text.splitlines():
        match = _METRIC_SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        have = dict(_METRIC_LABEL.findall(match.group(2) or ""))
        if all(have.get(k) == v for k, v in (labels or {}).items()):
            total += float(match.group(3))
    return total


def wait_until(predicate, timeout, what):
    """Polls `predicate` every 20 ms until it is true; fails with `what` after `timeout` s."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# Child processes

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved once, not between fork and exec
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_all_children = set()  # every live Child, for the emergency cleanup in main()
_counter = [0]


def _die_with_parent():
    # Runs in the child between fork and exec (one libc call, nothing else): SIGKILL the child
    # if the harness dies for any reason, even SIGKILL.
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _next_id():
    _counter[0] += 1
    return _counter[0]


def scratch_path(name):
    return os.path.join(Config.tmp, f"{_next_id():03d}-{name}")


# The line our binary logs once every listener is bound (api/app/server_runtime.cc readyLine()):
#   <timestamp> I main: ready: <role> tcp=ADDR udp=ADDR ... control=ADDR metrics=ADDR
# a tcp=/udp= pair per listen address (only the protocols it relays there), control= and
# metrics= when they run; ADDR is 127.0.0.1:40001 or [::1]:40001. With a server's --plugin
# (SIP003), tcp= is the plugin's public port, logged once the plugin listens: where clients go.
_READY_LINE = re.compile(r"^\S+ I main: ready: (\S+)((?: \w+=\S+)*)$")
_READY_ADDRESS = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d+)$")


class Ready:
    """What one of our processes said on its ready line. Each address is (host, port), or the
    text as logged when it is not host:port (a unix: control socket)."""

    def __init__(self, line, role, tcp, udp, control, metrics):
        self.line = line
        self.role = role
        self.tcp = tcp  # [(host, port)] in listen-address order
        self.udp = udp
        self.control = control  # (host, port), or None when it does not run
        self.metrics = metrics

    @property
    def port(self):
        """The port of the first listen address (TCP, or UDP for a UDP-only tunnel/server)."""
        return (self.tcp or self.udp)[0][1]

    def __repr__(self):
        return f"Ready({self.line!r})"


def _ready_address(text):
    match = _READY_ADDRESS.match(text)
    if not match:
        return text
    return (match.group(1) or match.group(2), int(match.group(3)))


def parse_ready_line(line):
    """A Ready for our binary's ready line, None for any other line. A malformed ready line
    (an unknown key, a port that is not a number) fails: the format is an interface."""
    match = _READY_LINE.match(line.rstrip("\r\n"))
    if not match:
        return None
    fields = {"tcp": [], "udp": [], "control": [], "metrics": []}
    for item in match.group(2).split():
        key, _, value = item.partition("=")
        if key not in fields:
            raise AssertionError(f"ready line with an unknown key {key!r}: {line!r}")
        fields[key].append(_ready_address(value))
    for key in ("tcp", "udp"):
        if any(not isinstance(a, tuple) for a in fields[key]):
            raise AssertionError(f"ready line with a {key}= that is not host:port: {line!r}")
    if len(fields["control"]) > 1 or len(fields["metrics"]) > 1:
        raise AssertionError(f"ready line with control= or metrics= twice: {line!r}")
    if not fields["tcp"] and not fields["udp"]:
        raise AssertionError(f"ready line without a listener: {line!r}")
    return Ready(line.rstrip("\r\n"), match.group(1), fields["tcp"], fields["udp"],
                 (fields["control"] or [None])[0], (fields["metrics"] or [None])[0])


class Child:
    """A process whose stdout+stderr go to a log file in the scratch directory.

    The child writes the file itself (no pipe: it never blocks on a reader and no line is
    lost), so stopped_log() and log_tail() read everything it said; wait_ready() reads the
    ready line from the same file."""

    def __init__(self, name, argv, ours):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.ours = ours
        self.log_path = scratch_path(re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".log")
        self.stopped_by_test = False
        self.exit_code = None
        self.ready = None  # our binary's Ready, once wait_ready() saw it
        self._scanned = 0  # bytes of the log wait_ready() has looked at
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(self.argv) + "\n").encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, close_fds=True)
        _all_children.add(self)

    @property
    def pid(self):
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no log: {e})"
        tail = text.splitlines()[-lines:]
        return "\n".join("    " + line for line in tail)

    def describe(self):
        return f"{self.name} (pid {self.pid}, log {self.log_path})"

    def _scan_for_ready(self):
        """The ready line among the complete lines logged since the last scan, or None."""
        with open(self.log_path, "rb") as f:
            f.seek(self._scanned)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits
        self._scanned += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            ready = parse_ready_line(line)
            if ready is not None:
                return ready
        return None

    def wait_ready(self, deadline=READY_DEADLINE):
        """Our binary's ready line (a Ready: the ports it bound, port 0 included), read from its
        log within `deadline` s; fails early, with the log's tail, if the process exits first."""
        if self.ready is not None:
            return self.ready
        end = time.monotonic() + deadline
        while True:
            exited = self.popen.poll()  # before the scan: a line logged before exiting counts
            self.ready = self._scan_for_ready()
            if self.ready is not None:
                return self.ready
            if exited is not None:
                raise AssertionError(
                    f"{self.describe()} exited with {exited} before its ready line; its "
                    f"output:\n{self.log_tail()}")
            if time.monotonic() > end:
                raise AssertionError(
                    f"{self.describe()} logged no ready line within {deadline:.0f} s; its "
                    f"output:\n{self.log_tail()}")
            time.sleep(0.02)

    def signal(self, sig):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, deadline=STOP_DEADLINE):
        """SIGTERM, wait up to `deadline`, then SIGKILL. Returns (exit_code, needed_kill)."""
        if self.popen.poll() is not None:
            _all_children.discard(self)
            return self.popen.returncode, False
        self.popen.send_signal(signal.SIGTERM)
        code = self.wait(deadline)
        killed = False
        if code is None:
            killed = True
            self.popen.kill()
            code = self.popen.wait(timeout=10)
        _all_children.discard(self)
        return code, killed

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _all_children.discard(self)


def kill_all_children():
    for child in list(_all_children):
        child.kill()


def wait_listening(port, child=None, deadline=READY_DEADLINE, host=LOOPBACK):
    """Poll-connects to host:port until it accepts; fails early if `child` exits."""
    end = time.monotonic() + deadline
    last_error = None
    while time.monotonic() < end:
        if child is not None and child.poll() is not None:
            raise AssertionError(
                f"{child.describe()} exited with {child.poll()} before listening on "
                f"{host}:{port}; its output:\n{child.log_tail()}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as e:
            last_error = e
            time.sleep(0.05)
    extra = f"; its output:\n{child.log_tail()}" if child is not None else ""
    raise AssertionError(
        f"nothing accepted on {host}:{port} within {deadline:.0f} s (last error: {last_error})"
        + extra)


# --------------------------------------------------------------------------------------------
# The relay roles. impl="ours" is our binary (or libev in libev mode); impl="libev" is always
# shadowsocks-libev.


def _resolve_impl(impl):
    if impl not in ("ours", "libev"):
        raise ValueError(impl)
    return "libev" if Config.libev_mode() else impl


def server_argv(impl, port, method, password=PASSWORD, allow_private=True,
                handshake_timeout=None, drain_timeout=None, extra=()):
    impl = _resolve_impl(impl)
    common = ["-s", LOOPBACK, "-p", port, "-k", password, "-m", method]
    if impl == "libev":
        # libev has no target policy, handshake or drain timeouts; these flags are ours only.
        return [tool("ss-server")] + common + list(extra)
    argv = [Config.relay, "server"] + common
    if allow_private:
        argv.append("--allow-private")
    if handshake_timeout is not None:
        argv += ["--handshake-timeout", handshake_timeout]
    if drain_timeout is not None:
        argv += ["--drain-timeout", drain_timeout]
    if Config.verbose:
        argv.append("-v")
    # The control API and /metrics bind fixed ports by default; tests that run in parallel
    # would collide. Tests of those give their own address (port 0).
    for flag in ("--control-listen", "--metrics-listen"):
        if not any(str(arg).startswith(flag) for arg in extra):
            argv += [flag, "off"]
    return argv + list(extra)


def local_argv(impl, server_port, local_port, method, password=PASSWORD, tunnel_to=None):
    impl = _resolve_impl(impl)
    common = ["-s", LOOPBACK, "-p", server_port, "-b", LOOPBACK, "-l", local_port,
              "-k", password, "-m", method]
    if tunnel_to is not None:
        common += ["-L", tunnel_to]
    if impl == "libev":
        return [tool("ss-tunnel" if tunnel_to else "ss-local")] + common
    argv = [Config.relay, "tunnel" if tunnel_to else "local"] + common
    if Config.verbose:
        argv.append("-v")
    return argv


class RelayTestCase(unittest.TestCase):
    """Starts processes for one test and stops them afterwards, whatever happened.

    Cleanup fails the test when one of our processes died on its own, did not exit on SIGTERM
    within STOP_DEADLINE, or exited with a non-zero code (sanitizer reports included).
    """

    def setUp(self):
        self.children = []
        self.addCleanup(self._stop_children)

    def spawn(self, name, argv, ours):
        child = Child(name, argv, ours)
        self.children.append(child)
        return child

    def _stop_children(self):
        problems = []
        for child in reversed(self.children):
            if child.stopped_by_test or child.exit_code is not None:
                continue
            died_early = child.poll() is not None
            code, killed = child.stop()
            child.exit_code = code
            if not child.ours or Config.libev_mode():
                continue
            problem = None
            if died_early:
                problem = f"exited by itself during the test with code {code}"
            elif killed:
                problem = f"did not exit within {STOP_DEADLINE:.0f} s of SIGTERM (killed)"
            elif code != 0:
                problem = f"exited with {code} after SIGTERM (expected 0)"
            if problem:
                problems.append(f"{child.describe()} {problem}; its output:\n{child.log_tail()}")
        if problems:
            self.fail("process check at the end of the test failed:\n" + "\n".join(problems))

    def failure_context(self):
        """Appended by the runner to a failure: the tail of every process log of this test."""
        parts = []
        for child in getattr(self, "children", []):
            parts.append(f"--- {child.describe()} ---\n{child.log_tail()}")
        return "\n".join(parts)

    # Roles. Each returns the port it listens on, once it is ready.

    def start_ours(self, name, argv):
        """Starts our binary (`argv` binds port 0 for every listener) and waits for its ready
        line; returns the child, whose .ready names what it bound. Also self.last_child."""
        child = self.spawn(name, argv, ours=True)
        child.wait_ready()
        self.last_child = child
        return child

    def start_process(self, name, impl, make_argv):
        """Starts our binary or, `impl` "libev" or in libev mode, shadowsocks-libev's program;
        `make_argv(port)` is its argv listening on `port`. Ours gets port 0 and is ready when it
        logs the port it bound; libev cannot say, so it gets a probed free port and is ready
        when that accepts. Returns the port (a UDP-only tunnel's is UDP); the process is
        self.last_child, for tests that signal it themselves."""
        if _resolve_impl(impl) == "ours":
            return self.start_ours(name, make_argv(0)).ready.port
        port = free_port()  # libev reports no port: a probed one (racy, but the only way)
        child = self.spawn(name, make_argv(port), ours=False)
        wait_listening(port, child)
        self.last_child = child
        return port

    def _start_role(self, role, impl, method, make_argv):
        return self.start_process(f"{_resolve_impl(impl)}-{role}-{method}", impl, make_argv)

    def start_server(self, method, impl="ours", password=PASSWORD, allow_private=True,
                     handshake_timeout=None, drain_timeout=None, extra=()):
        return self._start_role("server", impl, method, lambda port: server_argv(
            impl, port, method, password, allow_private, handshake_timeout, drain_timeout,
            extra))

    def start_local(self, server_port, method, impl="ours", password=PASSWORD, extra=()):
        return self._start_role("local", impl, method, lambda port: local_argv(
            impl, server_port, port, method, password) + list(extra))

    def start_tunnel(self, server_port, method, destination, impl="ours", password=PASSWORD,
                     extra=()):
        return self._start_role("tunnel", impl, method, lambda port: local_argv(
            impl, server_port, port, method, password, tunnel_to=destination) + list(extra))

    def start_ss_tunnel_u(self, server_port, method, password, destination_port, name):
        """shadowsocks-libev's `ss-tunnel -u` to LOOPBACK:destination_port; returns a UDP socket
        connected to it. Its TCP readiness probe opens a TCP session at the server (to the
        destination port): take counter baselines after it."""
        # ss-tunnel reports no port: a probed one. Its UDP bind fails alone (logged, the process
        # goes on without UDP) when another process took the number meanwhile: try another.
        for attempt in range(3):
            port = free_port_tcp_udp()
            argv = local_argv("libev", server_port, port, method, password=password,
                              tunnel_to=f"{LOOPBACK}:{destination_port}") + ["-u"]
            tunnel = self.spawn(f"ss-tunnel-u-{name}", argv, ours=False)
            wait_listening(port, tunnel)  # -u: TCP and UDP on the same port
            time.sleep(0.1)  # the UDP bind is logged right after the TCP listen
            with open(tunnel.log_path, encoding="utf-8", errors="replace") as f:
                if "[udp] bind" not in f.read():
                    break
            tunnel.stop()
        else:
            raise AssertionError(f"ss-tunnel -u for {name}: its UDP port was taken 3 times")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind((LOOPBACK, 0))
        sock.connect((LOOPBACK, port))
        return sock

    def require_ours(self, why):
        if Config.libev_mode():
            self.skipTest(f"our binary only ({why}); running in libev mode")

    def add_peer(self, peer):
        """Registers a Python peer (TCP server/proxy thread) to be stopped after the test."""
        self.addCleanup(peer.stop)
        return peer


# --------------------------------------------------------------------------------------------
# nginx, one per test process


class Nginx:
    BIG = "big.bin"  # 8 MiB random
    SMALL = "small.bin"  # 64 KiB random

    def __init__(self):
        self.dir = scratch_path("nginx")
        www = os.path.join(self.dir, "www")
        os.makedirs(www)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, "temp", sub))
        self.files = {}
        for name, size in ((self.BIG, 8 << 20), (self.SMALL, 64 << 10)):
            data = os.urandom(size)
            with open(os.path.join(www, name), "wb") as f:
                f.write(data)
            self.files[name] = (size, sha256(data))
        self.port, self.ipv6 = free_port_both_families()  # nginx reports no port
        self.access_log = os.path.join(self.dir, "access.log")
        listens = f"listen {LOOPBACK}:{self.port};"
        if self.ipv6:
            # "localhost" may resolve to ::1 first on some hosts.
            listens += f"\n    listen [::1]:{self.port};"
        temp = os.path.join(self.dir, "temp")
        conf = f"""
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {self.dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log {self.access_log};
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 5;
  server {{
    {listens}
    root {www};
  }}
}}
"""
        conf_path = os.path.join(self.dir, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.child = Child("nginx", [tool("nginx"), "-p", self.dir, "-c", conf_path,
                                     "-e", "stderr"], ours=False)
        wait_listening(self.port, self.child)

    def url(self, name, host="localhost"):
        return f"http://{host}:{self.port}/{name}"

    def requests_logged(self):
        """Lines in the access log (one per request that reached nginx)."""
        try:
            with open(self.access_log, "rb") as f:
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0

    def stop(self):
        self.child.stop()


_nginx = [None]


def nginx():
    """The nginx shared by all tests of this process (started on first use)."""
    if _nginx[0] is not None and _nginx[0].child.poll() is not None:
        raise AssertionError(f"nginx died (exit {_nginx[0].child.poll()}):\n"
                             f"{_nginx[0].child.log_tail()}")
    if _nginx[0] is None:
        _nginx[0] = Nginx()
    return _nginx[0]


# --------------------------------------------------------------------------------------------
# curl


class CurlResult:
    def __init__(self, argv, code, body, stderr, elapsed):
        self.argv, self.code, self.body, self.stderr, self.elapsed = (
            argv, code, body, stderr, elapsed)

    def __str__(self):
        return (f"`{' '.join(self.argv)}` exited {self.code} after {self.elapsed:.1f} s, "
                f"{len(self.body)} body bytes, stderr: {self.stderr.strip()!r}")


def curl(url, socks5_port=None, max_time=60):
    out = scratch_path("curl.out")
    argv = [tool("curl"), "-q", "-sS", "--max-time", str(max_time), "-o", out]
    if socks5_port is not None:
        # socks5-hostname: the host name goes to the relay, which resolves it.
        argv += ["--socks5-hostname", f"{LOOPBACK}:{socks5_port}"]
    argv.append(url)
    start = time.monotonic()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=max_time + 15)
    elapsed = time.monotonic() - start
    body = b""
    if os.path.exists(out):
        with open(out, "rb") as f:
            body = f.read()
        os.unlink(out)
    return CurlResult(argv, proc.returncode, body, proc.stderr.decode("utf-8", "replace"),
                      elapsed)


# --------------------------------------------------------------------------------------------
# Raw sockets and SOCKS5


def recv_exact(sock, n, what):
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            raise AssertionError(f"{what}: timed out after {len(buf)} of {n} bytes "
                                 f"(got {bytes(buf).hex()})")
        if not chunk:
            raise AssertionError(f"{what}: connection closed after {len(buf)} of {n} bytes "
                                 f"(got {bytes(buf).hex()})")
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock, what, limit=64 << 20):
    buf = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"{what}: no EOF before the deadline ({len(buf)} bytes read)")
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise AssertionError(f"{what}: more than {limit} bytes")


def socks5_address(host, port):
    """ATYP ADDR PORT for an IPv4/IPv6 literal or a host name."""
    try:
        return b"\x01" + socket.inet_pton(socket.AF_INET, host) + struct.pack(">H", port)
    except OSError:
        pass
    try:
        return b"\x04" + socket.inet_pton(socket.AF_INET6, host) + struct.pack(">H", port)
    except OSError:
        pass
    name = host.encode()
    return b"\x03" + bytes([len(name)]) + name + struct.pack(">H", port)


def read_socks5_reply(sock, what="SOCKS5 reply"):
    """Reads VER REP RSV ATYP BND.ADDR BND.PORT; returns (REP, raw reply)."""
    head = recv_exact(sock, 4, what)
    if head[0] != 5 or head[2] != 0:
        raise AssertionError(f"{what}: malformed reply header {head.hex()}")
    atyp = head[3]
    if atyp == 1:
        rest = recv_exact(sock, 4 + 2, what)
    elif atyp == 4:
        rest = recv_exact(sock, 16 + 2, what)
    elif atyp == 3:
        n = recv_exact(sock, 1, what)
        rest = n + recv_exact(sock, n[0] + 2, what)
    else:
        raise AssertionError(f"{what}: reply with unknown ATYP {atyp} ({head.hex()})")
    return head[1], head + rest


def socks5_open(local_port, timeout=20.0):
    """Connects to a SOCKS5 front end and completes the no-auth greeting."""
    sock = socket.create_connection((LOOPBACK, local_port), timeout=timeout)
    try:
        sock.sendall(b"\x05\x01\x00")
        reply = recv_exact(sock, 2, "SOCKS5 method selection")
        if reply != b"\x05\x00":
            raise AssertionError(f"SOCKS5 method selection: expected 0500, got {reply.hex()}")
    except BaseException:
        sock.close()
        raise
    return sock


def socks5_connect(local_port, host, port, timeout=20.0):
    """A socket CONNECTed through the SOCKS5 front end to host:port (reply 00 asserted)."""
    sock = socks5_open(local_port, timeout)
    try:
        sock.sendall(b"\x05\x01\x00" + socks5_address(host, port))
        rep, raw = read_socks5_reply(sock, "SOCKS5 CONNECT reply")
        if rep != 0:
            raise AssertionError(f"SOCKS5 CONNECT to {host}:{port}: reply code {rep:#04x} "
                                 f"({raw.hex()})")
    except BaseException:
        sock.close()
        raise
    return sock


def echo_roundtrip(sock, payload, what, timeout=60.0):
    """Sends `payload` (from a thread) while reading it back; asserts the echo is identical."""
    sock.settimeout(timeout)
    send_error = []

    def send():
        try:
            sock.sendall(payload)
        except OSError as e:
            send_error.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got = bytearray()
    try:
        while len(got) < len(payload):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        pass
    sender.join(timeout)
    if send_error:
        raise AssertionError(f"{what}: sending failed after {len(got)} echoed bytes: "
                             f"{send_error[0]}")
    if len(got) != len(payload) or sha256(got) != sha256(payload):
        raise AssertionError(f"{what}: echoed {len(got)} of {len(payload)} bytes, "
                             f"{'identical' if bytes(got) == payload[:len(got)] else 'different'}"
                             f" prefix")


def assert_silent_then_fin(test, sock, connected_at, close_after, close_before,
                           what="server"):
    """The peer sends no byte and closes with FIN (not RST) within [close_after, close_before]
    seconds after `connected_at` (time.monotonic())."""
    end = connected_at + close_before + 3.0
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            test.fail(f"{what} neither sent nor closed within {close_before + 3.0:.1f} s of "
                      f"connecting (expected FIN at {close_after}..{close_before} s)")
        sock.settimeout(remaining)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            test.fail(f"{what} reset the connection (RST) {time.monotonic() - connected_at:.2f} s "
                      f"after connect; expected a FIN at {close_after}..{close_before} s")
        elapsed = time.monotonic() - connected_at
        if data:
            test.fail(f"{what} sent {len(data)} bytes ({data[:32].hex()}...) "
                      f"{elapsed:.2f} s after connect; it must never answer")
        test.assertGreaterEqual(
            elapsed, close_after,
            f"{what} closed (FIN) only {elapsed:.2f} s after connect; expected no earlier than "
            f"{close_after} s (the handshake deadline)")
        test.assertLessEqual(
            elapsed, close_before,
            f"{what} closed (FIN) {elapsed:.2f} s after connect; expected by {close_before} s")
        print(f"  {what}: silent, FIN {elapsed:.2f} s after connect", file=sys.stderr)
        return elapsed


def assert_silent_for(test, sock, seconds, what="server"):
    """libev mode: the peer sends nothing for `seconds` (libev never closes a failed handshake
    before its 24 h timer, PROTOCOL.md §5.1)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return
        except ConnectionResetError:
            test.fail(f"{what} reset the connection")
        if data:
            test.fail(f"{what} sent {len(data)} bytes; it must never answer")
        test.fail(f"{what} closed the connection early")


# --------------------------------------------------------------------------------------------
# Python TCP peers (threads). Each has .port and .stop(); all sockets time out.


class _ThreadedServer:
    def __init__(self, name, backlog=128):
        self.name = name
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(backlog)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.conns = []
        self.errors = []
        self.threads = []
        self.accept_thread = threading.Thread(target=self._accept_loop, name=name, daemon=True)
        self.accept_thread.start()

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(30.0)
            with self.lock:
                self.conns.append(conn)
            t = threading.Thread(target=self._serve_safely, args=(conn,), daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def _serve_safely(self, conn):
        try:
            self.serve(conn)
        except Exception as e:  # reported by the test through .errors
            with self.lock:
                self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    def serve(self, conn):
        raise NotImplementedError

    def stop(self):
        self.stopping.set()
        self.listener.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(5)


class EofThenHashServer(_ThreadedServer):
    """Reads until EOF, then replies sha256(data) (32 bytes) || len(data) (8 bytes BE), closes.

    Also serves as an idle target: a client that never sends EOF just stays connected."""

    def __init__(self):
        self.results = []  # (length, hex digest) per finished connection
        super().__init__("eof-then-hash")

    def serve(self, conn):
        h = hashlib.sha256()
        n = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        conn.sendall(h.digest() + struct.pack(">Q", n))
        with self.lock:
            self.results.append((n, h.hexdigest()))


class SpeakFirstServer(_ThreadedServer):
    """Sends `greeting`, shuts down its write side, then reads until EOF and records
    (length, sha256) of what it read: the half-close in the server-to-client direction."""

    def __init__(self, greeting):
        self.greeting = greeting
        self.results = []
        super().__init__("speak-first")

    def serve(self, conn):
        conn.sendall(self.greeting)
        conn.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        n = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        with self.lock:
            self.results.append((n, h.hexdigest()))


class DribbleServer(_ThreadedServer):
    """After the client's first bytes, sends `count` chunks of `size` random bytes `interval` s
    apart, then closes: a session that stays active for count * interval seconds."""

    def __init__(self, count, size, interval):
        self.count, self.size, self.interval = count, size, interval
        self.sent = []  # sha256 of everything sent, per finished connection
        super().__init__("dribble")

    def serve(self, conn):
        conn.recv(1)
        h = hashlib.sha256()
        for _ in range(self.count):
            chunk = os.urandom(self.size)
            conn.sendall(chunk)
            h.update(chunk)
            if self.stopping.wait(self.interval):
                return
        with self.lock:
            self.sent.append(h.hexdigest())


class RecordingProxy(_ThreadedServer):
    """Forwards to 127.0.0.1:upstream_port and records what each client sent upstream."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.sent = []  # bytearray per connection, in accept order
        self.done = []  # threading.Event per connection: both directions finished
        super().__init__("recording-proxy")

    def serve(self, conn):
        record = bytearray()
        finished = threading.Event()
        with self.lock:
            self.sent.append(record)
            self.done.append(finished)
        try:
            upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=30.0)
        except OSError:
            finished.set()
            raise
        with upstream:
            def pump(src, dst, rec):
                try:
                    while True:
                        data = src.recv(65536)
                        if not data:
                            break
                        if rec is not None:
                            with self.lock:
                                rec.extend(data)
                        dst.sendall(data)
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

            back = threading.Thread(target=pump, args=(upstream, conn, None), daemon=True)
            back.start()
            pump(conn, upstream, record)
            back.join(30.0)
        finished.set()

    def recorded(self, index, wait=5.0):
        """Bytes client `index` sent, once its connection finished (or after `wait` s)."""
        end = time.monotonic() + wait
        while time.monotonic() < end:
            with self.lock:
                if len(self.done) > index:
                    event = self.done[index]
                    break
            time.sleep(0.02)
        else:
            raise AssertionError(f"recording proxy: connection #{index} never arrived")
        event.wait(max(0.0, end - time.monotonic()))
        with self.lock:
            return bytes(self.sent[index])


class EchoServer:
    """Echoes everything back; one selector thread serves all connections (used for 1000).
    `host`: the address it binds (IPv4)."""

    def __init__(self, backlog=1024, host=LOOPBACK):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(backlog)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.open = 0  # connections accepted and not yet closed
        self.errors = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="echo", daemon=True)
        self.thread.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        pending = {}
        try:
            while not self.stopping.is_set():
                for key, mask in sel.select(timeout=0.2):
                    if key.data is None:
                        while True:
                            try:
                                conn, _ = self.listener.accept()
                            except (BlockingIOError, InterruptedError):
                                break
                            conn.setblocking(False)
                            self.accepted += 1
                            pending[conn] = bytearray()
                            self.open = len(pending)
                            sel.register(conn, selectors.EVENT_READ, "conn")
                        continue
                    conn = key.fileobj
                    out = pending[conn]
                    try:
                        if mask & selectors.EVENT_READ:
                            data = conn.recv(65536)
                            if not data:
                                sel.unregister(conn)
                                del pending[conn]
                                self.open = len(pending)
                                conn.close()
                                continue
                            out += data
                        if out:
                            n = conn.send(out)
                            del out[:n]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        self.errors.append(str(e))
                        sel.unregister(conn)
                        del pending[conn]
                        self.open = len(pending)
                        conn.close()
                        continue
                    sel.modify(conn, selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0),
                               "conn")
        finally:
            for conn in list(pending):
                conn.close()
            sel.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


# --------------------------------------------------------------------------------------------
# Runner: unittest + JUnit XML for Bazel


_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(s):
    return _INVALID_XML.sub("?", s)


class _JUnitResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = {}  # test id -> dict(name, classname, time, failures[], skipped)
        self.order = []
        self._started = {}

    def _case(self, test):
        tid = test.id()
        if tid not in self.cases:
            parts = tid.rsplit(".", 1)
            self.cases[tid] = {"name": parts[-1], "classname": parts[0] if len(parts) > 1 else "",
                               "time": 0.0, "problems": [], "skipped": None,
                               "passed": False}
            self.order.append(tid)
        return self.cases[tid]

    def startTest(self, test):
        super().startTest(test)
        self._started[test.id()] = time.monotonic()
        self._case(test)

    def stopTest(self, test):
        super().stopTest(test)
        start = self._started.pop(test.id(), None)
        if start is not None:
            self._case(test)["time"] = time.monotonic() - start

    def _problem(self, kind, test, err):
        text = self._exc_info_to_string(err, test)
        context = ""
        if hasattr(test, "failure_context"):
            try:
                context = test.failure_context()
            except Exception:  # never let diagnostics hide the failure
                context = traceback.format_exc()
        if context:
            text += "\nProcess logs (tails):\n" + context
            self.stream.writeln(f"\n{test.id()} failed; process logs:\n{context}")
        message = str(err[1]).splitlines()[0] if str(err[1]) else err[0].__name__
        self._case(test)["problems"].append((kind, message, text))

    def addError(self, test, err):
        super().addError(test, err)
        self._problem("error", test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problem("failure", test, err)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._case(test)["passed"] = True

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._case(test)["skipped"] = reason

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "failure" if issubclass(err[0], test.failureException) else "error"
            self._problem(kind, test, err)  # one <testcase> per test, subtests folded in

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._case(test)["problems"].append(("failure", "unexpected success", ""))

    def write_xml(self, path, suite_name, interrupted=None):
        if interrupted:
            self.cases["interrupted"] = {
                "name": "interrupted", "classname": suite_name, "time": 0.0, "skipped": None,
                "passed": False, "problems": [("error", interrupted, interrupted)]}
            self.order.append("interrupted")
        for c in self.cases.values():
            if not c["problems"] and c["skipped"] is None and not c["passed"]:
                c["problems"].append(("error", "did not finish", "the test did not finish"))
        suite = ET.Element("testsuite", name=suite_name)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        total_time = 0.0
        for tid in self.order:
            c = self.cases[tid]
            counts["tests"] += 1
            total_time += c["time"]
            case = ET.SubElement(suite, "testcase", name=c["name"], classname=c["classname"],
                                 time=f"{c['time']:.3f}")
            if c["problems"]:
                kinds = {k for k, _, _ in c["problems"]}
                kind = "error" if kinds == {"error"} else "failure"
                counts["errors" if kind == "error" else "failures"] += 1
                el = ET.SubElement(case, kind, message=_xml_text(c["problems"][0][1][:500]))
                el.text = _xml_text("\n\n".join(t for _, _, t in c["problems"]))
            elif c["skipped"] is not None:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=_xml_text(c["skipped"]))
        for k, v in counts.items():
            suite.set(k, str(v))
        suite.set("time", f"{total_time:.3f}")
        root = ET.Element("testsuites")
        for k in ("tests", "failures", "errors"):
            root.set(k, suite.get(k))
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _filtered(suite, patterns):
    out = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            sub = _filtered(item, patterns)
            if sub.countTestCases():
                out.addTest(sub)
        elif any(re.search(p, item.id()) for p in patterns):
            out.addTest(item)
    return out


def main(min_fds=1024):
    """Entry point of every *_e2e_test.py: `python3 X_e2e_test.py --relay PATH|libev [-k RE]`.

    Bazel passes --relay=$(location //relay:shadowrelay); `bazel test --test_filter=RE` works
    too (TESTBRIDGE_TEST_ONLY)."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--relay", required=True,
                        help="path to our shadowrelay binary, or 'libev' to run "
                             "shadowsocks-libev in its place (harness self-check)")
    parser.add_argument("-k", dest="patterns", action="append", default=[],
                        help="run only tests whose id matches this regex (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="pass -v to our binary")
    parser.add_argument("--grpc-call", help="path to tests/e2e/grpc_call (control API tests)")
    parser.add_argument("--reflection-call", help="path to tests/e2e/reflection_call")
    args = parser.parse_args()
    if args.grpc_call:
        Config.grpc_call = os.path.abspath(args.grpc_call)
    if args.reflection_call:
        Config.reflection_call = os.path.abspath(args.reflection_call)

    if args.relay != "libev":
        relay = os.path.abspath(args.relay)
        if not os.access(relay, os.X_OK):
            parser.error(f"--relay {relay}: not an executable")
        Config.relay = relay
    Config.verbose = args.verbose or bool(os.environ.get("E2E_VERBOSE"))
    own_tmp = None
    if os.environ.get("TEST_TMPDIR"):
        Config.tmp = tempfile.mkdtemp(prefix="e2e-", dir=os.environ["TEST_TMPDIR"])
    else:
        Config.tmp = own_tmp = tempfile.mkdtemp(prefix="shadowrelay-e2e-")
    fds = raise_fd_limit(max(min_fds, 1024))
    if fds < min_fds:
        print(f"warning: RLIMIT_NOFILE is {fds}, tests want {min_fds}", file=sys.stderr)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    patterns = list(args.patterns)
    if os.environ.get("TESTBRIDGE_TEST_ONLY"):
        patterns.append(os.environ["TESTBRIDGE_TEST_ONLY"])
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    if patterns:
        suite = _filtered(suite, patterns)

    mode = "libev (shadowsocks-libev stands in for our binary)" if Config.libev_mode() \
        else f"our binary {Config.relay}"
    print(f"e2e: relay under test: {mode}; scratch: {Config.tmp}", file=sys.stderr)
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=_JUnitResult)
    result = None
    interrupted = None
    # TextTestRunner.run builds the result; keep a handle to it even if a signal interrupts.
    holder = {}
    orig_make = runner._makeResult

    def make():
        holder["result"] = orig_make()
        return holder["result"]

    runner._makeResult = make
    try:
        result = runner.run(suite)
    except KeyboardInterrupt as e:
        interrupted = f"run interrupted ({e}); remaining tests did not run"
        print(f"e2e: {interrupted}", file=sys.stderr)
        result = holder.get("result")
    finally:
        kill_all_children()
        if _nginx[0] is not None:
            _nginx[0].child.kill()
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    suite_name = os.path.splitext(os.path.basename(sys.modules["__main__"].__file__))[0]
    if xml_path and result is not None:
        result.write_xml(xml_path, suite_name, interrupted)
    if own_tmp and result is not None and result.wasSuccessful() and not interrupted:
        shutil.rmtree(own_tmp, ignore_errors=True)
    ok = result is not None and result.wasSuccessful() and not interrupted
    if not ok and result is not None and not result.testsRun:
        print("e2e: no test ran", file=sys.stderr)
    sys.exit(0 if ok and result.testsRun else 1)


# --- UDP peers (udp_e2e_test, uot_e2e_test) ---

class UdpEcho:
    """Echoes every datagram back to its sender, on a thread, until stopped. `host`: the
    address it binds (IPv4)."""

    def __init__(self, host=LOOPBACK):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received += 1
            self.reply(data, peer)

    def reply(self, data, peer):
        """Answers one datagram (on the thread): with itself here; subclasses answer otherwise."""
        self.sock.sendto(data, peer)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


class SocksUdp:
    """One SOCKS5 UDP association (RFC 1928 §7) through a local SOCKS5 server."""

    def __init__(self, local_port):
        self.control = socket.create_connection((LOOPBACK, local_port), timeout=10)
        self.control.sendall(b"\x05\x01\x00")
        if recv_exact(self.control, 2, "SOCKS5 method") != b"\x05\x00":
            raise AssertionError("SOCKS5 greeting refused")
        self.control.sendall(b"\x05\x03\x00\x01" + bytes(6))
        reply = recv_exact(self.control, 10, "UDP ASSOCIATE reply")
        if reply[1] != 0:
            raise AssertionError(f"UDP ASSOCIATE refused with 0x{reply[1]:02x}")
        if reply[3] != 1:
            raise AssertionError(f"UDP ASSOCIATE reply with ATYP {reply[3]}: {reply.hex()}")
        self.relay = (socket.inet_ntoa(reply[4:8]), struct.unpack(">H", reply[8:10])[0])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((LOOPBACK, 0))
        self.udp.settimeout(3)

    def roundtrip(self, port, payload, host="127.0.0.1", frag=0):
        header = b"\x00\x00" + bytes([frag]) + b"\x01" + socket.inet_aton(host) + \
            struct.pack(">H", port)
        self.udp.sendto(header + payload, self.relay)
        try:
            data, _ = self.udp.recvfrom(70000)
        except socket.timeout:
            return None
        return data[len(header):]

    def close(self):
        self.udp.close()
        self.control.close()


class ApiError(Exception):
    """A control API call that ended with a gRPC status other than OK (`code`: its name)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def grpc_api(port, method, request, token, tls=(), timeout=30):
    """One unary call to the control API on LOOPBACK:port through Config.grpc_call (`tls`: its
    leading --tls-* options); the decoded JSON response, or ApiError with the status."""
    argv = [Config.grpc_call, *tls, f"{LOOPBACK}:{port}", token, method, json.dumps(request)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode == 3:
        code, _, message = out.stdout.strip()[len("ERROR "):].partition(": ")
        raise ApiError(code, message)
    if out.returncode != 0:
        raise AssertionError(f"grpc_call {method} failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout)


class ApiSession:
    """Many unary calls to the control API on LOOPBACK:port over one channel: one
    `grpc_call --stdin` process, a line per call. A call costs a round trip, not a process
    start, for tests and benches that poll every few milliseconds. Not thread-safe: one caller
    at a time (a lock serialises them). close() ends the process; so does main()'s cleanup."""

    def __init__(self, port, token, tls=(), name="grpc_call"):
        self.port = port
        argv = [Config.grpc_call, *tls, f"{LOOPBACK}:{port}", token, "--stdin"]
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                      preexec_fn=_die_with_parent, close_fds=True)
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.popen.stdout, selectors.EVENT_READ)

    def call(self, method, request, timeout=15):
        """The decoded JSON response of `method` ("package.Service/Method"), or ApiError with
        the status; AssertionError when no answer comes within `timeout` s (the call's own
        deadline is 10 s)."""
        with self.lock:
            if self.popen.poll() is not None:
                raise AssertionError(f"grpc_call --stdin exited with {self.popen.returncode}")
            self.popen.stdin.write(f"{method} {json.dumps(request)}\n")
            self.popen.stdin.flush()
            if not self.selector.select(timeout):
                raise AssertionError(f"grpc_call --stdin: no answer to {method} within "
                                     f"{timeout} s")
            line = self.popen.stdout.readline()
        if not line:
            raise AssertionError(f"grpc_call --stdin ended (exit {self.popen.poll()})")
        if line.startswith("ERROR "):
            code, _, message = line.strip()[len("ERROR "):].partition(": ")
            raise ApiError(code, message)
        return json.loads(line)

    def close(self):
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self.selector.close()
        self.popen.stdout.close()


def stopped_log(test, child):
    """Stops `child` with SIGTERM (it must exit 0) and returns its whole log."""
    code, killed = child.stop()
    child.exit_code = code
    test.assertFalse(killed, f"{child.name} did not stop on SIGTERM")
    test.assertEqual(code, 0, f"{child.name} exit code {code}:\n{child.log_tail()}")
    with open(child.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def stopped_udp_summary(test, child):
    """Stops `child` with SIGTERM and returns the counters of its "stopped: udp" line."""
    match = re.search(r"stopped: udp (.*)", stopped_log(test, child))
    test.assertIsNotNone(match, f"no UDP summary in the log of {child.name}")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}
