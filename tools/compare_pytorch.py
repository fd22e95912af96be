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
    (the float model's weights in torchvision's QuantizableMobileNetV2, whose
    ReLU replaces ReLU6; fuse, default qconfig of the engine, calibrate on
    random batches, convert)
  - qforge int8 and float, from qforge's benchmark binary
    (`bazel-bin/tools/benchmark --model=PATH --threads=N --batch=1 --json`),
    on the same float weights: the PyTorch float model is brought into qforge
    (tools/torchvision_checkpoint.py import) and converted by qforge, int8
    calibrated on the PyTorch int8 rows' batches (tools/make_mobilenet_v2
    --checkpoint, the per-channel histogram qconfig);
    its default backend (qforge's own int8 kernels where the CPU has
    AVX2 or better), and int8 on XNNPACK alone for reference

With --peers, also the runtimes a qforge user would pick instead, on the same
MobileNetV2 exported to ONNX (tools/peer_runtimes.py says how):
  - ONNX Runtime int8 (QDQ, quantized by its quantize_static) and float
  - OpenVINO int8 (the same QDQ file) and float
  - LiteRT int8 with its XNNPACK delegate (the same int8 model as a .tflite)
Then, for each peer's int8 row, how many times slower it is than qforge int8.
--peer_profile adds qforge's and OpenVINO's int8 time by op kind at 1 thread,
and the layers where the two differ most.

An engine this PyTorch build lacks (e.g. fbgemm in Debian's) prints
"unavailable"; a missing qforge binary or model file prints "not run".
The qforge binaries come from `bazel build //tools:benchmark
//tools:make_mobilenet_v2 //trainer` (tools/compare_runtimes.sh builds them).

Run from anywhere (Debian's python3-torch and python3-torchvision):
  /usr/bin/python3 tools/compare_pytorch.py [--runs 100] [--json out.json]
With the peers, after tools/install_peers.sh (the script re-runs itself with
the venv's Python, $QFORGE_PEERS_VENV or /opt/qforge-peers, when it must):
  /usr/bin/python3 tools/compare_pytorch.py --peers [--peer_profile]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import torch
import torchvision

from machine import cpu_model  # tools/machine.py, beside this script

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = (1, 2)
ENGINES = ("qnnpack", "onednn")
PEERS_VENV = os.environ.get("QFORGE_PEERS_VENV", "/opt/qforge-peers")
PEER_MODULES = ("onnxruntime", "openvino", "onnx")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100, help="timed runs per row")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per row")
    p.add_argument("--calib_batches", type=int, default=4,
                   help="random batches (of 8) used to calibrate observers")
    p.add_argument("--qforge_benchmark",
                   default=os.path.join(REPO_ROOT, "bazel-bin/tools/benchmark"))
    p.add_argument("--qforge_model_dir", default="/tmp/qforge/compare",
                   help="where qforge's models of the PyTorch weights go")
    p.add_argument("--qforge_make_model",
                   default=os.path.join(REPO_ROOT, "bazel-bin/tools/make_mobilenet_v2"))
    p.add_argument("--qforge_trainer",
                   default=os.path.join(REPO_ROOT, "bazel-bin/trainer/trainer"))
    p.add_argument("--json", metavar="PATH", help="also write raw numbers here")
    p.add_argument("--peers", action="store_true",
                   help="also time ONNX Runtime, OpenVINO and LiteRT (needs "
                   "tools/install_peers.sh)")
    p.add_argument("--peer_profile", action="store_true",
                   help="also OpenVINO's int8 time by op kind (implies "
                   "--peers)")
    p.add_argument("--peers_venv", default=PEERS_VENV,
                   help="venv of tools/install_peers.sh, used when this "
                   "Python lacks the peer packages")
    p.add_argument("--rounds", type=int, default=0,
                   help="with --peers, then time qforge int8 and the int8 "
                   "peers again in this many interleaved rounds (every "
                   "system in turn, round after round) and print each one's "
                   "median and its per-round ratio to qforge: a comparison "
                   "that holds while the machine's speed drifts")
    p.add_argument("--peer_dir", metavar="DIR",
                   help="keep the peers' model files (.onnx, .tflite) here "
                   "(default: a temporary directory)")
    return p.parse_args()


def percentile(values, q):
    """Nearest-rank percentile of a list of numbers, q in [0, 100]."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def time_runs(run, runs, warmup):
    """Median and p90 ms of run(): `warmup` untimed calls, then `runs` timed."""
    for _ in range(warmup):
        run()
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": statistics.median(times_ms),
            "p90_ms": percentile(times_ms, 90)}


def time_model(model, image, threads, runs, warmup):
    """Median and p90 ms per image of model(image) with `threads` threads."""
    torch.set_num_threads(threads)
    with torch.no_grad():
        return time_runs(lambda: model(image), runs, warmup)


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


def float_model_and_calibration(calib_batches):
    """The float model and the batches every int8 row calibrates on:
    float_model() leaves torch's generator where quantized_model() starts
    calibrating."""
    model = float_model()
    return model, [torch.randn(8, 3, 224, 224) for _ in range(calib_batches)]


def quantized_model(engine, calib_batches):
    """Int8 MobileNetV2 for `engine`, as in the tutorial: fuse, prepare,
    calibrate, convert, script. Raises if the engine is not built in."""
    if engine not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"engine {engine} not in this PyTorch build")
    torch.backends.quantized.engine = engine
    # The float model's weights and batch-norm statistics; its ReLU6 becomes
    # ReLU, as in torchvision's QuantizableMobileNetV2 (PyTorch cannot fuse
    # ReLU6). float_model() leaves the generator where the other int8 rows'
    # calibration batches start.
    model = torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False)
    model.load_state_dict(float_model().state_dict())
    model.eval()
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


def qforge_result(binary, model, threads, *extra):
    """One qforge benchmark run as a dict, or None if it cannot run."""
    if not (os.access(binary, os.X_OK) and os.path.isfile(model)):
        return None
    cmd = [binary, f"--model={model}", f"--threads={threads}", "--batch=1",
           "--json", *extra]
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


def make_qforge_models(args):
    """qforge's float and int8 models of the PyTorch float model: imported,
    then fused, calibrated on the PyTorch int8 rows' batches and converted
    by qforge. Returns their paths, or None (with a note) if a step fails."""
    model, calib = float_model_and_calibration(args.calib_batches)
    out = args.qforge_model_dir
    os.makedirs(out, exist_ok=True)
    pth, images = os.path.join(out, "mobilenet_v2.pth"), os.path.join(out, "calibration.f32")
    torch.save(model.state_dict(), pth)
    torch.cat(calib).permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tofile(images)
    steps = [[sys.executable, os.path.join(REPO_ROOT, "tools/torchvision_checkpoint.py"),
              "import", pth, f"--output_dir={out}", f"--trainer={args.qforge_trainer}"],
             [args.qforge_make_model, f"--checkpoint={out}/checkpoint.pb",
              f"--calibration_images={images}", f"--out_dir={out}", "--name=mobilenet_v2"]]
    for cmd in steps:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as err:  # e.g. the binary is not built
            print(f"note: {' '.join(cmd)} could not run: {err}")
            return None
        if result.returncode != 0:
            print(f"note: {' '.join(cmd)} failed: {result.stderr.strip()}")
            return None
    return {kind: os.path.join(out, f"mobilenet_v2_{kind}.qfm") for kind in ("int8", "float")}


def qforge_rows(args, models):
    torch.set_num_threads(1)  # keep PyTorch's idle workers off the cores
    rows = {"qforge int8": (models["int8"],),
            "qforge int8, XNNPACK only": (models["int8"], "--backend=xnnpack"),
            "qforge float": (models["float"],)}
    return {name: {n: qforge_result(args.qforge_benchmark, model, n, *extra)
                   for n in THREADS}
            for name, (model, *extra) in rows.items()}


def qforge_profile(args, int8_model):
    """(table lines of qforge's int8 time by op kind at 1 thread, the sum of
    each op's median over the runs; [[op name, median ms]] in run order), or
    ([], []) if the benchmark cannot run."""
    result = qforge_result(args.qforge_benchmark, int8_model, 1,
                           "--profile", f"--runs={args.runs}")
    if result is None or "ms_by_kind" not in result:
        return [], []
    by_kind = result["ms_by_kind"]
    total = sum(by_kind.values())
    lines = [f"qforge int8, 1 thread, time by op kind (ops run by: "
             f"{result.get('engines', '?')}):", "",
             "| op kind | ms | share |", "|---|---|---|"]
    for kind, ms in sorted(by_kind.items(), key=lambda item: -item[1]):
        lines.append(f"| {kind} | {ms:.3f} | {ms / total * 100.0:.1f}% |")
    lines.append(f"| total | {total:.3f} | 100% |")
    return lines, result.get("ms_by_op", [])


def ratio_lines(results):
    """How many times slower each other int8 row is than qforge int8, per
    thread count (below 1: faster than qforge)."""
    ours = results.get("qforge int8", {})
    lines = ["int8 rows against qforge int8 (their median / qforge's):", "",
             "| system | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}"
                                      for n in THREADS) + " |",
             "|---|" + "---|" * len(THREADS)]
    for name, by_threads in results.items():
        if "int8" not in name or name == "qforge int8":
            continue
        cells = []
        for n in THREADS:
            theirs, mine = by_threads.get(n), ours.get(n)
            cells.append(f"{theirs['median_ms'] / mine['median_ms']:.2f}x"
                         if theirs and mine else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def peers_python(venv):
    """None if this Python has the peer packages; else the venv's Python to
    re-run this script with. Exits when neither has them."""
    try:
        for name in PEER_MODULES:
            __import__(name)
        return None
    except ImportError as err:
        missing = err.name
    python = os.path.join(venv, "bin", "python")
    here = os.path.realpath(sys.prefix) == os.path.realpath(venv)
    if here or not os.access(python, os.X_OK):
        sys.exit(f"--peers: no module {missing} in {sys.executable}; "
                 f"run tools/install_peers.sh {venv}")
    return python


def peer_rows(args, qforge_models):
    """The peers' {row name: {threads: result or None}} and, for the printout,
    {"versions": ..., "isa": ..., "profile": lines or None}.

    The peers get the float model and calibration batches of the PyTorch
    rows."""
    import peer_runtimes  # needs the venv's packages
    torch.set_num_threads(1)  # keep PyTorch's idle workers off the cores
    model, calib = float_model_and_calibration(args.calib_batches)
    image = torch.randn(1, 3, 224, 224).numpy()
    info = {"versions": peer_runtimes.versions(),
            "isa": peer_runtimes.cpu_isa(), "profile": None}
    with tempfile.TemporaryDirectory(prefix="qforge_peers_") as tmp:
        workdir = args.peer_dir or tmp
        os.makedirs(workdir, exist_ok=True)
        rows, int8_path, makers = peer_runtimes.peer_rows(
            args, model, calib, image, THREADS, time_runs, workdir)
        if args.rounds > 0:
            int8_makers = {name: make for name, make in makers.items() if "int8" in name}
            info["rounds"] = interleaved_rounds(args, qforge_models["int8"], int8_makers)
        if args.peer_profile:
            info["profile"], openvino_layers = peer_runtimes.openvino_profile(
                int8_path, image, args.runs, args.warmup)
            info["qforge_profile"], qforge_ops = qforge_profile(
                args, qforge_models["int8"])
            info["layers"] = peer_runtimes.layer_lines(qforge_ops, openvino_layers)
    return rows, info


def interleaved_rounds(args, qforge_int8, makers):
    """{threads: {system: [median ms of each round]}}: qforge int8 and the
    peers of `makers` ({name: make(threads) -> run}) timed args.rounds times
    in turn, the order rotated each round. Each peer's session is made anew
    for its turn, so no idle pool of one spins beside another's timing."""
    import peer_runtimes  # needs the venv's packages
    systems = ["qforge int8", *makers]
    rounds = {n: {name: [] for name in systems} for n in THREADS}
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds}", file=sys.stderr)
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for n in THREADS:
            for name in order:
                if name == "qforge int8":
                    result = qforge_result(args.qforge_benchmark, qforge_int8, n,
                                           f"--runs={args.runs}", f"--warmup={args.warmup}")
                else:
                    result = peer_runtimes.peer_result(
                        name, n, lambda: makers[name](n), time_runs, args)
                if result is not None:
                    rounds[n][name].append(result["median_ms"])
    return rounds


def rounds_lines(rounds, runs):
    """The table of interleaved_rounds()'s medians and ratios."""
    count = len(rounds[THREADS[0]]["qforge int8"])
    lines = [f"Interleaved: {count} rounds, each timing every int8 system in turn "
             f"({runs} runs each); per system the median of its round medians (ms), and "
             "the median (min-max) of its per-round ratio to qforge int8 (above 1 is "
             "slower than qforge):", "",
             "| system | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}" for n in THREADS)
             + " |", "|---|" + "---|" * len(THREADS)]
    for name in rounds[THREADS[0]]:
        cells = []
        for n in THREADS:
            mine, theirs = rounds[n]["qforge int8"], rounds[n][name]
            if not theirs:
                cells.append("-")
                continue
            text = f"{statistics.median(theirs):.2f}"
            if name != "qforge int8" and len(mine) == len(theirs):
                ratios = [t / m for t, m in zip(theirs, mine)]
                text += (f": {statistics.median(ratios):.2f}x "
                         f"({min(ratios):.2f}-{max(ratios):.2f})")
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def cell(result, missing):
    if result is None:
        return missing
    return f"{result['median_ms']:.2f} ({result['p90_ms']:.2f})"


def print_table(results, runs, peers=None):
    """The table of all rows; `peers` is peer_rows()'s info, with --peers."""
    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"quantized engines: {torch.backends.quantized.supported_engines}")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical cores)")
    if peers is not None:
        print("CPU int8/bf16 ISA (/proc/cpuinfo): "
              f"{', '.join(peers['isa']) or 'none of avx512_vnni, avx_vnni'}")
        print("peers: " + ", ".join(f"{name} {version or 'not installed'}"
                                    for name, version
                                    in peers["versions"].items()))
    print(f"MobileNetV2 1.0, 1x3x224x224, {runs} timed runs; "
          "ms per image, median (p90)")
    print()
    print("| system | 1 thread median ms | 2 threads median ms |")
    print("|---|---|---|")
    for name, by_threads in results.items():
        missing = "not run" if name.startswith("qforge") else "unavailable"
        cells = " | ".join(cell(by_threads[n], missing) for n in THREADS)
        print(f"| {name} | {cells} |")
    print()
    print("\n".join(ratio_lines(results)))
    if peers is not None and peers["profile"]:
        for table in (peers["qforge_profile"], peers["profile"], peers["layers"]):
            if table:
                print()
                print("\n".join(table))
    if peers is not None and peers.get("rounds"):
        print()
        print("\n".join(rounds_lines(peers["rounds"], runs)))


def main():
    args = parse_args()
    args.peers = args.peers or args.peer_profile
    if args.peers:
        python = peers_python(args.peers_venv)
        if python:
            sys.stdout.flush()
            os.execv(python, [python, os.path.abspath(__file__)]
                     + sys.argv[1:])
    qforge_models = make_qforge_models(args) or {"int8": "", "float": ""}
    results = pytorch_rows(args)
    results.update(qforge_rows(args, qforge_models))
    peers = None
    if args.peers:
        peer_results, peers = peer_rows(args, qforge_models)
        results.update(peer_results)
    print_table(results, args.runs, peers)
    if args.json:
        info = {"torch": torch.__version__, "cpu": cpu_model(),
                "engines": torch.backends.quantized.supported_engines,
                "runs": args.runs, "results": results}
        if peers is not None:
            info["peers"] = peers
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
