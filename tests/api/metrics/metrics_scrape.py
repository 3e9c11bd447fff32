# SPDX-License-Identifier: Apache-2.0
"""Where the metrics checks get a scrape from, and how they read it (standard library only).

Each check takes one of:
  --exporter=PATH  start PATH (tests/api/metrics/sample_exporter or anything that prints
                   "port <n>" on its first line and serves until its stdin closes), GET /metrics
  --url=URL        GET URL, e.g. http://127.0.0.1:9464/metrics of a running shadowrelay
  --file=PATH      a saved scrape
"""
import argparse
import re
import select
import shutil
import subprocess
import sys
import urllib.request

_cache = {}


def add_source_args(parser):
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--exporter", help="binary that prints 'port N' and serves /metrics")
    group.add_argument("--url", help="a /metrics URL to scrape")
    group.add_argument("--file", help="a saved scrape")


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status}")
        return response.read().decode("utf-8")


def _scrape_exporter(path):
    proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        if not ready:
            raise RuntimeError(f"{path} printed no port within 30 s")
        line = proc.stdout.readline().decode().strip()
        match = re.fullmatch(r"port (\d+)", line)
        if not match:
            raise RuntimeError(f"{path}: expected 'port N', got {line!r}")
        text = _get(f"http://127.0.0.1:{match.group(1)}/metrics")
    finally:
        proc.stdin.close()
        proc.stdout.close()
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{path} did not exit when its stdin closed")
    if rc != 0:  # e.g. a sanitizer report at exit
        raise RuntimeError(f"{path} exited with {rc}")
    return text


def scrape(args):
    """The scrape text named by the parsed --exporter/--url/--file arguments (cached)."""
    key = (args.exporter, args.url, args.file)
    if key not in _cache:
        if args.exporter:
            _cache[key] = _scrape_exporter(args.exporter)
        elif args.url:
            _cache[key] = _get(args.url)
        else:
            with open(args.file, encoding="utf-8") as f:
                _cache[key] = f.read()
    return _cache[key]


def families(text):
    """{family name: type} from the # TYPE lines."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            out[parts[2]] = parts[3]
    return out


def help_texts(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[len("# HELP "):].partition(" ")
            out[name] = help_text
    return out


def sample_names(text):
    """Names of the samples in the scrape (x_bucket, x_sum, ... as written)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def exported(name, text):
    """True if a query may name `name`: a sample of the scrape, or _bucket/_sum/_count of a
    histogram or summary family in it."""
    if name in sample_names(text):
        return True
    types = families(text)
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return True
    return name in types


def promtool():
    path = shutil.which("promtool")
    if not path:
        raise RuntimeError("promtool not found in PATH: bazel/install_deps.sh test installs "
                           "Debian's prometheus package")
    return path


def main_with(parser, test_module_globals):
    """Parses our flags, leaves the rest to unittest."""
    import unittest
    args, rest = parser.parse_known_args()
    test_module_globals["ARGS"] = args
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
