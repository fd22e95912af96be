#!/usr/bin/python3
"""Training throughput of qforge and PyTorch 1.13, side by side, in one run.

Both train the tutorial's MobileNetV2 with the small-input strides on random
28x28x1 images (Fashion-MNIST's shape), 10 classes, batch 64: one step is
forward, cross-entropy, backward and an SGD update (momentum 0.9, Nesterov,
weight decay 4e-5). Each side gets warm-up steps, then --steps timed steps; the
table reports the median images/s and the ratio qforge / PyTorch. The two
frameworks alternate per width, so drift on a shared machine hits both.

Run from the repository root (Debian's python3-torch; build the benchmark first):
    bazel build //tools:train_benchmark
    /usr/bin/python3 tools/compare_training_speed.py [--threads 2] [--steps 20]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_trainer_goldens import MobileNetV2  # noqa: E402  (the tutorial's model)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
            [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def pytorch_images_per_second(width, batch, threads, warmup, steps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MobileNetV2(input_channels=1, num_classes=10, width_mult=width, small_input=True,
                        dropout=0.2, settings=SETTINGS)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5,
                                nesterov=True)
    x = torch.randn(batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(model(x), labels).backward()
        optimizer.step()
        if step >= warmup:
            seconds.append(time.perf_counter() - start)
    return batch / statistics.median(seconds)


def qforge_images_per_second(binary, width, batch, threads, warmup, steps):
    out = subprocess.run([binary, f"--width_mult={width}", f"--batch={batch}",
                          f"--threads={threads}", f"--warmup={warmup}", f"--steps={steps}",
                          "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--widths", default="1.0,0.5")
    parser.add_argument("--qforge_benchmark",
                        default=os.path.join(REPO_ROOT, "bazel-bin/tools/train_benchmark"))
    args = parser.parse_args()
    print(f"PyTorch {torch.__version__}; MobileNetV2 on 28x28x1, batch {args.batch}, "
          f"{args.threads} threads, median of {args.steps} steps")
    print()
    print("| width | PyTorch images/s | qforge images/s | qforge / PyTorch |")
    print("|---|---|---|---|")
    for width in (float(w) for w in args.widths.split(",")):
        theirs = pytorch_images_per_second(width, args.batch, args.threads, args.warmup,
                                           args.steps)
        ours = qforge_images_per_second(args.qforge_benchmark, width, args.batch, args.threads,
                                        args.warmup, args.steps)
        print(f"| {width} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
