#!/usr/bin/env bash
# Training survives SIGKILL at any instant. `train` and then `qat` are killed
# at random points (mid-step, mid-evaluation, near checkpoint writes) over
# several rounds, each round resuming the last: every resume must start (a
# kill leaves the latest checkpoint readable), the run must end with one
# metrics line per epoch, and the float run with the same losses and
# accuracies as a run never killed. Then a checkpoint damaged after the fact
# is caught by its checksum and the previous one used, with a warning naming
# both files.
set -euo pipefail
trainer="$1"
out="$TEST_TMPDIR/run"
RANDOM=7  # the kill points, reproducibly
train=(train --width_mult=0.25 --epochs=12 --max_train_images=384 --max_test_images=128
       --batch_size=32 --threads=1)
qat=(qat --checkpoint="$out/checkpoint.pb" --epochs=5 --batches_per_epoch=3 --batch_size=16
     --precise_bn_batches=1 --threads=1 --output_dir="$out/qat")

# Runs "$@" (plus --resume once `checkpoint` exists) `rounds` times, killing
# it each time after a random 0 to `max_ms` milliseconds. A run that finishes
# first is fine; one that fails (a resume that cannot start) is not.
kill_rounds() {
  local checkpoint=$1 rounds=$2 max_ms=$3
  shift 3
  for ((round = 1; round <= rounds; ++round)); do
    local resume=() delay=$(((RANDOM * 32768 + RANDOM) % max_ms)) status=0
    if [[ -e "$checkpoint" || -e "$checkpoint.prev" ]]; then resume=(--resume); fi
    "$trainer" "$@" "${resume[@]}" >"$TEST_TMPDIR/round.log" 2>&1 &
    local pid=$!
    sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || status=$?
    if [[ $status -ne 0 && $status -ne 137 ]]; then
      cat "$TEST_TMPDIR/round.log"
      echo "round $round: the run failed (exit $status) instead of resuming"
      exit 1
    fi
    # The previous checkpoint is for files damaged after the fact: a kill
    # must always leave the latest one readable.
    if grep -q "continuing from the previous checkpoint" "$TEST_TMPDIR/round.log"; then
      cat "$TEST_TMPDIR/round.log"
      echo "round $round: the latest checkpoint was unreadable after a kill"
      exit 1
    fi
    local ending="killed after ${delay} ms"
    if [[ $status -eq 0 ]]; then ending="finished within ${delay} ms"; fi
    echo "round $round: ${resume[*]:-fresh}, ${ending}," \
         "$(grep -cE '^(qat )?epoch [0-9]+/[0-9]+: train loss' "$TEST_TMPDIR/round.log" || true) epochs done"
  done
}

# Finishes the run and checks it has every epoch's metrics line.
finish() {
  local checkpoint=$1 metrics=$2 epochs=$3
  shift 3
  local resume=()
  if [[ -e "$checkpoint" || -e "$checkpoint.prev" ]]; then resume=(--resume); fi
  "$trainer" "$@" "${resume[@]}"
  [[ $(wc -l <"$metrics") -eq $epochs ]]
}

# Each epoch's numbers, without its timings.
numbers() { sed -E 's/, "(images_per_second|seconds)": [0-9.e+-]+//g' "$1"; }

# Here train starts in about 0.8 s and takes about 1 s an epoch; qat starts
# in about 3 s, takes about 2 s an epoch with its int8 evaluation, and ends
# with a measurement of 40 s on the 10,000 test images. Kills before a run's
# start only test that nothing is left half-written.
kill_rounds "$out/checkpoint.pb" 12 4000 "${train[@]}" --output_dir="$out"
finish "$out/checkpoint.pb" "$out/metrics.jsonl" 12 "${train[@]}" --output_dir="$out"
"$trainer" "${train[@]}" --output_dir="$TEST_TMPDIR/never_killed" >/dev/null 2>&1
diff <(numbers "$out/metrics.jsonl") <(numbers "$TEST_TMPDIR/never_killed/metrics.jsonl")
kill_rounds "$out/qat/qat_checkpoint.pb" 6 9000 "${qat[@]}"
finish "$out/qat/qat_checkpoint.pb" "$out/qat/qat_metrics.jsonl" 5 "${qat[@]}"

# Damage the latest checkpoint: --resume warns, naming both files, and goes on
# from the previous one (epoch 11 of 12), redoing the last epoch as it was.
size=$(stat -c %s "$out/checkpoint.pb")
truncate -s $((size / 2)) "$out/checkpoint.pb"
log=$("$trainer" "${train[@]}" --output_dir="$out" --resume 2>&1) || { echo "$log"; exit 1; }
echo "$log"
grep -q "warning: $out/checkpoint.pb: checksum mismatch .*continuing from the previous checkpoint, $out/checkpoint.pb.prev (epoch 11)" <<<"$log"
grep -q "epoch 12/12: train loss" <<<"$log"
diff <(numbers "$out/metrics.jsonl") <(numbers "$TEST_TMPDIR/never_killed/metrics.jsonl")
echo "kill_anywhere_test: passed"
