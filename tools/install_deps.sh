#!/usr/bin/env bash
# Installs the Debian 12 packages qforge needs to build, test and run its main
# job. Idempotent: when every package is present it does nothing (no apt-get
# update, no network). Run as root, or with sudo available.
#
#   tools/install_deps.sh            # build, tests, main job
#   tools/install_deps.sh --python   # also PyTorch (and protobuf for Python), for
#                                    # import/export with PyTorch, its tests, and
#                                    # the tools/ comparison and golden-file scripts
#   tools/install_deps.sh --fuzz     # also clang and its libFuzzer runtime, for
#                                    # tools/fuzz.sh
set -euo pipefail

packages=(
  # build
  bazel-bootstrap build-essential
  # C++ dependencies, wired into //:WORKSPACE from /usr
  libxnnpack-dev libpthreadpool-dev libcpuinfo-dev libgemmlowp-dev libabsl-dev
  libprotobuf-dev protobuf-compiler libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev libopenblas-dev libeigen3-dev libjpeg62-turbo-dev libpng-dev
  # data-parallel training (trainer/dist): Open MPI and its mpirun
  libopenmpi-dev openmpi-bin
  # the embedded default dataset
  dataset-fashion-mnist
  # tests/report_test renders the run report in a headless browser
  chromium fonts-dejavu-core
)
case "${1:-}" in
  --python) packages+=(python3-torch python3-torchvision python3-numpy python3-protobuf) ;;
  --fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "install_deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
  "${missing[@]}" >&2
