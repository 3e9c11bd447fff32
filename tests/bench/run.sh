#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./dev bench [crypto|users|tcp|udp|scale|flood|cluster|all]: builds with -c opt and prints
# markdown tables for docs/PERFORMANCE.md. Every loop is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-crypto}"
out_dir="${BENCH_OUT:-/tmp/shadowrelay-bench}"
mkdir -p "$out_dir"

bench_crypto() {
  bazel build -c opt //tests/bench:crypto_bench >&2
  local bin
  bin="$(bazel info -c opt bazel-bin 2>/dev/null)/tests/bench/crypto_bench"
  "$bin" --benchmark_format=json --benchmark_min_time=0.3 >"$out_dir/crypto.json"
  : >"$out_dir/openssl_speed.txt"
  for cipher in aes-128-gcm aes-192-gcm aes-256-gcm chacha20-poly1305; do
    for bytes in 16384 1024; do
      openssl speed -aead -evp "$cipher" -bytes "$bytes" -seconds 1 2>/dev/null |
        awk -v c="$cipher" -v b="$bytes" '$1 ~ /^(AES|aes|ChaCha|chacha)/ {print c, b, $NF}' \
        >>"$out_dir/openssl_speed.txt"
    done
  done
  python3 tests/bench/crypto_table.py "$out_dir/crypto.json" "$out_dir/openssl_speed.txt"
}

bench_users() {
  bazel build -c opt //tests/bench:users_bench >&2
  "$(bazel info -c opt bazel-bin 2>/dev/null)/tests/bench/users_bench" \
    --benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
}

case "$what" in
  crypto) bench_crypto ;;
  users) bench_users ;;
  tcp|udp|scale|flood|cluster)
    if [ -x "tests/bench/${what}_bench.sh" ]; then
      exec "tests/bench/${what}_bench.sh" "${@:2}"
    fi
    echo "bench $what: not available yet (see the TCP/UDP relay issues)" >&2
    exit 2
    ;;
  all)
    bench_crypto
    bench_users
    for w in tcp udp scale flood cluster; do
      [ -x "tests/bench/${w}_bench.sh" ] && "tests/bench/${w}_bench.sh"
    done
    ;;
  *) echo "usage: ./dev bench [crypto|users|tcp|udp|scale|flood|cluster|all]" >&2; exit 2 ;;
esac
