# SPDX-License-Identifier: Apache-2.0
"""A real etcd cluster on loopback for the e2e tests and the cluster bench (issue 19).

Debian's `/usr/bin/etcd` (3.4) members on 127.0.0.1, each with a client and a peer port probed
free, a data directory of its own in the scratch directory, `--heartbeat-interval 50
--election-timeout 500` (a new leader in about 0.6 s, docs/etcd/RESEARCH.md), and a cluster token
of its own (two clusters of one test run never talk to each other). `etcdctl` (ETCDCTL_API=3)
reads and compacts; /health and /metrics are read over HTTP.

Processes are e2e_harness.Child: PR_SET_PDEATHSIG (they die with the harness, even on SIGKILL),
their output in a log of the scratch directory, killed by e2e_harness.main() after the run. An
atexit hook and close() kill what is left otherwise, so no etcd process outlives a failed test.

Every wait is bounded: start (healthy), stop (SIGTERM, then SIGKILL), leader election, etcdctl.
"""
import atexit
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import e2e_harness as h

HEARTBEAT_MS = 50
ELECTION_MS = 500
HEALTHY_DEADLINE = 15.0  # all members up and a leader elected (about 0.5 s when quiet)
STOP_DEADLINE = 10.0  # SIGTERM to exit; then SIGKILL
ETCDCTL_TIMEOUT = 10.0  # one etcdctl run (its own --command-timeout is shorter)
START_ATTEMPTS = 3  # a probed port taken meanwhile makes a member exit: new ports, again

CLEAN_STOP = (0, -signal.SIGTERM)  # exit codes of a member that stopped on SIGTERM by itself

_live_clusters = []


def _kill_live_clusters():
    for cluster in list(_live_clusters):
        cluster.close()


atexit.register(_kill_live_clusters)


class EtcdError(AssertionError):
    """An etcdctl run that failed (its exit code and output in the message)."""


class Member:
    """One etcd member: its name, ports, data directory and (while it runs) process."""

    def __init__(self, cluster, index, client_port, peer_port):
        self.cluster = cluster
        self.name = f"m{index}"
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = os.path.join(cluster.dir, f"{self.name}.etcd")
        self.child = None  # e2e_harness.Child while started
        self.starts = 0

    @property
    def endpoint(self):
        return f"http://{h.LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://{h.LOOPBACK}:{self.peer_port}"

    @property
    def pid(self):
        return self.child.pid if self.child is not None else None

    def running(self):
        return self.child is not None and self.child.poll() is None

    def argv(self):
        # --initial-cluster* only matter on the first start; a restart with the data directory
        # ignores them (RESEARCH.md §1).
        return [h.tool("etcd"), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.cluster.initial_cluster(),
                "--initial-cluster-state", "new",
                "--initial-cluster-token", self.cluster.token,
                "--heartbeat-interval", str(self.cluster.heartbeat_ms),
                "--election-timeout", str(self.cluster.election_ms),
                "--logger", "zap", "--log-outputs", "stderr",
                "--log-level", "warn"] + list(self.cluster.extra)

    def start(self):
        if self.running():
            raise AssertionError(f"etcd {self.name} is already running (pid {self.pid})")
        self.starts += 1
        self.child = h.Child(f"etcd-{self.cluster.token}-{self.name}-{self.starts}",
                             self.argv(), ours=False)

    def http_get(self, path, timeout=2.0):
        with urllib.request.urlopen(f"{self.endpoint}{path}", timeout=timeout) as r:
            return r.read().decode("utf-8", "replace")

    def healthy(self):
        """/health says true: the member runs, has a leader and answered a quorum read."""
        if not self.running():
            return False
        try:
            return json.loads(self.http_get("/health")).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def metrics(self):
        """This member's /metrics text (Prometheus)."""
        return self.http_get("/metrics", timeout=5.0)

    def metric(self, name):
        """The sum of the series `name` in this member's /metrics (0 when absent)."""
        total = 0.0
        for line in self.metrics().splitlines():
            match = h._METRIC_SAMPLE.match(line)
            if match and match.group(1) == name:
                total += float(match.group(3))
        return total

    def _stopped(self, code):
        self.child.exit_code = code
        self.child = None

    def kill9(self):
        """SIGKILL, and wait until the process is gone (its ports free again)."""
        if self.child is None:
            return
        self.child.kill()
        self._stopped(self.child.poll())

    def sigstop(self):
        self.child.signal(signal.SIGSTOP)

    def sigcont(self):
        self.child.signal(signal.SIGCONT)

    def stop(self):
        """SIGTERM, and wait for the exit (a restart before it fails to bind, RESEARCH.md §4).
        Returns the exit code: etcd cleans up and re-raises the signal, so a clean stop is
        -SIGTERM (CLEAN_STOP); SIGKILL after STOP_DEADLINE gives -SIGKILL."""
        if self.child is None:
            return None
        self.child.signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
        code, _ = self.child.stop(STOP_DEADLINE)
        self._stopped(code)
        return code

    def describe(self):
        state = f"pid {self.pid}" if self.running() else "stopped"
        return f"etcd {self.name} ({self.endpoint}, {state})"


class EtcdCluster:
    """`size` etcd members on loopback. start() returns once all are healthy.

        with EtcdCluster() as etcd:          # or etcd = EtcdCluster(); etcd.start(); etcd.close()
            servers use etcd.endpoints_arg
            etcd.kill_leader(); etcd.stop_all(); etcd.start_all(); etcd.compact()
    """

    def __init__(self, size=3, heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS, extra=(),
                 directory=None):
        self.size = size
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra = [str(a) for a in extra]
        self.token = "sr-" + secrets.token_hex(4)
        self.dir = directory or h.scratch_path(f"etcd-{self.token}")
        self.members = []
        self.closed = False

    # ---------------------------------------------------------------- life cycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def initial_cluster(self):
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def _new_members(self):
        ports = set()
        while len(ports) < 2 * self.size:  # distinct: free_port may hand out a number twice
            ports.add(h.free_port())
        ports = sorted(ports)
        self.members = [Member(self, i + 1, ports[2 * i], ports[2 * i + 1])
                        for i in range(self.size)]

    def start(self):
        """Starts a new cluster (fresh data directories) and waits until every member is
        healthy. A member that exits at once (a probed port taken meanwhile) makes the whole
        start again with new ports, up to START_ATTEMPTS times."""
        if self.closed:
            raise AssertionError("this EtcdCluster was closed")
        if self not in _live_clusters:
            _live_clusters.append(self)
        last = None
        for attempt in range(START_ATTEMPTS):
            shutil.rmtree(self.dir, ignore_errors=True)
            os.makedirs(self.dir)
            self._new_members()
            for member in self.members:
                member.start()
            try:
                self.wait_healthy()
                return self
            except AssertionError as e:
                last = e
                exited = [m for m in self.members if not m.running()]
                for member in self.members:
                    member.kill9()
                if not exited:
                    break  # all ran but never became healthy: not a port race
        raise AssertionError(f"etcd cluster did not start ({START_ATTEMPTS} attempts): {last}")

    def wait_healthy(self, members=None, deadline=HEALTHY_DEADLINE):
        """Waits until every member of `members` (default: all that run) says healthy; fails
        early, with the log's tail, if one of them exits."""
        members = [m for m in (members or self.members) if m.child is not None]
        end = time.monotonic() + deadline
        while True:
            for m in members:
                if m.child.poll() is not None:
                    raise AssertionError(
                        f"{m.describe()} exited with {m.child.poll()}; its output:\n"
                        f"{m.child.log_tail()}")
            if all(m.healthy() for m in members):
                return
            if time.monotonic() > end:
                tails = "\n".join(f"--- {m.describe()}:\n{m.child.log_tail(10)}"
                                  for m in members)
                raise AssertionError(f"etcd not healthy within {deadline:.0f} s:\n{tails}")
            time.sleep(0.05)

    def stop_all(self):
        """SIGTERM to every running member, then waits for each to exit. Returns the exit
        codes by member name."""
        running = [m for m in self.members if m.child is not None]
        for m in running:
            m.child.signal(signal.SIGCONT)
            m.child.signal(signal.SIGTERM)
        return {m.name: m.stop() for m in running}

    def start_all(self, wait=True):
        """Starts every member that does not run (their data directories kept: the same
        cluster comes back) and, with `wait`, waits until all are healthy."""
        stopped = [m for m in self.members if not m.running()]
        for m in stopped:
            if m.child is not None:  # exited by itself: collect it first
                m.kill9()
            m.start()
        if wait:
            self.wait_healthy()

    def restart(self, member):
        """Starts one stopped or killed member again with its data; waits until it is healthy."""
        if member.running():
            raise AssertionError(f"{member.describe()} still runs")
        member.kill9()  # collects a process that exited by itself
        member.start()
        self.wait_healthy([member])

    def kill9(self, member):
        """SIGKILL to one member; returns once its process is gone."""
        member.kill9()
        return member

    def kill_leader(self):
        """SIGKILL to the current leader; returns that member once its process is gone."""
        return self.kill9(self.leader())

    @classmethod
    def for_test(cls, test, **kwargs):
        """A cluster started for a unittest `test`, closed by one of its cleanups. Call it before
        RelayTestCase.setUp: cleanups run last-registered first, so the test's servers stop
        (and must exit 0) while etcd still answers."""
        cluster = cls(**kwargs)
        test.addCleanup(cluster.close)
        return cluster.start()

    def close(self):
        """Kills every member (SIGKILL: nothing to keep), removes the data directories. Safe
        to call twice; the atexit hook calls it for clusters a test left open."""
        if self.closed:
            return
        self.closed = True
        for m in self.members:
            if m.child is not None:
                m.child.signal(signal.SIGCONT)
            m.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live_clusters:
            _live_clusters.remove(self)

    def pids(self):
        return [m.pid for m in self.members if m.running()]

    def describe(self):
        return "; ".join(m.describe() for m in self.members)

    def log_tails(self, lines=15):
        """The tail of every member's log (for a test's failure_context)."""
        parts = []
        for m in self.members:
            child = m.child
            if child is not None:
                parts.append(f"--- {m.describe()} ---\n{child.log_tail(lines)}")
        return "\n".join(parts)

    # ---------------------------------------------------------------- addresses

    @property
    def endpoints(self):
        """Every member's client URL (running or not), in member order."""
        return [m.endpoint for m in self.members]

    @property
    def endpoints_arg(self):
        """The value of shadowrelay's --etcd-endpoints: every member, comma-separated."""
        return ",".join(self.endpoints)

    def live(self):
        return [m for m in self.members if m.running()]

    # ---------------------------------------------------------------- etcdctl

    def etcdctl(self, *args, members=None, timeout=ETCDCTL_TIMEOUT, check=True):
        """Runs `etcdctl ARGS` (API 3) against `members` (default: those running); returns the
        CompletedProcess (text). With `check`, a non-zero exit raises EtcdError."""
        members = members or self.live()
        if not members:
            raise EtcdError("etcdctl: no etcd member runs")
        argv = [h.tool("etcdctl"), "--endpoints", ",".join(m.endpoint for m in members),
                "--dial-timeout", "2s", "--command-timeout", f"{max(1, int(timeout) - 2)}s",
                *[str(a) for a in args]]
        env = dict(os.environ, ETCDCTL_API="3")
        try:
            out = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EtcdError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s")
        if check and out.returncode != 0:
            raise EtcdError(f"`{' '.join(argv)}` exited {out.returncode}: "
                            f"{out.stderr.strip() or out.stdout.strip()}")
        return out

    def statuses(self, members=None):
        """`etcdctl endpoint status -w json` of each running member: {member name: Status}
        where Status has header.member_id, leader, header.revision, raftTerm..."""
        members = members or self.live()
        out = self.etcdctl("endpoint", "status", "-w", "json", members=members)
        by_endpoint = {entry["Endpoint"]: entry["Status"] for entry in json.loads(out.stdout)}
        return {m.name: by_endpoint[m.endpoint] for m in members if m.endpoint in by_endpoint}

    def leader(self, deadline=5.0):
        """The member that is leader now, as every running member sees it (they must agree):
        polled until there is one, for at most `deadline` s (an election takes ~0.6 s)."""
        end = time.monotonic() + deadline
        last = None
        while True:
            try:
                statuses = self.statuses()
                leaders = {s["leader"] for s in statuses.values()}
                ids = {s["header"]["member_id"]: name for name, s in statuses.items()}
                if len(leaders) == 1 and 0 not in leaders:
                    leader_id = leaders.pop()
                    if leader_id in ids:
                        return self.member(ids[leader_id])
                last = f"leaders seen: {leaders}, members: {ids}"
            except (EtcdError, KeyError, ValueError) as e:
                last = str(e)
            if time.monotonic() > end:
                raise AssertionError(f"no etcd leader agreed on within {deadline:.0f} s: {last}")
            time.sleep(0.05)

    def member(self, name):
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def current_revision(self):
        """The cluster's revision now (a linearizable read's header)."""
        out = self.etcdctl("get", "/sr-revision-probe", "-w", "json")
        return int(json.loads(out.stdout)["header"]["revision"])

    def compact(self, revision=None):
        """Compacts the key history up to `revision` (default: the current one), physically;
        returns the revision."""
        revision = self.current_revision() if revision is None else int(revision)
        self.etcdctl("compact", str(revision), "--physical")
        return revision

    def put(self, key, value):
        self.etcdctl("put", key, value)

    def get_prefix(self, prefix, revision=None, member=None):
        """{key: value} (str) of every key under `prefix`, read with etcdctl: linearizable
        (at `revision` when given), or with `member` that member's own copy (serializable:
        answers without a quorum, shows what it applied)."""
        args = ["get", prefix, "--prefix", "-w", "json"]
        if revision is not None:
            args += ["--rev", str(revision)]
        if member is not None:
            args += ["--consistency", "s"]
        out = json.loads(self.etcdctl(*args, members=[member] if member else None).stdout)
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                for kv in out.get("kvs", [])}

    def delete_prefix(self, prefix):
        self.etcdctl("del", prefix, "--prefix")
