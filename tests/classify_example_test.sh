#!/usr/bin/env bash
# The example application end to end, as an edge developer would use it: build
# a model, classify an image, and get clean errors for bad inputs.
set -euo pipefail
classify="$1"
make_model="$2"
dir="$TEST_TMPDIR"

"$make_model" --out_dir="$dir" --name=small --input_size=32 --small_input --width_mult=0.5 \
  --num_classes=10 --seed=3 >/dev/null

# A 32x32 RGB gradient as a binary PPM.
{
  printf 'P6\n32 32\n255\n'
  for ((y = 0; y < 32; y++)); do
    for ((x = 0; x < 32; x++)); do printf "\\$(printf '%03o' $((x * 8)))\\$(printf '%03o' $((y * 8)))\\$(printf '%03o' 128)"; done
  done
} >"$dir/image.ppm"

for kind in int8 float; do
  out=$("$classify" "$dir/small_$kind.qfm" "$dir/image.ppm" 2)
  echo "$out"
  [[ $(wc -l <<<"$out") -eq 5 ]]
  grep -qE '^1\. class [0-9] \([0-9.]+%\)$' <<<"$out"
  grep -qE '^5\. class [0-9] \([0-9.]+%\)$' <<<"$out"
done

# A 97x61 JPEG for the 32x32 model: classify resizes its shorter side to 32 and
# crops the centre, so it must print what it prints for torchvision's
# Resize(32) + CenterCrop(32) of the same file (tools/make_image_goldens.py).
{ printf 'P6\n32 32\n255\n'; cat runtime/image/testdata/photo.jpg.c3.r32c32.raw; } >"$dir/photo.ppm"
for kind in int8 float; do
  from_jpeg=$("$classify" "$dir/small_$kind.qfm" runtime/image/testdata/photo.jpg)
  from_torchvision=$("$classify" "$dir/small_$kind.qfm" "$dir/photo.ppm")
  echo "$from_jpeg"
  [[ "$from_jpeg" == "$from_torchvision" ]]
done

# The committed small model, trained on Fashion-MNIST: its int8 and float
# models must name the same class for each of the first 10 test images.
# 28x28 images of 784 bytes each after the IDX file's 16-byte header.
gzip -dc /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz | tail -c +17 >"$dir/t10k-images"
for i in $(seq 0 9); do
  { printf 'P5\n28 28\n255\n'; dd if="$dir/t10k-images" bs=784 skip="$i" count=1 status=none; } \
    >"$dir/fashion$i.pgm"
  top=()
  for kind in int8 float; do
    top+=("$("$classify" "tests/testdata/small_model/model_$kind.qfm" "$dir/fashion$i.pgm" |
      sed -nE 's/^1\. (.*) \([0-9.]+%\)$/\1/p')")
  done
  echo "test image $i: int8 '${top[0]}', float '${top[1]}'"
  [[ -n "${top[0]}" && "${top[0]}" == "${top[1]}" ]]
done

expect_error() {  # expect_error PATTERN COMMAND...
  local pattern="$1"
  shift
  if err=$("$@" 2>&1); then
    echo "expected a failure from: $*" >&2
    exit 1
  fi
  echo "$err"
  grep -q -- "$pattern" <<<"$err"
}
expect_error "loading the model: .*missing.qfm" "$classify" "$dir/missing.qfm" "$dir/image.ppm"
head -c 1000 "$dir/small_int8.qfm" >"$dir/truncated.qfm"
expect_error "loading the model: .*truncated.qfm: not a qforge model" \
  "$classify" "$dir/truncated.qfm" "$dir/image.ppm"
head -c 2000 runtime/image/testdata/photo.jpg >"$dir/truncated.jpg"
expect_error "truncated.jpg: corrupt JPEG" "$classify" "$dir/small_int8.qfm" "$dir/truncated.jpg"
expect_error "manifest.txt: not a JPEG, PNG, PPM or PGM file" \
  "$classify" "$dir/small_int8.qfm" runtime/image/testdata/manifest.txt
expect_error "creating the interpreter: num_threads 0" "$classify" "$dir/small_int8.qfm" "$dir/image.ppm" 0
echo PASS
