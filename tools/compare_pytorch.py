#!/usr/bin/python3
"""Compare qforge's MobileNetV2 latency with PyTorch's, side by side, in one run.

Measures MobileNetV2 (width 1.0, 224x224x3 input, 1000 classes, batch 1, random
weights from torch.manual_seed(0), BatchNorm statistics set from random batches)
the way PyTorch's eager-mode static quantization tutorial measures it in
`run_benchmark`: the quantized model is torch.jit.script-ed and run on one image
repeatedly, time per image in ms.
Here each row gets warm-up runs, then --runs timed runs (time.perf_counter per
run); the table reports the median and, in parentheses, the 90th percentile.

Rows, each with 1 and 2 threads:
  - PyTorch float, eager (torchvision mobilenet_v2, eval mode, no_grad)
  - PyTorch int8, scripted, for the qnnpack and onednn quantized engines
    (fuse, default qconfig of the engine, calibrate on random batches, convert)
  - qforge int8 and float, from qforge's benchmark binary
    (`bazel-bin/tools/benchmark --model=PATH --threads=N --batch=1 --json`)

An engine this PyTorch build lacks (e.g. fbgemm in Debian's) prints
"unavailable"; a missing qforge binary or model file prints "not run".

Run from anywhere (Debian's python3-torch and python3-torchvision):
  /usr/bin/python3 tools/compare_pytorch.py [--runs 100] [--json out.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import time
import warnings

import torch
import torchvision

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = (1, 2)
ENGINES = ("qnnpack", "onednn")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100, help="timed runs per row")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per row")
    p.add_argument("--calib_batches", type=int, default=4,
                   help="random batches (of 8) used to calibrate observers")
    p.add_argument("--qforge_benchmark",
                   default=os.path.join(REPO_ROOT, "bazel-bin/tools/benchmark"))
    p.add_argument("--qforge_int8_model",
                   default="/tmp/qforge/mobilenet_v2_int8.qfm")
    p.add_argument("--qforge_float_model",
                   default="/tmp/qforge/mobilenet_v2_float.qfm")
    p.add_argument("--json", metavar="PATH", help="also write raw numbers here")
    return p.parse_args()


def percentile(values, q):
    """Nearest-rank percentile of a list of numbers, q in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def time_model(model, image, threads, runs, warmup):
    """Median and p90 ms per image of model(image) with `threads` threads."""
    torch.set_num_threads(threads)
    times_ms = []
    with torch.no_grad():
        for _ in range(warmup):
            model(image)
        for _ in range(runs):
            start = time.perf_counter()
            model(image)
            times_ms.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": statistics.median(times_ms),
            "p90_ms": percentile(times_ms, 90)}


def settle_batchnorm(model, batches=4):
    """Sets BatchNorm statistics from random batches, so a randomly initialised
    network keeps activations near unit scale as a trained one does (with the
    initial statistics they shrink ~10x per stage and int8 outputs are all
    zero). Latency is the same either way; the int8 outputs become meaningful."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # plain average over the batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(8, 3, 224, 224))
    return model.eval()


def float_model():
    torch.manual_seed(0)
    return settle_batchnorm(torchvision.models.mobilenet_v2(weights=None))


def quantized_model(engine, calib_batches):
    """Int8 MobileNetV2 for `engine`, as in the tutorial: fuse, prepare,
    calibrate, convert, script. Raises if the engine is not built in."""
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"engine {engine} not in this PyTorch build")
    torch.backends.quantized.engine = engine
    torch.manual_seed(0)
    model = settle_batchnorm(torchvision.models.quantization.mobilenet_v2(
        weights=None, quantize=False))
    model.fuse_model()
    model.qconfig = torch.ao.quantization.get_default_qconfig(engine)
    torch.ao.quantization.prepare(model, inplace=True)
    with torch.no_grad():
        for _ in range(calib_batches):
            model(torch.randn(8, 3, 224, 224))
    with warnings.catch_warnings():
        # Blocks without a residual connection keep an add observer that
        # never sees data; its default qparams are never used.
        warnings.filterwarnings("ignore", "must run observer")
        torch.ao.quantization.convert(model, inplace=True)
    return torch.jit.script(model)


def pytorch_result(name, build, threads, args):
    """Times a freshly built model; None if it cannot be built or run.

    Each thread count gets its own model: oneDNN's packed int8 weights work
    only with the thread count of their first run (1.13 fails otherwise)."""
    try:
        model = build()
        return time_model(model, torch.randn(1, 3, 224, 224), threads,
                          args.runs, args.warmup)
    except Exception as err:  # a missing engine or a failed conversion
        print(f"note: {name}, {threads} thread(s): unavailable: "
              f"{str(err).splitlines()[-1]}")
        return None


def pytorch_rows(args):
    """{row name: {threads: result or None}} for the PyTorch rows."""
    builders = {"PyTorch float, eager": float_model}
    for engine in ENGINES:
        builders[f"PyTorch int8, {engine}, scripted"] = (
            lambda e=engine: quantized_model(e, args.calib_batches))
    return {name: {n: pytorch_result(name, build, n, args) for n in THREADS}
            for name, build in builders.items()}


def qforge_result(binary, model, threads):
    """One qforge benchmark run as a dict, or None if it cannot run."""
    if not (os.access(binary, os.X_OK) and os.path.isfile(model)):
        return None
    cmd = [binary, f"--model={model}", f"--threads={threads}", "--batch=1",
           "--json"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             timeout=600)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        missing = {"median_ms", "p90_ms"} - set(result)
        if missing:
            raise ValueError(f"no {sorted(missing)} in its JSON")
        return result
    except (subprocess.SubprocessError, ValueError, IndexError, KeyError,
            TypeError) as err:
        print(f"note: {' '.join(cmd)} failed: {err!r}")
        return None


def qforge_rows(args):
    torch.set_num_threads(1)  # keep PyTorch's idle workers off the cores
    models = {"qforge int8": args.qforge_int8_model,
              "qforge float": args.qforge_float_model}
    return {name: {n: qforge_result(args.qforge_benchmark, path, n)
                   for n in THREADS}
            for name, path in models.items()}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cell(result, missing):
    if result is None:
        return missing
    return f"{result['median_ms']:.2f} ({result['p90_ms']:.2f})"


def print_table(results, runs):
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"quantized engines: {torch.backends.quantized.supported_engines}")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores)")
    print(f"MobileNetV2 1.0, 1x3x224x224, {runs} timed runs; "
          "ms per image, median (p90)")
    print()
    print("| system | 1 thread median ms | 2 threads median ms |")
    print("|---|---|---|")
    for name, by_threads in results.items():
        missing = "not run" if name.startswith("qforge") else "unavailable"
        cells = " | ".join(cell(by_threads[n], missing) for n in THREADS)
        print(f"| {name} | {cells} |")


def main():
    args = parse_args()
    results = pytorch_rows(args)
    results.update(qforge_rows(args))
    print_table(results, args.runs)
    if args.json:
        info = {"torch": torch.__version__, "cpu": cpu_model(),
                "engines": torch.backends.quantized.supported_engines,
                "runs": args.runs, "results": results}
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
