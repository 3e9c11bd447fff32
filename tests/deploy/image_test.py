# SPDX-License-Identifier: Apache-2.0
"""The container image itself, built and run on this machine (./dev test --image; needs root).

No image registry is reachable and `podman run` is refused here (its setrlimit), so:

- deploy/docker/podman_build.sh builds deploy/docker/Dockerfile with Debian's podman, from
  debian:bookworm and debian:bookworm-slim base images made with debootstrap;
- the image's root filesystem is exported (`podman create` + `podman export`) and its default
  command (ENTRYPOINT + CMD, Env, User, WorkingDir from `podman image inspect`) runs in it under
  `chroot --userspec=UID:GID`, with its listeners moved to free loopback ports;
- that server prints an ss:// URI whose password is the one it kept in its state directory, the
  image's HEALTHCHECK command passes against it (and fails against a closed port), and SIGTERM
  makes it exit 0;
- `shadowrelay ciphers --crypto-provider=boringssl` loads the image's BoringSSL plugin, and
  `ss-v2ray-plugin -version` runs;
- a server on the BoringSSL provider behind the image's obfs-server (SIP003, obfs=http) relays
  for shadowsocks-libev's ss-local + obfs-local on the host to a loopback HTTP target (bytes
  checked), its plugin runs as the image's user, and SIGTERM stops both with exit status 0.

Every wait is bounded. usage: image_test.py [--tag NAME] [--no-build] [--disk-cache DIR|none]
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

from deploy_testing import Suite, check, free_port, run, wait_for_port

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD_TIMEOUT = 75 * 60  # a build stage compiling everything on 2 busy cores, with margin
READY_DEADLINE = 20  # seconds for a server in the image to log its ready line
METHOD = "chacha20-ietf-poly1305"  # shared with shadowsocks-libev's ss-local
OBFS = "obfs=http"

parser = argparse.ArgumentParser()
parser.add_argument("--tag", default="localhost/shadowrelay:test")
parser.add_argument("--no-build", action="store_true", help="test the image already tagged --tag")
parser.add_argument("--disk-cache", help="passed to deploy/docker/podman_build.sh")
ARGS = parser.parse_args()

suite = Suite("image_test")
IMAGE = {}  # config: the image's Config from podman image inspect; root: its exported rootfs


def podman(*argv, timeout=120):
    r = run(["podman", *argv], timeout=timeout)
    check(r.returncode == 0, f"podman {' '.join(argv)}: rc={r.returncode} {r.stderr[-2000:]}")
    return r.stdout


def need_image():
    check("root" in IMAGE, "no image root filesystem (an earlier case failed)")
    return IMAGE["config"], IMAGE["root"]


@suite.case
def image_builds_with_podman():
    if ARGS.no_build:
        return
    argv = [os.path.join(REPO, "deploy/docker/podman_build.sh"), "--tag", ARGS.tag]
    if ARGS.disk_cache:
        argv += ["--disk-cache", ARGS.disk_cache]
    start = time.monotonic()
    log = os.path.join(suite.tmp, "build.log")
    with open(log, "w") as out:
        try:
            rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT).returncode
        except subprocess.TimeoutExpired:
            rc = None
    with open(log) as f:
        text = f.read()
    # Where the time went: the script's steps, each RUN step's start, Bazel's summary.
    print(f"     build: {time.monotonic() - start:.0f} s", flush=True)
    for line in text.splitlines():
        if (re.match(r"podman_build: \[\d+s\]", line) or re.match(r"\[\d+s\] .*STEP \S+: RUN", line)
                or re.match(r"INFO: (\d+ processes|Elapsed time)", line)):
            print("       " + line[:110], flush=True)
    check(rc == 0, f"podman_build.sh: rc={rc} (timeout {BUILD_TIMEOUT} s)\n{text[-4000:]}")


@suite.case
def root_filesystem_exported():
    inspect = json.loads(podman("image", "inspect", ARGS.tag))
    check(len(inspect) == 1, f"podman image inspect {ARGS.tag}: {len(inspect)} images")
    config = dict(inspect[0]["Config"])
    # podman shows a Docker-format image's HEALTHCHECK beside Config (OCI images have none).
    config.setdefault("Healthcheck", inspect[0].get("Healthcheck"))
    for key in ("Entrypoint", "Cmd", "User", "Healthcheck"):
        check(config.get(key), f"the image has no {key}: {config}")
    root = os.path.join(suite.tmp, "rootfs")
    os.makedirs(root)
    cid = podman("create", "--pull=never", ARGS.tag).strip()
    try:
        tarball = os.path.join(suite.tmp, "rootfs.tar")
        podman("export", "-o", tarball, cid, timeout=300)
    finally:
        run(["podman", "rm", "-f", "-v", cid], timeout=60)
    r = run(["tar", "--numeric-owner", "-C", root, "-xf", tarball], timeout=300)
    check(r.returncode == 0, f"tar -x: {r.stderr}")
    os.remove(tarball)
    # A few device nodes instead of a bind mount of /dev, so that removing the tree is harmless.
    os.makedirs(os.path.join(root, "dev"), exist_ok=True)
    for name, minor in (("null", 3), ("zero", 5), ("random", 8), ("urandom", 9)):
        path = os.path.join(root, "dev", name)
        if os.path.lexists(path):
            os.remove(path)
        os.mknod(path, 0o20666, os.makedev(1, minor))
        os.chmod(path, 0o666)
    r = run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
    check(r.returncode == 0, f"mount proc: {r.stderr}")
    IMAGE.update(config=config, root=root)


def user_spec(config):
    """USER as chroot --userspec wants it: numeric uid:gid (the image names them so)."""
    user = config["User"]
    check(re.fullmatch(r"\d+:\d+", user), f"USER {user} is not numeric uid:gid")
    check(not user.startswith("0:"), f"USER {user} is root")
    return user


def in_image(argv, env=(), workdir=None):
    """argv for running argv inside the image as its USER, with its Env (plus env) only."""
    config, root = need_image()
    variables = dict(e.split("=", 1) for e in config.get("Env") or [])
    variables.update(env)
    return (["chroot", f"--userspec={user_spec(config)}", root, "/usr/bin/env", "-i",
             "-C", workdir or config.get("WorkingDir") or "/"] +
            [f"{k}={v}" for k, v in variables.items()] + list(argv))


def default_command():
    config, _ = need_image()
    return list(config["Entrypoint"]) + list(config["Cmd"])


def replace_flag(argv, name, value):
    check(name in argv, f"{name} missing from the default command {argv}")
    argv[argv.index(name) + 1] = value


class Server:
    """The default command in the image on free loopback ports, plus extra flags."""

    def __init__(self, name, extra=()):
        _, root = need_image()
        self.ports = {"relay": free_port(), "metrics": free_port(), "control": free_port()}
        argv = default_command()
        replace_flag(argv, "-s", "127.0.0.1")
        replace_flag(argv, "-p", str(self.ports["relay"]))
        replace_flag(argv, "--metrics-listen", f"127.0.0.1:{self.ports['metrics']}")
        self.state_dir = argv[argv.index("--state-dir") + 1]
        argv += ["--control-listen", f"127.0.0.1:{self.ports['control']}", "--drain-timeout", "2",
                 "--workers", "1"] + list(extra)
        self.health_env = {"SHADOWRELAY_HEALTH_ADDR": f"127.0.0.1:{self.ports['metrics']}"}
        self.log_path = os.path.join(suite.tmp, name + ".log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(in_image(argv, env=self.health_env), stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_ready(self):
        end = time.monotonic() + READY_DEADLINE
        while time.monotonic() < end and self.proc.poll() is None:
            if re.search(r"^\S+ I main: ready: server ", self.text(), re.M):
                break
            time.sleep(0.1)
        check(wait_for_port(self.ports["relay"], 5, self.proc),
              f"the server in the image is not ready (rc={self.proc.poll()}):\n{self.text()[-3000:]}")

    def terminate(self, deadline=15):
        """SIGTERM, then the exit status within deadline seconds (None if it did not exit)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def healthcheck(env):
    config, _ = need_image()
    test = (config.get("Healthcheck") or {}).get("Test") or []
    check(test[:1] == ["CMD"] and len(test) > 1, f"HEALTHCHECK is not an exec form: {test}")
    return run(in_image(test[1:], env=env), timeout=30)


def uri_password(uri):
    """(method, password, port) of a SIP002 ss:// URI as the server prints it."""
    parsed = urllib.parse.urlsplit(uri)
    userinfo = parsed.netloc.rpartition("@")[0]
    if ":" in userinfo:  # 2022 methods: percent-encoded method:password
        method, _, password = (urllib.parse.unquote(x) for x in userinfo.partition(":"))
    else:
        decoded = base64.urlsafe_b64decode(userinfo + "=" * (-len(userinfo) % 4)).decode()
        method, _, password = decoded.partition(":")
    return method, password, parsed.port


@suite.case
def default_command_prints_uri_passes_healthcheck_and_stops_on_sigterm():
    _, root = need_image()
    server = Server("default")
    try:
        server.wait_ready()
        end = time.monotonic() + 5  # printed right after the ready line
        while not re.search(r"ss://\S+", server.text()) and time.monotonic() < end:
            time.sleep(0.1)
        uris = re.findall(r"ss://\S+", server.text())
        check(uris, f"no ss:// URI printed:\n{server.text()[-3000:]}")
        method, password, port = uri_password(uris[-1])
        check(port == server.ports["relay"], f"URI port {port}, relay port {server.ports['relay']}")
        secret = os.path.join(root + server.state_dir, "password")
        check(os.path.exists(secret), f"no password kept in {server.state_dir}")
        with open(secret) as f:
            check(f.read().strip() == password, f"the URI's password ({method}) is not the kept one")
        uid = int(user_spec(IMAGE["config"]).split(":")[0])
        check(os.stat(secret).st_uid == uid, f"{server.state_dir}/password not owned by uid {uid}")
        r = healthcheck(server.health_env)
        check(r.returncode == 0, f"HEALTHCHECK failed against the server: rc={r.returncode} {r.stderr}")
        r = healthcheck({"SHADOWRELAY_HEALTH_ADDR": f"127.0.0.1:{free_port()}"})
        check(r.returncode != 0, "HEALTHCHECK passed with nothing listening")
        rc = server.terminate()
        check(rc == 0, f"exit status {rc} after SIGTERM (drain deadline 2 s):\n{server.text()[-2000:]}")
    finally:
        server.close()


@suite.case
def boringssl_plugin_loads():
    argv = [default_command()[0], "ciphers", "--crypto-provider=boringssl"]
    r = run(in_image(argv), timeout=30)
    check(r.returncode == 0 and "boringssl" in r.stdout,
          f"ciphers --crypto-provider=boringssl in the image: rc={r.returncode} {r.stdout} {r.stderr}")
    check(METHOD in r.stdout, f"{METHOD} not offered by the BoringSSL provider:\n{r.stdout}")


@suite.case
def v2ray_plugin_runs():
    """The image's other SIP003 plugin (obfs-server is started by the relay below)."""
    r = run(in_image(["ss-v2ray-plugin", "-version"]), timeout=30)
    check(r.returncode == 0 and "v2ray-plugin" in r.stdout,
          f"ss-v2ray-plugin -version in the image: rc={r.returncode} {r.stdout} {r.stderr}")


class Target(http.server.BaseHTTPRequestHandler):
    body = os.urandom(256 * 1024)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def processes():
    """{pid: (name, parent pid, real uid)} of every process, from /proc/PID/status."""
    out = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            out[int(entry)] = (fields["Name"].strip(), int(fields["PPid"]), int(fields["Uid"].split()[0]))
        except (OSError, ValueError, KeyError):
            continue  # not a process, or gone meanwhile
    return out


@suite.case
def boringssl_server_behind_obfs_relays_for_libev():
    for tool in ("ss-local", "obfs-local", "curl"):
        check(shutil.which(tool), f"{tool} missing on the host (bazel/install_deps.sh image)")
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    password = base64.b64encode(os.urandom(18)).decode()
    server = Server("obfs", extra=["-m", METHOD, "-k", password, "--crypto-provider=boringssl",
                                   "--plugin", "obfs-server", "--plugin-opts", OBFS,
                                   "--allow-private"])
    local = None
    try:
        server.wait_ready()
        plugins = [(pid, uid) for pid, (name, parent, uid) in processes().items()
                   if name == "obfs-server" and parent == server.proc.pid]
        check(len(plugins) == 1, f"expected one obfs-server child of the server, got {plugins}")
        plugin, plugin_uid = plugins[0]
        uid = int(user_spec(IMAGE["config"]).split(":")[0])
        check(plugin_uid == uid, f"obfs-server runs as uid {plugin_uid}, not {uid}")
        socks = free_port()
        local_log = open(os.path.join(suite.tmp, "ss-local.log"), "w+")
        local = subprocess.Popen(
            ["ss-local", "-s", "127.0.0.1", "-p", str(server.ports["relay"]), "-b", "127.0.0.1",
             "-l", str(socks), "-m", METHOD, "-k", password, "--plugin", "obfs-local",
             "--plugin-opts", OBFS + ";obfs-host=www.example.com"],
            stdout=local_log, stderr=subprocess.STDOUT)
        check(wait_for_port(socks, 10, local), "ss-local did not listen")
        url = f"http://127.0.0.1:{target.server_address[1]}/blob"
        end = time.monotonic() + 15  # ss-local starts obfs-local after its own port listens
        while True:
            r = subprocess.run(["curl", "-sS", "--max-time", "10", "--socks5-hostname",
                                f"127.0.0.1:{socks}", url], capture_output=True, timeout=20)
            if r.returncode == 0 or time.monotonic() > end:
                break
            time.sleep(0.3)
        check(r.returncode == 0, f"curl through ss-local -> obfs -> the image's server: "
                                 f"{r.stderr.decode(errors='replace')}\n{server.text()[-2000:]}")
        check(hashlib.sha256(r.stdout).digest() == hashlib.sha256(Target.body).digest(),
              f"relayed {len(r.stdout)} bytes, not the target's {len(Target.body)}")
        check(re.search(r"obfs-server", server.text()), "the plugin's output is not in the server's log")
        rc = server.terminate()
        check(rc == 0, f"exit status {rc} after SIGTERM:\n{server.text()[-2000:]}")
        end = time.monotonic() + 5
        while plugin in processes() and time.monotonic() < end:
            time.sleep(0.1)
        check(plugin not in processes(), "obfs-server outlived the server")
    finally:
        if local is not None:
            local.kill()
            local.wait(timeout=10)
        server.close()
        target.shutdown()
        target.server_close()


def cleanup():
    """Unmounts the image's /proc; the tree is removed only when nothing is mounted in it.
    True when nothing is left mounted."""
    root = IMAGE.get("root")
    if not root:
        return True
    proc = os.path.join(root, "proc")
    for _ in range(20):
        if not os.path.ismount(proc):
            break
        run(["umount", proc], timeout=30)
        time.sleep(0.2)
    if os.path.ismount(proc):
        run(["umount", "-l", proc], timeout=30)
    if os.path.ismount(proc):
        print(f"image_test: {proc} still mounted; leaving {root} in place")
        suite.tmp = os.path.join(suite.tmp, "nothing-to-remove")
        return False
    return True


@suite.case
def proc_unmounted():
    """Last: Suite.run removes its temporary tree after the cases, /proc must be gone first."""
    check(cleanup(), "the image's /proc could not be unmounted")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("image_test: needs root (podman build, chroot, mount)")
        raise SystemExit(2)
    status = 1
    try:
        status = suite.run()
    finally:
        cleanup()
    raise SystemExit(status)
