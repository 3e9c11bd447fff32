# SPDX-License-Identifier: Apache-2.0
"""Checks of the etcd harness (etcd_cluster.py) alone, against Debian's etcd 3.4: the cluster
the cluster e2e test and bench stand on must do what they rely on. No shadowrelay process runs.

  * start: three healthy members on probed ports, one leader they agree on, writes and prefix
    reads through etcdctl, the revision counting them, /metrics readable;
  * kill -9 of the leader: another member leads within the election bound, writes go on, the
    killed member restarts with its data and catches up;
  * stop_all (SIGTERM, every process waited for) and start_all: the same data comes back;
  * compaction: reads at a compacted revision fail, at the current one they work;
  * SIGSTOP/SIGCONT of a member, and stop() of a stopped member;
  * cleanup: close() and a harness that raises or is killed with SIGKILL leave no etcd process;
  * e2e_harness.ApiSession (grpc_call --stdin), which the cluster test and bench poll with,
    against our server without etcd: answers, errors, a bad line, one channel for many calls.

Every wait is bounded (etcd_cluster's deadlines, wait_until).
"""
import os
import subprocess
import sys
import textwrap
import time

import e2e_harness as h
from etcd_cluster import CLEAN_STOP, ELECTION_MS, EtcdCluster, EtcdError

HERE = os.path.dirname(os.path.abspath(__file__))


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class EtcdClusterTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.etcd = EtcdCluster()
        self.addCleanup(self.etcd.close)
        started = time.monotonic()
        self.etcd.start()
        print(f"  3 members healthy in {time.monotonic() - started:.2f} s", file=sys.stderr)

    def failure_context(self):
        return super().failure_context() + "\n" + self.etcd.log_tails()

    def test_start_leader_reads_writes_and_metrics(self):
        etcd = self.etcd
        self.assertEqual(len(etcd.endpoints), 3)
        self.assertEqual(len(set(etcd.endpoints)), 3, etcd.endpoints)
        self.assertTrue(all(e.startswith("http://127.0.0.1:") for e in etcd.endpoints))
        self.assertEqual(etcd.endpoints_arg.split(","), etcd.endpoints)
        statuses = etcd.statuses()
        self.assertEqual(sorted(statuses), ["m1", "m2", "m3"])
        self.assertEqual(len({s["header"]["member_id"] for s in statuses.values()}), 3)
        leader = etcd.leader()
        self.assertIn(leader, etcd.members)
        self.assertEqual({s["leader"] for s in statuses.values()},
                         {statuses[leader.name]["header"]["member_id"]})

        before = etcd.current_revision()
        etcd.put("/self/a", "1")
        etcd.put("/self/b", '{"x": 2}')
        etcd.put("/selfish", "not under /self/")
        self.assertEqual(etcd.current_revision(), before + 3)
        self.assertEqual(etcd.get_prefix("/self/"), {"/self/a": "1", "/self/b": '{"x": 2}'})
        self.assertEqual(etcd.get_prefix("/self/", revision=before + 1), {"/self/a": "1"})
        etcd.delete_prefix("/self/")
        self.assertEqual(etcd.get_prefix("/self/"), {})
        # Every member applied every write: its own mvcc counter says so.
        for m in etcd.members:
            h.wait_until(lambda: m.metric("etcd_mvcc_put_total") >= 3, 5,
                         f"{m.name}'s etcd_mvcc_put_total to count the 3 puts")

    def test_kill_leader_elects_another_and_the_member_comes_back(self):
        etcd = self.etcd
        etcd.put("/self/before", "1")
        old = etcd.leader()
        pid = old.pid
        killed_at = time.monotonic()
        self.assertIs(etcd.kill_leader(), old)
        self.assertFalse(old.running())
        self.assertFalse(pid_alive(pid), "the killed leader's process is still there")
        new = etcd.leader()
        elected = time.monotonic() - killed_at
        print(f"  new leader {new.name} after {elected:.2f} s", file=sys.stderr)
        self.assertIsNot(new, old)
        self.assertLess(elected, 5.0)
        # Writes through the two survivors (a quorum of three).
        h.wait_until(lambda: self._put_ok("/self/after", "2"), 5, "a write after the kill")
        self.assertEqual(etcd.get_prefix("/self/"), {"/self/before": "1", "/self/after": "2"})
        # The killed member restarts on its ports with its data and catches up.
        etcd.restart(old)
        self.assertTrue(old.running())
        want = {"/self/before": "1", "/self/after": "2"}
        h.wait_until(lambda: etcd.get_prefix("/self/", member=old) == want, 5,
                     f"the restarted {old.name} to have the write it missed")
        self.assertEqual(len(etcd.statuses()), 3)

    def _put_ok(self, key, value):
        try:
            self.etcd.put(key, value)
            return True
        except EtcdError:
            return False

    def test_stop_all_waits_for_the_exits_and_start_all_keeps_the_data(self):
        etcd = self.etcd
        etcd.put("/self/kept", "yes")
        pids = etcd.pids()
        self.assertEqual(len(pids), 3)
        codes = etcd.stop_all()
        self.assertEqual(sorted(codes), ["m1", "m2", "m3"])
        for name, code in codes.items():
            self.assertIn(code, CLEAN_STOP, f"etcd {name} exited {code} on SIGTERM")
        self.assertFalse(any(pid_alive(p) for p in pids), "a member still runs after stop_all")
        self.assertEqual(etcd.live(), [])
        with self.assertRaises(EtcdError):
            etcd.current_revision()  # nobody runs
        # Right after the exits the same ports bind again (nothing lingers).
        etcd.start_all()
        self.assertEqual(len(etcd.pids()), 3)
        self.assertTrue(set(etcd.pids()).isdisjoint(pids))
        self.assertEqual(etcd.get_prefix("/self/"), {"/self/kept": "yes"})
        etcd.put("/self/new", "1")
        self.assertEqual(len(etcd.get_prefix("/self/")), 2)

    def test_compaction_drops_old_revisions(self):
        etcd = self.etcd
        etcd.put("/self/k", "1")
        old = etcd.current_revision()
        etcd.put("/self/k", "2")
        self.assertEqual(etcd.get_prefix("/self/", revision=old), {"/self/k": "1"})
        compacted = etcd.compact()
        self.assertEqual(compacted, old + 1)
        with self.assertRaises(EtcdError) as err:
            etcd.get_prefix("/self/", revision=old)
        self.assertIn("compacted", str(err.exception))
        self.assertEqual(etcd.get_prefix("/self/", revision=compacted), {"/self/k": "2"})
        self.assertEqual(etcd.current_revision(), compacted)  # compaction is no write
        etcd.put("/self/k", "3")
        self.assertEqual(etcd.compact(compacted + 1), compacted + 1)
        self.assertEqual(etcd.get_prefix("/self/"), {"/self/k": "3"})

    def test_sigstop_member_and_stop_of_a_stopped_member(self):
        etcd = self.etcd
        follower = next(m for m in etcd.members if m is not etcd.leader())
        follower.sigstop()
        # Two of three still make a quorum.
        h.wait_until(lambda: self._put_ok("/self/stopped", "1"), 5, "a write without one member")
        follower.sigcont()
        etcd.wait_healthy()
        follower.sigstop()
        code = follower.stop()  # SIGCONT first, so SIGTERM acts
        self.assertIn(code, CLEAN_STOP)
        self.assertFalse(follower.running())
        etcd.restart(follower)

    def test_election_timeout_is_the_fast_one(self):
        # The flags the cluster tests rely on for their timings.
        for m in self.etcd.members:
            argv = m.child.argv
            self.assertEqual(argv[argv.index("--election-timeout") + 1], str(ELECTION_MS))
            self.assertEqual(argv[argv.index("--heartbeat-interval") + 1], "50")
            self.assertEqual(argv[argv.index("--initial-cluster-token") + 1], self.etcd.token)


class CleanupTest(h.RelayTestCase):
    """No etcd process outlives its harness, however the harness ends."""

    SCRIPT = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, {here!r})
        import e2e_harness as h
        from etcd_cluster import EtcdCluster
        h.Config.tmp = {tmp!r}
        etcd = EtcdCluster()
        etcd.start()
        print(" ".join(map(str, etcd.pids())), flush=True)
        how = sys.argv[1]
        if how == "raise":
            raise RuntimeError("a test failed")       # atexit closes the cluster
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)       # PR_SET_PDEATHSIG kills the members
        etcd.close()
    """)

    def run_harness(self, how):
        tmp = h.scratch_path(f"cleanup-{how}")
        os.makedirs(tmp)
        script = self.SCRIPT.format(here=HERE, tmp=tmp)
        out = subprocess.run([sys.executable, "-c", script, how], capture_output=True,
                             text=True, timeout=60)
        pids = [int(p) for p in out.stdout.split()]
        self.assertEqual(len(pids), 3, f"the harness did not start 3 members: {out.stderr}")
        h.wait_until(lambda: not any(pid_alive(p) for p in pids), 10,
                     f"the etcd members of a harness that ended by {how} to exit")
        # close() (directly or from atexit) removes the data; a SIGKILLed harness cannot.
        data = [d for d in os.listdir(tmp) if d.startswith("etcd-")] if how != "sigkill" else []
        for d in data:
            self.assertFalse(os.listdir(os.path.join(tmp, d)), f"{d} left behind")
        return out

    def test_close_leaves_no_process(self):
        self.run_harness("close")

    def test_an_exception_leaves_no_process(self):
        out = self.run_harness("raise")
        self.assertIn("a test failed", out.stderr)

    def test_sigkill_of_the_harness_leaves_no_process(self):
        self.run_harness("sigkill")

    def test_close_twice_and_after_kill(self):
        etcd = EtcdCluster()
        self.addCleanup(etcd.close)
        etcd.start()
        pids = etcd.pids()
        etcd.kill_leader()
        etcd.close()
        etcd.close()
        self.assertFalse(any(pid_alive(p) for p in pids))
        self.assertFalse(os.path.exists(etcd.dir))
        with self.assertRaises(AssertionError):
            etcd.start()


class ApiSessionTest(h.RelayTestCase):
    TOKEN = "e2e-selftest-token-0123456789"

    def test_many_calls_over_one_process(self):
        self.require_ours("the control API")
        token_file = h.scratch_path("control-token")
        with open(token_file, "w") as f:
            f.write(self.TOKEN + "\n")
        os.chmod(token_file, 0o600)
        server = self.start_ours("ours-server-api", [
            h.Config.relay, "server", "-s", h.LOOPBACK, "-p", 0, "--metrics-listen", "off",
            "--control-listen", f"{h.LOOPBACK}:0", "--control-token-file", token_file])
        session = h.ApiSession(server.ready.control[1], self.TOKEN)
        self.addCleanup(session.close)
        users = "shadowrelay.v1.UserService/"
        made = session.call(users + "CreateUser", {"name": "sel", "method": "aes-256-gcm"})
        self.assertTrue(made["password"])
        with self.assertRaises(h.ApiError) as err:
            session.call(users + "CreateUser", {"name": "sel", "method": "aes-256-gcm"})
        self.assertEqual(err.exception.code, "ALREADY_EXISTS")
        with self.assertRaises(h.ApiError) as err:
            session.call(users + "NoSuchMethod", {})
        self.assertEqual(err.exception.code, "INVALID_LINE")
        started = time.monotonic()
        for _ in range(50):
            self.assertEqual(session.call(users + "GetUser", {"name": "sel"})["password"],
                             made["password"])
        per_call = (time.monotonic() - started) / 50
        print(f"  {per_call * 1000:.2f} ms per call", file=sys.stderr)
        self.assertLess(per_call, 0.05, "a call costs a process start, not a round trip")
        wrong = h.ApiSession(server.ready.control[1], "wrong-token")
        self.addCleanup(wrong.close)
        with self.assertRaises(h.ApiError) as err:
            wrong.call(users + "ListUsers", {})
        self.assertEqual(err.exception.code, "UNAUTHENTICATED")
        session.close()
        self.assertEqual(session.popen.returncode, 0)


if __name__ == "__main__":
    h.main()
