#!/usr/bin/env bash
# The README's runtime speed tables in one command: installs what the
# comparison needs (Debian's PyTorch, the peer runtimes' venv), builds qforge's
# benchmark, model maker and trainer, and compares qforge with PyTorch, ONNX
# Runtime, OpenVINO and LiteRT in one run, all on the same MobileNetV2 weights
# (torchvision's, seed 0; qforge converts them itself), with the time by op
# kind of qforge and OpenVINO.
#
#   tools/compare_runtimes.sh [--runs 100] [--json out.json]
#
# Extra arguments go to tools/compare_pytorch.py. qforge's models go to
# $QFORGE_COMPARE_DIR (default /tmp/qforge/compare).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install_deps.sh --python
tools/install_peers.sh
bazel build //tools:benchmark //tools:make_mobilenet_v2 //trainer
exec /usr/bin/python3 tools/compare_pytorch.py --peers --peer_profile \
  --qforge_model_dir="${QFORGE_COMPARE_DIR:-/tmp/qforge/compare}" "$@"
