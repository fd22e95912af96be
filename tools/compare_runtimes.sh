#!/usr/bin/env bash
# The README's runtime speed tables in one command: installs what the
# comparison needs (Debian's PyTorch, the peer runtimes' venv), builds qforge's
# benchmark, writes the random-weight MobileNetV2 it runs, and compares qforge
# with PyTorch, ONNX Runtime, OpenVINO and LiteRT in one run, with the time by
# op kind of qforge and OpenVINO.
#
#   tools/compare_runtimes.sh [--runs 100] [--json out.json]
#
# Extra arguments go to tools/compare_pytorch.py. The models go to
# $QFORGE_COMPARE_DIR (default /tmp/qforge).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh --python
tools/install_peers.sh
bazel build //tools:benchmark //tools:make_mobilenet_v2
models=${QFORGE_COMPARE_DIR:-/tmp/qforge}
bazel-bin/tools/make_mobilenet_v2 --out_dir="$models"
exec /usr/bin/python3 tools/compare_pytorch.py --peers --peer_profile \
  --qforge_int8_model="$models/mobilenet_v2_int8.qfm" \
  --qforge_float_model="$models/mobilenet_v2_float.qfm" "$@"
