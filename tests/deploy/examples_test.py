# SPDX-License-Identifier: Apache-2.0
"""deploy/examples/: each config is loaded by the binary (--check-config) and the Prometheus
configuration by promtool; the three fit together (local.json is a user of server.json, Prometheus
scrapes server.json's metrics address under the job name the alerts select).

usage: examples_test.py --relay=relay/shadowrelay
"""
import argparse
import json
import os
import re

from deploy_testing import Suite, check, run, runfile

SERVER = "deploy/examples/server.json"
LOCAL = "deploy/examples/local.json"
PROMETHEUS = "deploy/examples/prometheus.yml"

parser = argparse.ArgumentParser()
parser.add_argument("--relay", required=True)
ARGS = parser.parse_args()
RELAY = os.path.abspath(ARGS.relay)

suite = Suite("examples_test")


def load(path):
    with open(runfile(path), encoding="utf-8") as f:
        return json.load(f)


def check_config(role, path):
    r = run([RELAY, role, "--check-config", "-c", runfile(path)], timeout=30, cwd=suite.tmp)
    check(r.returncode == 0, f"shadowrelay {role} --check-config -c {path}: rc={r.returncode}\n{r.stderr}")
    return r


@suite.case
def server_json_loads():
    check_config("server", SERVER)
    users = load(SERVER).get("users", [])
    check(len(users) >= 2, "server.json should show several users")
    check(any(u.get("port") for u in users), "server.json should show a user with a dedicated port")


@suite.case
def check_config_refuses_what_the_server_refuses():
    """--check-config judges the users as the server does (names, duplicates, keys, ports) and
    names the problem; it writes nothing, not even into a new state directory."""
    base = load(SERVER)
    bad = {
        "a bad user name": ([{"name": "bad name!", "password": "p1"}], "bad name!"),
        "a user defined twice": ([{"name": "dup", "password": "p1"},
                                  {"name": "dup", "password": "p2"}], "dup"),
        "a raw key of the wrong size": ([{"name": "k", "key": "AAAA"}], "k"),
        "a user port that is the metrics port": ([{"name": "m", "password": "p", "port": 9464}],
                                                 "9464"),
    }
    for what, (users, named) in bad.items():
        path = os.path.join(suite.tmp, "bad.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(dict(base, users=users), f)
        r = run([RELAY, "server", "--check-config", "-c", path], timeout=30, cwd=suite.tmp)
        check(r.returncode != 0, f"--check-config accepted {what}")
        check(named in r.stderr and "users" in r.stderr,
              f"--check-config on {what}: the message does not name it: {r.stderr.strip()}")
    state = os.path.join(suite.tmp, "new-state")
    r = run([RELAY, "server", "--check-config", "-p", "18388", "--state-dir", state],
            timeout=30, cwd=suite.tmp)
    check(r.returncode == 0, f"--check-config --state-dir: rc={r.returncode}\n{r.stderr}")
    check(not os.path.exists(state) or not os.listdir(state),
          f"--check-config wrote into the state directory: {os.listdir(state) if os.path.exists(state) else ''}")


@suite.case
def local_json_loads():
    check_config("local", LOCAL)


@suite.case
def local_is_a_user_of_server():
    server, local = load(SERVER), load(LOCAL)
    match = [u for u in server.get("users", [])
             if u.get("password") == local.get("password")
             and u.get("method", server.get("method")) == local.get("method")]
    check(match, "local.json's password and method are no user's of server.json")
    port = match[0].get("port", server.get("server_port"))
    check(local.get("server_port") == port, f"local.json's server_port {local.get('server_port')} != the user's port {port}")
    check(local.get("server") == server.get("public_host"), "local.json's server is not server.json's public_host")


@suite.case
def prometheus_yml_is_valid():
    r = run(["promtool", "check", "config", runfile(PROMETHEUS)], timeout=60)
    check(r.returncode == 0, f"promtool check config:\n{r.stdout}{r.stderr}")
    check("rule files found" in r.stdout + r.stderr, "prometheus.yml loads no rule file")


@suite.case
def prometheus_scrapes_the_example_server():
    with open(runfile(PROMETHEUS), encoding="utf-8") as f:
        text = f.read()
    targets = re.findall(r"targets:\s*\[([^\]]*)\]", text)
    addresses = [a.strip().strip("\"'") for t in targets for a in t.split(",")]
    metrics = load(SERVER).get("metrics_listen")
    check(metrics in addresses, f"prometheus.yml scrapes {addresses}, not server.json's metrics_listen {metrics}")
    jobs = re.findall(r"job_name:\s*(\S+)", text)
    with open(runfile("deploy/prometheus/alerts.yml"), encoding="utf-8") as f:
        alert_jobs = set(re.findall(r'job="([^"]+)"', f.read()))
    check(alert_jobs and alert_jobs <= set(jobs), f"the alerts select jobs {alert_jobs}; prometheus.yml has {jobs}")


if __name__ == "__main__":
    raise SystemExit(suite.run())
