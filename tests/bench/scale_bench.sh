#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./dev bench scale: keep-alive HTTP through shadowrelay tunnel -> server next to ss-tunnel ->
# ss-server (shadowsocks-libev) at 100, 1 000 and 10 000 concurrent connections (wrk --latency,
# nginx 1 KiB file): requests/s, p50/p99, peak relay RSS, CPU per request per hop split into
# user and system time. Prints markdown tables; raw data in $BENCH_OUT (default
# /tmp/shadowrelay-bench): scale_raw.jsonl, scale.md. Knobs: scale_bench.sh --help
# (BENCH_SCALE_LEVELS, BENCH_SCALE_METHOD, BENCH_SECONDS, BENCH_ROUNDS...).
# SHADOWRELAY_BIN=path skips the bazel build. When our binary cannot be built or cannot start,
# libev's numbers are still printed and ours reads n/a.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/bench_lib.sh

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/scale_bench.py --help
fi
require_tools scale python3 wrk nginx ss-server ss-tunnel ss

# 10 000 connections need about 20 000 descriptors in each relay process; where the hard limit
# is lower, scale_bench.py lowers the level to what fits and says so.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

run_driver scale "$@"
