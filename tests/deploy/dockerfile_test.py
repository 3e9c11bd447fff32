# SPDX-License-Identifier: Apache-2.0
"""deploy/docker/Dockerfile, checked without a container engine (image_test.py, run by
./dev test --image, builds and runs the image itself):

- the build stage installs through the shared bazel/install_deps.sh and runs the Bazel build;
- every runtime package exists in Debian (apt-cache), none is a -dev package, and they name the
  package of every shared library the built binary and the BoringSSL plugin need (objdump NEEDED ->
  ldd path -> dpkg -S package), libc6 included;
- the binary finds the plugin where the image installs it;
- non-root user, STOPSIGNAL SIGTERM, the binary as entrypoint, state under /var/lib/shadowrelay,
  EXPOSE and the health check address matching the default command's flags;
- the default command is accepted by the binary (--check-config), and healthcheck.sh tells a
  serving /metrics from a failing or absent one, against a stand-in HTTP server and the real server.

usage: dockerfile_test.py --relay=relay/shadowrelay --plugin=crypto/boringssl/libshadowrelay_boringssl.so
"""
import argparse
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request

from deploy_testing import Suite, check, clean_env, free_port, run, runfile, wait_for_port

DOCKERFILE = "deploy/docker/Dockerfile"
HEALTHCHECK = "deploy/docker/healthcheck.sh"

parser = argparse.ArgumentParser()
parser.add_argument("--relay", required=True)
parser.add_argument("--plugin", required=True)
ARGS = parser.parse_args()
RELAY = os.path.abspath(ARGS.relay)
PLUGIN = os.path.abspath(ARGS.plugin)

suite = Suite("dockerfile_test")


def parse_dockerfile(path):
    """Returns stages: [{"from": str, "name": str|None, "instructions": [(INSTR, text)]}]."""
    logical = []
    pending = ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#"):
                continue  # comments, also inside continued instructions
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            pending += line
            if pending.strip():
                logical.append(pending.strip())
            pending = ""
    stages = []
    for text in logical:
        instr, _, rest = text.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            check(m, f"cannot parse FROM {rest}")
            stages.append({"from": m.group(1), "name": m.group(2), "instructions": []})
        else:
            check(stages, f"{instr} before FROM")
            stages[-1]["instructions"].append((instr, rest))
    return stages


STAGES = parse_dockerfile(runfile(DOCKERFILE))


def instructions(stage, name):
    return [text for instr, text in stage["instructions"] if instr == name]


def exec_form(text):
    """The JSON array of an exec-form instruction (CMD, ENTRYPOINT, HEALTHCHECK CMD)."""
    start = text.index("[")
    value = json.loads(text[start:])
    check(isinstance(value, list) and all(isinstance(x, str) for x in value), f"not an exec form: {text}")
    return value


def runtime_stage():
    return STAGES[-1]


def runtime_packages():
    """The packages of the runtime stage's `apt-get install`."""
    pkgs = []
    for text in instructions(runtime_stage(), "RUN"):
        for segment in re.split(r"&&|;", text):
            words = shlex.split(segment)
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                after = words[words.index("install") + 1:]
                pkgs += [w for w in after if not w.startswith("-")]
    return pkgs


def installed_paths():
    """Where the build stage installs the binary and the plugin (paths in the final image)."""
    out = {}
    build = STAGES[0]
    for text in instructions(build, "RUN"):
        for segment in text.split("&&"):
            words = shlex.split(segment)
            if words and words[0] == "install":
                src, dest = words[-2], words[-1]
                check(dest.startswith("/out/"), f"install destination {dest} is not under /out/")
                if src.endswith("/relay/shadowrelay"):
                    out["binary"] = dest[len("/out"):]
                elif src.endswith("/libshadowrelay_boringssl.so"):
                    out["plugin"] = dest[len("/out"):]
    return out


def default_command():
    return exec_form(instructions(runtime_stage(), "CMD")[-1])


def flag(argv, name):
    check(name in argv and argv.index(name) + 1 < len(argv), f"{name} missing from {argv}")
    return argv[argv.index(name) + 1]


@suite.case
def build_stage_uses_install_deps_and_bazel():
    check(len(STAGES) >= 2, "expected a build stage and a runtime stage")
    build = STAGES[0]
    check(build["from"] == "debian:bookworm", f"build stage FROM {build['from']}, not debian:bookworm")
    copies = [i for i, (instr, text) in enumerate(build["instructions"])
              if instr == "COPY" and re.search(r"\bbazel/install_deps\.sh\b", text)]
    runs = [i for i, (instr, text) in enumerate(build["instructions"])
            if instr == "RUN" and re.search(r"(^|[\s;&|])(\./)?bazel/install_deps\.sh\s+build\b", text)]
    check(runs, "the build stage does not run `bazel/install_deps.sh build`")
    check(copies and copies[0] < runs[0], "bazel/install_deps.sh is not copied before it runs")
    for text in instructions(build, "RUN"):
        check(not re.search(r"apt-get\s+install", text),
              f"the build stage installs packages itself instead of through install_deps.sh: {text}")
    check(any(re.search(r"\bbazel build\b.*-c opt.*//relay:shadowrelay", t) for t in instructions(build, "RUN")),
          "the build stage does not run `bazel build -c opt //relay:shadowrelay`")
    # ./dev test runs the same release build, so CI proves the image's build step.
    with open(runfile("dev"), encoding="utf-8") as f:
        check(re.search(r"\bbuild -c opt //relay:shadowrelay\b", f.read()),
              "./dev test does not run the image's `bazel build -c opt //relay:shadowrelay`")
    check(any(re.search(r"--from=" + re.escape(build["name"] or "0") + r"\s+/out/\s+/", t)
              for t in instructions(runtime_stage(), "COPY")),
          "the runtime stage does not copy the build stage's /out/")


@suite.case
def runtime_packages_exist_in_debian():
    check(runtime_stage()["from"] == "debian:bookworm-slim",
          f"runtime FROM {runtime_stage()['from']}, not debian:bookworm-slim")
    with open("/etc/os-release", encoding="utf-8") as f:
        codename = re.search(r"^VERSION_CODENAME=(\S+)", f.read(), re.M)
    check(codename and codename.group(1) == "bookworm",
          "this check asks the host's apt about bookworm packages; the host is not bookworm")
    pkgs = runtime_packages()
    check(pkgs, "no runtime packages found")
    check(len(pkgs) == len(set(pkgs)), f"duplicate runtime packages: {pkgs}")
    for p in pkgs:
        check(not p.endswith("-dev"), f"{p} is a development package")
    r = run(["apt-cache", "show", "--no-all-versions"] + pkgs)
    found = set(re.findall(r"^Package:\s*(\S+)", r.stdout, re.M))
    missing = [p for p in pkgs if p not in found]
    check(not missing, f"not in apt (run apt-get update?): {missing}")


def spellings(path):
    """A library path as dpkg may know it: as given, resolved, with and without /usr (merged /usr)."""
    out = [path, os.path.realpath(path)]
    for c in list(out):
        if c.startswith("/usr/lib/"):
            out.append(c[len("/usr"):])
        elif c.startswith("/lib/"):
            out.append("/usr" + c)
    return out


def packages_of(paths):
    """{path: Debian package shipping it, or None}, with one dpkg-query for all (it is slow)."""
    candidates = sorted({c for p in paths for c in spellings(p)})
    r = run(["dpkg-query", "-S"] + candidates, timeout=120)  # non-zero when some spelling is unknown
    owner = {}
    for line in r.stdout.splitlines():
        pkgs, _, file = line.partition(": ")
        if file and "," not in pkgs and not pkgs.startswith("diversion"):
            owner[file.strip()] = pkgs.split(":")[0].strip()
    return {p: next((owner[c] for c in spellings(p) if c in owner), None) for p in paths}


def needed_libraries(elf):
    """{soname: resolved path} of an ELF's direct NEEDED entries."""
    r = run(["objdump", "-p", elf])
    check(r.returncode == 0, f"objdump {elf}: {r.stderr}")
    needed = re.findall(r"^\s*NEEDED\s+(\S+)", r.stdout, re.M)
    r = run(["ldd", elf])
    check(r.returncode == 0, f"ldd {elf}: {r.stderr}")
    resolved = dict(re.findall(r"^\s*(\S+)\s+=>\s+(/\S+)", r.stdout, re.M))
    for path in re.findall(r"^\s*(/\S+)\s+\(0x", r.stdout, re.M):  # the dynamic loader
        resolved.setdefault(os.path.basename(path), path)
    out = {}
    for name in needed:
        check(name in resolved, f"{elf}: ldd does not resolve {name}:\n{r.stdout}")
        out[name] = resolved[name]
    return out


@suite.case
def runtime_packages_cover_every_library():
    listed = set(runtime_packages())
    needed = [(elf, soname, path) for elf in (RELAY, PLUGIN) for soname, path in needed_libraries(elf).items()]
    check(len(needed) >= 4, f"implausibly few libraries: {needed}")
    owner = packages_of([path for _, _, path in needed])
    uncovered = []
    for elf, soname, path in needed:
        pkg = owner[path]
        check(pkg, f"no Debian package ships {path} ({soname}, needed by {os.path.basename(elf)})")
        if pkg not in listed:  # named even when the base image has it: no guessing
            uncovered.append(f"{soname} ({pkg}, needed by {os.path.basename(elf)})")
    check(not uncovered, "the runtime stage does not install: " + ", ".join(uncovered))


@suite.case
def binary_finds_plugin_where_the_image_installs_it():
    paths = installed_paths()
    check("binary" in paths and "plugin" in paths, f"install steps for binary and plugin not found: {paths}")
    entry = exec_form(instructions(runtime_stage(), "ENTRYPOINT")[-1])
    check(entry == [paths["binary"]], f"ENTRYPOINT {entry} is not the installed binary {paths['binary']}")
    root = os.path.join(suite.tmp, "image")
    for src, dest in ((RELAY, paths["binary"]), (PLUGIN, paths["plugin"])):
        target = root + dest
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(src, target)
    r = run([root + paths["binary"], "ciphers", "--crypto-provider=boringssl"], env=clean_env(), timeout=30)
    check(r.returncode == 0 and "boringssl" in r.stdout,
          f"the binary at {paths['binary']} does not load {paths['plugin']}: rc={r.returncode} {r.stderr}")


@suite.case
def runtime_user_signal_state_and_ports():
    rt = runtime_stage()
    users = instructions(rt, "USER")
    check(users, "no USER: the image would run as root")
    user = users[-1].split(":")[0]
    check(user not in ("root", "0"), f"USER {users[-1]} is root")
    check(instructions(rt, "STOPSIGNAL") == ["SIGTERM"], f"STOPSIGNAL {instructions(rt, 'STOPSIGNAL')}")
    runs = " ".join(instructions(rt, "RUN"))
    m = re.search(r"useradd\b[^&;]*--uid\s+(\d+)", runs)
    check(m and m.group(1) == user, f"USER {user} is not the uid created by useradd")
    check(re.search(r"install -d -o shadowrelay\b[^&;]*/var/lib/shadowrelay\b", runs),
          "/var/lib/shadowrelay is not created for the shadowrelay user")
    check(any("/var/lib/shadowrelay" in v for v in instructions(rt, "VOLUME")), "no VOLUME /var/lib/shadowrelay")
    cmd = default_command()
    check(cmd[0] == "server", f"CMD {cmd} does not start the server")
    check(flag(cmd, "--state-dir") == "/var/lib/shadowrelay", "CMD --state-dir is not /var/lib/shadowrelay")
    port = flag(cmd, "-p")
    metrics = flag(cmd, "--metrics-listen").rsplit(":", 1)[1]
    exposed = " ".join(instructions(rt, "EXPOSE")).split()
    for want in (f"{port}/tcp", f"{port}/udp" if "-u" in cmd else None, f"{metrics}/tcp"):
        check(want is None or want in exposed, f"EXPOSE lacks {want}: {exposed}")
    env = " ".join(instructions(rt, "ENV"))
    m = re.search(r"SHADOWRELAY_HEALTH_ADDR=(\S+)", env)
    check(m and m.group(1).rsplit(":", 1)[1] == metrics,
          f"SHADOWRELAY_HEALTH_ADDR does not point at --metrics-listen port {metrics}")
    hc = instructions(rt, "HEALTHCHECK")
    check(hc, "no HEALTHCHECK")
    hc_cmd = exec_form(hc[-1][hc[-1].index("CMD"):])
    check(any(re.search(r"deploy/docker/healthcheck\.sh\s+" + re.escape(hc_cmd[0]) + r"$", t)
              for t in instructions(rt, "COPY")),
          f"HEALTHCHECK runs {hc_cmd[0]}, which is not deploy/docker/healthcheck.sh copied in")


@suite.case
def default_command_is_accepted():
    cmd = default_command()
    state = os.path.join(suite.tmp, "check-state")
    os.makedirs(state, mode=0o700)
    argv = [a if a != "/var/lib/shadowrelay" else state for a in cmd]
    r = run([RELAY] + argv + ["--check-config"], timeout=30)
    check(r.returncode == 0, f"shadowrelay {' '.join(argv)} --check-config: rc={r.returncode} {r.stderr}")


# The SIP003 plugins the image carries (README: Plugins), by package and program.
PLUGIN_PACKAGES = {"simple-obfs": "obfs-server", "shadowsocks-v2ray-plugin": "ss-v2ray-plugin"}


@suite.case
def plugin_packages_installed_and_their_programs_accepted():
    pkgs = runtime_packages()
    state = os.path.join(suite.tmp, "plugin-state")
    os.makedirs(state, mode=0o700)
    for package, program in PLUGIN_PACKAGES.items():
        check(package in pkgs, f"the runtime stage does not install {package}")
        r = run(["dpkg", "-L", package])
        check(f"/usr/bin/{program}" in r.stdout.split(), f"{package} has no /usr/bin/{program}")
        # The default command with the plugin, as an operator adds it (found in PATH).
        argv = [a if a != "/var/lib/shadowrelay" else state for a in default_command()]
        r = run([RELAY] + argv + ["--plugin", program, "--check-config"], timeout=30,
                env=clean_env(PATH="/usr/bin:/bin"))
        check(r.returncode == 0, f"--plugin {program} --check-config: rc={r.returncode} {r.stderr}")


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        code = self.status if self.path == "/healthz" else 404
        body = b"shadowrelay_up 1\n"
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # healthcheck.sh hangs up after the status line

    def log_message(self, *args):
        pass


def healthcheck(addr):
    return run(["bash", runfile(HEALTHCHECK)], env=clean_env(SHADOWRELAY_HEALTH_ADDR=addr), timeout=15)


@suite.case
def healthcheck_against_a_stand_in():
    server = http.server.HTTPServer(("127.0.0.1", 0), _MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        addr = f"127.0.0.1:{server.server_address[1]}"
        _MetricsHandler.status = 200
        r = healthcheck(addr)
        check(r.returncode == 0, f"healthy /metrics judged unhealthy: {r.stderr}")
        _MetricsHandler.status = 503
        r = healthcheck(addr)
        check(r.returncode != 0 and "503" in r.stderr, f"503 judged healthy: rc={r.returncode} {r.stderr}")
    finally:
        server.shutdown()
        server.server_close()
    r = healthcheck(f"127.0.0.1:{free_port()}")
    check(r.returncode != 0, "nothing listening, judged healthy")


def start_default_command(name, extra=()):
    """The image's default command with its ports moved to free ones on 127.0.0.1 and a short
    drain deadline, then `extra`: (process, ports, log file)."""
    state = os.path.join(suite.tmp, name + "-state")
    os.makedirs(state, mode=0o700)
    ports = {"relay": free_port(), "metrics": free_port(), "control": free_port()}
    argv = list(default_command())
    argv[argv.index("-s") + 1] = "127.0.0.1"
    argv[argv.index("-p") + 1] = str(ports["relay"])
    argv[argv.index("--state-dir") + 1] = state
    argv[argv.index("--metrics-listen") + 1] = f"127.0.0.1:{ports['metrics']}"
    argv += ["--control-listen", f"127.0.0.1:{ports['control']}", "--drain-timeout", "2", "--workers", "1"]
    argv += list(extra)
    log = open(os.path.join(suite.tmp, name + ".log"), "w+")
    proc = subprocess.Popen([RELAY] + argv, stdout=log, stderr=subprocess.STDOUT)
    return proc, ports, log


def stop(proc, log):
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


def log_tail(log):
    log.flush()
    log.seek(0)
    return log.read()[-2000:]


@suite.case
def server_stops_on_sigterm():
    """STOPSIGNAL SIGTERM: the server drains and exits 0 within its deadline (2 s here)."""
    proc, ports, log = start_default_command("sigterm")
    try:
        check(wait_for_port(ports["relay"], 15, proc), f"the server did not listen: {log_tail(log)}")
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc is not None, "the server did not stop within 10 s of SIGTERM (drain deadline 2 s)")
        check(rc == 0, f"exit status {rc} after SIGTERM: {log_tail(log)}")
    finally:
        stop(proc, log)


@suite.case
def healthcheck_against_the_server():
    """healthcheck.sh finds the real server's /metrics healthy."""
    proc, ports, log = start_default_command("health")
    try:
        check(wait_for_port(ports["metrics"], 15, proc),
              f"the server did not listen on the metrics port: {log_tail(log)}")
        r = healthcheck(f"127.0.0.1:{ports['metrics']}")
        check(r.returncode == 0, f"healthcheck.sh against the real server: {r.stderr}")
    finally:
        stop(proc, log)


@suite.case
def healthcheck_with_a_metrics_token():
    """With --metrics-token-file, /metrics answers 401 without the token, and healthcheck.sh
    (which has no token) still finds the server healthy through /healthz."""
    token = os.path.join(suite.tmp, "metrics-token")
    with open(token, "w") as f:
        f.write("healthcheck-test-token-0123456789\n")
    os.chmod(token, 0o600)
    proc, ports, log = start_default_command("health-token", ["--metrics-token-file", token])
    try:
        check(wait_for_port(ports["metrics"], 15, proc),
              f"the server did not listen on the metrics port: {log_tail(log)}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
        check(status == 401, f"/metrics without the token answered {status}, not 401")
        r = healthcheck(f"127.0.0.1:{ports['metrics']}")
        check(r.returncode == 0, f"healthcheck.sh with a metrics token set: {r.stderr}")
    finally:
        stop(proc, log)


if __name__ == "__main__":
    raise SystemExit(suite.run())
