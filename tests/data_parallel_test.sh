#!/usr/bin/env bash
# Data-parallel training on Open MPI (README "Training on several processes"):
#  1. 2 ranks x 1 thread with synchronised batch norm take the step one process
#     takes with the same batch, to float-summation tolerance: as close to the
#     1-thread process as the 2-thread process is (the summation order alone),
#     and within 1e-4 of the 2-thread one, whose sums are split as theirs are.
#     The same for a few steps of QAT, fake-quant ranges (observed, then
#     learned) included.
#     The size of the gradient buckets does not change the result.
#  2. A run resumes on another number of ranks.
#  3. A rank killed mid-run stops the others with an error naming it, and the
#     run resumes from its last checkpoint; a rank that stalls makes the others
#     stop once --collective_timeout passes.
set -euo pipefail
trainer=$(realpath "$1")
distance=$(realpath "$2")
work=${TEST_TMPDIR:-$(mktemp -d)}
export TMPDIR=$work  # Open MPI's session directory
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
fail() { echo "FAIL: $*" >&2; exit 1; }
mpi() { mpirun -np "$1" "${@:2}"; }
# 257 test images: rank 0's part of the last evaluation batch is empty.
common=(train --width_mult=0.25 --max_test_images=257 --sync_batch_norm)

# Checkpoints $4 (2 ranks x 1 thread) against $2 (one process, 1 thread) and
# $3 (one process, 2 threads), after "$1".
compare_with_one_process() {
  local by_threads at by_ranks at_ranks same_split at_split
  read -r by_threads at < <("$distance" "$3" "$2")
  read -r by_ranks at_ranks < <("$distance" "$4" "$2")
  read -r same_split at_split < <("$distance" "$4" "$3")
  echo "$1: 2 ranks vs 1 process x 1 thread $by_ranks ($at_ranks);" \
       "1 process x 2 threads vs x 1 thread $by_threads ($at); 2 ranks vs 2 threads $same_split"
  awk -v r="$by_ranks" -v t="$by_threads" 'BEGIN { exit !(r <= 2 * t + 1e-6) }' ||
    fail "$1, 2 ranks are $by_ranks from one process, further than 2 x the $by_threads threads alone move it"
  awk -v s="$same_split" 'BEGIN { exit !(s <= 1e-4) }' ||
    fail "$1, 2 ranks are $same_split ($at_split) from one process of 2 threads"
}

# 1. One step of 64 images (dropout, augmentation and the one-cycle rate on).
one_step=("${common[@]}" --max_train_images=64 --epochs=1)
"$trainer" "${one_step[@]}" --threads=1 --output_dir="$work/one1" > "$work/one1.log"
"$trainer" "${one_step[@]}" --threads=2 --output_dir="$work/one2" > "$work/one2.log"
mpi 2 "$trainer" "${one_step[@]}" --threads=1 --output_dir="$work/two" > "$work/two.log"
ckpt() { echo "$work/$1/checkpoint.pb"; }
compare_with_one_process "after one step" "$(ckpt one1)" "$(ckpt one2)" "$(ckpt two)"
# Two ranks add each gradient element once, whatever the buckets: 10 kB
# buckets (28 at this width, most started mid-backward) give exactly the step
# of the default 1 MB (at this width one bucket, summed after the backward
# pass); in QAT too.
same_with_small_buckets() {
  local by_buckets at
  read -r by_buckets at < <("$distance" "$2" "$3")
  [[ "$by_buckets" == 0 ]] || fail "$1 with 10 kB buckets is $by_buckets ($at) from 1 MB buckets"
}
mpi 2 "$trainer" "${one_step[@]}" --threads=1 --bucket_mb=0.01 --output_dir="$work/small" \
  > "$work/small.log"
same_with_small_buckets "one step" "$(ckpt small)" "$(ckpt two)"
loss() { sed -n 's/.*"train_loss": \([0-9.]*\).*/\1/p' "$work/$1/metrics.jsonl"; }
[[ "$(loss two)" == "$(loss one2)" ]] || fail "train loss $(loss two) on 2 ranks, $(loss one2) in one process"
accuracy() { sed -n 's/.*"test_accuracy": \([0-9.]*\).*/\1/p' "$work/$1/metrics.jsonl"; }
[[ "$(accuracy two)" == "$(accuracy one2)" ]] ||
  fail "test accuracy $(accuracy two) on 2 ranks, $(accuracy one2) in one process"

# QAT from that checkpoint: an epoch of 3 batches of 30 (15 per rank), then
# BN frozen with precise statistics over 2 more and the observers off, and an
# epoch more with the activation ranges learned; the fake-quant ranges are in
# the checkpoints compared.
qat=(qat --checkpoint="$(ckpt one2)" --epochs=2 --batches_per_epoch=3 --sync_batch_norm
     --freeze_bn_after_epoch=-1 --precise_bn_batches=2 --disable_observer_after_epoch=-1
     --range_lr=0.1)
qckpt() { echo "$work/$1/qat_checkpoint.pb"; }
"$trainer" "${qat[@]}" --threads=1 --output_dir="$work/qat1" > "$work/qat1.log"
"$trainer" "${qat[@]}" --threads=2 --output_dir="$work/qat2" > "$work/qat2.log"
mpi 2 "$trainer" "${qat[@]}" --threads=1 --output_dir="$work/qat_two" > "$work/qat_two.log"
compare_with_one_process "after QAT" "$(qckpt qat1)" "$(qckpt qat2)" "$(qckpt qat_two)"
mpi 2 "$trainer" "${qat[@]}" --threads=1 --bucket_mb=0.01 --output_dir="$work/qat_small" \
  > "$work/qat_small.log"
same_with_small_buckets "QAT" "$(qckpt qat_small)" "$(qckpt qat_two)"
[[ -s "$work/qat_two/model_int8_qat.qfm" ]] || fail "QAT on 2 ranks wrote no model"
# The ranks measure the int8 model on their shards of the test set together.
int8() { sed -n 's/.*"int8_accuracy": \([0-9.]*\).*/\1/p' "$work/$1/qat_metrics.jsonl"; }
[[ -n "$(int8 qat2)" && "$(int8 qat_two)" == "$(int8 qat2)" ]] ||
  fail "int8 accuracy $(int8 qat_two) on 2 ranks, $(int8 qat2) in one process"

# 2. Two epochs on 2 ranks, the third resumed in one process, and the
#    reverse; each epoch's line is written once, by rank 0.
resume=("${common[@]}" --max_train_images=256 --threads=1)
mpi 2 "$trainer" "${resume[@]}" --epochs=2 --output_dir="$work/a" > "$work/a.log"
"$trainer" "${resume[@]}" --epochs=3 --resume --output_dir="$work/a" > "$work/a3.log"
grep -q "resuming after epoch 2" "$work/a3.log" || fail "one process did not resume 2 ranks' run"
"$trainer" "${resume[@]}" --epochs=1 --output_dir="$work/b" > "$work/b.log"
mpi 2 "$trainer" "${resume[@]}" --epochs=2 --resume --output_dir="$work/b" > "$work/b2.log"
grep -q "resuming after epoch 1" "$work/b2.log" || fail "2 ranks did not resume one process's run"
[[ $(wc -l < "$work/a/metrics.jsonl") == 3 && $(wc -l < "$work/b/metrics.jsonl") == 2 ]] ||
  fail "metrics lines: $(wc -l < "$work/a/metrics.jsonl") and $(wc -l < "$work/b/metrics.jsonl")"

# The pid of rank $1 of the trainers running under mpirun.
rank_pid() {
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    [[ "$(readlink "/proc/$pid/exe" 2> /dev/null)" == "$trainer" ]] || continue
    if tr '\0' '\n' < "$environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$pid"
      return
    fi
  done
}
# Starts a long 2-rank run in $1 and waits for its first checkpoint.
start_long_run() {
  mpi 2 "$trainer" "${common[@]}" --max_train_images=1024 --epochs=200 --threads=1 \
    --collective_timeout=5 --output_dir="$work/$1" > "$work/$1.log" 2>&1 &
  run=$!
  for _ in $(seq 600); do
    [[ -s "$work/$1/checkpoint.pb" ]] && break
    sleep 0.1
  done
  [[ -s "$work/$1/checkpoint.pb" ]] || fail "no checkpoint from the long run: $(cat "$work/$1.log")"
}
# Waits at most 60 s for the run to stop; its exit code must not be 0.
expect_stop() {
  for _ in $(seq 600); do
    kill -0 "$run" 2> /dev/null || break
    sleep 0.1
  done
  if kill -0 "$run" 2> /dev/null; then
    kill -9 "$run"
    fail "the run still hangs 60 s after $1"
  fi
  if wait "$run"; then fail "the run ended well after $1"; fi
}

# 3a. A killed rank: mpirun names it and stops the other.
start_long_run killed
kill -9 "$(rank_pid 1)"
expect_stop "rank 1 was killed"
grep -q "rank 1 .*exited on signal 9" "$work/killed.log" ||
  fail "no error names the killed rank: $(cat "$work/killed.log")"
# Rank 0 appends an epoch's metrics line before its checkpoint: a kill
# between the two leaves one line more than the checkpoint has epochs.
done_epochs=$(wc -l < "$work/killed/metrics.jsonl")
mpi 2 "$trainer" "${common[@]}" --max_train_images=1024 --epochs=$((done_epochs + 1)) \
  --threads=1 --resume --output_dir="$work/killed" > "$work/killed2.log"
grep -Eq "resuming after epoch ($done_epochs|$((done_epochs - 1)))$" "$work/killed2.log" ||
  fail "the killed run did not resume after epoch $done_epochs: $(cat "$work/killed2.log")"

# 3b. A stalled rank: the other gives up after --collective_timeout.
start_long_run stalled
kill -STOP "$(rank_pid 1)"
expect_stop "rank 1 stalled"
grep -q "rank 0 of 2: .* did not complete within 5 s" "$work/stalled.log" ||
  fail "no timeout error: $(cat "$work/stalled.log")"
echo "PASS"
