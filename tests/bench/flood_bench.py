#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""./dev bench flood: a key-less UDP flood against a port of 1 000 users (issue 15 §1).

The measurement of tests/e2e/udp_flood_e2e_test.py (imported from there, so the test and the
benchmark cannot drift apart): 5 s of random 32 KiB datagrams at 2 000/s from 8 source ports of
one loopback address against our server -u, while TCP echo round trips go through `local` and
a user of the same port. Two variants, each BENCH_ROUNDS times (default 1):
  - bounded: the server's defaults (--udp-max-trials 64, --udp-trial-budget 4096,
    --udp-source-trial-budget 1024);
  - unbounded: those lifted (every datagram tried against every user: the server before
    issue 15).
Per run: the server's cores (utime+stime from /proc/PID/stat over the flood), the echo round
trips' p50/p99 idle and under the flood, failed round trips, and how the datagrams were
dropped. Prints a markdown table; raw lines in $BENCH_OUT/flood_raw.jsonl.

Run through tests/bench/flood_bench.sh (`./dev bench flood`), which builds the release binary
and passes it in BENCH_OURS_BIN (or --ours PATH). Every process started here dies with the
driver (the e2e harness: own process group, PR_SET_PDEATHSIG, stopped after each run).
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import e2e_harness as h  # noqa: E402
import udp_flood_e2e_test as flood  # noqa: E402
from tcp_bench import env_int, parse_args  # noqa: E402

TOOL = "flood_bench"
UNBOUNDED = ["--udp-max-trials", "100000", "--udp-trial-budget", "10000000",
             "--udp-source-trial-budget", "10000000"]


def usage():
    print(__doc__.strip())
    print("\nKnobs: BENCH_ROUNDS (runs per variant, default 1), BENCH_OUT (raw data folder).")


def run_once(extra):
    case = flood.UdpFloodTest("test_a_keyless_flood_costs_a_bounded_share_of_a_core")
    case.setUp()
    try:
        return case.measure(extra)
    finally:
        case.doCleanups()


def table(rows):
    lines = [
        "| variant | users | datagrams (32 KiB) | server cores | echo p50 idle / flood (µs) "
        "| echo p99 idle / flood (µs) | failed | dropped open / trial_budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['users']} | {r['flood_datagrams']} in {r['flood_seconds']} s "
            f"| {r['server_cores']:.3f} | {r['idle_p50_us']} / {r['flood_p50_us']} "
            f"| {r['idle_p99_us']} / {r['flood_p99_us']} | {r['failures']} "
            f"| {r['dropped_open']} / {r['dropped_trial_budget']} |")
    return "\n".join(lines)


def main(argv):
    parsed = parse_args(TOOL, argv, usage)
    if isinstance(parsed, int):
        return parsed
    ours, _ = parsed
    if not ours or not os.access(ours, os.X_OK):
        print(f"{TOOL}: no binary of ours (BENCH_OURS_BIN or --ours PATH)", file=sys.stderr)
        return 2
    h.Config.relay = os.path.abspath(ours)
    h.Config.tmp = tempfile.mkdtemp(prefix="shadowrelay-flood-")
    h.raise_fd_limit(4096)
    out_dir = os.environ.get("BENCH_OUT", "/tmp/shadowrelay-bench")
    os.makedirs(out_dir, exist_ok=True)
    rounds = max(1, min(env_int("BENCH_ROUNDS", 1), 10))
    rows = []
    try:
        for _ in range(rounds):
            for variant, extra in (("bounded (defaults)", []), ("unbounded", UNBOUNDED)):
                result = dict(run_once(extra), variant=variant)
                print(f"{TOOL}: {json.dumps(result)}", file=sys.stderr)
                with open(os.path.join(out_dir, "flood_raw.jsonl"), "a") as f:
                    f.write(json.dumps(result) + "\n")
                rows.append(result)
    except (AssertionError, unittest.SkipTest, OSError) as e:
        print(f"{TOOL}: run failed: {e}", file=sys.stderr)
        return 1
    finally:
        h.kill_all_children()
        shutil.rmtree(h.Config.tmp, ignore_errors=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
