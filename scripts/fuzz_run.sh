#!/usr/bin/env bash
# Runs the libFuzzer targets built by scripts/fuzz_build.sh (building them
# first if needed), one after another, each for N inputs or T seconds.
#
# Usage: scripts/fuzz_run.sh [-n RUNS | -t SECONDS] [-j JOBS] [TARGET...]
#   -n RUNS      inputs per target (e.g. -n 1000000 for the long run)
#   -t SECONDS   time per target (default: 5)
#   -j JOBS      parallel fuzzing processes per target (default 1); with -n,
#                each runs RUNS/JOBS inputs
#   TARGET       default: every target
#
# The growing corpus is kept in build/fuzz/corpus/TARGET (seeded from
# build/fuzz/seeds/TARGET), logs in build/fuzz/logs/TARGET*.log and any crash,
# leak, timeout or out-of-memory input in build/fuzz/artifacts/TARGET/.
# Prints one line per target: inputs run, corpus size, result. Exits 1 if
# any target reported a crash, a sanitizer error, a leak, a timeout or OOM.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/build/fuzz"

runs="" seconds=5 jobs=1
while getopts "n:t:j:" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    t) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode_request_fuzzer decode_infer_response_fuzzer
                                     decode_metadata_response_fuzzer read_answer_fuzzer
                                     read_v2_answer_fuzzer decode_v2_request_fuzzer)

bash "$root/scripts/fuzz_build.sh" >/dev/null

# Leaks are errors; so is any UBSan report (fuzz_build makes them fatal).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

failed=0
for t in "${targets[@]}"; do
  bin="$out/bin/$t"
  [ -x "$bin" ] || { echo "fuzz_run: no target $t" >&2; exit 2; }
  corpus="$out/corpus/$t" artifacts="$out/artifacts/$t/" logs="$out/logs"
  mkdir -p "$corpus" "$artifacts" "$logs"
  rm -f "$logs/$t"*.log
  args=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=8192
        -print_final_stats=1 -artifact_prefix="$artifacts")
  if [ -n "$runs" ]; then
    args+=(-runs=$(( (runs + jobs - 1) / jobs )))
  else
    args+=(-max_total_time="$seconds")
  fi
  status=0
  if [ "$jobs" -gt 1 ]; then
    # Independent processes sharing the corpus directory (new finds are
    # written there and picked up by the others' reloads).
    pids=()
    for j in $(seq 1 "$jobs"); do
      "$bin" "${args[@]}" -reload=10 -seed="$j" "$corpus" "$out/seeds/$t" >"$logs/$t.$j.log" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || status=1; done
  else
    "$bin" "${args[@]}" "$corpus" "$out/seeds/$t" >"$logs/$t.log" 2>&1 || status=1
  fi
  executed=0
  for log in "$logs/$t"*.log; do
    n=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
    executed=$((executed + ${n:-0}))
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|deadly signal|==[0-9]+== ?ERROR' "$log"; then
      status=1
    fi
  done
  units=$(ls "$corpus" | wc -l)
  if [ "$status" -eq 0 ]; then
    echo "fuzz_run: $t: $executed inputs, corpus $units, no crash, leak, UB, timeout or OOM"
  else
    failed=1
    echo "fuzz_run: $t: $executed inputs, FAILED; see $logs/$t*.log and $artifacts"
    grep -hE -A12 'ERROR:|runtime error:|deadly signal' "$logs/$t"*.log | head -40 || true
  fi
done
exit "$failed"
