#!/usr/bin/env bash
# The run report rendered as a browser shows it: `trainer report` on the
# committed small model's run, then headless Chromium (Debian's chromium, which
# tools/install_deps.sh installs) loads the page. Each section must hold the
# charts it should, each with marks drawn at a real size, and no script error
# may have occurred; the screenshot
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
html=$(grep -o '<html[^>]*>' <<<"$dom")
echo "$html"
if grep -q 'data-script-error' <<<"$html"; then
  echo "script error in the report" >&2
  exit 1
fi
attribute() { sed -nE "s/.* $1=\"([^\"]*)\".*/\1/p" <<<"$html"; }
[[ $(attribute data-rows) -eq 2 ]] || { echo "expected 2 result rows" >&2; exit 1; }
# Charts per section ("charts/drawn"): the training curve, one SQNR chart, the
# two worst layers' histograms, and every depthwise conv (17 in MobileNetV2).
for expected in training:1 sqnr:1 worst:2 depthwise:17; do
  section=${expected%:*}
  count=${expected#*:}
  got=$(attribute "data-charts-$section")
  if [[ "$got" != "$count/$count" ]]; then
    echo "section $section: expected $count charts, all drawn; got charts/drawn '$got'" >&2
    exit 1
  fi
done
shot="${TEST_UNDECLARED_OUTPUTS_DIR:-$TEST_TMPDIR}/report.png"
"${browser[@]}" --screenshot="$shot" "file://$run/report.html" 2>/dev/null
[[ $(stat -c %s "$shot") -gt 50000 ]]  # a blank page is a few KB
echo PASS
