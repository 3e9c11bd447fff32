#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./dev bench flood: a key-less flood of random 32 KiB UDP datagrams against a port of 1 000
# users, with TCP echo round trips on the same port (issue 15 §1): the server's cores and the
# round trips' latency, with the trial-decryption bounds (defaults) and without. Prints a
# markdown table; raw data in $BENCH_OUT (default /tmp/shadowrelay-bench)/flood_raw.jsonl.
# Knobs: flood_bench.sh --help. SHADOWRELAY_BIN=path skips the bazel build.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/bench_lib.sh

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/flood_bench.py --help
fi
require_tools flood python3

run_driver flood "$@"
