# SPDX-License-Identifier: Apache-2.0
"""Secrets on disk and on the wire, through the real binary: token and state-directory secret
files that other users may read are refused (exit 2, naming the file and the fix), the state
directory is made 0700 even when it exists, secrets are written through an O_EXCL|O_NOFOLLOW
temporary file and the directory is fsynced after the rename (seen with strace), and a bearer
token is not accepted in plaintext on a non-loopback control address unless
--control-insecure-plaintext says so (checked with --check-config: nothing binds off
loopback)."""

import os
import re
import stat
import subprocess

import e2e_harness as h
from e2e_harness import Config, LOOPBACK, scratch_path

TOKEN = "e2e-secrets-token-0123456789"


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class SecretFilesTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("our secret files")

    def run_server(self, *args, timeout=30):
        """Runs our server to completion (it is expected to refuse to start, or --check-config)."""
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", "0", "--metrics-listen", "off",
                *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def token_file(self, mode):
        path = scratch_path("control-token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, mode)
        return path

    def test_token_file_others_can_read_is_refused(self):
        for mode in (0o644, 0o640, 0o604):
            path = self.token_file(mode)
            out = self.run_server("-k", "pw", "--control-listen", f"{LOOPBACK}:0",
                                  "--control-token-file", path)
            self.assertEqual(out.returncode, 2, f"mode {mode:o}: {out.stderr}")
            self.assertIn(f"control-token-file {path}: permissions 0{mode:o} are too open",
                          out.stderr)
            self.assertIn(f"chmod 600 {path}", out.stderr)
            self.assertNotIn(TOKEN, out.stderr + out.stdout)
        # 0600 is fine.
        path = self.token_file(0o600)
        out = self.run_server("-k", "pw", "--control-listen", f"{LOOPBACK}:0",
                              "--control-token-file", path, "--check-config")
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_state_dir_secret_others_can_read_is_refused(self):
        state = scratch_path("state-open-secret")
        os.mkdir(state, 0o700)
        with open(os.path.join(state, "password"), "w") as f:
            f.write("generated-earlier\n")
        os.chmod(os.path.join(state, "password"), 0o644)
        out = self.run_server("--state-dir", state, "--control-listen", "off")
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn(f"chmod 600 {state}/password", out.stderr)
        self.assertNotIn("generated-earlier", out.stderr + out.stdout)

    def test_existing_state_dir_is_made_0700(self):
        state = scratch_path("state-0755")
        os.mkdir(state)
        os.chmod(state, 0o755)
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", 0, "--state-dir", state,
                "--control-listen", f"{LOOPBACK}:0", "--metrics-listen", "off"]
        server = self.start_ours("ours-server-state-0755", argv)
        self.assertEqual(mode_of(state), 0o700)
        for name in ("password", "control_token"):
            self.assertEqual(mode_of(os.path.join(state, name)), 0o600, name)
        self.assertIn(f"state_dir {state}: mode 0755 changed to 0700", h.stopped_log(self, server))

    def test_secrets_are_written_excl_nofollow_and_the_directory_fsynced(self):
        parent = scratch_path("strace-parent")
        os.mkdir(parent, 0o700)
        state = os.path.join(parent, "state")  # created by the server
        trace = scratch_path("secrets.strace")
        # LeakSanitizer cannot run under ptrace: off for this process only (an ASan build).
        asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "detect_leaks=0"]))
        argv = [h.tool("strace"), "-f", "-qq", "-o", trace, "-E", f"ASAN_OPTIONS={asan}",
                "-e", "trace=mkdir,mkdirat,openat,fsync,rename,renameat,renameat2",
                Config.relay, "server", "-s", LOOPBACK, "-p", 0, "--state-dir", state,
                "--control-listen", f"{LOOPBACK}:0", "--metrics-listen", "off"]
        tracer = self.spawn("strace-server", argv, ours=False)
        tracer.wait_ready()
        # SIGTERM to the server itself (strace would detach and leave it running).
        with open(f"/proc/{tracer.pid}/task/{tracer.pid}/children") as f:
            server_pid = int(f.read().split()[0])
        os.kill(server_pid, 15)
        self.assertEqual(tracer.wait(h.STOP_DEADLINE), 0, tracer.log_tail())
        tracer.stopped_by_test = True
        with open(trace) as f:
            calls = [re.sub(r"^\d+\s+", "", line.strip()) for line in f]

        def index(pattern, after=-1):
            for i in range(after + 1, len(calls)):
                match = re.search(pattern, calls[i])
                if match:
                    return i, match
            self.fail(f"no call matching {pattern!r} after line {after} of {trace}")

        # The state directory: created 0700, then its parent fsynced.
        made, _ = index(rf'^mkdir(at)?\((AT_FDCWD, )?"{re.escape(state)}", 0700\) = 0')
        opened, m = index(rf'^openat\(AT_FDCWD, "{re.escape(parent)}", O_RDONLY[^)]*O_DIRECTORY'
                          r'[^)]*\) = (\d+)', made)
        index(rf"^fsync\({m.group(1)}\)\s*= 0", opened)
        for name in ("password", "control_token"):
            final = os.path.join(state, name)
            temp = re.escape(final + ".tmp")
            created, m = index(rf'^openat\(AT_FDCWD, "{temp}", ([A-Z_|]+), 0600\) = (\d+)')
            flags = set(m.group(1).split("|"))
            self.assertTrue({"O_CREAT", "O_EXCL", "O_NOFOLLOW"} <= flags, f"{name}: {flags}")
            synced, _ = index(rf"^fsync\({m.group(2)}\)\s*= 0", created)
            renamed, _ = index(rf'^rename(at2?)?\((AT_FDCWD, )?"{temp}", (AT_FDCWD, )?'
                               rf'"{re.escape(final)}"', synced)
            opened, m = index(rf'^openat\(AT_FDCWD, "{re.escape(state)}", O_RDONLY[^)]*O_DIRECTORY'
                              r'[^)]*\) = (\d+)', renamed)
            index(rf"^fsync\({m.group(1)}\)\s*= 0", opened)


class ControlTransportTest(h.RelayTestCase):
    def setUp(self):
        super().setUp()
        self.require_ours("the control API")

    def check(self, listen, *extra):
        path = scratch_path("control-token-transport")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o600)
        argv = [Config.relay, "server", "-s", LOOPBACK, "-p", "0", "-k", "pw", "--metrics-listen",
                "off", "--control-listen", listen, "--control-token-file", path, "--check-config",
                *extra]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def test_plaintext_token_off_loopback_needs_the_flag(self):
        for listen in ("0.0.0.0:50051", "[::]:50051"):
            out = self.check(listen)
            self.assertEqual(out.returncode, 2, out.stderr)
            self.assertIn("control_listen", out.stderr)
            self.assertIn("--control-insecure-plaintext", out.stderr)
            out = self.check(listen, "--control-insecure-plaintext")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("control_insecure_plaintext", out.stdout)  # in the check report

    def test_plaintext_on_loopback_and_tls_off_loopback_are_fine(self):
        self.assertEqual(self.check(f"{LOOPBACK}:50051").returncode, 0)
        out = self.check("0.0.0.0:50051", "--control-tls-cert", "/nonexistent.crt",
                         "--control-tls-key", "/nonexistent.key")
        # TLS satisfies the transport rule; --check-config does not read the PEM files.
        self.assertNotIn("--control-insecure-plaintext", out.stderr)


if __name__ == "__main__":
    h.main()
