#!/usr/bin/env bash
# The trainer binary end to end on a small slice of Fashion-MNIST: it trains,
# reports, writes its metrics and checkpoint, resumes; ptq with a layer left in
# float and a short qat run write their models; a wrong data directory fails
# with a message naming the file.
set -euo pipefail
trainer="$1"
out="$TEST_TMPDIR/run"
flags=(--width_mult=0.25 --epochs=2 --max_train_images=640 --max_test_images=300
       --output_dir="$out")

log=$("$trainer" train "${flags[@]}" --epochs=1 2>&1)
echo "$log"
grep -q "epoch 1/1: train loss" <<<"$log"
grep -q "float test accuracy: " <<<"$log"
[[ $(wc -l <"$out/metrics.jsonl") -eq 1 ]]
[[ -s "$out/checkpoint.pb" ]]

log=$("$trainer" train "${flags[@]}" --resume 2>&1)
echo "$log"
grep -q "resuming after epoch 1" <<<"$log"
grep -q "epoch 2/2: train loss" <<<"$log"
[[ $(wc -l <"$out/metrics.jsonl") -eq 2 ]]

log=$("$trainer" ptq --checkpoint="$out/checkpoint.pb" --calib_batches=2 \
      --float_layers=classifier.1 2>&1)
echo "$log"
grep -q "int8 per_channel_histogram" <<<"$log"
[[ -s "$out/model_int8_per_channel_histogram_custom.qfm" ]]

log=$("$trainer" qat --checkpoint="$out/checkpoint.pb" --epochs=2 --batches_per_epoch=2 \
      --freeze_bn_after_epoch=0 --precise_bn_batches=2 --calibrate_activations=histogram \
      --output_dir="$out/qat" 2>&1)
echo "$log"
grep -q "precise BN statistics .* 2/2" <<<"$log"
grep -q "qat epoch 2/2: train loss" <<<"$log"
grep -q "int8 QAT in the runtime: " <<<"$log"
[[ $(wc -l <"$out/qat/qat_metrics.jsonl") -eq 2 ]]
[[ -s "$out/qat/model_int8_qat.qfm" ]]

if err=$("$trainer" train --data_dir="$TEST_TMPDIR/missing" --output_dir="$out" 2>&1); then
  echo "expected a failure for a missing data directory" >&2
  exit 1
fi
echo "$err"
grep -q "missing/train-images-idx3-ubyte.gz: no such file" <<<"$err"
if "$trainer" fly 2>/dev/null; then
  echo "expected a failure for an unknown command" >&2
  exit 1
fi
echo PASS
