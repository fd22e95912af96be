#!/usr/bin/env bash
# Makes the committed model of tests/committed_model_test: a small MobileNetV2
# (width 0.25) trained on Fashion-MNIST for 3 epochs, its float checkpoint
# (without the optimizer's momentum, which conversion does not read), its
# training metrics, its int8 model (per-channel histogram PTQ) and its float
# model. Run it only when the numerics change
# on purpose, then put the counts the test prints into its constants.
#   tools/make_small_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/testdata/small_model
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bazel build //trainer
bazel-bin/trainer/trainer train --width_mult=0.25 --epochs=3 --seed=0 --threads=2 \
  --output_dir="$work" | tee "$work/train.log"
mkdir -p "$out"
cp "$work/metrics.jsonl" "$out/"  # for the report test
protoc --proto_path=. --decode=qforge.Checkpoint trainer/checkpoint.proto <"$work/checkpoint.pb" |
  grep -v '^momentum: ' |
  protoc --proto_path=. --encode=qforge.Checkpoint trainer/checkpoint.proto >"$out/checkpoint.pb"
bazel-bin/trainer/trainer ptq --checkpoint="$out/checkpoint.pb" --qconfig=per_channel_histogram \
  --threads=2
mv "$out/model_int8_per_channel_histogram.qfm" "$out/model_int8.qfm"
rm -f "$out/report.html"  # tests/report_test makes its own
# The trainer's float arithmetic depends on the instruction set it is built for.
sed -nE 's/.*\(([a-z0-9]+) GEMMs\).*/\1/p' "$work/train.log" >"$out/made_with.txt"
bazel test //tests:committed_model_test //tests:committed_model_reference_test --test_output=all | grep -E 'images right|PASSED|FAILED' || true
