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

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/udp_bench.py --help
fi

missing=()
for tool in python3 "${BENCH_CC:-cc}" ss-server ss-tunnel; do
  command -v "${tool%% *}" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench udp: missing ${missing[*]} (run bazel/install_deps.sh bench)" >&2
  exit 2
fi

python3 tests/bench/udp_bench.py --check-env

bin="${SHADOWRELAY_BIN:-}"
if [ -z "$bin" ]; then
  if bazel build -c opt //relay:shadowrelay >&2; then
    bin="$(bazel info -c opt bazel-bin 2>/dev/null)/relay/shadowrelay"
  else
    echo "bench udp: building //relay:shadowrelay failed; measuring libev only (ours: n/a)" >&2
  fi
fi

# The Python driver owns every child process: own process group each, PR_SET_PDEATHSIG, and a
# cleanup on exit, SIGINT, SIGTERM and SIGHUP. Its exit status is passed through.
export BENCH_OURS_BIN="$bin"
exec python3 tests/bench/udp_bench.py "$@"
