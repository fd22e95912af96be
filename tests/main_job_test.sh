#!/usr/bin/env bash
# The main job (`bazel run //trainer`) end to end: it reads the real dataset and
# reports it, and a wrong data directory fails with a message naming the file.
set -euo pipefail
trainer="$1"

out=$("$trainer" 2>&1)
echo "$out"
grep -q "fashion-mnist/train: 60000 images of 28x28x1, 10 classes (6000 to 6000 per class)" <<<"$out"
grep -q "fashion-mnist/test: 10000 images of 28x28x1, 10 classes (1000 to 1000 per class)" <<<"$out"
grep -q "one augmented epoch through the batch loader: 60000 images" <<<"$out"

if err=$("$trainer" --data_dir="$TEST_TMPDIR/missing" 2>&1); then
  echo "expected a failure for a missing data directory" >&2
  exit 1
fi
echo "$err"
grep -q "missing/train-images-idx3-ubyte.gz: no such file" <<<"$err"
echo PASS
