"""The qforge runtime's logits from Python, and the Fashion-MNIST files the
tools score on: the one way the Python tools run a model file (through
tools/model_outputs: one thread, the default backend) and read the dataset.
Only NumPy, so that both Debian's python3 (with PyTorch) and the venv of
tools/install_peers.sh (ONNX Runtime, OpenVINO) use it.
"""

import gzip
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
MODEL_OUTPUTS = os.path.join(ROOT, 'bazel-bin/tools/model_outputs')


def read_idx(name):
    with gzip.open(os.path.join(FASHION_MNIST, name)) as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=16 if 'images' in name else 8)


def fashion_mnist():
    """(train images, train labels, test images, test labels); images [N, 1, 28, 28] uint8."""
    train = read_idx('train-images-idx3-ubyte.gz').reshape(-1, 1, 28, 28)
    test = read_idx('t10k-images-idx3-ubyte.gz').reshape(-1, 1, 28, 28)
    return (train, read_idx('train-labels-idx1-ubyte.gz').astype(np.int64),
            test, read_idx('t10k-labels-idx1-ubyte.gz').astype(np.int64))


def require(model_outputs):
    """Exits, saying how to build it, when `model_outputs` is not there."""
    if not os.access(model_outputs, os.X_OK):
        sys.exit(f'{model_outputs}: not found; bazel build //tools:model_outputs')


def runtime_logits(model, images, model_outputs=MODEL_OUTPUTS):
    """The logits [N, classes] of the model file `model` for `images`, float32
    [N, H, W, C] as the model takes them (normalized)."""
    with tempfile.TemporaryDirectory() as work:
        inputs, outputs = os.path.join(work, 'x.f32'), os.path.join(work, 'y.f32')
        np.ascontiguousarray(images, np.float32).tofile(inputs)
        run = subprocess.run([model_outputs, f'--model={model}', f'--inputs={inputs}',
                              f'--count={len(images)}', f'--outputs={outputs}'], check=False)
        if run.returncode != 0:
            sys.exit(f'{model}: model_outputs failed (exit {run.returncode})')
        return np.fromfile(outputs, np.float32).reshape(len(images), -1)


def runtime_top1(model, images, labels, model_outputs=MODEL_OUTPUTS):
    """The share of `images` whose top logit is their label (ties: the lower class)."""
    return float((runtime_logits(model, images, model_outputs).argmax(1) == labels).mean())
