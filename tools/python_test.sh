#!/usr/bin/env bash
# Runs a Python test, or skips it, saying why, where its packages are missing.
#   python_test.sh TEST.py ARGS...          Debian's python3 (python3-torch is
#                                           PyTorch 1.13, the project's oracle)
#   python_test.sh --peers TEST.py ARGS...  the venv of tools/install_peers.sh
#                                           (ONNX Runtime, OpenVINO from PyPI)
set -euo pipefail
if [[ "$1" == "--peers" ]]; then
  shift
  python="${QFORGE_PEERS_VENV:-/opt/qforge-peers}/bin/python"
  modules="onnx, onnxruntime, openvino, google.protobuf"
  install="tools/install_peers.sh"
else
  python=/usr/bin/python3
  modules="torch, torchvision, google.protobuf"
  install="tools/install_deps.sh --python"
fi
if ! "$python" -c "import $modules" 2>/dev/null; then
  echo "SKIPPED: $1 needs $modules in $python ($install installs them)"
  exit 0
fi
exec "$python" "$@"
