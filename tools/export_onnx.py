#!/usr/bin/env python3
"""Exports a qforge model file (.qfm) to ONNX, for ONNX Runtime, OpenVINO and
the other runtimes that read it.

  python3 tools/export_onnx.py model_int8.qfm model_int8.onnx

An int8 model becomes a QDQ model, the form ONNX Runtime's own quantize_static
writes: every int8 tensor is kept as int8 and each op computes in float between
a DequantizeLinear of its inputs and a QuantizeLinear of its output, with the
file's scales and zero points; weights stay int8 with their per-channel scales
(DequantizeLinear along axis 0), biases int32 with scale input_scale *
weight_scale[c]. Runtimes fuse those patterns into integer kernels. A float
model becomes plain Conv / Gemm / Add. The ReLU or ReLU6 of a layer is written
only where the output's quantization range would not already clamp it.

Layout: qforge keeps activations NHWC, ONNX NCHW, so the ONNX input is NCHW
(batch size free) and convs' weights are OIHW. The model's preprocessing
(pixel scale, mean, std, channel order) and class names go into the ONNX
metadata; the input is the normalized image, as in qforge.

Needs protoc and the Python packages onnx, numpy and protobuf (Debian:
python3-onnx python3-numpy python3-protobuf).
"""

import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import qforge_protos

OPSET = 13  # per-channel DequantizeLinear


def read_model(path):
    pb = qforge_protos.model_pb2()
    return pb, qforge_protos.read(pb.Model(), path)


class Exporter:
    """Walks the qforge graph once, writing ONNX nodes and initializers."""

    def __init__(self, pb, model, activations='uint8'):
        self.pb, self.model = pb, model
        # uint8 activations hold qforge's int8 ones shifted by 128 (q + 128 with
        # zero point + 128): the same grid, in the form x86 runtimes fuse best.
        self.activation_type, self.activation_shift = (
            (np.uint8, 128) if activations == 'uint8' else (np.int8, 0))
        self.nodes, self.initializers = [], []
        self.float_views = {}  # constant tensor index -> ONNX name of its float value
        self.producers = {o for op in model.ops for o in op.outputs}

    # Names and constants.

    def name(self, index):
        return f'{self.model.tensors[index].name}'

    def constant(self, name, array):
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op_type, inputs, output, **attributes):
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def values(self, index):
        """A constant tensor's values as numpy, in ONNX's layout (OIHW convs)."""
        t = self.model.tensors[index]
        dtype = {self.pb.FLOAT32: '<f4', self.pb.INT8: 'i1', self.pb.INT32: '<i4'}[t.type]
        array = np.frombuffer(t.data, dtype=dtype).reshape(tuple(t.shape))
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2) if array.ndim == 4 else array)

    def is_int8(self, index):
        return self.model.tensors[index].type == self.pb.INT8

    def scale_and_zero_point(self, index, per_channel=False):
        """Weights: per channel, int8. Activations: per tensor, in the chosen type."""
        q = self.model.tensors[index].quantization
        scales = np.array(q.scale, dtype=np.float32)
        zero_points = np.array(list(q.zero_point) or [0] * len(scales), dtype=np.int32)
        if per_channel:
            return scales, zero_points.astype(np.int8)
        shifted = (zero_points + self.activation_shift).astype(self.activation_type)
        return scales.reshape(()), shifted.reshape(())

    # Float views of qforge tensors.

    def float_view(self, index, consumer):
        """The ONNX name holding tensor `index` as float for op `consumer`. An
        int8 activation gets a DequantizeLinear of its own for each consumer, as
        quantize_static writes them, so each op's pattern can be fused alone."""
        t = self.model.tensors[index]
        if index in self.producers or index in self.model.inputs:
            if not self.is_int8(index):
                return self.name(index)
            scale, zero_point = self.scale_and_zero_point(index)
            return self.node('DequantizeLinear', [
                self.name(index), self.constant(f'{t.name}.scale.{consumer}', scale),
                self.constant(f'{t.name}.zero_point.{consumer}', zero_point)],
                f'{t.name}.dequantized.{consumer}')
        if index in self.float_views:
            return self.float_views[index]
        if t.type == self.pb.FLOAT32:
            view = self.constant(t.name, self.values(index))
        else:  # int8 weights, symmetric, per channel along axis 0
            scale, zero_point = self.scale_and_zero_point(index, per_channel=True)
            per_tensor = len(scale) == 1
            attributes = {} if per_tensor else {'axis': 0}
            view = self.node('DequantizeLinear', [
                self.constant(t.name, self.values(index)),
                self.constant(f'{t.name}.scale', scale.reshape(()) if per_tensor else scale),
                self.constant(f'{t.name}.zero_point',
                              zero_point.reshape(()) if per_tensor else zero_point)],
                f'{t.name}.dequantized', **attributes)
        self.float_views[index] = view
        return view

    def bias_view(self, op):
        """The layer's bias as the third input of Conv or Gemm, if it has one: an
        int8 layer's int32 bias dequantized with input_scale * weight_scale[c]."""
        if len(op.inputs) < 3:
            return []
        x, w, b = op.inputs[0], op.inputs[1], op.inputs[2]
        t = self.model.tensors[b]
        if t.type == self.pb.FLOAT32:
            return [self.float_view(b, op.name)]
        input_scale = np.float32(self.model.tensors[x].quantization.scale[0])
        weight_scales = np.array(self.model.tensors[w].quantization.scale, dtype=np.float32)
        scales = (input_scale * weight_scales).astype(np.float32)
        channels = t.shape[0]
        if len(scales) == 1:
            scales = np.repeat(scales, channels)
        return [self.node('DequantizeLinear', [
            self.constant(t.name, self.values(b)),
            self.constant(f'{t.name}.scale', scales),
            self.constant(f'{t.name}.zero_point', np.zeros(channels, dtype=np.int32))],
            f'{t.name}.dequantized', axis=0)]

    # Outputs: an activation, then a QuantizeLinear for int8 tensors.

    def clamp_needed(self, op, index):
        """Whether the op's activation does more than the int8 output's range."""
        if op.activation == self.pb.ACTIVATION_NONE:
            return False
        if not self.is_int8(index):
            return True
        q = self.model.tensors[index].quantization
        scale, zero_point = np.float32(q.scale[0]), (list(q.zero_point) or [0])[0]
        if zero_point > -128:
            return True
        if op.activation == self.pb.RELU6:
            # common/quantization.h's RoundToGrid of 6, as the runtime clamps.
            return np.rint(np.float32(6) * (np.float32(1) / scale)) + zero_point < 127
        return False

    def finish(self, op, value):
        """Writes the op's result `value` (float) as its output tensor."""
        index = op.outputs[0]
        out = self.name(index)
        if self.clamp_needed(op, index):
            if op.activation == self.pb.RELU:
                value = self.node('Relu', [value], f'{out}.relu')
            else:
                value = self.node('Clip', [value, self.constant(f'{out}.zero', np.float32(0)),
                                           self.constant(f'{out}.six', np.float32(6))],
                                  f'{out}.relu6')
        if self.is_int8(index):
            scale, zero_point = self.scale_and_zero_point(index)
            self.node('QuantizeLinear', [value, self.constant(f'{out}.scale', scale),
                                         self.constant(f'{out}.zero_point', zero_point)], out)
        else:
            self.node('Identity', [value], out)

    # The ops.

    def conv2d(self, op):
        a = op.conv2d
        x, w = self.float_view(op.inputs[0], op.name), self.float_view(op.inputs[1], op.name)
        value = self.node('Conv', [x, w] + self.bias_view(op), f'{op.name}.conv',
                          strides=[a.stride_h, a.stride_w],
                          dilations=[a.dilation_h, a.dilation_w],
                          pads=[a.pad_top, a.pad_left, a.pad_bottom, a.pad_right],
                          group=a.groups)
        self.finish(op, value)

    def fully_connected(self, op):
        if len(self.model.tensors[op.inputs[0]].shape) != 2:
            sys.exit(f'op {op.name}: a fully connected layer on a tensor of rank '
                     f'{len(self.model.tensors[op.inputs[0]].shape)}; ONNX export takes rank 2')
        x, w = self.float_view(op.inputs[0], op.name), self.float_view(op.inputs[1], op.name)
        value = self.node('Gemm', [x, w] + self.bias_view(op), f'{op.name}.gemm', transB=1)
        self.finish(op, value)

    def add(self, op):
        a, b = self.float_view(op.inputs[0], op.name), self.float_view(op.inputs[1], op.name)
        value = self.node('Add', [a, b], f'{op.name}.add')
        self.finish(op, value)

    def mean_hw(self, op):
        # [N, C, H, W] -> [N, C, 1, 1], quantized, then flattened to qforge's [N, C]
        # (Flatten takes int8 as it is).
        out = self.name(op.outputs[0])
        if len(self.model.tensors[op.outputs[0]].shape) != 2:
            sys.exit(f'op {op.name}: a mean whose output is not [N, C]; ONNX export takes those')
        pooled = self.node('GlobalAveragePool', [self.float_view(op.inputs[0], op.name)],
                           f'{out}.pool')
        if self.is_int8(op.outputs[0]):
            scale, zero_point = self.scale_and_zero_point(op.outputs[0])
            pooled = self.node('QuantizeLinear', [
                pooled, self.constant(f'{out}.scale', scale),
                self.constant(f'{out}.zero_point', zero_point)], f'{out}.pool_quantized')
        self.node('Flatten', [pooled], out, axis=1)

    def quantize(self, op):
        self.finish(op, self.float_view(op.inputs[0], op.name))

    def dequantize(self, op):
        self.node('Identity', [self.float_view(op.inputs[0], op.name)], self.name(op.outputs[0]))

    def reshape(self, op):
        # Reshape in qforge's NHWC order: to NHWC before, back to NCHW after.
        source, out = op.inputs[0], op.outputs[0]
        value = self.name(source)
        if len(self.model.tensors[source].shape) == 4:
            value = self.node('Transpose', [value], f'{self.name(out)}.nhwc', perm=[0, 2, 3, 1])
        shape = [-1] + list(self.model.tensors[out].shape[1:])
        target = self.name(out) if len(shape) != 4 else f'{self.name(out)}.reshaped'
        value = self.node('Reshape', [value, self.constant(f'{self.name(out)}.shape',
                                                           np.array(shape, dtype=np.int64))],
                          target)
        if len(shape) == 4:
            self.node('Transpose', [value], self.name(out), perm=[0, 3, 1, 2])

    def export(self):
        handlers = {self.pb.CONV2D: self.conv2d, self.pb.FULLY_CONNECTED: self.fully_connected,
                    self.pb.ADD: self.add, self.pb.MEAN_HW: self.mean_hw,
                    self.pb.QUANTIZE: self.quantize, self.pb.DEQUANTIZE: self.dequantize,
                    self.pb.RESHAPE: self.reshape}
        for op in self.model.ops:
            if op.kind not in handlers:
                sys.exit(f'op {op.name}: kind {op.kind} has no ONNX form here')
            handlers[op.kind](op)
        return self.onnx_model()

    def value_info(self, index):
        t = self.model.tensors[index]
        shape = list(t.shape)
        if len(shape) == 4:
            shape = [shape[0], shape[3], shape[1], shape[2]]
        shape[0] = 'batch'
        element = {self.pb.FLOAT32: TensorProto.FLOAT,
                   self.pb.INT8: (TensorProto.UINT8 if self.activation_type == np.uint8
                                  else TensorProto.INT8),
                   self.pb.INT32: TensorProto.INT32}[t.type]
        return helper.make_tensor_value_info(self.name(index), element, shape)

    def onnx_model(self):
        graph = helper.make_graph(self.nodes, 'qforge',
                                  [self.value_info(i) for i in self.model.inputs],
                                  [self.value_info(i) for i in self.model.outputs],
                                  self.initializers)
        result = helper.make_model(graph, producer_name='qforge',
                                   opset_imports=[helper.make_opsetid('', OPSET)])
        result.ir_version = 7  # what ONNX Runtime and OpenVINO of 2022 on all read
        p, m = self.model.preprocessing, self.model.metadata
        properties = {'pixel_scale': repr(p.pixel_scale), 'mean': ','.join(map(repr, p.mean)),
                      'std': ','.join(map(repr, p.std)), 'channel_order': p.channel_order,
                      'layout': 'NCHW', 'class_names': ','.join(m.class_names),
                      'producer': m.producer, 'dataset': m.dataset}
        helper.set_model_props(result, properties)
        return result


def export(qfm_path, activations='uint8'):
    pb, model = read_model(qfm_path)
    return Exporter(pb, model, activations).export()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', help='a .qfm model file')
    parser.add_argument('onnx', help='the .onnx file to write')
    parser.add_argument('--activations', choices=['uint8', 'int8'], default='uint8',
                        help='uint8 (default): the int8 values + 128, with zero points + 128, '
                        'which x86 runtimes fuse into integer kernels most fully; int8: as in '
                        'the .qfm file')
    args = parser.parse_args()
    result = export(args.model, args.activations)
    onnx.checker.check_model(result, full_check=True)
    onnx.save(result, args.onnx)
    print(f'wrote {args.onnx}: {len(result.graph.node)} nodes, opset {OPSET}')


if __name__ == '__main__':
    main()
