#!/usr/bin/python3
"""Writes the PyTorch golden files the trainer's QAT pieces are tested against.

- fake_quantize.bin: a per-tensor FakeQuantize (moving-average min/max
  observer, int8 [-128, 127], scale floored at 2^-12 as qforge floors it)
  over four batches: observing, observing, observer disabled, fake
  quantization disabled. Inputs, outputs, gradients and parameters of each.
- learnable_fake_quantize.bin: PyTorch's _LearnableFakeQuantize (LSQ, with
  gradient scaling) on the same observer: two batches observing, then three
  learning the scale and zero point, each followed by an SGD step on them.
  Inputs, outputs, gradients (of the input, scale and zero point), and the
  scale and zero point after each step. The batches are mostly negative, so
  the zero point stays positive: PyTorch 1.13's learnable backward takes the
  zero point as int(zero_point + 0.5), one step off for negative ones (its
  gradient mask then ends half a step early on one side), which qforge does
  not copy.
- weight_fake_quantize.bin: the per-channel symmetric weight FakeQuantize
  (moving-average per-channel min/max on qint8: scale max / 127.5) with
  qforge's gradient mask on [-128, 128] and values clamped to [-127, 127],
  over two batches.
- qat_conv_bn*.bin: torch.nn.intrinsic.qat ConvBn2d / ConvBnReLU2d (and ConvBn2d
  followed by ReLU6, the tutorial's ConvBNReLU) with the output fake-quantized
  as prepare_qat does: one training step on batch statistics, then one with
  freeze_bn_stats. Outputs, input and parameter gradients, BN statistics.
- qat_conv_relu.bin, qat_linear.bin: ConvReLU2d and the QAT Linear, one step.
- qat_mobilenet_v2.bin: torchvision's QuantizableMobileNetV2 with a short block
  table and qforge's small-input strides, fused and prepared as the tutorial's
  QAT does (with the fake quantizers above, and one on the pooled features as
  qforge has), over three SGD steps: observing with BN training, with BN frozen,
  and with the observers off too. Initial float weights, each step's batch,
  logits and loss, and after the last step every weight, BN statistic and
  observed range.

Arrays are stored in qforge's layouts (NHWC activations, OHWI conv weights) in
the format of tools/make_trainer_goldens.py.

Regenerate (PyTorch 1.13 from Debian's python3-torch; tools/install_deps.sh --python):
    /usr/bin/python3 tools/make_qat_goldens.py --out tests/testdata/golden
"""

import argparse
import os
import re

import torch
import torch.ao.quantization as tq
import torch.nn.functional as F
import torch.nn.intrinsic.qat as nniqat
import torch.nn.qat as nnqat
import torchvision
from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver, QConfig)
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

from make_trainer_goldens import input_nchw, nhwc, state, write

ACTIVATION_FQ = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
    qscheme=torch.per_tensor_affine, eps=2 ** -12)


class WeightFakeQuantize(FakeQuantize):
    """PyTorch's per-channel weight FakeQuantize on qint8 (scale max / 127.5, the one convert
    takes), with qforge's straight-through mask on [-128, 128]: a channel's extremes, which that
    scale puts half a step outside [-127, 127], keep their gradient. Values clamp to [-127, 127]."""

    def forward(self, x):
        if self.observer_enabled[0]:
            self.activation_post_process(x.detach())
            scale, zero_point = self.calculate_qparams()
            self.scale.resize_(scale.shape).copy_(scale)
            self.zero_point.resize_(zero_point.shape).copy_(zero_point)
        if not self.fake_quant_enabled[0]:
            return x
        y = torch.fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.ch_axis,
                                                   -128, 128)
        limit = 127 * self.scale.view(-1, *[1] * (x.dim() - 1))  # ch_axis 0
        return y + (torch.minimum(torch.maximum(y, -limit), limit) - y).detach()


WEIGHT_FQ = WeightFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
QCONFIG = QConfig(activation=ACTIVATION_FQ, weight=WEIGHT_FQ)


def snapshot(t):
    """A copy: buffers and .grad change in place on later steps."""
    return t.detach().clone()


def step(module, x):
    """y = module(x) and the gradients of L = sum(y * r) for random r."""
    y = module(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    return y, r


def fake_quantize_goldens(out_dir):
    fq = ACTIVATION_FQ()
    arrays = {}
    batches = [torch.randn(2, 5, 5, 3) * 2 + 0.5, torch.randn(2, 5, 5, 3) * 3,
               torch.randn(2, 5, 5, 3) * 6, torch.randn(2, 5, 5, 3)]
    for k, x in enumerate(batches):
        if k == 2:
            fq.disable_observer()
        if k == 3:
            fq.disable_fake_quant()
        x = x.requires_grad_()
        y, r = step(fq, x)
        arrays.update({f"x{k}": x, f"y{k}": y, f"dy{k}": r, f"dx{k}": x.grad,
                       f"scale{k}": snapshot(fq.scale).reshape(1).float(),
                       f"zero_point{k}": snapshot(fq.zero_point).reshape(1).float()})
    write(os.path.join(out_dir, "fake_quantize.bin"), arrays)


LEARNING_RATE = 1e-4


def learnable_fake_quantize_golden(out_dir):
    torch.manual_seed(20261203)  # apart from the other files, which it leaves as they were
    fq = _LearnableFakeQuantize(
        observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
        use_grad_scaling=True, dtype=torch.qint8, qscheme=torch.per_tensor_affine, eps=2 ** -12)
    arrays = {"lr": torch.tensor([LEARNING_RATE])}
    batches = [torch.randn(2, 5, 5, 3) * 2 - 3, torch.randn(2, 5, 5, 3) * 3 - 4,
               torch.randn(2, 5, 5, 3) * 4 - 5, torch.randn(2, 5, 5, 3) * 5 - 6,
               torch.randn(2, 5, 5, 3) * 3 - 4]
    for k, x in enumerate(batches):
        if k == 2:
            fq.enable_param_learning()
            fq.scale.grad = fq.zero_point.grad = None  # the observing batches', not learned
        x = x.requires_grad_()
        y, r = step(fq, x)
        arrays.update({f"x{k}": x, f"y{k}": y, f"dy{k}": r, f"dx{k}": x.grad})
        if k >= 2:
            arrays.update({f"dscale{k}": snapshot(fq.scale.grad),
                           f"dzero_point{k}": snapshot(fq.zero_point.grad)})
            with torch.no_grad():
                fq.scale -= LEARNING_RATE * fq.scale.grad
                fq.zero_point -= LEARNING_RATE * fq.zero_point.grad
            fq.scale.grad = None
            fq.zero_point.grad = None
        arrays.update({f"scale{k}": snapshot(fq.scale), f"zero_point{k}": snapshot(fq.zero_point)})
    write(os.path.join(out_dir, "learnable_fake_quantize.bin"), arrays)


def weight_fake_quantize_goldens(out_dir):
    fq = WEIGHT_FQ()
    arrays = {}
    for k, spread in enumerate([1.0, 1.5]):
        w = (torch.randn(4, 3, 3, 3) * spread).requires_grad_()  # OIHW
        y, r = step(fq, w)
        arrays.update({f"w{k}": nhwc(w), f"y{k}": nhwc(y), f"dy{k}": nhwc(r),
                       f"dw{k}": nhwc(w.grad), f"scales{k}": snapshot(fq.scale).float()})
    write(os.path.join(out_dir, "weight_fake_quantize.bin"), arrays)


CONV_BN_CASES = {
    # name: (module class, in, out, kernel, stride, padding, groups, activation, input NHWC)
    "qat_conv_bn_relu6": (nniqat.ConvBn2d, 4, 6, 3, 1, 1, 1, F.relu6, (2, 6, 6, 4)),
    "qat_conv_bn_relu": (nniqat.ConvBnReLU2d, 6, 8, 1, 1, 0, 1, None, (2, 5, 5, 6)),
    "qat_conv_bn_depthwise": (nniqat.ConvBn2d, 6, 6, 3, 2, 1, 6, None, (2, 7, 7, 6)),
}


def conv_bn_goldens(out_dir):
    for name, (cls, cin, cout, k, s, p, g, act, shape) in CONV_BN_CASES.items():
        module = cls(cin, cout, k, stride=s, padding=p, groups=g, bias=False, qconfig=QCONFIG)
        out_fq = ACTIVATION_FQ()
        with torch.no_grad():
            module.bn.weight.uniform_(0.5, 1.5)
            module.bn.bias.uniform_(-0.5, 0.5)
            module.bn.running_mean.uniform_(-0.5, 0.5)
            module.bn.running_var.uniform_(0.5, 2.0)
        arrays = {"weight": nhwc(module.weight), "gamma": snapshot(module.bn.weight),
                  "beta": snapshot(module.bn.bias),
                  "running_mean0": snapshot(module.bn.running_mean),
                  "running_var0": snapshot(module.bn.running_var)}

        def forward(x):
            y = module(x)
            return out_fq(act(y) if act is not None else y)

        module.train()
        for k in range(2):
            if k == 1:
                module.freeze_bn_stats()
            module.zero_grad()
            x = input_nchw(*shape)
            y, r = step(forward, x)
            arrays.update({
                f"x{k}": nhwc(x), f"y{k}": nhwc(y), f"dy{k}": nhwc(r), f"dx{k}": nhwc(x.grad),
                f"dweight{k}": nhwc(module.weight.grad),
                f"dgamma{k}": snapshot(module.bn.weight.grad),
                f"dbeta{k}": snapshot(module.bn.bias.grad),
                f"running_mean{k + 1}": snapshot(module.bn.running_mean),
                f"running_var{k + 1}": snapshot(module.bn.running_var),
                f"weight_scales{k}": snapshot(module.weight_fake_quant.scale).float(),
                f"output_scale{k}": snapshot(out_fq.scale).reshape(1).float(),
                f"output_zero_point{k}": snapshot(out_fq.zero_point).reshape(1).float()})
        write(os.path.join(out_dir, name + ".bin"), arrays)


def conv_relu_and_linear_goldens(out_dir):
    conv = nniqat.ConvReLU2d(3, 5, 3, stride=2, padding=1, bias=True, qconfig=QCONFIG)
    out_fq = ACTIVATION_FQ()
    x = input_nchw(2, 7, 7, 3)
    y, r = step(lambda v: out_fq(conv(v)), x)
    write(os.path.join(out_dir, "qat_conv_relu.bin"), {
        "weight": nhwc(conv.weight), "bias": conv.bias, "x": nhwc(x), "y": nhwc(y),
        "dy": nhwc(r), "dx": nhwc(x.grad), "dweight": nhwc(conv.weight.grad),
        "dbias": conv.bias.grad})

    linear = nnqat.Linear(6, 4, qconfig=QCONFIG)
    out_fq = ACTIVATION_FQ()
    x = torch.randn(3, 6, requires_grad=True)
    y, r = step(lambda v: out_fq(linear(v)), x)
    write(os.path.join(out_dir, "qat_linear.bin"), {
        "weight": linear.weight, "bias": linear.bias, "x": x, "y": y, "dy": r, "dx": x.grad,
        "dweight": linear.weight.grad, "dbias": linear.bias.grad})


class QatNet(torch.nn.Module):
    """A prepared QuantizableMobileNetV2's modules, with the pooled features
    fake-quantized before the classifier (qforge's "pool" observation point)."""

    def __init__(self, model):
        super().__init__()
        self.quant, self.features, self.classifier = model.quant, model.features, model.classifier
        self.pool = ACTIVATION_FQ()

    def forward(self, x):
        return self.classifier(self.pool(self.features(self.quant(x)).mean([2, 3])))


def observed_ranges(model):
    """[min, max] of every activation fake quantizer by qforge's observation point
    (the module it follows), and [2, C] per-channel ranges of the weights'."""
    arrays = {}
    for name, module in model.named_modules():
        if not isinstance(module, FakeQuantize):
            continue
        obs = module.activation_post_process
        if torch.isinf(obs.min_val).all():  # a residual block's add where the block has none
            continue
        point, kind = name.rsplit(".", 1) if "." in name else (name, "")
        if kind == "weight_fake_quant":
            arrays["weight_range/" + point] = torch.stack([obs.min_val, obs.max_val])
        else:
            arrays["range/" + (point if kind == "activation_post_process" else name)] = \
                torch.stack([obs.min_val, obs.max_val]).reshape(2)
    return arrays


def mobilenet_v2_qat_golden(out_dir):
    model = torchvision.models.quantization.mobilenet_v2(
        width_mult=0.5, num_classes=10,
        inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]])
    first = model.features[0][0]
    model.features[0][0] = torch.nn.Conv2d(1, first.out_channels, 3, 1, 1, bias=False)
    model.features[2].conv[1][0].stride = (1, 1)  # qforge's small input: stage 1 keeps 16x16
    model.classifier[0].p = 0.0  # qforge's and PyTorch's random masks cannot match
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    arrays = state(model, "init/")
    model.train()
    model.fuse_model(is_qat=True)
    model.qconfig = QCONFIG
    tq.prepare_qat(model, inplace=True)
    net = QatNet(model)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    for k in range(3):
        if k == 1:
            net.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
        if k == 2:
            net.apply(tq.disable_observer)
        x = torch.randn(4, 1, 16, 16) * (1 + k)
        labels = torch.randint(0, 10, (4,))
        logits = net(x)
        loss = torch.nn.CrossEntropyLoss()(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        arrays.update({f"x{k}": nhwc(x), f"labels{k}": labels.float(), f"logits{k}": logits,
                       f"loss{k}": loss.reshape(1)})
    for name, tensor in net.state_dict().items():
        if "fake_quant" in name or "post_process" in name or name.startswith("pool."):
            continue
        if name.endswith("num_batches_tracked"):
            continue
        # A fused module's BN back to the float model's name: features.1.conv.2.bn.weight
        # was features.1.conv.3.weight.
        name = re.sub(r"\.(\d+)\.bn\.", lambda m: f".{int(m.group(1)) + 1}.", name)
        arrays["final/" + name] = nhwc(tensor)
    arrays.update(observed_ranges(net))
    write(os.path.join(out_dir, "qat_mobilenet_v2.bin"), arrays)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(20261126)
    fake_quantize_goldens(args.out)
    weight_fake_quantize_goldens(args.out)
    conv_bn_goldens(args.out)
    conv_relu_and_linear_goldens(args.out)
    mobilenet_v2_qat_golden(args.out)
    learnable_fake_quantize_golden(args.out)


if __name__ == "__main__":
    main()
