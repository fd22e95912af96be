#!/usr/bin/python3
"""Training throughput of qforge and PyTorch, side by side, in one run.

Every side trains the tutorial's MobileNetV2 with the small-input strides on
random 28x28x1 images (Fashion-MNIST's shape), 10 classes, batch 64: one step
is forward, cross-entropy, backward and an SGD update (momentum 0.9, Nesterov,
weight decay 4e-5). Each side gets warm-up steps, then --steps timed steps;
the table reports the median images/s and qforge's ratio to each side. The
sides run one after another per width, each in its own process, so drift on a
shared machine hits all of them.

The sides:
  - PyTorch 1.13 from Debian (python3-torch), eager;
  - PyTorch 2.x from PyPI, eager and with torch.compile (inductor), when its
    venv exists (tools/install_peers.sh --torch; --torch_venv to point
    elsewhere). torch.compile's warm-up steps (the first one compiles) are
    excluded from the timing and reported as compile time (with inductor's
    on-disk cache off, as a first run pays it);
  - qforge's trainer (bazel-bin/tools/train_benchmark).

Run from the repository root (build the benchmark first):
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

from machine import cpu_model  # tools/machine.py, beside this script

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
            [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
DEFAULT_TORCH_VENV = os.environ.get("QFORGE_TORCH_VENV", "/opt/qforge-torch")


def measure_pytorch(width, batch, threads, warmup, steps, compile_model):
    """One PyTorch side, in this process: prints a JSON line."""
    import torch
    import torch.nn as nn
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_trainer_goldens import MobileNetV2  # the tutorial's model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MobileNetV2(input_channels=1, num_classes=10, width_mult=width, small_input=True,
                        dropout=0.2, settings=SETTINGS)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5,
                                nesterov=True)
    step_model = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    warmup_seconds = 0.0
    for step in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss_fn(step_model(x), labels).backward()
        optimizer.step()
        elapsed = time.perf_counter() - start
        if step >= warmup:
            seconds.append(elapsed)
        else:
            warmup_seconds += elapsed
    median = statistics.median(seconds)
    print(json.dumps({"images_per_s": batch / median, "median_step_ms": 1000 * median,
                      # Warm-up time beyond what the same steps take once warm:
                      # for torch.compile, the compilation.
                      "compile_s": max(0.0, warmup_seconds - warmup * median),
                      "version": torch.__version__}))


def run_json(command, env=None):
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pytorch_command(python, args, width, compile_model):
    command = [python, os.path.abspath(__file__), "--worker", f"--widths={width}",
               f"--batch={args.batch}", f"--threads={args.threads}", f"--steps={args.steps}",
               f"--warmup={args.compile_warmup if compile_model else args.warmup}"]
    return command + (["--compile"] if compile_model else [])


def qforge_command(args, width):
    return [args.qforge_benchmark, f"--width_mult={width}", f"--batch={args.batch}",
            f"--threads={args.threads}", f"--warmup={args.warmup}", f"--steps={args.steps}",
            "--json"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile_warmup", type=int, default=5,
                        help="torch.compile's untimed steps (the first compiles)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--widths", default="1.0,0.5")
    parser.add_argument("--torch_venv", default=DEFAULT_TORCH_VENV,
                        help="venv with PyTorch 2.x from PyPI; skipped if missing")
    parser.add_argument("--no_compile", action="store_true",
                        help="skip the torch.compile rows")
    parser.add_argument("--qforge_benchmark",
                        default=os.path.join(REPO_ROOT, "bazel-bin/tools/train_benchmark"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        measure_pytorch(float(args.widths), args.batch, args.threads, args.warmup, args.steps,
                        args.compile)
        return

    sides = [("PyTorch 1.13 (Debian), eager", "/usr/bin/python3", False)]
    venv_python = os.path.join(args.torch_venv, "bin", "python")
    if os.path.exists(venv_python):
        sides.append(("PyTorch {v} (PyPI), eager", venv_python, False))
        if not args.no_compile:
            sides.append(("PyTorch {v} (PyPI), torch.compile", venv_python, True))
    else:
        print(f"(no PyTorch 2 venv at {args.torch_venv}: tools/install_peers.sh --torch)")

    print(f"{cpu_model()}, {os.cpu_count()} CPUs; MobileNetV2 on 28x28x1, batch {args.batch}, "
          f"{args.threads} threads, median of {args.steps} steps")
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}")
    print()
    print("| width | side | images/s | qforge / side | compile s |")
    print("|---|---|---|---|---|")
    for width in (float(w) for w in args.widths.split(",")):
        results = []
        for label, python, compile_model in sides:
            # Inductor's on-disk cache would hide the compile time a first run
            # pays; it is turned off so the table reports that time.
            env = dict(os.environ, TORCHINDUCTOR_FORCE_DISABLE_CACHES="1") if compile_model \
                else None
            r = run_json(pytorch_command(python, args, width, compile_model), env)
            results.append((label.format(v=r["version"].split("+")[0]), r, compile_model))
        ours = run_json(qforge_command(args, width))
        for label, r, compile_model in results:
            compile_s = f"{r['compile_s']:.0f}" if compile_model else ""
            print(f"| {width} | {label} | {r['images_per_s']:.1f} | "
                  f"{ours['images_per_s'] / r['images_per_s']:.2f}x | {compile_s} |")
        print(f"| {width} | qforge ({ours.get('gemm', '?')} GEMMs) | {ours['images_per_s']:.1f} "
              f"| 1.00x | |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
