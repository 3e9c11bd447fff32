#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The libFuzzer targets of tests/fuzz (README.md there), built with --config=fuzz (Debian's
# clang, ASan and UBSan). Called by ./dev:
#   tests/fuzz/run.sh fuzz [TARGET|all] [SECONDS]   long runs, one target after another
#                                                   (default: all, 600 s each)
#   tests/fuzz/run.sh smoke [RUNS]                  every target over its seed corpus, then RUNS
#                                                   generated inputs (./dev test); fixed seed
# Long runs keep what they find in $SHADOWRELAY_FUZZ_DIR/<target>/ (default
# ~/.cache/shadowrelay-fuzz), crashes in .../crashes/; the seeds in tests/fuzz/corpus/ are
# read, never written. Each target prints one line: executions, libFuzzer's coverage (cov:
# edges, ft: features), corpus size, and the verdict. Exit status: the number of failures.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."

fuzz_dir="${SHADOWRELAY_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/shadowrelay-fuzz}"

targets() {
  bazel query 'attr(tags, "\bfuzzer\b", //tests/fuzz:*)' 2>/dev/null | sed -n 's|^//tests/fuzz:\(.*\)_fuzzer$|\1|p'
}

build() {
  local labels=()
  for t in "$@"; do labels+=("//tests/fuzz:${t}_fuzzer"); done
  bazel build --config=fuzz "${labels[@]}"
  bin="$(bazel info --config=fuzz bazel-bin 2>/dev/null)/tests/fuzz"
}

# One line from a libFuzzer log: executions, exec/s, cov, ft, corpus.
summary() {
  local log="$1" last execs rate
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  printf '%s execs, %s/s, cov %s, ft %s, corpus %s' "${execs:-?}" "${rate:-?}" \
    "$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")" \
    "$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")" \
    "$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")"
}

# run TARGET LOG FLAGS... -- CORPUS_DIRS...: libFuzzer with the flags every run shares.
run() {
  local t="$1" log="$2"
  shift 2
  # TEST_TMPDIR: where a target may make files (the user store's state directory).
  TEST_TMPDIR="$tmp" UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin/${t}_fuzzer" -print_final_stats=1 -timeout=20 -rss_limit_mb=2560 "$@" >"$log" 2>&1
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0
case "$cmd" in
  fuzz)
    what="${1:-all}"
    seconds="${2:-600}"
    mapfile -t all < <(targets)
    if [ "$what" = "all" ]; then
      list=("${all[@]}")
    elif printf '%s\n' "${all[@]}" | grep -qx "$what"; then
      list=("$what")
    else
      echo "unknown fuzz target '$what'; targets: ${all[*]}" >&2
      exit 2
    fi
    build "${list[@]}"
    mkdir -p "$fuzz_dir/crashes"
    for t in "${list[@]}"; do
      mkdir -p "$fuzz_dir/$t"
      log="$fuzz_dir/$t.log"
      echo "== $t: ${seconds}s, corpus $fuzz_dir/$t (log $log) ==" >&2
      rc=0
      run "$t" "$log" -max_total_time="$seconds" -artifact_prefix="$fuzz_dir/crashes/$t-" \
        "$fuzz_dir/$t" "tests/fuzz/corpus/$t" || rc=$?
      if [ "$rc" -eq 0 ]; then
        echo "$t: $(summary "$log"), ok"
      else
        echo "$t: $(summary "$log"), FAILED (exit $rc; input in $fuzz_dir/crashes/, log $log)"
        failed=$((failed + 1))
      fi
    done
    ;;
  smoke)
    runs="${1:-20000}"
    mapfile -t list < <(targets)
    build "${list[@]}"
    for t in "${list[@]}"; do
      mkdir -p "$tmp/$t"
      log="$tmp/$t.log"
      start=$SECONDS
      rc=0
      run "$t" "$log" -runs="$runs" -seed=1 -artifact_prefix="$tmp/$t-" \
        "$tmp/$t" "tests/fuzz/corpus/$t" || rc=$?
      if [ "$rc" -eq 0 ]; then
        echo "[fuzz] $t: $(summary "$log"), $((SECONDS - start))s, ok" >&2
      else
        # Keep the input that failed: the temporary directory goes away.
        mkdir -p "$fuzz_dir/crashes"
        kept=""
        for a in "$tmp/$t"-*; do
          [ -e "$a" ] || continue
          cp "$a" "$fuzz_dir/crashes/" && kept="$kept $fuzz_dir/crashes/$(basename "$a")"
        done
        echo "[fuzz] $t FAILED (exit $rc; input:${kept:- none written}):" >&2
        grep -E 'ERROR|invariant|SUMMARY|^    #[0-9]' "$log" | head -30 >&2 || true
        failed=$((failed + 1))
      fi
    done
    echo "${#list[@]} $failed"
    ;;
  *)
    sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
exit "$failed"
