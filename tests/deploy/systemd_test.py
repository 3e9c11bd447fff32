# SPDX-License-Identifier: Apache-2.0
"""deploy/systemd/shadowrelay.service:

- `systemd-analyze verify` reports nothing at all (ExecStart's /usr/local/bin/shadowrelay replaced by
  the built binary, since verify checks that the program exists);
- `systemd-analyze security --offline` rates the sandbox at most 2.0 ("OK");
- the hardening settings are there and consistent (state directory, stop timeout > drain deadline);
- ExecStart's arguments, with the credential and state directories filled in as systemd does and
  deploy/examples/server.json as the config (the documented install), pass --check-config.

usage: systemd_test.py --relay=relay/shadowrelay
"""
import argparse
import json
import os
import re
import shlex
import shutil

from deploy_testing import Suite, check, run, runfile

UNIT = "deploy/systemd/shadowrelay.service"
SERVER_JSON = "deploy/examples/server.json"
MAX_EXPOSURE = 2.0

parser = argparse.ArgumentParser()
parser.add_argument("--relay", required=True)
ARGS = parser.parse_args()
RELAY = os.path.abspath(ARGS.relay)

suite = Suite("systemd_test")


def unit_text():
    with open(runfile(UNIT), encoding="utf-8") as f:
        return f.read()


def settings():
    """{key: [values]} of the [Service] section."""
    out = {}
    section = None
    for line in unit_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def exec_start():
    values = settings().get("ExecStart", [])
    check(len(values) == 1, f"expected one ExecStart, got {values}")
    return shlex.split(values[0])


def unit_with_real_binary():
    """A copy of the unit whose ExecStart runs the built binary (named shadowrelay.service)."""
    argv = exec_start()
    check(argv[0] == "/usr/local/bin/shadowrelay", f"ExecStart runs {argv[0]}, not /usr/local/bin/shadowrelay")
    directory = os.path.join(suite.tmp, "unit")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "shadowrelay.service")
    text = re.sub(r"^ExecStart=/usr/local/bin/shadowrelay\b", f"ExecStart={RELAY}", unit_text(), flags=re.M)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


@suite.case
def verify_reports_nothing():
    path = unit_with_real_binary()
    r = run(["systemd-analyze", "verify", "--no-pager", path], timeout=60)
    output = (r.stdout + r.stderr).strip()
    check(r.returncode == 0 and not output, f"systemd-analyze verify: rc={r.returncode}\n{output}")


@suite.case
def security_exposure_is_low():
    path = unit_with_real_binary()
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", path], timeout=60)
    m = re.search(r"Overall exposure level for shadowrelay\.service:\s*([0-9.]+)", r.stdout + r.stderr)
    check(m, f"no exposure level in:\n{r.stdout}{r.stderr}")
    exposure = float(m.group(1))
    weak = [line.strip() for line in r.stdout.splitlines() if line.lstrip().startswith("✗")]
    check(exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n" + "\n".join(weak))


@suite.case
def hardening_settings():
    s = settings()
    want = {
        "DynamicUser": "yes", "StateDirectory": "shadowrelay", "ProtectSystem": "strict",
        "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "KillSignal": "SIGTERM", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
        "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "UMask": "0077",
    }
    for key, value in want.items():
        check(s.get(key, [None])[-1] == value, f"{key}={s.get(key)} (want {value!r})")
    argv = exec_start()
    check("--state-dir" in argv and argv[argv.index("--state-dir") + 1] == "%S/shadowrelay",
          "ExecStart's --state-dir is not the StateDirectory (%S/shadowrelay)")
    with open(runfile(SERVER_JSON), encoding="utf-8") as f:
        example = json.load(f)
    drain = example.get("drain_timeout", 10)
    stop = s.get("TimeoutStopSec", ["90"])[-1]
    check(stop.isdigit() and int(stop) > drain, f"TimeoutStopSec={stop} does not outlast the drain ({drain} s)")
    check(example.get("server_port", 8388) >= 1024,
          "the example's port needs CAP_NET_BIND_SERVICE, which the unit does not grant")


@suite.case
def exec_start_is_accepted():
    argv = exec_start()
    creds = os.path.join(suite.tmp, "credentials")
    state = os.path.join(suite.tmp, "state")
    os.makedirs(creds, exist_ok=True)
    os.makedirs(os.path.join(state, "shadowrelay"), mode=0o700, exist_ok=True)
    loads = settings().get("LoadCredential", [])
    check(any(v.startswith("config.json:") for v in loads), "no LoadCredential=config.json:...")
    shutil.copy(runfile(SERVER_JSON), os.path.join(creds, "config.json"))
    expanded = [a.replace("%d", creds).replace("%S", state) for a in argv[1:]]
    check(not any("%" in a for a in expanded), f"unexpanded specifier in {expanded}")
    r = run([RELAY] + expanded + ["--check-config"], timeout=30)
    check(r.returncode == 0, f"shadowrelay {' '.join(expanded)} --check-config: rc={r.returncode} {r.stderr}")


if __name__ == "__main__":
    raise SystemExit(suite.run())
