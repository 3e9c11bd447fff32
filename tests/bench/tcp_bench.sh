#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./dev bench tcp: shadowrelay tunnel -> server next to ss-tunnel -> ss-server (shadowsocks-libev),
# side by side on loopback: iperf3 throughput per method (both directions), wrk through nginx
# (keep-alive and Connection: close), server RSS growth per idle connection. Prints markdown
# tables; raw data in $BENCH_OUT (default /tmp/shadowrelay-bench). Knobs: tcp_bench.sh --help;
# `tcp_bench.sh --hold 600` keeps nginx and both chains up for profiling.
# SHADOWRELAY_BIN=path skips the bazel build. When our binary cannot be built or cannot start,
# libev's numbers are still printed and ours reads n/a.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/bench_lib.sh

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/tcp_bench.py --help
fi
require_tools tcp python3 iperf3 wrk nginx ss-server ss-tunnel

# 2000 idle connections need about 4000 descriptors in each relay process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

run_driver tcp "$@"
