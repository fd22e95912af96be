#!/usr/bin/env python3
"""qforge's int8 models computed by PyTorch's int8 kernels: every number of a
qforge model file (activation scales and zero points, int8 weights with their
per-channel scales, int32 biases) put into PyTorch 1.13's converted
QuantizableMobileNetV2 (onednn), which then runs the test set. When qforge's
and PyTorch's rows of tools/side_by_side.py differ, this tells the numbers
(what calibration and QAT chose) from the arithmetic (how each runtime rounds).

  python3 tools/pytorch_arithmetic.py --checkpoint=runs/w10/checkpoint.pb \\
      --work_dir=runs/sbs10 --seeds=0,1,2,3,4

`work_dir` is a side_by_side.py --work_dir: its qforge_seed<N> folders hold the
per-channel PTQ and QAT model files of each seed. Prints, per model, the top-1
of qforge's runtime (as tools/runtime_accuracy.py scores it) and PyTorch's on
the same numbers. PyTorch's quantized average pool keeps its input's scale
where qforge's mean requantizes to its own; here the pool is a float mean
quantized at qforge's scale, run at the end of `features` (torchvision's
forward pools with a function, so the module it calls is the only place for it).

With --mix=qat (a work_dir of side_by_side.py --rows=qat, which also keeps
PyTorch's converted QAT model of each seed), both sides' QAT numbers mixed on
PyTorch's kernels instead (--mix=per_channel: the per-channel PTQ numbers, of
side_by_side.py --rows=per_channel): each side's numbers with each side's
pool; qforge's numbers with PyTorch's activation scales, or with PyTorch's
weights and biases, its weights alone (also with their -128s raised to -127,
as qforge's format would hold them) or its biases alone (these with PyTorch's
pool); and each side's numbers with exact logits, the classifier's
accumulators in float instead of rounded to int8. Where the two sides' rows
differ, this tells which part of the numbers carries the difference, by
top-1 and by the test cross-entropy, which is less coarse. A second
table compares each side's own numbers by something less coarse than top-1:
the test cross-entropy of the exact and of the int8 logits, and how the images
whose int8 top logits tie are decided, by class order (the int8 top-1) and by
the exact logits.

With --regrid=126.5,127,127.5 (a work_dir of side_by_side.py
--rows=per_channel), qforge's per-channel PTQ numbers as in the model files,
and with the weights rounded anew on other grids: the checkpoint's float
weights, folded by PyTorch's fuse_model, on max|w| / q per output channel
(qforge's and PyTorch onednn's q is 127.5; qforge's was 127 until 2026-11-30),
clamped to [-127, 127], and the float biases rounded to match; with the mean
share of int8 weights that differ from the files'. Scales a fraction of a
percent apart round many borderline weights the other way: how far that alone
moves top-1 and the test cross-entropy is the size of the weight-rounding draw
in either side's numbers.
"""

import argparse
import copy
import os
import sys

import numpy as np
import torch
from torch.ao import quantization as tq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qforge_protos  # pylint: disable=wrong-import-position
import runtime_logits  # pylint: disable=wrong-import-position
import side_by_side  # pylint: disable=wrong-import-position
import torchvision_checkpoint  # pylint: disable=wrong-import-position

# The rows compared (--mix names): (name, qforge's model file, the stem of
# PyTorch's converted model file), as side_by_side.py writes them.
ROWS = {'per_channel': ('PTQ per-channel histogram', 'model_int8_per_channel_histogram.qfm',
                        'PTQ_per-channel_histogram_onednn'),
        'qat': ('QAT', 'model_int8_qat.qfm', 'QAT_onednn')}
# Each side's own numbers: {side: (its int8 variant, its exact-logits variant)} of mix().
SIDES = {side: (f'{side}, own pool', f'{side}, own pool, exact logits')
         for side in ('qforge numbers', 'PyTorch numbers')}
TIE_ROWS = ('images whose int8 top-1 logits tie', '... with the label among the tied classes',
            '... of those, right by the int8 top-1, the lower class',
            '... of those, right by the exact logits')


class QuantizedMean(torch.nn.Module):
    """Global average pooling whose output has its own scale, as qforge's mean."""

    def __init__(self, scale, zero_point):
        super().__init__()
        self.scale, self.zero_point = scale, zero_point

    def forward(self, x):
        mean = torch.nn.functional.adaptive_avg_pool2d(x.dequantize(), 1)
        return torch.quantize_per_tensor(mean, self.scale, self.zero_point, torch.quint8)


class QforgeModel:
    """A qforge int8 model file's numbers by op name."""

    def __init__(self, path):
        self.pb = qforge_protos.model_pb2()
        self.model = qforge_protos.read(self.pb.Model(), path)
        self.ops = {op.name: op for op in self.model.ops}

    def activation(self, index):
        """(scale, zero point) of an activation, as PyTorch's quint8 (+128)."""
        q = self.model.tensors[index].quantization
        return float(q.scale[0]), int((list(q.zero_point) or [0])[0]) + 128

    def constant(self, index, dtype):
        t = self.model.tensors[index]
        return np.frombuffer(t.data, dtype=dtype).reshape(tuple(t.shape))

    def weight_and_bias(self, op):
        """PyTorch's per-channel qint8 weight (OIHW) and float bias of a conv or linear."""
        x, w, b = op.inputs[:3]
        weight = self.constant(w, 'i1')
        if weight.ndim == 4:
            weight = weight.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        scales = np.array(self.model.tensors[w].quantization.scale, dtype=np.float32)
        input_scale = np.float32(self.model.tensors[x].quantization.scale[0])
        # PyTorch quantizes the float bias back at input_scale * weight_scale: exact
        # while the int32 bias fits float32's 24-bit mantissa.
        bias = self.constant(b, '<i4').astype(np.float64) * (input_scale * scales)
        qweight = per_channel_qint8(torch.from_numpy(np.array(weight)), torch.from_numpy(scales))
        return qweight, torch.from_numpy(bias.astype(np.float32))


def per_channel_qint8(levels, scales):
    """A qint8 tensor quantized per channel along axis 0 with zero points 0, as
    PyTorch's converted convs and linears hold their weights, from its int8
    levels and its scales."""
    return torch._make_per_channel_quantized_tensor(  # pylint: disable=protected-access
        levels.to(torch.int8), scales.double(), torch.zeros(len(scales), dtype=torch.long), 0)


def with_qforge_numbers(converted, qforge):
    """A copy of PyTorch's converted model holding every number of `qforge`."""
    model = copy.deepcopy(converted)
    modules = dict(model.named_modules())
    scale, zero_point = qforge.activation(qforge.ops['quant'].outputs[0])
    modules['quant'].scale.fill_(scale)
    modules['quant'].zero_point.fill_(zero_point)
    assigned = {'quant'}
    for name, op in qforge.ops.items():
        if name in ('quant', 'dequant', 'pool'):
            continue
        if name not in modules:
            sys.exit(f'the qforge model has op {name}, which PyTorch\'s model lacks')
        module = modules[name]
        module.scale, module.zero_point = qforge.activation(op.outputs[0])
        if op.kind in (qforge.pb.CONV2D, qforge.pb.FULLY_CONNECTED):
            module.set_weight_bias(*qforge.weight_and_bias(op))
        assigned.add(name)
    # A block without a residual keeps an unused skip_add.
    unused = {f'{name}.skip_add' for name, m in modules.items()
              if getattr(m, 'use_res_connect', True) is False}
    missed = [name for name, m in modules.items() if hasattr(m, 'scale')
              and hasattr(m, 'zero_point') and name not in assigned | unused]
    if missed:
        sys.exit(f'PyTorch\'s model has quantized modules no qforge op matched: {missed}')
    # After features the functional pool meets a 1x1 map: it changes nothing.
    model.features = torch.nn.Sequential(
        model.features, QuantizedMean(*qforge.activation(qforge.ops['pool'].outputs[0])))
    return model


class PytorchPool(torch.nn.Module):
    """A converted QuantizableMobileNetV2 (scripted) with its pool swapped: None
    keeps PyTorch's (the last conv's scale), else a QuantizedMean."""

    def __init__(self, model, pool):
        super().__init__()
        self.model, self.pool = model, pool

    def pooled(self, x):
        m = self.model
        x = m.features(m.quant(x))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1) if self.pool is None else self.pool(x)
        return torch.flatten(x, 1)

    def forward(self, x):
        return self.model.dequant(self.model.classifier(self.pooled(x)))


class ExactLogits(PytorchPool):
    """A converted model whose classifier keeps its int32 accumulators: the
    dequantized pooled features times the dequantized weights plus the bias, in
    float, where the int8 model rounds the logits to its output scale (and the
    top-1 of a tie goes to the lower class)."""

    def __init__(self, model, pool, classifier):
        super().__init__(model, pool)
        weight, self.bias = pytorch_weight_and_bias(classifier)
        self.weight = weight.dequantize()

    def forward(self, x):
        return self.pooled(x).dequantize() @ self.weight.t() + self.bias


def pytorch_weight_and_bias(module):
    """A converted conv's or linear's quantized weight and float bias."""
    if hasattr(module, '_weight_bias'):
        return module._weight_bias()  # pylint: disable=protected-access
    return module._packed_params._weight_bias()  # pylint: disable=protected-access


def clamped_to_qforge_range(weight):
    """A per-channel qint8 weight with its -128s raised to -127, the least int8
    weight qforge's format holds."""
    return per_channel_qint8(weight.int_repr().clamp(min=-127), weight.q_per_channel_scales())


def with_their_weights(ours, qforge, their_modules, take, clamp=False):
    """A copy of `ours` with PyTorch's int8 weights (with their scales) where
    take[0], and PyTorch's float biases where take[1], in every conv and linear;
    with `clamp`, PyTorch's weights clamped to qforge's [-127, 127]."""
    model = copy.deepcopy(ours)
    for name, module in model.named_modules():
        op = qforge.ops.get(name)
        if op is not None and op.kind in (qforge.pb.CONV2D, qforge.pb.FULLY_CONNECTED):
            weight, bias = pytorch_weight_and_bias(their_modules[name])
            if clamp:
                weight = clamped_to_qforge_range(weight)
            pairs = zip(pytorch_weight_and_bias(module), (weight, bias), take)
            module.set_weight_bias(*[b if swap else a for a, b, swap in pairs])
    return model


def unwrapped_modules(model):
    """A with_qforge_numbers model's modules by the names of PyTorch's model
    (its features sit wrapped in a Sequential with the pool)."""
    modules = {f'features.{k}': m for k, m in model.features[0].named_modules() if k}
    modules.update({f'classifier.{k}': m for k, m in model.classifier.named_modules() if k})
    return modules


def on_grid(weight, grid):
    """(int8 levels as float, scale per output channel) of a float weight
    [O, ...] rounded on the scale max|w| / grid, clamped to [-127, 127]; an
    all-zero channel gets qforge's least scale, float32's epsilon."""
    scale = (weight.reshape(len(weight), -1).abs().max(1).values / grid).clamp(
        min=float(np.finfo(np.float32).eps))
    per_channel = scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    return torch.clamp(torch.round(weight / per_channel), -127, 127), scale


def regridded(ours, qforge, fused_float, grid):
    """A copy of `ours` with every conv's and linear's float (folded) weights
    rounded anew per output channel on the scale max|w| / grid, clamped to
    qforge's [-127, 127], and the float bias rounded as qforge's int32 bias is,
    to steps of input scale x weight scale; and the share of int8 weights that
    differ from qforge's."""
    model = copy.deepcopy(ours)
    modules, float_modules = unwrapped_modules(model), dict(fused_float.named_modules())
    changed = total = 0
    for name, op in qforge.ops.items():
        if op.kind not in (qforge.pb.CONV2D, qforge.pb.FULLY_CONNECTED):
            continue
        layer = float_modules[name]
        layer = layer if hasattr(layer, 'weight') else layer[0]  # a fused conv + ReLU
        weight, bias = layer.weight.detach().double(), layer.bias.detach().double()
        levels, scale = on_grid(weight, grid)
        step = qforge.activation(op.inputs[0])[0] * scale
        qweight = per_channel_qint8(levels, scale)
        old, _ = pytorch_weight_and_bias(modules[name])
        changed += int((old.int_repr().double() != levels).sum())
        total += levels.numel()
        modules[name].set_weight_bias(qweight, (torch.round(bias / step) * step).float())
    return model, changed / total


def mix(skeleton, qforge, theirs, score):
    """{variant: score(model)} of qforge's and PyTorch's (`theirs`, scripted) numbers mixed."""
    their_modules = dict(theirs.named_modules())
    ours = with_qforge_numbers(skeleton, qforge)
    results = {'qforge numbers, own pool': score(ours)}
    ours.features, pool = ours.features  # PyTorch's pool from here on; qforge's mean
    results['qforge numbers, PyTorch pool'] = score(ours)
    results['PyTorch numbers, own pool'] = score(PytorchPool(theirs, None))
    results["PyTorch numbers, qforge's pool scale"] = score(PytorchPool(theirs, pool))
    scales = copy.deepcopy(ours)
    for name, module in scales.named_modules():
        if name in qforge.ops and name not in ('quant', 'dequant', 'pool'):
            module.scale = float(their_modules[name].scale)
            module.zero_point = int(their_modules[name].zero_point)
    scales.quant.scale.copy_(their_modules['quant'].scale)
    scales.quant.zero_point.copy_(their_modules['quant'].zero_point)
    results["qforge numbers, PyTorch's activation scales"] = score(scales)
    for label, take in (("PyTorch's weights and biases", (True, True)),
                        ("PyTorch's weights", (True, False)), ("PyTorch's biases", (False, True))):
        results[f'qforge numbers, {label}'] = score(
            with_their_weights(ours, qforge, their_modules, take))
    results["qforge numbers, PyTorch's weights in [-127, 127]"] = score(
        with_their_weights(ours, qforge, their_modules, (True, False), clamp=True))
    results['qforge numbers, own pool, exact logits'] = score(
        ExactLogits(ours, pool, ours.classifier[1]))
    results['PyTorch numbers, own pool, exact logits'] = score(
        ExactLogits(theirs, None, their_modules['classifier.1']))
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', required=True, help='the float checkpoint.pb both sides used')
    p.add_argument('--work_dir', required=True, help="a side_by_side.py run's --work_dir")
    p.add_argument('--seeds', default='0')
    p.add_argument('--mix', choices=sorted(ROWS),
                   help="mix qforge's and PyTorch's numbers of this row instead (see above)")
    p.add_argument('--model_outputs', default=runtime_logits.MODEL_OUTPUTS)
    p.add_argument('--regrid', type=grids,
                   help="grids q, comma-separated: qforge's per-channel PTQ numbers with the "
                   'weights rounded on max|w| / q instead (see this file\'s docstring)')
    args = p.parse_args()
    if args.mix and args.regrid is not None:
        sys.exit('--mix and --regrid are two different runs; give one')
    if not args.mix and args.regrid is None:
        runtime_logits.require(args.model_outputs)
    torch.set_num_threads(1)
    checkpoint = torchvision_checkpoint.read_checkpoint(args.checkpoint)
    train, train_labels, test, labels = runtime_logits.fashion_mnist()
    normalize = side_by_side.Normalizer(train)
    float_model = side_by_side.pytorch_model(torchvision_checkpoint.state_dict(checkpoint),
                                             checkpoint.config.model.width_mult, 10)
    # Only the structure matters: every number is replaced.
    skeleton = side_by_side.pytorch_ptq(float_model, tq.get_default_qconfig('onednn'), 'onednn',
                                        {'train': train, 'train_labels': train_labels},
                                        normalize, 0)
    if args.mix:
        print_mix(args, skeleton, test, labels, normalize)
        return
    if args.regrid is not None:
        fused_float = copy.deepcopy(float_model)
        fused_float.fuse_model()
        print_regrid(args, skeleton, fused_float, test, labels, normalize)
        return
    images = normalize(test).numpy().transpose(0, 2, 3, 1)  # NHWC
    print('| model | seed | qforge runtime top-1 | PyTorch kernels on the same numbers |')
    print('|---|---|---|---|')
    for seed in [int(s) for s in args.seeds.split(',')]:
        for name, file_name, _ in ROWS.values():
            path = os.path.join(args.work_dir, f'qforge_seed{seed}', file_name)
            if not os.path.exists(path):
                sys.exit(f'{path}: not found (run side_by_side.py with this --work_dir and seed)')
            ours = runtime_logits.runtime_top1(path, images, labels, args.model_outputs)
            theirs = side_by_side.accuracy(with_qforge_numbers(skeleton, QforgeModel(path)), test,
                                           labels, normalize)
            print(f'| {name} | {seed} | {ours:.2%} | {theirs:.2%} |', flush=True)


def test_logits(model, images, normalize, batch=500):
    """The model's logits [N, classes] for `images`, in float64."""
    with torch.no_grad():
        return torch.cat([model(normalize(images[i:i + batch])).double()
                          for i in range(0, len(images), batch)])


def top1(logits, labels):
    """argmax is the first of tied maxima: on the int8 logits' grid a tie goes to
    the lower class, as in side_by_side.accuracy and qforge's runtime."""
    return float((logits.argmax(1) == labels).double().mean())


def top1_and_loss(logits, labels):
    """(top-1, mean cross-entropy) of logits [N, classes] against labels [N]."""
    return top1(logits, labels), float(torch.nn.functional.cross_entropy(logits, labels))


def tie_decisions(int8, exact, labels):
    """Counts of test images whose int8 top logits tie: all of them; those with the
    label among the tied classes; of those, the ones the int8 top-1 (the lower
    class) gets right and the ones the exact logits get right."""
    top = int8.max(1, keepdim=True).values
    tied = (int8 == top).sum(1) > 1
    label_tied = tied & (int8.gather(1, labels[:, None])[:, 0] == top[:, 0])
    return [int(tied.sum()), int(label_tied.sum()),
            int((label_tied & (int8.argmax(1) == labels)).sum()),
            int((label_tied & (exact.argmax(1) == labels)).sum())]


def add_side_stats(stats, int8, exact, labels):
    """Adds one draw of a side's logits to `stats` {row: [cross-entropy per draw]
    or count summed over draws}."""
    for name, logits in (('exact', exact), ('int8', int8)):
        loss = torch.nn.functional.cross_entropy(logits, labels)
        stats.setdefault(f'test cross-entropy, {name} logits', []).append(float(loss))
    for row, count in zip(TIE_ROWS, tie_decisions(int8, exact, labels)):
        stats[row] = stats.get(row, 0) + count


def mix_tables(args, skeleton, test, labels, normalize):
    """({variant: [(top-1, test cross-entropy) per seed]},
    {side: {row: per-seed losses or summed counts}})."""
    table, sides = {}, {side: {} for side in SIDES}
    target = torch.from_numpy(labels)
    _, ours, stem = ROWS[args.mix]
    for seed in [int(s) for s in args.seeds.split(',')]:
        paths = (os.path.join(args.work_dir, f'qforge_seed{seed}', ours),
                 os.path.join(args.work_dir, f'{stem}_seed{seed}.pt'))
        for path in paths:
            if not os.path.exists(path):
                sys.exit(f'{path}: not found (run side_by_side.py --rows={args.mix} with this '
                         '--work_dir and seed)')
        qforge, theirs = QforgeModel(paths[0]), torch.jit.load(paths[1])
        mixed = mix(skeleton, qforge, theirs, lambda model: test_logits(model, test, normalize))
        for variant, logits in mixed.items():
            table.setdefault(variant, []).append(top1_and_loss(logits, target))
        for side, (int8, exact) in SIDES.items():
            add_side_stats(sides[side], mixed[int8], mixed[exact], target)
        print(f'seed {seed} done', flush=True)
    return table, sides


def print_mix(args, skeleton, test, labels, normalize):
    table, sides = mix_tables(args, skeleton, test, labels, normalize)
    seeds = args.seeds.replace(',', ', ')
    print(f'| {ROWS[args.mix][0]} numbers on PyTorch\'s kernels | seeds {seeds} | mean '
          '| test cross-entropy (mean) |')
    print('|---|---|---|---|')
    for variant, values in table.items():
        accuracies, losses = zip(*values)
        print(f'| {variant} | ' + ' '.join(f'{v:.2%}' for v in accuracies)
              + f' | {np.mean(accuracies):.3%} | {np.mean(losses):.5f} |')
    print(f'\n| each side\'s own numbers, seeds {seeds} | ' + ' | '.join(SIDES) + ' |')
    print('|---|---|---|')
    for row, value in sides['qforge numbers'].items():
        values = [sides[side][row] for side in SIDES]
        if isinstance(value, list):
            print(f'| {row} (mean) | ' + ' | '.join(f'{np.mean(v):.5f}' for v in values) + ' |')
        else:
            print(f'| {row} (all seeds) | ' + ' | '.join(str(v) for v in values) + ' |')


def grids(text):
    """--regrid's value: distinct finite grids q > 0."""
    try:
        values = [float(g) for g in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: not comma-separated numbers') from None
    if not all(np.isfinite(v) and v > 0 for v in values) or len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f'{text!r}: each grid must be a distinct number above 0')
    return values


def print_regrid(args, skeleton, fused_float, test, labels, normalize):
    seeds = [int(s) for s in args.seeds.split(',')]
    target = torch.from_numpy(labels)
    table = {}
    for seed in seeds:
        path = os.path.join(args.work_dir, f'qforge_seed{seed}', ROWS['per_channel'][1])
        if not os.path.exists(path):
            sys.exit(f'{path}: not found (run side_by_side.py --rows=per_channel with this '
                     '--work_dir and seed)')
        qforge = QforgeModel(path)
        ours = with_qforge_numbers(skeleton, qforge)
        for grid in [None] + args.regrid:
            model, changed = (ours, 0.0) if grid is None else regridded(
                ours, qforge, fused_float, grid)
            logits = test_logits(model, test, normalize)
            table.setdefault(grid, []).append((*top1_and_loss(logits, target), changed))
        print(f'seed {seed} done', flush=True)
    print(f'| weights of qforge\'s per-channel PTQ on max\\|w\\| / q | seeds '
          f'{args.seeds.replace(",", ", ")} | mean | test cross-entropy (mean) '
          '| int8 weights not qforge\'s (mean) |')
    print('|---|---|---|---|---|')
    for grid, values in table.items():
        accuracies, losses, changed = zip(*values)
        label = 'as in the model file' if grid is None else f'q = {grid:g}'
        print(f'| {label} | ' + ' '.join(f'{v:.2%}' for v in accuracies)
              + f' | {np.mean(accuracies):.3%} | {np.mean(losses):.5f} | {np.mean(changed):.2%} |')


if __name__ == '__main__':
    main()
