# SPDX-License-Identifier: Apache-2.0
"""A small harness for the tests/deploy Python tests (standard library only).

Each check is a function registered with @suite.case; a failing `check(...)` or exception fails
that case only. run() prints one line per case and "N passed, M failed", writes one JUnit
<testcase> per case to $XML_OUTPUT_FILE (bazel/test_summary.py counts them) and returns the exit
status.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import xml.sax.saxutils


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def run(argv, timeout=60, **kwargs):
    """Runs a command (bounded by timeout seconds) and returns the CompletedProcess."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)


def free_port():
    """A TCP port that was free a moment ago (UDP too, mostly): for the relay's own listeners."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, deadline_seconds, proc=None):
    """Waits until 127.0.0.1:port accepts a TCP connection; False at the deadline or if proc exits."""
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def clean_env(**extra):
    """The environment for the relay binary outside its runfiles: no runfiles variables, so it
    looks for the BoringSSL plugin only next to itself."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUNFILES_DIR", "TEST_SRCDIR", "RUNFILES_MANIFEST_FILE")}
    env.update(extra)
    return env


def runfile(rel):
    """Absolute path of a runfile given relative to the workspace root."""
    base = os.environ.get("TEST_SRCDIR")
    if base:
        ws = os.environ.get("TEST_WORKSPACE", "shadowrelay")
        candidate = os.path.join(base, ws, rel)
        if os.path.exists(candidate):
            return candidate
    return os.path.abspath(rel)


class Suite:
    def __init__(self, name):
        self.name = name
        self.cases = []
        self.tmp = tempfile.mkdtemp(prefix=name + "-", dir=os.environ.get("TEST_TMPDIR"))

    def case(self, fn):
        self.cases.append(fn)
        return fn

    def run(self):
        results = []
        for fn in self.cases:
            start = time.monotonic()
            try:
                fn()
                error = None
            except CheckFailed as e:
                error = str(e)
            except Exception:  # an unexpected error fails this case, not the suite
                error = traceback.format_exc()
            results.append((fn.__name__, error, time.monotonic() - start))
            if error is None:
                print(f"ok   {fn.__name__} ({results[-1][2]:.1f} s)")
            else:
                print(f"FAIL {fn.__name__}\n  " + error.replace("\n", "\n  "))
            sys.stdout.flush()
        failed = sum(1 for _, e, _ in results if e is not None)
        self._write_junit(results, failed)
        shutil.rmtree(self.tmp, ignore_errors=True)
        print(f"{len(results) - failed} passed, {failed} failed")
        return 1 if failed else 0

    def _write_junit(self, results, failed):
        path = os.environ.get("XML_OUTPUT_FILE")
        if not path:
            return
        q = xml.sax.saxutils.quoteattr
        lines = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<testsuites><testsuite name={q(self.name)} tests="{len(results)}" '
                 f'failures="{failed}" errors="0">']
        for name, error, seconds in results:
            lines.append(f'<testcase name={q(name)} classname={q(self.name)} time="{seconds:.3f}">')
            if error is not None:
                first = error.strip().splitlines()[0] if error.strip() else "failed"
                lines.append(f"<failure message={q(first)}>{xml.sax.saxutils.escape(error)}</failure>")
            lines.append("</testcase>")
        lines.append("</testsuite></testsuites>")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
