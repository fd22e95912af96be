#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/): small valid
inputs of every kind each reader takes, from which libFuzzer mutates.

  /usr/bin/python3 fuzz/make_seeds.py

Needs protoc and Python's protobuf (tools/qforge_protos.py).
"""

import gzip
import os
import shutil
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import qforge_protos  # pylint: disable=wrong-import-position

CORPUS = os.path.join(ROOT, 'fuzz', 'corpus')


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), 'wb') as f:
        f.write(data)


class Builder:
    """common/model_builder.h, in Python."""

    def __init__(self, pb):
        self.pb, self.model = pb, pb.Model(format_version=1)

    def tensor(self, name, shape, kind, scale=None, zero_point=None, data=b''):
        t = self.model.tensors.add(name=name, shape=shape, type=kind, data=data)
        if scale is not None:
            t.quantization.scale.extend(scale)
        if zero_point is not None:
            t.quantization.zero_point.extend(zero_point)
        return len(self.model.tensors) - 1

    def op(self, kind, name, inputs, output, activation=0, **conv):
        op = self.model.ops.add(kind=kind, name=name, inputs=inputs, outputs=[output],
                                activation=activation)
        for key, value in conv.items():
            setattr(op.conv2d, key, value)

    def bytes(self, inputs, outputs):
        self.model.inputs.extend(inputs)
        self.model.outputs.extend(outputs)
        return self.model.SerializeToString()


def int8(values):
    return struct.pack(f'{len(values)}b', *values)


def int32(values):
    return struct.pack(f'<{len(values)}i', *values)


def floats(values):
    return struct.pack(f'<{len(values)}f', *values)


def model_seeds():
    pb = qforge_protos.model_pb2()
    # One int8 ADD, int8 in and out: the backends are compared on these.
    b = Builder(pb)
    x = b.tensor('x', [1, 2, 2, 3], pb.INT8, [0.5], [1])
    y = b.tensor('y', [1, 2, 2, 3], pb.INT8, [0.75], [-2])
    b.op(pb.ADD, 'add', [x, x], y, pb.RELU)
    write('model', 'int8_add.qfm', b.bytes([x], [y]))
    # QUANTIZE, a per-channel 3x3 conv with bias and ReLU6, DEQUANTIZE.
    b = Builder(pb)
    x = b.tensor('x', [1, 4, 4, 2], pb.FLOAT32)
    q = b.tensor('q', [1, 4, 4, 2], pb.INT8, [0.03125], [0])
    w = b.tensor('w', [3, 3, 3, 2], pb.INT8, [0.01, 0.02, 0.03], data=int8(
        [(i * 7) % 255 - 127 for i in range(54)]))
    bias = b.tensor('b', [3], pb.INT32, data=int32([5, -7, 11]))
    c = b.tensor('c', [1, 2, 2, 3], pb.INT8, [0.05], [-128])
    y = b.tensor('y', [1, 2, 2, 3], pb.FLOAT32)
    b.op(pb.QUANTIZE, 'quant', [x], q)
    b.op(pb.CONV2D, 'conv', [q, w, bias], c, pb.RELU6, stride_h=2, stride_w=2, dilation_h=1,
         dilation_w=1, pad_top=1, pad_bottom=1, pad_left=1, pad_right=1, groups=1)
    b.op(pb.DEQUANTIZE, 'dequant', [c], y)
    write('model', 'int8_conv.qfm', b.bytes([x], [y]))
    # Depthwise int8 conv, int8 in and out.
    b = Builder(pb)
    x = b.tensor('x', [1, 3, 3, 4], pb.INT8, [0.1], [3])
    w = b.tensor('w', [4, 3, 3, 1], pb.INT8, [0.02] * 4,
                 data=int8([(i * 13) % 255 - 127 for i in range(36)]))
    y = b.tensor('y', [1, 3, 3, 4], pb.INT8, [0.08], [-5])
    b.op(pb.CONV2D, 'dw', [x, w], y, 0, stride_h=1, stride_w=1, dilation_h=1, dilation_w=1,
         pad_top=1, pad_bottom=1, pad_left=1, pad_right=1, groups=4)
    write('model', 'int8_depthwise.qfm', b.bytes([x], [y]))
    # Float: MEAN_HW, RESHAPE, FULLY_CONNECTED.
    b = Builder(pb)
    x = b.tensor('x', [1, 2, 2, 3], pb.FLOAT32)
    m = b.tensor('m', [1, 1, 1, 3], pb.FLOAT32)
    r = b.tensor('r', [1, 3], pb.FLOAT32)
    w = b.tensor('w', [2, 3], pb.FLOAT32, data=floats([0.5, -1, 2, 1, 0, -0.25]))
    bias = b.tensor('b', [2], pb.FLOAT32, data=floats([0.1, -0.2]))
    y = b.tensor('y', [1, 2], pb.FLOAT32)
    b.op(pb.MEAN_HW, 'pool', [x], m)
    b.op(pb.RESHAPE, 'flatten', [m], r)
    b.op(pb.FULLY_CONNECTED, 'fc', [r, w, bias], y)
    write('model', 'float_pool_fc.qfm', b.bytes([x], [y]))
    # int8 fully connected with per-channel weights and an int8 output.
    b = Builder(pb)
    x = b.tensor('x', [1, 4], pb.INT8, [0.05], [0])
    w = b.tensor('w', [3, 4], pb.INT8, [0.01, 0.02, 0.04], data=int8(list(range(-6, 6))))
    y = b.tensor('y', [1, 3], pb.INT8, [0.02], [1])
    b.op(pb.FULLY_CONNECTED, 'fc', [x, w], y)
    write('model', 'int8_fc.qfm', b.bytes([x], [y]))


def idx_seeds():
    images = struct.pack('>BBBBiii', 0, 0, 8, 3, 2, 3, 3) + bytes(range(18))
    write('idx', 'images.idx', images)
    write('idx', 'labels.idx', struct.pack('>BBBBi', 0, 0, 8, 1, 4) + bytes([0, 1, 9, 3]))
    write('idx', 'images.idx.gz', gzip.compress(images, mtime=0))


def cifar10_seeds():
    record = lambda label: bytes([label]) + bytes((i * 7) % 256 for i in range(3072))
    write('cifar10', 'two_records.bin', record(3) + record(9))


def checkpoint_seeds():
    pb = qforge_protos.checkpoint_pb2()
    c = pb.Checkpoint(epoch=1, step=10, test_accuracy=0.5)
    c.config.dataset = 'fashion-mnist'
    c.config.model.width_mult = 0.5
    c.config.epochs = 2
    c.config.batch_size = 8
    c.tensors.add(name='features.0.0.weight', shape=[2, 1, 1, 1], data=floats([0.5, -0.5]))
    c.tensors.add(name='classifier.1.bias', shape=[2], data=floats([0.1, 0.2]))
    c.momentum = floats([0.0, 1.0])
    write('checkpoint', 'small.pb', c.SerializeToString())
    # As WriteCheckpoint writes it: field 15 (fixed32) first, the CRC-32 of the rest.
    body = c.SerializeToString()
    write('checkpoint', 'small_checksummed.pb',
          bytes([15 << 3 | 5]) + struct.pack('<I', zlib.crc32(body)) + body)


def config_seeds():
    shutil.copy(os.path.join(ROOT, 'trainer', 'configs', 'fashion_mnist_long.textproto'),
                os.path.join(CORPUS, 'config', 'fashion_mnist_long.textproto'))
    write('config', 'cifar.textproto',
          b'dataset: "cifar10"\ndata_dir: "/nonexistent"\nmodel { width_mult: 1.0 }\n'
          b'schedule: "step"\nepochs: 1\n')


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    for name in ['model', 'idx', 'cifar10', 'checkpoint', 'config']:
        os.makedirs(os.path.join(CORPUS, name), exist_ok=True)
    model_seeds()
    idx_seeds()
    cifar10_seeds()
    checkpoint_seeds()
    config_seeds()


if __name__ == '__main__':
    main()
