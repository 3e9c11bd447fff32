# SPDX-License-Identifier: Apache-2.0
# Sourced by the relay benchmarks' entry scripts (tcp_bench.sh, udp_bench.sh, scale_bench.sh),
# from the repository root.

# require_tools WHAT TOOL...: exits 2 naming every TOOL that is not on PATH (a TOOL with
# arguments, such as "${BENCH_CC:-cc}", is looked up by its first word).
require_tools() {
  local what="$1" tool
  shift
  local missing=()
  for tool in "$@"; do
    command -v "${tool%% *}" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench $what: missing ${missing[*]} (run bazel/install_deps.sh bench)" >&2
    exit 2
  fi
}

# run_driver WHAT ARGS...: runs tests/bench/WHAT_bench.py on our release binary:
# $SHADOWRELAY_BIN, or built here with -c opt. When the build fails, libev is still measured and
# ours reads n/a. The Python driver owns every child process: own process group each,
# PR_SET_PDEATHSIG, and a cleanup on exit, SIGINT, SIGTERM and SIGHUP. Its exit status is
# passed through.
run_driver() {
  local what="$1"
  shift
  local bin="${SHADOWRELAY_BIN:-}"
  if [ -z "$bin" ]; then
    if bazel build -c opt //relay:shadowrelay >&2; then
      bin="$(bazel info -c opt bazel-bin 2>/dev/null)/relay/shadowrelay"
    else
      echo "bench $what: building //relay:shadowrelay failed; measuring libev only (ours: n/a)" >&2
    fi
  fi
  export BENCH_OURS_BIN="$bin"
  exec python3 "tests/bench/${what}_bench.py" "$@"
}
