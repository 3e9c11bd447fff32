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

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/tcp_bench.py --help
fi

missing=()
for tool in python3 iperf3 wrk nginx ss-server ss-tunnel; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench tcp: missing ${missing[*]} (run bazel/install_deps.sh bench)" >&2
  exit 2
fi

# 2000 idle connections need about 4000 descriptors in each relay process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

bin="${SHADOWRELAY_BIN:-}"
if [ -z "$bin" ]; then
  if bazel build -c opt //relay:shadowrelay >&2; then
    bin="$(bazel info -c opt bazel-bin 2>/dev/null)/relay/shadowrelay"
  else
    echo "bench tcp: building //relay:shadowrelay failed; measuring libev only (ours: n/a)" >&2
  fi
fi

# The Python driver owns every child process: own process group each, PR_SET_PDEATHSIG, and a
# cleanup on exit, SIGINT, SIGTERM and SIGHUP. Its exit status is passed through.
export BENCH_OURS_BIN="$bin"
exec python3 tests/bench/tcp_bench.py "$@"
