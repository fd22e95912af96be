#!/usr/bin/env bash
# Runs a Python test with Debian's python3 (python3-torch is PyTorch 1.13, the
# project's oracle), or skips it, saying why, where those packages are missing.
set -euo pipefail
if ! /usr/bin/python3 -c 'import torch, torchvision, google.protobuf' 2>/dev/null; then
  echo "SKIPPED: $1 needs Debian's python3-torch, python3-torchvision and python3-protobuf" \
    "(tools/install_deps.sh --python installs them)"
  exit 0
fi
exec /usr/bin/python3 "$@"
