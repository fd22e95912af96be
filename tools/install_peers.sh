#!/usr/bin/env bash
# Installs the runtimes a qforge user would pick instead of qforge (ONNX
# Runtime, OpenVINO, LiteRT) into a Python venv, for
# `tools/compare_pytorch.py --peers`. Idempotent: when the venv already has the
# pinned versions it does nothing (no apt-get, no pip, no network).
# Needs only Debian packages and PyPI. Run as root, or with sudo available.
#
#   tools/install_peers.sh [VENV]    # VENV defaults to $QFORGE_PEERS_VENV,
#                                    # else /opt/qforge-peers
#   /usr/bin/python3 tools/compare_pytorch.py --peers
#
#   tools/install_peers.sh --torch [VENV]   # PyTorch 2 from PyPI, for
#       tools/compare_training_speed.py; VENV defaults to $QFORGE_TORCH_VENV,
#       else /opt/qforge-torch. Its own venv, without Debian's site-packages
#       (Debian's torch 1.13 would shadow it): about 5.4 GB with the CUDA
#       libraries PyPI's default wheel pulls in, about 70 s to install.
#
# The venv is made from Debian's /usr/bin/python3 with --system-site-packages,
# so Debian's torch 1.13, torchvision 0.14 and numpy (the packages of
# `tools/install_deps.sh --python`, installed here too if missing) stay
# visible in it. numpy is held at Debian's version: a pip-installed numpy 2
# would shadow it, and Debian's torch 1.13 is built against numpy 1.
set -euo pipefail

python=/usr/bin/python3
sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi

if [[ "${1:-}" == "--torch" ]]; then
  venv="${2:-${QFORGE_TORCH_VENV:-/opt/qforge-torch}}"
  torch_pin=2.15.0
  if [[ -x "$venv/bin/python" ]] &&
     "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_pin')" 2>/dev/null; then
    exit 0
  fi
  if ! "$python" -c 'import ensurepip' 2>/dev/null; then
    "${sudo[@]}" apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
      python3-venv >&2
  fi
  [[ -x "$venv/bin/python" ]] || "${sudo[@]}" "$python" -m venv "$venv"
  echo "install_peers: pip installing torch==$torch_pin into $venv" >&2
  "${sudo[@]}" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "torch==$torch_pin" numpy >&2
  exit 0
fi

venv="${1:-${QFORGE_PEERS_VENV:-/opt/qforge-peers}}"

# Each pin is on PyPI as a wheel for Debian 12's Python 3.11 (x86-64); onnx is
# the newest release, checked to export, quantize and load with the others.
pins=(
  onnxruntime==1.32.0
  openvino==2026.4.1
  onnx==1.23.2
  ai-edge-litert==2.3.0
)

# True when $venv/bin/python has every pinned distribution at its version.
have_pins() {
  [[ -x "$venv/bin/python" ]] || return 1
  "$venv/bin/python" - "${pins[@]}" <<'EOF'
import sys
from importlib import metadata
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    try:
        if metadata.version(name) != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
EOF
}

if have_pins; then
  exit 0
fi

# python3-venv brings ensurepip, which `python3 -m venv` needs for pip.
debs=()
for p in python3-venv python3-numpy python3-torch python3-torchvision; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
       grep -q 'install ok installed'; then
    debs+=("$p")
  fi
done
if [[ ${#debs[@]} -gt 0 ]]; then
  echo "install_peers: installing ${debs[*]}" >&2
  "${sudo[@]}" apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
    --no-install-recommends "${debs[@]}" >&2
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "install_peers: creating $venv" >&2
  "${sudo[@]}" "$python" -m venv --system-site-packages "$venv"
fi

numpy_version=$("$python" -c 'import numpy; print(numpy.__version__)')
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "numpy==$numpy_version" >"$constraints"

echo "install_peers: pip installing ${pins[*]}" \
  "(numpy held at $numpy_version)" >&2
"${sudo[@]}" "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --constraint "$constraints" "${pins[@]}" >&2

if ! have_pins; then
  echo "install_peers: $venv still lacks one of ${pins[*]}" >&2
  exit 1
fi
