#!/usr/bin/env python3
"""PyTorch 1.13's per-channel histogram PTQ (onednn) on a qforge checkpoint,
with qforge's observer choices swapped in one at a time: which of them explain
a difference between qforge's per-channel PTQ and PyTorch's on the same weights
and calibration images (tools/side_by_side.py).

  python3 tools/observer_variants.py --checkpoint=runs/w10/checkpoint.pb --seeds=0,1,2,3,4

The variants, each calibrated on qforge ptq's images for every seed
(side_by_side's replay of its loader) and measured on the full test set:
  - onednn's default qconfig: HistogramObserver, per-channel weights in [-128, 127];
  - its histogram over the true range: 1.13's HistogramObserver.forward passes
    int(min) and int(max) to torch.histc (tools/make_observer_goldens.py);
  - and combined in double precision: 1.13's _combine_histograms keeps the
    shifted cumulative sum in float32, which leaves a fraction of a count in
    every empty bin once the range has grown;
  - weights in [-127, 127] (scale max / 127), as qforge's were until it took
    PyTorch's scale (max / 127.5, clamped to [-127, 127]) on 2026-11-30.
The last two together were qforge's observer then, so that variant's ranges
are qforge's up to float rounding.

With --qat, PyTorch's QAT (side_by_side's, on qforge qat's batches, crops and
dropout masks for each seed) with onednn's default QAT qconfig, whose fused
weight fake quantizers train on max / 127 or |min| / 128 and convert on
max|w| / 127.5; with its weights fake-quantized in [-127, 127] (scale max / 127)
from the start, as qforge's QAT had them until that date; and with qforge's
weight fake quantizer of today (max|w| / 127.5, values clamped to [-127, 127],
the extremes' gradient kept: tools/make_qat_goldens.py). PyTorch's convert
rounds the weights of the first and the last on max|w| / 127.5 in [-128, 127],
those of the second on max / 127 in [-127, 127].
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.ao.quantization as tq
from torch.ao.quantization.fake_quantize import FusedMovingAvgObsFakeQuantize
from torch.ao.quantization.observer import MovingAveragePerChannelMinMaxObserver
from torch.ao.quantization.observer import PerChannelMinMaxObserver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_observer_goldens  # pylint: disable=wrong-import-position
import make_qat_goldens  # pylint: disable=wrong-import-position
import runtime_logits  # pylint: disable=wrong-import-position
import side_by_side  # pylint: disable=wrong-import-position
import torchvision_checkpoint  # pylint: disable=wrong-import-position


class ExactHistogramObserver(make_observer_goldens.FixedHistogramObserver):
    """Histograms over the true range, combined in double precision."""

    def _combine_histograms(self, orig_hist, new_hist, upsample_rate, downsample_rate, start_idx,
                            Nbins):  # pylint: disable=invalid-name
        upsampled = new_hist.double().repeat_interleave(upsample_rate)
        spread = torch.zeros((Nbins * downsample_rate), dtype=torch.double)
        spread[start_idx:Nbins * upsample_rate + start_idx] = upsampled
        integral = torch.cumsum(spread, 0)[downsample_rate - 1::downsample_rate]
        shifted = torch.zeros((Nbins), dtype=torch.double)
        shifted[1:Nbins] = integral[0:-1]
        return orig_hist + ((integral - shifted) / upsample_rate).to(torch.float)


def variants():
    base = tq.get_default_qconfig('onednn')
    true_range = make_observer_goldens.FixedHistogramObserver.with_args(reduce_range=False)
    exact = ExactHistogramObserver.with_args(reduce_range=False)
    weights_127 = PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
    return {
        "onednn's default": base,
        'histogram over the true range': tq.QConfig(activation=true_range, weight=base.weight),
        'and combined in double': tq.QConfig(activation=exact, weight=base.weight),
        'weights in [-127, 127]': tq.QConfig(activation=base.activation, weight=weights_127),
        "qforge's observer (both)": tq.QConfig(activation=exact, weight=weights_127),
    }


def qat_variants():
    base = tq.get_default_qat_qconfig('onednn')
    weights_127 = FusedMovingAvgObsFakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    return {
        "onednn's default": base,
        'weights in [-127, 127]': tq.QConfig(activation=base.activation, weight=weights_127),
        "qforge's weight grid": tq.QConfig(activation=base.activation,
                                           weight=make_qat_goldens.WEIGHT_FQ),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--checkpoint', required=True, help='a qforge float checkpoint.pb (ReLU)')
    p.add_argument('--seeds', default='0', help='comma-separated calibration (or QAT) draws')
    p.add_argument('--qat', action='store_true', help='the QAT variants instead (see above)')
    args = p.parse_args()
    checkpoint = torchvision_checkpoint.read_checkpoint(args.checkpoint)
    train, train_labels, test, test_labels = runtime_logits.fashion_mnist()
    data = {'train': train, 'train_labels': train_labels}
    normalize = side_by_side.Normalizer(train)
    model = side_by_side.pytorch_model(torchvision_checkpoint.state_dict(checkpoint),
                                       checkpoint.config.model.width_mult, 10)
    seeds = [int(s) for s in args.seeds.split(',')]
    what = 'QAT' if args.qat else 'per-channel PTQ'
    print(f'| PyTorch {what} (onednn) | seeds {", ".join(map(str, seeds))} | mean |')
    print('|---|---|---|')
    for name, qconfig in (qat_variants() if args.qat else variants()).items():
        accuracies = []
        for seed in seeds:
            if args.qat:
                quantized = side_by_side.pytorch_qat(model, 'onednn', data, normalize, seed,
                                                     checkpoint.config.model.dropout,
                                                     qconfig=qconfig)
            else:
                quantized = side_by_side.pytorch_ptq(model, qconfig, 'onednn', data, normalize,
                                                     seed)
            accuracies.append(side_by_side.accuracy(quantized, test, test_labels, normalize))
        print(f'| {name} | ' + ' '.join(f'{a:.2%}' for a in accuracies) +
              f' | {np.mean(accuracies):.3%} |', flush=True)


if __name__ == '__main__':
    main()
