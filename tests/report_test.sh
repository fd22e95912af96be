#!/usr/bin/env bash
# The run report rendered as a browser shows it: `trainer report` on the
# committed small model's run, then headless Chromium (Debian's chromium, which
# tools/install_deps.sh installs) loads the page. Every chart must have drawn
# marks of a real size and no script error may have occurred; the screenshot
# is kept in the test's outputs (bazel-testlogs/tests/report_test/test.outputs).
set -euo pipefail
trainer="$1"
run="$TEST_TMPDIR/run"
mkdir -p "$run"
cp tests/testdata/small_model/{checkpoint.pb,metrics.jsonl,model_float.qfm} "$run/"
cp tests/testdata/small_model/model_int8.qfm "$run/model_int8_per_channel_histogram.qfm"
"$trainer" report --output_dir="$run"

if ! command -v chromium >/dev/null; then
  echo "chromium is not installed: run tools/install_deps.sh" >&2
  exit 1
fi
export HOME="$TEST_TMPDIR"  # Chromium and fontconfig write their caches there
browser=(chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage
  --user-data-dir="$TEST_TMPDIR/profile" --window-size=1280,2600)
dom=$("${browser[@]}" --dump-dom "file://$run/report.html" 2>/dev/null)
body=$(grep -o '<body[^>]*>' <<<"$dom")
echo "$body"
charts=$(sed -nE 's/.*data-charts="([0-9]+)".*/\1/p' <<<"$body")
drawn=$(sed -nE 's/.*data-charts-drawn="([0-9]+)".*/\1/p' <<<"$body")
if [[ -z "$charts" || "$charts" -lt 5 || "$drawn" != "$charts" ]]; then
  echo "expected every chart drawn (at least 5): $charts charts, $drawn drawn" >&2
  exit 1
fi
if grep -q 'data-script-error' <<<"$body"; then
  echo "script error in the report" >&2
  exit 1
fi
shot="${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}/report.png"
"${browser[@]}" --screenshot="$shot" "file://$run/report.html" 2>/dev/null
[[ $(stat -c %s "$shot") -gt 50000 ]]  # a blank page is a few KB
echo PASS
