#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./dev bench cluster: replicas sharing users through a 3-member loopback etcd (issue 19 §4):
# what this etcd sustains (Put and Txn of 128 Puts), propagation p50/p99 of 100 changes from
# server A to server B, and the etcd write rate of traffic updates at 10 000 users against that
# capacity. Prints markdown tables; raw data in $BENCH_OUT (default /tmp/shadowrelay-bench):
# cluster_raw.jsonl, cluster.md. Knobs: cluster_bench.sh --help. SHADOWRELAY_BIN=path and
# GRPC_CALL_BIN=path skip the bazel builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/bench_lib.sh

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  exec python3 tests/bench/cluster_bench.py --help
fi
require_tools cluster python3 etcd etcdctl curl

# The API client the driver polls with (grpc_call --stdin), built like the relay.
grpc_call="${GRPC_CALL_BIN:-}"
if [ -z "$grpc_call" ] && bazel build -c opt //tests/e2e:grpc_call >&2; then
  grpc_call="$(bazel info -c opt bazel-bin 2>/dev/null)/tests/e2e/grpc_call"
fi
export BENCH_GRPC_CALL="$grpc_call"
# 10 000 users: an upstream UDP socket per user and replica in each server.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

run_driver cluster "$@"
