#!/usr/bin/python3
"""Writes the PyTorch golden files the trainer's layers are tested against.

For each layer kind (convs of every shape the trainer supports, BatchNorm2d in
training and eval, ReLU, ReLU6, Linear, mean over H and W, cross-entropy, with
and without distillation targets) it records inputs, weights, outputs and
gradients, and for a tiny MobileNetV2 (the tutorial's architecture with a short
block table, small-input strides) two SGD steps: initial weights,
batch, logits, loss, all gradients of step 1, and weights and batch-norm
statistics after step 2. Arrays are stored in qforge's layouts (NHWC
activations, OHWI conv weights), so the C++ side compares them directly.

Regenerate (PyTorch 1.13 from Debian's python3-torch; tools/install_deps.sh --python):
    /usr/bin/python3 tools/make_trainer_goldens.py --out tests/testdata/golden

File format (little-endian): b"QFGOLD01", u32 count, then per array: u32 name
length, name (UTF-8), u32 rank, i64 dims[rank], float32 data (row-major).
"""

import argparse
import os
import struct

import torch
import torch.nn as nn


def nhwc(t):
    """A copy in qforge's layout. Always a copy: for 1x1 kernels the permuted
    view is already contiguous and would otherwise alias the live tensor, which
    later optimizer steps (and zero_grad) modify in place."""
    t = t.detach()
    return (t.permute(0, 2, 3, 1) if t.dim() == 4 else t).clone(memory_format=torch.contiguous_format)


def write(path, arrays):
    with open(path, "wb") as f:
        f.write(b"QFGOLD01")
        f.write(struct.pack("<I", len(arrays)))
        for name, tensor in arrays.items():
            a = tensor.detach().contiguous().float().numpy()
            encoded = name.encode()
            f.write(struct.pack("<I", len(encoded)))
            f.write(encoded)
            f.write(struct.pack("<I", a.ndim))
            f.write(struct.pack(f"<{a.ndim}q", *a.shape))
            f.write(a.tobytes())


def input_nchw(n, h, w, c):
    """A random NHWC batch, returned as the NCHW leaf PyTorch differentiates."""
    return torch.randn(n, h, w, c).permute(0, 3, 1, 2).contiguous().requires_grad_()


def run_with_upstream(module, x):
    """y = module(x), L = sum(y * r) for random r; returns y, r."""
    y = module(x)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    return y, r


CONV_CASES = {
    # name: (in, out, kernel, stride, padding, groups, bias, input NHWC)
    "conv_3x3_s2_bias": (3, 8, 3, 2, 1, 1, True, (2, 9, 9, 3)),
    "conv_1x1": (8, 16, 1, 1, 0, 1, False, (2, 5, 5, 8)),
    "conv_depthwise_3x3": (16, 16, 3, 1, 1, 16, False, (2, 6, 6, 16)),
    "conv_depthwise_3x3_s2_bias": (8, 8, 3, 2, 1, 8, True, (2, 7, 7, 8)),
    "conv_grouped_2": (4, 6, 3, 1, 1, 2, True, (1, 5, 4, 4)),
    "conv_depth_multiplier_2": (4, 8, 3, 1, 0, 4, False, (1, 5, 5, 4)),
}


def conv_goldens(out_dir):
    for name, (cin, cout, k, s, p, g, bias, shape) in CONV_CASES.items():
        conv = nn.Conv2d(cin, cout, k, s, p, groups=g, bias=bias)
        x = input_nchw(*shape)
        y, r = run_with_upstream(conv, x)
        arrays = {"x": nhwc(x), "weight": nhwc(conv.weight), "y": nhwc(y), "dy": nhwc(r),
                  "dx": nhwc(x.grad), "dweight": nhwc(conv.weight.grad)}
        if bias:
            arrays.update({"bias": conv.bias, "dbias": conv.bias.grad})
        write(os.path.join(out_dir, name + ".bin"), arrays)


def batch_norm_goldens(out_dir):
    for mode in ("train", "eval"):
        bn = nn.BatchNorm2d(6, momentum=0.1)
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
        before = {"weight": bn.weight.clone(), "bias": bn.bias.clone(),
                  "running_mean": bn.running_mean.clone(),
                  "running_var": bn.running_var.clone()}
        bn.train(mode == "train")
        x = input_nchw(3, 4, 5, 6)
        y, r = run_with_upstream(bn, x)
        arrays = dict(before)
        arrays.update({"x": nhwc(x), "y": nhwc(y), "dy": nhwc(r), "dx": nhwc(x.grad),
                       "dweight": bn.weight.grad, "dbias": bn.bias.grad,
                       "new_running_mean": bn.running_mean, "new_running_var": bn.running_var})
        write(os.path.join(out_dir, f"batch_norm_{mode}.bin"), arrays)


def simple_goldens(out_dir):
    for name, module in (("relu", nn.ReLU()), ("relu6", nn.ReLU6())):
        x = input_nchw(2, 4, 4, 3)
        with torch.no_grad():
            x.mul_(4.0)  # reach past 6 for ReLU6
        y, r = run_with_upstream(module, x)
        write(os.path.join(out_dir, name + ".bin"),
              {"x": nhwc(x), "y": nhwc(y), "dy": nhwc(r), "dx": nhwc(x.grad)})
    linear = nn.Linear(12, 5)
    x = torch.randn(4, 12, requires_grad=True)
    y, r = run_with_upstream(linear, x)
    write(os.path.join(out_dir, "linear.bin"),
          {"x": x, "weight": linear.weight, "bias": linear.bias, "y": y, "dy": r, "dx": x.grad,
           "dweight": linear.weight.grad, "dbias": linear.bias.grad})
    x = input_nchw(2, 3, 5, 4)
    y, r = run_with_upstream(lambda t: t.mean([2, 3]), x)
    write(os.path.join(out_dir, "mean_hw.bin"),
          {"x": nhwc(x), "y": y, "dy": r, "dx": nhwc(x.grad)})
    logits = torch.randn(5, 7, requires_grad=True)
    labels = torch.tensor([0, 6, 3, 3, 1])
    loss = nn.CrossEntropyLoss()(logits, labels)
    loss.backward()
    write(os.path.join(out_dir, "cross_entropy.bin"),
          {"logits": logits, "labels": labels.float(), "loss": loss.reshape(1),
           "dlogits": logits.grad})


# ---- The tutorial's MobileNetV2 (its code blocks), with qforge's options. ----

def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_planes, momentum=0.1),
            nn.ReLU6(inplace=False))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1))
        layers.extend([
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup, momentum=0.1),
        ])
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, input_channels, num_classes, width_mult, small_input, dropout, settings):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult, 8)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult), 8)
        features = [ConvBNReLU(input_channels, input_channel, stride=1 if small_input else 2)]
        for stage, (t, c, n, s) in enumerate(settings):
            output_channel = _make_divisible(c * width_mult, 8)
            if small_input and stage == 1:
                s = 1
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                  s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        x = x.mean([2, 3])
        return self.classifier(x)


def state(model, prefix=""):
    """Every parameter and batch-norm statistic, convs in OHWI."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        out[prefix + name] = nhwc(tensor)
    return out


def mobilenet_v2_golden(out_dir):
    # Dropout 0: PyTorch's and qforge's random masks cannot match. A short block
    # table (t=1, expanding, residual and strided blocks all occur) keeps the file small.
    model = MobileNetV2(input_channels=1, num_classes=10, width_mult=0.5, small_input=True,
                        dropout=0.0, settings=[[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]])
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=4e-5,
                                nesterov=True)
    arrays = state(model, "init/")
    x = torch.randn(4, 1, 16, 16)
    labels = torch.tensor([3, 1, 7, 3])
    arrays.update({"x": nhwc(x), "labels": labels.float()})
    for step in (1, 2):
        optimizer.zero_grad()
        logits = model(x)
        loss = nn.CrossEntropyLoss()(logits, labels)
        loss.backward()
        if step == 1:
            arrays.update({"step1/logits": logits, "step1/loss": loss.reshape(1)})
            for name, p in model.named_parameters():
                arrays["step1/grad/" + name] = nhwc(p.grad)
        optimizer.step()
    arrays.update(state(model, "step2/"))
    write(os.path.join(out_dir, "mobilenet_v2_sgd.bin"), arrays)


def schedule_goldens(out_dir):
    """Learning rate (and one-cycle momentum) per iteration of PyTorch's
    schedulers, stepped once per iteration as the trainer does."""
    def run(make_scheduler, steps, momentum=False):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        scheduler = make_scheduler(optimizer)
        lrs, moms = [], []
        for _ in range(steps):
            lrs.append(optimizer.param_groups[0]["lr"])
            moms.append(optimizer.param_groups[0]["momentum"])
            optimizer.step()
            scheduler.step()
        return torch.tensor(lrs), torch.tensor(moms)
    sched = torch.optim.lr_scheduler
    onecycle_lr, onecycle_momentum = run(lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=50), 50)
    cosine_lr, _ = run(lambda o: sched.CosineAnnealingLR(o, T_max=40), 40)
    step_lr, _ = run(lambda o: sched.StepLR(o, step_size=10, gamma=0.5), 35)  # 5 iterations/epoch, step every 2 epochs
    write(os.path.join(out_dir, "schedules.bin"),
          {"onecycle_lr": onecycle_lr, "onecycle_momentum": onecycle_momentum,
           "cosine_lr": cosine_lr, "step_lr": step_lr})


def distillation_golden(out_dir):
    """QAT's distillation loss: cross-entropy against probability targets that
    mix the labels with a teacher's softmax (QatConfig.distill)."""
    logits = torch.randn(5, 7, requires_grad=True)
    teacher = torch.randn(5, 7) * 3
    labels = torch.tensor([2, 0, 6, 6, 4])
    weight = 0.75
    targets = ((1 - weight) * nn.functional.one_hot(labels, 7).float() +
               weight * torch.softmax(teacher, dim=1))
    loss = nn.functional.cross_entropy(logits, targets)
    loss.backward()
    write(os.path.join(out_dir, "distillation_cross_entropy.bin"),
          {"logits": logits, "teacher_logits": teacher, "labels": labels.float(),
           "teacher_weight": torch.tensor([weight]), "loss": loss.reshape(1),
           "dlogits": logits.grad})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/testdata/golden")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(191009)  # the tutorial's seed
    torch.set_num_threads(1)
    conv_goldens(args.out)
    batch_norm_goldens(args.out)
    simple_goldens(args.out)
    mobilenet_v2_golden(args.out)
    schedule_goldens(args.out)
    distillation_golden(args.out)  # last: the files above keep their draws


if __name__ == "__main__":
    main()
