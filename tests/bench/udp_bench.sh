#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./dev bench udp: shadowrelay tunnel -U -> server -U next to ss-tunnel -U -> ss-server -U
# (shadowsocks-libev), side by side on loopback: delivered datagrams/s, Mbit/s and loss of
# 1200-byte datagrams from a small C load generator (tests/bench/udp_blast.c, compiled at run
# time with cc), relay CPU. Prints markdown tables; raw data in $BENCH_OUT (default
# /tmp/shadowrelay-bench): udp_raw.jsonl, udp.md. Knobs: udp_bench.sh --help.
# SHADOWRELAY_BIN=path skips the bazel build. When our binary cannot be built or cannot start,
# libev's numbers are still printed and ours reads n/a.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/bench_lib.sh

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/udp_bench.py --help
fi
require_tools udp python3 "${BENCH_CC:-cc}" ss-server ss-tunnel

python3 tests/bench/udp_bench.py --check-env

run_driver udp "$@"
