#!/usr/bin/env python3
"""qforge and PyTorch's eager-mode quantization side by side, on the same float
weights and the same data: one table of accuracy, model size and int8 latency.

  bazel build //trainer //tools:benchmark
  python3 tools/side_by_side.py --checkpoint=runs/w05/checkpoint.pb [--work_dir=DIR]
  python3 tools/side_by_side.py --train_in_pytorch=EPOCHS [--width_mult=0.5]
  python3 tools/side_by_side.py --checkpoint=... --seeds=0,1,2,3,4
  python3 tools/side_by_side.py --checkpoint=... --seeds=5,6 --rows=per_channel,qat

The checkpoint is a qforge float MobileNetV2 trained on Fashion-MNIST with
ReLU (--relu6=false, as the tutorial's code and torchvision's
QuantizableMobileNetV2 have it); or, the other way round, the float model is
trained in PyTorch with qforge's recipe and imported into qforge. It is exported to PyTorch
(tools/torchvision_checkpoint.py) into torchvision's QuantizableMobileNetV2
with qforge's small-input geometry (one input channel; the first conv and the
second stage at stride 1), and both run the tutorial's workflow from it:

  - post-training quantization with per-tensor min/max observers (PyTorch's
    default_qconfig; qforge's minmax_per_tensor) and with per-channel weights
    and histogram activations (PyTorch's get_default_qconfig for onednn and
    for qnnpack; qforge's per_channel_histogram), calibrated on 32 batches of
    30 training images;
  - quantization-aware training with the tutorial's schedule: 8 epochs of 20
    batches of 30, SGD at 1e-4, observers off after epoch 3, batch-norm
    statistics frozen after epoch 2 (PyTorch's get_default_qat_qconfig for
    onednn; qforge's qat with its defaults, the same recipe);
  - the row qat_precise_bn (in the default rows): qforge's QAT as its main
    job runs it, the same recipe with BN statistics re-estimated over 200
    batches when they freeze (qat --precise_bn_batches=200), next to
    PyTorch's tutorial QAT again.

Accuracy is top-1 on the full test set: PyTorch's converted model, and
qforge's int8 model run by qforge's runtime. Size: PyTorch's scripted model
file, qforge's .qfm. Latency: batch 1, one thread, median of 200 runs, in this
process for PyTorch and tools/benchmark for qforge.

The calibration and QAT batches are the same on both sides: PyTorch replays
qforge's loader (its order, and the crop and flip of each image) and, in QAT,
the dropout masks qforge's classifier draws at each step. By default
PTQ calibrates on the float run's seed and QAT draws with --seed. With
--seeds, each seed is one calibration draw and one QAT draw on both sides, and
a last table gives each row's mean over the seeds and qforge's lead per seed:
single runs differ by a few test images with the draw alone.

PyTorch 1.13 is Debian's python3-torch (tools/install_deps.sh --python).
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torch.ao import quantization as tq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qforge_protos  # pylint: disable=wrong-import-position
import runtime_logits  # pylint: disable=wrong-import-position
import torchvision_checkpoint  # pylint: disable=wrong-import-position

ROOT = runtime_logits.ROOT


# --rows names: PyTorch's min/max and per-channel PTQ with onednn, its
# per-channel PTQ with qnnpack (qforge's per-channel row again), QAT, and
# qforge's QAT as its main job runs it (the tutorial's recipe and precise BN
# statistics) next to PyTorch's QAT again.
ROWS = ('minmax', 'per_channel', 'qnnpack', 'qat', 'qat_precise_bn')
PRECISE_BN = 'QAT, qforge + precise BN'
PRECISE_BN_BATCHES = 200  # the main job's (README, "Quantization-aware training")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument('--checkpoint', help='a qforge float checkpoint.pb')
    source.add_argument('--train_in_pytorch', type=int, metavar='EPOCHS',
                        help='instead, train the float model in PyTorch for EPOCHS epochs with '
                        "qforge's recipe and import it into qforge")
    p.add_argument('--width_mult', type=float, default=0.5, help='with --train_in_pytorch')
    p.add_argument('--work_dir', default='', help='where both sides write (default: a temp dir)')
    p.add_argument('--trainer', default=os.path.join(ROOT, 'bazel-bin/trainer/trainer'))
    p.add_argument('--benchmark', default=os.path.join(ROOT, 'bazel-bin/tools/benchmark'))
    p.add_argument('--latency_runs', type=int, default=200)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--seeds', default='',
                   help='comma-separated: repeat PTQ and QAT with each seed as the calibration '
                   'and QAT draw, and summarize (latency on the first seed only)')
    p.add_argument('--rows', default=','.join(ROWS),
                   help=f'comma-separated, of {", ".join(ROWS)}: the quantized rows to run '
                   '(the float row always runs)')
    args = p.parse_args()
    args.rows = args.rows.split(',')
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        p.error(f'--rows: unknown {", ".join(unknown)} (known: {", ".join(ROWS)})')
    return args


# Data.

class Normalizer:
    """qforge's normalization: the training pixels' mean and std (in [0, 1])."""

    def __init__(self, train_images):
        pixels = train_images.astype(np.float64) / 255.0
        self.mean, self.std = np.float32(pixels.mean()), np.float32(pixels.std())

    def __call__(self, images):
        return torch.from_numpy(((images.astype(np.float32) / 255.0 - self.mean) / self.std)
                                .astype(np.float32))


# qforge's batch order and crops (common/random.h, data/batch_loader.cc,
# data/transforms.cc), so that PyTorch calibrates and fine-tunes on exactly the
# images, in the batches and with the crops, that qforge's ptq and qat use.

MASK = (1 << 64) - 1


GOLDEN = 0x9e3779b97f4a7c15


def finalize(z):
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK
    return z ^ (z >> 31)


def mix64(x):
    return finalize((x + GOLDEN) & MASK)


def derive_seed(*keys):
    h = 0x6a09e667f3bcc909
    for k in keys:
        h = mix64(h ^ mix64(k))
    return h


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + GOLDEN) & MASK
        return finalize(self.state)

    def below(self, n):
        """Lemire's method with rejection, as SplitMix64::Below."""
        m = self.next() * n
        if m & MASK < n:
            threshold = ((1 << 64) - n) % n
            while m & MASK < threshold:
                m = self.next() * n
        return m >> 64


def qforge_order(count, seed, epoch):
    """The image order of a qforge loader's epoch (Fisher-Yates)."""
    order = list(range(count))
    rng = SplitMix64(derive_seed(seed, 1, epoch))
    for i in range(count - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return np.array(order)


def fnv1a(name):
    """qforge's fixed hash of a layer name (trainer/nn/elementwise.cc's NameKey)."""
    h = 0xcbf29ce484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001b3) & MASK
    return h


def qforge_dropout_mask(shape, p, seed, step, name='classifier.0'):
    """The mask qforge's Dropout draws for a whole batch at a training step: one
    SplitMix64 stream from (seed, the layer name's hash, step) over the
    elements in order, each dropped where its 24-bit uniform is below p and
    otherwise scaled by 1 / (1 - p), in float32 as qforge computes them."""
    count = int(np.prod(shape))
    base = np.uint64(derive_seed(seed, fnv1a(name), step))
    with np.errstate(over='ignore'):
        z = base + np.uint64(GOLDEN) * np.arange(1, count + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
        z = z ^ (z >> np.uint64(31))
    uniform = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    p = np.float32(p)
    keep = np.float32(1) / (np.float32(1) - p)
    return np.where(uniform < p, np.float32(0), keep).reshape(shape)


class ReplayedDropout(torch.nn.Module):
    """Dropout with the masks qforge's qat draws at each step (set `step`)."""

    def __init__(self, p, seed):
        super().__init__()
        self.p, self.seed, self.step = p, seed, 0

    def forward(self, x):
        if not self.training or self.p <= 0:
            return x
        return x * torch.from_numpy(qforge_dropout_mask(tuple(x.shape), self.p, self.seed,
                                                        self.step))


def crop_flip(images, draws, pad=2):
    """qforge's training augmentation: each image cropped from its zero-padded
    self at (y, x) and mirrored if `flip`, for (y, x, flip) in `draws`."""
    n, c, h, w = images.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), images.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = images
    out = np.empty_like(images)
    for i, (y, x, flip) in enumerate(draws):
        crop = padded[i, :, y:y + h, x:x + w]
        out[i] = crop[:, :, ::-1] if flip else crop
    return out


def qforge_augment(images, indices, seed, epoch, pad=2):
    """qforge's crops and flips, drawn from (seed, epoch, index) as its loader does."""
    draws = []
    for index in indices:
        rng = SplitMix64(derive_seed(seed, 2, epoch, int(index)))
        y, x = rng.below(2 * pad + 1), rng.below(2 * pad + 1)
        draws.append((y, x, rng.next() >> 63 != 0))
    return crop_flip(images, draws, pad)


def augment(images, rng, pad=2):
    """The same augmentation with numpy's generator (PyTorch's own training)."""
    draws = [(*rng.integers(0, 2 * pad + 1, size=2), rng.integers(0, 2) == 1)
             for _ in range(len(images))]
    return crop_flip(images, draws, pad)


# PyTorch's side.

def pytorch_model(state, width_mult, classes):
    """torchvision's QuantizableMobileNetV2 in qforge's small-input geometry,
    holding the checkpoint's float weights."""
    model = torchvision.models.quantization.mobilenet_v2(width_mult=width_mult,
                                                         num_classes=classes)
    first = model.features[0][0]
    model.features[0][0] = torch.nn.Conv2d(1, first.out_channels, 3, 1, 1, bias=False)
    model.features[2].conv[1][0].stride = (1, 1)  # the second stage's first depthwise conv
    model.load_state_dict(state)
    return model.eval()


def accuracy(model, images, labels, normalize, batch=500):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            correct += int((model(normalize(images[i:i + batch])).argmax(1) ==
                            torch.from_numpy(labels[i:i + batch])).sum())
    return correct / len(images)


def calibrate(model, train, normalize, seed, batches=32, batch_size=30):
    """qforge ptq's calibration images: the first 32 batches of 30 of its loader's
    first epoch, unaugmented."""
    order = qforge_order(len(train), seed, 0)
    with torch.no_grad():
        for b in range(batches):
            model(normalize(train[order[b * batch_size:(b + 1) * batch_size]]))


def script_stats(model, work_dir, name, runs):
    """(file bytes, median ms per image at batch 1, one thread) of a scripted model;
    no latency (NaN) when runs is 0."""
    scripted = torch.jit.script(model)
    path = os.path.join(work_dir, f'{name}.pt')
    torch.jit.save(scripted, path)
    if runs == 0:
        return os.path.getsize(path), float('nan')
    x = torch.randn(1, 1, 28, 28)
    times = []
    with torch.no_grad():
        for _ in range(20):
            scripted(x)
        for _ in range(runs):
            start = time.perf_counter()
            scripted(x)
            times.append((time.perf_counter() - start) * 1e3)
    return os.path.getsize(path), float(np.median(times))


def pytorch_ptq(float_model, qconfig, engine, data, normalize, seed):
    torch.backends.quantized.engine = engine
    model = copy.deepcopy(float_model).eval()
    model.fuse_model()
    model.qconfig = qconfig
    tq.prepare(model, inplace=True)
    calibrate(model, data['train'], normalize, seed)
    return tq.convert(model, inplace=False)


def pytorch_qat(float_model, engine, data, normalize, seed, dropout, epochs=8, batches=20,
                batch_size=30, qconfig=None):
    """The tutorial's QAT loop, on qforge qat's batches, crops and dropout masks (its seed);
    `qconfig` None is the engine's default QAT qconfig."""
    torch.backends.quantized.engine = engine
    model = copy.deepcopy(float_model)
    model.classifier[0] = ReplayedDropout(dropout, seed)
    model.fuse_model(is_qat=True)
    model.qconfig = qconfig or tq.get_default_qat_qconfig(engine)
    model.train()
    tq.prepare_qat(model, inplace=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    criterion = torch.nn.CrossEntropyLoss()
    train, labels = data['train'], data['train_labels']
    for epoch in range(epochs):
        model.train()
        order = qforge_order(len(train), seed, epoch)
        for b in range(batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            model.classifier[0].step = epoch * batches + b
            loss = criterion(model(normalize(qforge_augment(train[idx], idx, seed, epoch))),
                             torch.from_numpy(labels[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch > 3:
            model.apply(tq.disable_observer)
        if epoch > 2:
            model.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
    model.classifier[0] = torch.nn.Dropout(dropout)  # the identity in eval, and scriptable
    return tq.convert(model.eval(), inplace=False)


def train_in_pytorch(data, width_mult, epochs, seed, path):
    """A float model trained in PyTorch with qforge's default recipe (SGD with
    Nesterov momentum 0.9, weight decay 4e-5, one-cycle rate peaking at 0.1,
    batches of 64, a 2-pixel padded crop and a flip), saved as a state_dict."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    normalize = Normalizer(data['train'])
    model = torchvision.models.quantization.mobilenet_v2(width_mult=width_mult, num_classes=10)
    first = model.features[0][0]
    model.features[0][0] = torch.nn.Conv2d(1, first.out_channels, 3, 1, 1, bias=False)
    model.features[2].conv[1][0].stride = (1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=4e-5)
    train, labels = data['train'], data['train_labels']
    steps = (len(train) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=epochs,
                                                   steps_per_epoch=steps)
    criterion = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train))
        start = time.perf_counter()
        for b in range(steps):
            idx = order[b * 64:(b + 1) * 64]
            loss = criterion(model(normalize(augment(train[idx], rng))),
                             torch.from_numpy(labels[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        print(f'PyTorch float epoch {epoch + 1}/{epochs}: test top-1 '
              f'{accuracy(model, data["test"], data["test_labels"], normalize):.2%} '
              f'({time.perf_counter() - start:.0f} s)', flush=True)
    torch.save(model.state_dict(), path)


def import_into_qforge(state_dict, width_mult, args, work_dir):
    """The PyTorch-trained weights as a qforge checkpoint; returns its path."""
    out = os.path.join(work_dir, 'imported')
    run([sys.executable, os.path.join(ROOT, 'tools', 'torchvision_checkpoint.py'), 'import',
         state_dict, f'--output_dir={out}', f'--width_mult={width_mult}', '--geometry=small',
         '--relu6=false', f'--trainer={args.trainer}', '--', '--dataset=fashion-mnist'])
    return os.path.join(out, 'checkpoint.pb')


def pytorch_rows(checkpoint, data, runs, seed, calibration_seed, rows):
    """{row: (top-1, bytes, ms)} for the --rows `rows`; ms is NaN when runs is 0."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    normalize = Normalizer(data['train'])
    model = pytorch_model(torchvision_checkpoint.state_dict(checkpoint),
                          checkpoint.config.model.width_mult, 10)
    test, labels = data['test'], data['test_labels']
    work = data['work_dir']
    results = {}
    size, ms = script_stats(model, work, 'float', runs)
    results['float'] = (accuracy(model, test, labels, normalize), size, ms)
    cs = calibration_seed
    recipes = [('minmax', 'PTQ min/max per tensor', 'onednn', lambda: pytorch_ptq(
                    model, tq.default_qconfig, 'onednn', data, normalize, cs)),
               ('per_channel', 'PTQ per-channel histogram', 'onednn', lambda: pytorch_ptq(
                    model, tq.get_default_qconfig('onednn'), 'onednn', data, normalize, cs)),
               ('qnnpack', 'PTQ per-channel histogram', 'qnnpack', lambda: pytorch_ptq(
                    model, tq.get_default_qconfig('qnnpack'), 'qnnpack', data, normalize, cs)),
               ('qat', 'QAT', 'onednn', lambda: pytorch_qat(
                    model, 'onednn', data, normalize, seed, checkpoint.config.model.dropout))]
    for row, name, engine, make in recipes:
        if row not in rows and not (row == 'qat' and 'qat_precise_bn' in rows):
            continue
        print(f'PyTorch {name} ({engine}) ...', flush=True)
        quantized = make()
        torch.backends.quantized.engine = engine
        file_name = f'{name}_{engine}_seed{seed}'.replace(' ', '_').replace('/', '')
        size, ms = script_stats(quantized, work, file_name, runs)
        results[(name, engine)] = (accuracy(quantized, test, labels, normalize), size, ms)
    if 'qat_precise_bn' in rows:  # PyTorch's tutorial QAT again, next to qforge's other recipe
        results[(PRECISE_BN, "onednn, the tutorial's QAT")] = results[('QAT', 'onednn')]
        if 'qat' not in rows:
            del results[('QAT', 'onednn')]
    return results


# qforge's side.

def run(command):
    print('$', ' '.join(command), flush=True)
    subprocess.run(command, check=True)


def qforge_model_stats(path, benchmark, runs):
    """(top-1 the runtime measured, file bytes, median ms at batch 1, one thread);
    no latency (NaN) when runs is 0."""
    model = qforge_protos.read(qforge_protos.model_pb2().Model(), path)
    if runs == 0:
        return model.metadata.accuracy_top1, os.path.getsize(path), float('nan')
    result = subprocess.run([benchmark, f'--model={path}', '--threads=1', f'--runs={runs}',
                             '--json'], check=True, capture_output=True, text=True)
    latency = json.loads(result.stdout.strip().splitlines()[-1])['median_ms']
    return model.metadata.accuracy_top1, os.path.getsize(path), latency


def qforge_rows(checkpoint_path, args, work_dir, seed, calibration_seed, runs):
    """{row: (top-1, bytes, ms)}; ms is NaN when runs is 0."""
    out = os.path.join(work_dir, f'qforge_seed{seed}')
    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, 'checkpoint.pb')
    shutil.copyfile(checkpoint_path, checkpoint)
    rows = {}
    for name, qconfig, wanted in (
            ('PTQ min/max per tensor', 'minmax_per_tensor', 'minmax' in args.rows),
            ('PTQ per-channel histogram', 'per_channel_histogram',
             'per_channel' in args.rows or 'qnnpack' in args.rows)):
        if not wanted:
            continue
        run([args.trainer, 'ptq', f'--checkpoint={checkpoint}', f'--qconfig={qconfig}',
             f'--seed={calibration_seed}'])
        rows[name] = qforge_model_stats(os.path.join(out, f'model_int8_{qconfig}.qfm'),
                                        args.benchmark, runs)
    if not rows:  # ptq writes the float model file
        run([args.trainer, 'ptq', f'--checkpoint={checkpoint}', '--qconfig=minmax_per_tensor',
             f'--seed={calibration_seed}'])
    rows['float'] = qforge_model_stats(os.path.join(out, 'model_float.qfm'), args.benchmark, runs)
    if 'qat' in args.rows:
        run([args.trainer, 'qat', f'--checkpoint={checkpoint}', f'--seed={seed}'])
        rows['QAT'] = qforge_model_stats(os.path.join(out, 'model_int8_qat.qfm'), args.benchmark,
                                         runs)
    if 'qat_precise_bn' in args.rows:
        precise = os.path.join(out, 'precise_bn')
        run([args.trainer, 'qat', f'--checkpoint={checkpoint}', f'--seed={seed}',
             f'--precise_bn_batches={PRECISE_BN_BATCHES}', f'--output_dir={precise}'])
        rows[PRECISE_BN] = qforge_model_stats(os.path.join(precise, 'model_int8_qat.qfm'),
                                              args.benchmark, runs)
    return rows


def ms(value):
    return '-' if np.isnan(value) else f'{value:.3f}'


def table(checkpoint, ours, theirs):
    width = checkpoint.config.model.width_mult
    lines = [f'MobileNetV2 width {width:g} (ReLU), Fashion-MNIST, 10,000 test images; '
             'latency at batch 1, one thread',
             '',
             '| model | qforge top-1 | PyTorch top-1 | qforge size | PyTorch size '
             '| qforge ms | PyTorch ms |',
             '|---|---|---|---|---|---|---|']
    for key, row in theirs.items():
        name, engine = (key, None) if isinstance(key, str) else key
        mine = ours[name]
        label = name if engine is None else f'{name} (PyTorch: {engine})'
        lines.append(f'| {label} | {mine[0]:.2%} | {row[0]:.2%} | {mine[1] / 1e6:.2f} MB | '
                     f'{row[1] / 1e6:.2f} MB | {ms(mine[2])} | {ms(row[2])} |')
    return '\n'.join(lines)


def summary(runs):
    """Each row's mean top-1 over the seeds and qforge's lead per seed, in points.
    `runs` is [(seed, ours, theirs)]."""
    seeds = [seed for seed, _, _ in runs]
    lines = [f'Over seeds {", ".join(map(str, seeds))}: mean top-1, and qforge minus PyTorch '
             'per seed (points)',
             '',
             '| model | qforge mean | PyTorch mean | qforge - PyTorch per seed | mean difference |',
             '|---|---|---|---|---|']
    for key in runs[0][2]:
        name, engine = (key, None) if isinstance(key, str) else key
        label = name if engine is None else f'{name} (PyTorch: {engine})'
        ours = [mine[name][0] for _, mine, _ in runs]
        theirs = [other[key][0] for _, _, other in runs]
        leads = [round(100 * (a - b), 2) + 0.0 for a, b in zip(ours, theirs)]  # never -0.00
        lines.append(f'| {label} | {np.mean(ours):.2%} | {np.mean(theirs):.2%} | '
                     + ' '.join(f'{d:+.2f}' for d in leads) + f' | {round(np.mean(leads), 2) + 0.0:+.2f} |')
    return '\n'.join(lines)


def main():
    args = parse_args()
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='side_by_side_')
    os.makedirs(work_dir, exist_ok=True)
    train, train_labels, test, test_labels = runtime_logits.fashion_mnist()
    data = {'train': train, 'train_labels': train_labels, 'test': test,
            'test_labels': test_labels, 'work_dir': work_dir}
    checkpoint_path = args.checkpoint
    if args.train_in_pytorch:
        state_dict = os.path.join(work_dir, 'pytorch_float.pth')
        train_in_pytorch(data, args.width_mult, args.train_in_pytorch, args.seed, state_dict)
        checkpoint_path = import_into_qforge(state_dict, args.width_mult, args, work_dir)
    checkpoint = torchvision_checkpoint.read_checkpoint(checkpoint_path)
    if checkpoint.config.model.relu6 or checkpoint.config.dataset != 'fashion-mnist':
        sys.exit(f'{checkpoint_path}: needs a Fashion-MNIST model trained with --relu6=false')
    origin = 'PyTorch' if args.train_in_pytorch else 'qforge'
    print(f'float weights trained in {origin}: {checkpoint_path}', flush=True)
    if args.seeds:
        seeds = [(int(s), int(s)) for s in args.seeds.split(',')]
    else:  # QAT's draw from --seed; calibration from the float run's seed, as qforge ptq's
        seeds = [(args.seed, checkpoint.config.seed)]
    runs, tables = [], []
    for i, (seed, calibration_seed) in enumerate(seeds):
        latency_runs = args.latency_runs if i == 0 else 0
        ours = qforge_rows(checkpoint_path, args, work_dir, seed, calibration_seed, latency_runs)
        theirs = pytorch_rows(checkpoint, data, latency_runs, seed, calibration_seed, args.rows)
        runs.append((seed, ours, theirs))
        tables.append(f'seed {seed}:\n\n' + table(checkpoint, ours, theirs))
        print()
        print(tables[-1], flush=True)
    if len(runs) > 1:
        print()
        print('\n\n'.join(tables))
        print()
        print(summary(runs))


if __name__ == '__main__':
    main()
