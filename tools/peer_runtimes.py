"""The runtimes a qforge user would pick instead of qforge, for
`tools/compare_pytorch.py --peers`: ONNX Runtime, OpenVINO and LiteRT.

Every peer runs the MobileNetV2 of the PyTorch rows (same random weights, same
BatchNorm statistics), exported to ONNX (opset 13, batch 1, NCHW float input):
  - float: that ONNX file as exported;
  - int8: that file after ONNX Runtime's quant_pre_process, quantized with
    onnxruntime.quantization.quantize_static in QDQ format, per-channel int8
    weights, uint8 activations, MinMax calibration on the batches the PyTorch
    int8 rows calibrate on. OpenVINO reads the same QDQ file.
Threads: ONNX Runtime intra_op_num_threads = N (inter_op 1, sequential
execution, all graph optimizations); OpenVINO INFERENCE_NUM_THREADS = N with the
LATENCY performance hint and INFERENCE_PRECISION_HINT f32 on both rows, so it
computes in int8 and f32 only, never bf16 or f16.

LiteRT (ai-edge-litert, with its default XNNPACK delegate, num_threads = N)
runs .tflite files only. TensorFlow's converter, which would make one, is a
large download the tools do not install; instead qdq_to_tflite() writes the
QDQ model's int8 weights and quantization parameters straight into a
full-integer .tflite (NHWC, int8 activations, float input and output) with the
flatbuffer schema that ai-edge-litert ships. Its logits equal ONNX Runtime's
int8 ones. LiteRT takes the same image transposed to NHWC.

The packages live in the venv that tools/install_peers.sh makes.
"""

import collections
import os
import re
import statistics
from importlib import metadata

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import torch
from onnxruntime import quantization as ortq
from onnxruntime.quantization.shape_inference import quant_pre_process

PEER_PACKAGES = ("onnxruntime", "openvino", "onnx", "ai-edge-litert")
ISA_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")


def versions():
    """{package: version or None} for the peer packages in this Python."""
    found = {}
    for name in PEER_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_isa():
    """The int8/bf16 instruction sets of ISA_FLAGS that /proc/cpuinfo lists."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in ISA_FLAGS if flag in flags]
    except OSError:
        pass
    return []


def export_onnx(model, path):
    """Writes the float torch `model` as ONNX, opset 13, input 1x3x224x224."""
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(1, 3, 224, 224), path,
                          opset_version=13, input_names=["input"],
                          output_names=["logits"])
    return path


class CalibrationImages(ortq.CalibrationDataReader):
    """Feeds the images of NCHW float batches one at a time (the ONNX model
    takes batch 1)."""

    def __init__(self, batches):
        self._images = iter([{"input": batch[i:i + 1].numpy()}
                             for batch in batches for i in range(len(batch))])

    def get_next(self):
        return next(self._images, None)


def quantize_onnx(float_path, int8_path, calib_batches):
    """QDQ int8 model of float_path, the way ONNX Runtime's documentation
    quantizes a CNN: pre-process, then static quantization."""
    prepared = int8_path + ".prep.onnx"
    quant_pre_process(float_path, prepared)
    ortq.quantize_static(
        prepared, int8_path, CalibrationImages(calib_batches),
        quant_format=ortq.QuantFormat.QDQ, per_channel=True,
        activation_type=ortq.QuantType.QUInt8,
        weight_type=ortq.QuantType.QInt8,
        calibrate_method=ortq.CalibrationMethod.MinMax)
    os.remove(prepared)
    return int8_path


def onnxruntime_session(path, threads):
    """An ONNX Runtime CPU session of `path` with N intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    return ort.InferenceSession(path, options,
                                providers=["CPUExecutionProvider"])


def openvino_compiled(core, path, threads, perf_count=False):
    """`path` compiled for the CPU with N threads, latency hint, f32 hint."""
    config = {"INFERENCE_NUM_THREADS": threads,
              "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "f32"}
    if perf_count:
        config["PERF_COUNT"] = True
    return core.compile_model(core.read_model(path), "CPU", config)


class _TfliteWriter:
    """Builds a one-subgraph .tflite: tensors, their buffers, operators."""

    def __init__(self, schema):
        self.fb = schema
        self.tensors, self.operators, self.codes = [], [], {}
        self.buffers = [schema.BufferT()]  # buffer 0 is the empty one

    def tensor(self, name, shape, dtype, scale=None, zero_point=None,
               axis=0, data=None):
        """Adds a tensor (a constant when `data` is given; quantized when
        `scale` is) and returns its index."""
        fb = self.fb
        t = fb.TensorT()
        t.name, t.shape = name, [int(d) for d in shape]
        t.type = {np.float32: fb.TensorType.FLOAT32,
                  np.int8: fb.TensorType.INT8,
                  np.int32: fb.TensorType.INT32}[dtype]
        t.buffer = 0
        if data is not None:
            buf = fb.BufferT()
            buf.data = np.frombuffer(
                np.ascontiguousarray(data, dtype).tobytes(), np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point)]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def constant(self, name, data, scales, axis=0):
        """A symmetric per-channel int8 weight or int32 bias constant."""
        scales = np.atleast_1d(scales)
        return self.tensor(name, data.shape, data.dtype.type, scales,
                           np.zeros(len(scales), np.int64), axis, data)

    def op(self, code, inputs, outputs, options_type=0, options=None):
        o = self.fb.OperatorT()
        o.opcodeIndex = self.codes.setdefault(code, len(self.codes))
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def write(self, path, inputs, outputs):
        from ai_edge_litert.tools import flatbuffer_utils
        fb = self.fb
        sub = fb.SubGraphT()
        sub.tensors, sub.operators = self.tensors, self.operators
        sub.inputs, sub.outputs = list(inputs), list(outputs)
        model = fb.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [sub], self.buffers
        model.description = "MobileNetV2 int8, for qforge's peer comparison"
        model.operatorCodes = []
        for code in sorted(self.codes, key=self.codes.get):
            c = fb.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode = code, min(code, 127)
            c.version = 1  # the builtin kernels accept any of their versions
            model.operatorCodes.append(c)
        with open(path, "wb") as f:
            f.write(flatbuffer_utils.convert_object_to_bytearray(model))


def qdq_to_tflite(int8_path, tflite_path):
    """Writes the QDQ ONNX MobileNetV2 of quantize_onnx() as a full-integer
    .tflite with the same int8 weights, int32 biases and quantization
    parameters: NHWC, int8 activations (ONNX's uint8 zero points minus 128),
    float input and output through QUANTIZE and DEQUANTIZE. Knows the ops of
    that model only: Conv (dense and depthwise), Add, GlobalAveragePool,
    Flatten and Gemm between QuantizeLinear/DequantizeLinear pairs."""
    from ai_edge_litert import schema_py_generated as fb

    graph = onnx.load(int8_path).graph
    consts = {init.name: onnx.numpy_helper.to_array(init)
              for init in graph.initializer}
    w = _TfliteWriter(fb)
    # ONNX tensor name -> its int8 tensor's index, NHWC shape, (scale, zp)
    ids, shapes, qparams = {}, {}, {}
    weights = {}  # DequantizeLinear output -> (ints, scales, zero points)
    quantizer = {node.input[0]: node for node in graph.node
                 if node.op_type == "QuantizeLinear"}

    def alias(name, source):
        ids[name], shapes[name] = ids[source], shapes[source]
        qparams[name] = qparams[source]

    def output(node, shape, q=None):
        """Adds the int8 tensor of node's output, quantized as the
        QuantizeLinear `q` says, by default the one after the node."""
        q = q or quantizer[node.output[0]]
        scale = float(consts[q.input[1]])
        zero_point = int(consts[q.input[2]]) - 128
        ids[q.output[0]] = w.tensor(q.output[0], shape, np.int8, scale,
                                    zero_point)
        shapes[q.output[0]], qparams[q.output[0]] = shape, (scale, zero_point)
        alias(node.output[0], q.output[0])
        return ids[q.output[0]]

    def pad(x, top, left, bottom, right):
        """An explicit PAD, where TFLite's SAME padding would differ (SAME
        pads a stride-2 conv at the bottom/right only)."""
        n, h, wd, c = shapes[x]
        padded = [n, h + top + bottom, wd + left + right, c]
        pid = w.tensor(x + "/pad", padded, np.int8, *qparams[x])
        paddings = np.array([[0, 0], [top, bottom], [left, right], [0, 0]],
                            np.int32)
        w.op(fb.BuiltinOperator.PAD,
             [ids[x], w.tensor(x + "/paddings", [4, 2], np.int32,
                               data=paddings)],
             [pid], fb.BuiltinOptions.PadOptions, fb.PadOptionsT())
        return pid, padded

    def conv(node):
        attrs = {a.name: onnx.helper.get_attribute_value(a)
                 for a in node.attribute}
        x = node.input[0]
        data, wscale, wzero = weights[node.input[1]]
        bias, bscale, _ = weights[node.input[2]]
        if np.any(wzero != 0):
            raise ValueError(f"{node.name}: weights are not symmetric")
        out_c, _, kh, kw = data.shape
        sh, sw = attrs.get("strides", [1, 1])
        top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
        xid, in_shape = ids[x], shapes[x]
        padding = fb.Padding.VALID
        if (sh, sw) == (1, 1) and (top, left, bottom, right) == (
                kh // 2, kw // 2, kh // 2, kw // 2) and kh > 1:
            padding, out_hw = fb.Padding.SAME, in_shape[1:3]
        else:
            if top or left or bottom or right:
                xid, in_shape = pad(x, top, left, bottom, right)
            out_hw = [(in_shape[1] - kh) // sh + 1,
                      (in_shape[2] - kw) // sw + 1]
        if attrs.get("group", 1) > 1:  # depthwise: [out, 1, kh, kw]
            fid = w.constant(node.input[1], data.transpose(1, 2, 3, 0),
                             wscale, axis=3)
            options = fb.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
            code = fb.BuiltinOperator.DEPTHWISE_CONV_2D
            options_type = fb.BuiltinOptions.DepthwiseConv2DOptions
        else:  # [out, in, kh, kw] -> [out, kh, kw, in]
            fid = w.constant(node.input[1], data.transpose(0, 2, 3, 1), wscale)
            options = fb.Conv2DOptionsT()
            code = fb.BuiltinOperator.CONV_2D
            options_type = fb.BuiltinOptions.Conv2DOptions
        options.padding, options.strideH, options.strideW = padding, sh, sw
        bid = w.constant(node.input[2], bias, bscale)
        w.op(code, [xid, fid, bid],
             [output(node, [in_shape[0], *out_hw, out_c])],
             options_type, options)

    input_id = None
    for node in graph.node:
        kind, x = node.op_type, node.input[0]
        if kind == "DequantizeLinear" and x in consts:
            weights[node.output[0]] = (consts[x],
                                       np.atleast_1d(consts[node.input[1]]),
                                       np.atleast_1d(consts[node.input[2]]))
        elif kind == "QuantizeLinear" and x == graph.input[0].name:
            n, c, h, wd = [d.dim_value for d in
                           graph.input[0].type.tensor_type.shape.dim]
            input_id = w.tensor(x, [n, h, wd, c], np.float32)
            w.op(fb.BuiltinOperator.QUANTIZE, [input_id],
                 [output(node, [n, h, wd, c], q=node)])
        elif kind == "QuantizeLinear":
            if node.output[0] not in ids:  # after Flatten: same parameters
                alias(node.output[0], x)
        elif kind in ("DequantizeLinear", "Flatten"):
            alias(node.output[0], x)  # Flatten: MEAN's output is [1, C]
        elif kind == "Conv":
            conv(node)
        elif kind == "Add":
            w.op(fb.BuiltinOperator.ADD, [ids[x], ids[node.input[1]]],
                 [output(node, shapes[x])],
                 fb.BuiltinOptions.AddOptions, fb.AddOptionsT())
        elif kind == "GlobalAveragePool":
            axes = w.tensor(x + "/axes", [2], np.int32,
                            data=np.array([1, 2], np.int32))
            w.op(fb.BuiltinOperator.MEAN, [ids[x], axes],
                 [output(node, [shapes[x][0], shapes[x][3]])],
                 fb.BuiltinOptions.ReducerOptions, fb.ReducerOptionsT())
        elif kind == "Gemm":  # transB = 1: weights [out, in], as TFLite's
            data, wscale, _ = weights[node.input[1]]
            bias, bscale, _ = weights[node.input[2]]
            w.op(fb.BuiltinOperator.FULLY_CONNECTED,
                 [ids[x], w.constant(node.input[1], data, wscale),
                  w.constant(node.input[2], bias, bscale)],
                 [output(node, [shapes[x][0], data.shape[0]])],
                 fb.BuiltinOptions.FullyConnectedOptions,
                 fb.FullyConnectedOptionsT())
        else:
            raise ValueError(f"no TFLite op for ONNX {kind} ({node.name})")
    # The graph's output is the DequantizeLinear of the last QuantizeLinear.
    logits = graph.output[0].name
    output_id = w.tensor(logits, shapes[logits], np.float32)
    w.op(fb.BuiltinOperator.DEQUANTIZE, [ids[logits]], [output_id])
    w.write(tflite_path, [input_id], [output_id])
    return tflite_path


def litert_run(path, threads, nhwc_image):
    """A callable running one LiteRT inference of `path` (XNNPACK delegate,
    `threads` threads) on nhwc_image and returning the logits."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run():
        interpreter.set_tensor(input_index, nhwc_image)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)
    return run


def peer_result(name, threads, make_run, time_runs, args):
    """Times make_run()() like the other rows; None if it cannot run."""
    try:
        run = make_run()
        return time_runs(run, args.runs, args.warmup)
    except Exception as err:  # a missing kernel, a failed compile
        lines = str(err).strip().splitlines() or [repr(err)]
        print(f"note: {name}, {threads} thread(s): unavailable: {lines[-1]}")
        return None


def peer_rows(args, model, calib_batches, image, threads, time_runs, workdir):
    """({row name: {threads: result or None}}, int8 ONNX path, {row name:
    make(threads) returning a callable that runs one inference}) for the peer
    rows; the model files are written to `workdir`.

    `model` is the float torch MobileNetV2, `calib_batches` the calibration
    batches of the PyTorch int8 rows, `image` the 1x3x224x224 numpy input,
    `time_runs(run, runs, warmup)` the timer of the other rows."""
    float_path = export_onnx(model, os.path.join(workdir, "mobilenet_v2.onnx"))
    int8_path = quantize_onnx(float_path,
                              os.path.join(workdir, "mobilenet_v2_qdq.onnx"),
                              calib_batches)
    feeds = {"input": image}

    def ort_run(path, n):
        session = onnxruntime_session(path, n)
        return lambda: session.run(None, feeds)

    core = ov.Core()

    def ov_run(path, n):
        request = openvino_compiled(core, path, n).create_infer_request()
        return lambda: request.infer({0: image})

    rows = {
        "ONNX Runtime int8 (QDQ)": lambda n: ort_run(int8_path, n),
        "ONNX Runtime float": lambda n: ort_run(float_path, n),
        "OpenVINO int8 (QDQ)": lambda n: ov_run(int8_path, n),
        "OpenVINO float": lambda n: ov_run(float_path, n),
    }
    try:
        tflite_path = qdq_to_tflite(
            int8_path, os.path.join(workdir, "mobilenet_v2_int8.tflite"))
        nhwc = np.ascontiguousarray(image.transpose(0, 2, 3, 1))
        rows["LiteRT int8 (XNNPACK)"] = (
            lambda n: litert_run(tflite_path, n, nhwc))
    except Exception as err:  # ai-edge-litert missing, or an unexpected op
        print(f"note: LiteRT int8: not run: {err!r}")
    results = {name: {n: peer_result(name, n, lambda: make(n), time_runs, args)
                      for n in threads}
               for name, make in rows.items()}
    return results, int8_path, rows


# Kinds of --peer_profile, in print order.
PROFILE_KINDS = ("first conv (3x3, 3 input channels)", "1x1 conv",
                 "depthwise conv", "add", "global average pool",
                 "fully connected", "other (quantize, reorder, ...)")


# The kinds whose nodes openvino_profile times per layer.
LAYER_KINDS = PROFILE_KINDS[:3] + ("fully connected",)


def _rt(op, key):
    """An execution-graph node's runtime info field as a string."""
    info = op.get_rt_info()
    return info[key].astype(str) if key in info else ""


def _has_add(op):
    """Whether an execution-graph node runs one of the model's Add nodes."""
    return re.search(r"/Add(,|$)", _rt(op, "originalLayersNames")) is not None


def openvino_kind(node_type, op):
    """PROFILE_KINDS entry of an OpenVINO execution-graph node, by its node
    type (from the performance counters) and weight shape."""
    shapes = [op.input(i).get_partial_shape()
              for i in range(op.get_input_size())]
    weights = (shapes[1].to_shape() if len(shapes) > 1 and shapes[1].is_static
               else None)
    if node_type == "GroupConvolution" or (
            node_type == "Convolution" and weights and len(weights) == 5):
        return "depthwise conv"  # weights [groups, 1, 1, kh, kw]
    if node_type == "Convolution" and weights and len(weights) == 4:
        if weights[1] == 3:  # [out, in, kh, kw]
            return PROFILE_KINDS[0]
        if list(weights[2:]) == [1, 1]:
            return "1x1 conv"
    if node_type in ("Eltwise", "Add") and _has_add(op):
        return "add"
    if node_type in ("Reduce", "ReduceMean", "Pooling"):
        return "global average pool"
    if node_type in ("FullyConnected", "MatMul", "Gemm"):
        return "fully connected"
    return PROFILE_KINDS[-1]


def layer_name(original_names):
    """The torchvision module name (as qforge names its ops, e.g.
    "features.2.conv.0.0") of the first Conv or Gemm in an execution-graph
    node's originalLayersNames, or None. torch.onnx names a node by its module
    path, "/features/features.2/conv/conv.0/conv.0.0/Conv": the path's last
    module, prefixed with its block unless it names the block itself."""
    match = re.search(r"/([^,]*?)/(Conv|Gemm)(/|,|$)", original_names)
    if match is None:
        return None
    path = match.group(1).split("/")
    if len(path) < 2 or path[-1].startswith(path[0] + "."):
        return path[-1]
    return f"{path[1]}.{path[-1]}"


def layer_lines(qforge_ops, openvino_layers, shown=12):
    """Table lines of the layers where qforge's and OpenVINO's times differ
    most, from qforge_profile()'s ops and openvino_profile()'s layers. A
    residual add, which OpenVINO fuses into the conv before it, counts with
    that conv on qforge's side too."""
    qforge = collections.defaultdict(float)
    last_conv = None
    for name, ms in qforge_ops:
        if name in openvino_layers:
            last_conv = name
            qforge[name] += ms
        elif name.endswith("skip_add") and last_conv is not None:
            qforge[last_conv] += ms
    rows = sorted(((qforge[n] - openvino_layers[n], n) for n in qforge),
                  reverse=True)
    if not rows:
        return []
    lines = ["Layers, 1 thread, qforge's op medians against OpenVINO's node "
             f"medians, the {shown} largest differences (adds with the conv "
             "before them):", "",
             "| layer | qforge ms | OpenVINO ms | difference |",
             "|---|---|---|---|"]
    for diff, name in rows[:shown]:
        lines.append(f"| {name} | {qforge[name]:.3f} | "
                     f"{openvino_layers[name]:.3f} | {diff:+.3f} |")
    rest = rows[shown:]
    lines.append(f"| the other {len(rest)} | {sum(qforge[n] for _, n in rest):.3f} | "
                 f"{sum(openvino_layers[n] for _, n in rest):.3f} | "
                 f"{sum(d for d, _ in rest):+.3f} |")
    return lines


def openvino_profile(int8_path, image, runs, warmup):
    """(table lines of OpenVINO's int8 time by op kind at 1 thread, from its
    per-node performance counters: the median over runs of each kind's total;
    {layer_name(): median ms} of its conv and fully connected nodes)."""
    core = ov.Core()
    compiled = openvino_compiled(core, int8_path, 1, perf_count=True)
    ops = {op.get_friendly_name(): op
           for op in compiled.get_runtime_model().get_ops()}
    request = compiled.create_infer_request()
    for _ in range(warmup):
        request.infer({0: image})
    per_run = collections.defaultdict(list)
    per_layer = collections.defaultdict(list)
    kernels = collections.defaultdict(collections.Counter)
    nodes = collections.Counter()
    fused_adds = 0
    for run in range(runs):
        request.infer({0: image})
        totals = collections.Counter()
        for info in request.get_profiling_info():
            op = ops.get(info.node_name)
            if op is None or info.status != info.Status.EXECUTED:
                continue
            kind = openvino_kind(info.node_type, op)
            ms = info.real_time.total_seconds() * 1000.0
            totals[kind] += ms
            layer = layer_name(_rt(op, "originalLayersNames"))
            if layer is not None and kind in LAYER_KINDS:
                per_layer[layer].append(ms)
            if run == 0:
                nodes[kind] += 1
                kernels[kind][info.exec_type] += 1
                if "conv" in kind and _has_add(op):
                    fused_adds += 1
        for kind in PROFILE_KINDS:
            per_run[kind].append(totals[kind])
    medians = {kind: statistics.median(per_run[kind]) for kind in PROFILE_KINDS}
    total = sum(medians.values())
    lines = [f"OpenVINO int8, 1 thread, time by op kind (median over {runs} "
             "runs of its per-node counters):", "",
             "| op kind | nodes | ms | share | kernels |",
             "|---|---|---|---|---|"]
    for kind in PROFILE_KINDS:
        share = medians[kind] / total * 100.0 if total else 0.0
        used = ", ".join(f"{k} x{c}" if c > 1 else k
                         for k, c in kernels[kind].most_common())
        lines.append(f"| {kind} | {nodes[kind]} | {medians[kind]:.3f} | "
                     f"{share:.1f}% | {used or '-'} |")
    lines.append(f"| total | {sum(nodes.values())} | {total:.3f} | 100% | |")
    if fused_adds:
        lines.append(f"{fused_adds} residual adds run fused into the conv "
                     "before them and are counted there.")
    return lines, {layer: statistics.median(ms) for layer, ms in per_layer.items()}
