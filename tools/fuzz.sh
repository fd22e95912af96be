#!/usr/bin/env bash
# Builds qforge's fuzz targets (fuzz/BUILD) with clang's libFuzzer, ASan and
# UBSan, and runs each for a bounded time from its committed seed corpus.
#
#   tools/fuzz.sh [seconds per target (60)] [target ...]
#
# New corpus entries go to a scratch directory, not the repository. A finding
# (crash, sanitizer report, leak, timeout or out-of-memory) is copied to
# fuzz/findings/<target>/ and the script fails: commit the input under
# fuzz/corpus/<target>/ with the fix, and its corpus test replays it in every
# `bazel test //...` from then on. Needs clang-14 and libclang-rt-14-dev
# (tools/install_deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(model_fuzzer idx_fuzzer cifar10_fuzzer checkpoint_fuzzer config_fuzzer)
fi

# One output base per checkout, as Bazel's own.
base=${QFORGE_FUZZ_OUTPUT_BASE:-${HOME}/.cache/qforge/fuzz_output_base/$(pwd | md5sum | cut -c1-12)}
fuzz_bazel() { bazel --output_base="$base" "$@"; }
labels=()
for t in "${targets[@]}"; do labels+=("//fuzz:$t"); done
work=$(mktemp -d)
trap 'rm -rf "$work"; fuzz_bazel shutdown >/dev/null 2>&1 || true' EXIT
# clang's warnings on code GCC builds cleanly would bury the results.
if ! fuzz_bazel build --config=fuzz "${labels[@]}" >"$work/build.log" 2>&1; then
  grep -E 'error|ERROR' "$work/build.log" | head -30
  echo "building the fuzz targets failed"
  exit 1
fi
bin=$(fuzz_bazel info --config=fuzz bazel-bin 2>/dev/null)
failed=0
for t in "${targets[@]}"; do
  corpus=${t%_fuzzer}
  mkdir -p "$work/corpus/$corpus" "$work/findings/$corpus"
  log="$work/$t.log"
  status=0
  # -rss_limit_mb and -timeout turn a runaway allocation or a hang into a
  # finding; -max_len lets mutations grow past libFuzzer's default of 4 KB.
  "$bin/fuzz/$t" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 \
    -timeout=20 -max_len=65536 -artifact_prefix="$work/findings/$corpus/" \
    "$work/corpus/$corpus" "fuzz/corpus/$corpus" >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  units=$(find "$work/corpus/$corpus" "fuzz/corpus/$corpus" -type f | wc -l)
  if [[ $status -eq 0 ]]; then
    echo "$t: ${runs} executions in ${seconds} s, corpus of ${units} inputs, no findings"
  else
    failed=$((failed + 1))
    mkdir -p "fuzz/findings/$corpus"
    cp "$work/findings/$corpus/"* "fuzz/findings/$corpus/" 2>/dev/null || true
    echo "$t: FINDING after ${runs} executions (inputs in fuzz/findings/$corpus/):"
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$log" | head -20
  fi
done
echo "fuzzing: $((${#targets[@]} - failed)) targets clean, ${failed} with findings"
[[ $failed -eq 0 ]]
