#!/usr/bin/env python3
"""Moves MobileNetV2 weights between PyTorch and qforge's trainer.

  import: a torchvision MobileNetV2 state_dict (.pth) -- the tutorial's
          mobilenet_v2-b0353104.pth, a QuantizableMobileNetV2's before fusion,
          or one `export` wrote -- into a qforge float checkpoint:
      python3 tools/torchvision_checkpoint.py import mobilenet_v2.pth \\
          --output_dir=runs/imported [--width_mult=1.0] [--geometry=imagenet] \\
          [-- more trainer flags, e.g. --dataset=... --data_dir=...]
  export: a qforge checkpoint.pb into a state_dict that torchvision's (and the
          tutorial's) MobileNetV2 class loads:
      python3 tools/torchvision_checkpoint.py export runs/x/checkpoint.pb out.pth

PyTorch keeps conv weights OIHW, qforge OHWI; the names are the same (qforge's
trainer names its tensors after PyTorch's state_dict). Import writes the
tensors in qforge's layout and runs `trainer import`, which builds the model
the config describes and names the first tensor that does not fit it.

Needs Debian's python3-torch and python3-protobuf, and protoc.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

import qforge_protos

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_state_dict(path):
    """The state_dict in a .pth: bare, under 'state_dict', or a whole module."""
    loaded = torch.load(path, map_location='cpu')
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, dict) and 'state_dict' in loaded:
        loaded = loaded['state_dict']
    if not isinstance(loaded, dict):
        sys.exit(f'{path}: holds a {type(loaded).__name__}, not a state_dict')
    state = collections.OrderedDict()
    for name, value in loaded.items():
        if name.startswith('module.'):  # saved from DataParallel
            name = name[len('module.'):]
        if name.endswith('num_batches_tracked'):
            continue  # qforge's batch norms use a fixed momentum
        if not torch.is_tensor(value) or not value.is_floating_point():
            sys.exit(f'{path}: {name} is not a float tensor (a quantized model\'s?)')
        state[name] = value
    return state


def to_qforge(value):
    """OIHW -> OHWI for convs; other tensors keep their layout."""
    array = value.detach().to(torch.float32).numpy()
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1) if array.ndim == 4 else array)


def to_pytorch(array):
    """OHWI -> OIHW for convs."""
    return torch.from_numpy(np.ascontiguousarray(
        array.transpose(0, 3, 1, 2) if array.ndim == 4 else array))


def default_trainer():
    return os.path.join(ROOT, 'bazel-bin', 'trainer', 'trainer')


def import_command(args, trainer_flags):
    state = load_state_dict(args.state_dict)
    with tempfile.TemporaryDirectory() as work_dir:
        tensors = qforge_protos.checkpoint_pb2().Checkpoint()
        for name, value in state.items():
            array = to_qforge(value)
            tensor = tensors.tensors.add()
            tensor.name = name
            tensor.shape.extend(array.shape)
            tensor.data = array.astype('<f4').tobytes()
        tensors_path = os.path.join(work_dir, 'tensors.pb')
        with open(tensors_path, 'wb') as f:
            f.write(tensors.SerializeToString())
        command = [args.trainer, 'import', f'--tensors={tensors_path}',
                   f'--output_dir={os.path.abspath(args.output_dir)}',
                   f'--width_mult={args.width_mult}', f'--geometry={args.geometry}',
                   f'--relu6={"true" if args.relu6 else "false"}'] + trainer_flags
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            sys.exit(result.returncode)


def read_checkpoint(path):
    """A qforge checkpoint.pb as its protobuf message."""
    return qforge_protos.read(qforge_protos.checkpoint_pb2().Checkpoint(), path)


def state_dict(checkpoint):
    """A float checkpoint's tensors as a PyTorch state_dict."""
    state = collections.OrderedDict()
    for tensor in checkpoint.tensors:
        array = np.frombuffer(tensor.data, dtype='<f4').reshape(tuple(tensor.shape))
        state[tensor.name] = to_pytorch(array.astype(np.float32))
        if tensor.name.endswith('.running_var'):
            prefix = tensor.name[:-len('running_var')]
            state[prefix + 'num_batches_tracked'] = torch.tensor(checkpoint.step)
    return state


def export_command(args):
    checkpoint = read_checkpoint(args.checkpoint)
    if checkpoint.HasField('qat'):
        sys.exit(f'{args.checkpoint}: a QAT checkpoint; export the float one it started from')
    torch.save(state_dict(checkpoint), args.state_dict)
    if checkpoint.config.model.geometry == 'small' or (
            not checkpoint.config.model.geometry and checkpoint.config.dataset != 'imagefolder'):
        print('note: the model has qforge\'s small-input strides; in PyTorch set '
              'features[0][0].stride and features[2].conv[1][0].stride to (1, 1)')
    print(f'wrote {args.state_dict}: {len(checkpoint.tensors)} tensors, '
          f'MobileNetV2 width {checkpoint.config.model.width_mult:g}')


def main():
    argv = sys.argv[1:]
    trainer_flags = []
    if '--' in argv:
        trainer_flags = argv[argv.index('--') + 1:]
        argv = argv[:argv.index('--')]
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    imp = commands.add_parser('import', help='a PyTorch state_dict into a qforge checkpoint')
    imp.add_argument('state_dict', help='.pth file')
    imp.add_argument('--output_dir', required=True, help='where checkpoint.pb goes')
    imp.add_argument('--width_mult', type=float, default=1.0)
    imp.add_argument('--geometry', default='imagenet', choices=['imagenet', 'small'])
    imp.add_argument('--relu6', type=lambda v: v.lower() in ('1', 'true', 'yes'), default=True,
                     help='ReLU6, as torchvision (true), or ReLU, as the tutorial\'s code')
    imp.add_argument('--trainer', default=default_trainer(),
                     help='the trainer binary (bazel build //trainer)')
    exp = commands.add_parser('export', help='a qforge checkpoint into a PyTorch state_dict')
    exp.add_argument('checkpoint', help='checkpoint.pb')
    exp.add_argument('state_dict', help='.pth file to write')
    args = parser.parse_args(argv)
    if args.command == 'import':
        import_command(args, trainer_flags)
    else:
        export_command(args)


if __name__ == '__main__':
    main()
