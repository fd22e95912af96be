#!/usr/bin/python3
"""Writes the PyTorch golden file the trainer's observers are tested against.

Four batches of differently distributed data (normal, ReLU-like, a heavy tail
with outliers, and a batch that widens the range) go through PyTorch 1.13's
MinMaxObserver, MovingAverageMinMaxObserver, PerChannelMinMaxObserver and
HistogramObserver, configured for qforge's int8 scheme (qint8 activations in
[-128, 127]; symmetric per-channel weights with qint8's scale, max / 127.5,
which qforge then clamps to [-127, 127]). The file records the data, each
observer's range and quantization parameters, and the histogram observer's
histogram.

HistogramObserver runs with one line of 1.13 fixed: its forward passes int(min)
and int(max) to torch.histc, truncating the histogram's range to integers and
dropping values outside it; the fixed subclass passes the true range (as
later PyTorch versions do), and qforge ports that.

Regenerate (PyTorch from Debian's python3-torch; tools/install_deps.sh --python):
    /usr/bin/python3 tools/make_observer_goldens.py --out tests/testdata/golden
"""

import argparse
import os
import sys

import torch
from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver,
                                            MovingAverageMinMaxObserver,
                                            PerChannelMinMaxObserver)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_trainer_goldens import write  # noqa: E402  (the golden file format)


class FixedHistogramObserver(HistogramObserver):
    """PyTorch 1.13's HistogramObserver.forward with histc over the true range."""

    def forward(self, x_orig):
        x = x_orig.detach()
        min_val, max_val = self.min_val, self.max_val
        same_values = min_val.item() == max_val.item()
        is_uninitialized = min_val == float("inf") and max_val == float("-inf")
        if is_uninitialized or same_values:
            min_val, max_val = torch.aminmax(x)
            self.min_val.copy_(min_val)
            self.max_val.copy_(max_val)
            torch.histc(x, self.bins, min=min_val.item(), max=max_val.item(), out=self.histogram)
            return x_orig
        new_min, new_max = torch.aminmax(x)
        combined_min = torch.min(new_min, min_val)
        combined_max = torch.max(new_max, max_val)
        combined_min, combined_max, downsample_rate, start_idx = self._adjust_min_max(
            combined_min, combined_max, self.upsample_rate)
        combined_histogram = torch.histc(x, self.bins, min=combined_min.item(),
                                         max=combined_max.item())
        if combined_min == min_val and combined_max == max_val:
            combined_histogram += self.histogram
        else:
            combined_histogram = self._combine_histograms(
                combined_histogram, self.histogram, self.upsample_rate, downsample_rate,
                start_idx, self.bins)
        self.histogram.detach_().resize_(combined_histogram.shape)
        self.histogram.copy_(combined_histogram)
        self.min_val.detach_().resize_(combined_min.shape)
        self.min_val.copy_(combined_min)
        self.max_val.detach_().resize_(combined_max.shape)
        self.max_val.copy_(combined_max)
        return x_orig


def batches():
    torch.manual_seed(191009)
    normal = torch.randn(4000) * 1.5 + 0.3
    relu_like = torch.relu(torch.randn(4000) * 2.0)
    heavy = torch.randn(4000) * 0.5
    heavy[:8] = torch.tensor([9.0, -7.5, 12.0, 6.5, -11.0, 8.0, 10.5, -9.5])
    wide = torch.randn(4000) * 4.0 - 1.0
    return [normal, relu_like, heavy, wide]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/testdata/golden")
    args = parser.parse_args()
    data = batches()
    arrays = {f"batch{i}": b for i, b in enumerate(data)}
    observers = {
        "minmax": MinMaxObserver(dtype=torch.qint8, quant_min=-128, quant_max=127),
        "moving_average": MovingAverageMinMaxObserver(averaging_constant=0.01, dtype=torch.qint8,
                                                      quant_min=-128, quant_max=127),
        "histogram": FixedHistogramObserver(bins=2048, dtype=torch.qint8, quant_min=-128,
                                            quant_max=127),
    }
    for name, observer in observers.items():
        for b in data:
            observer(b)
        scale, zero_point = observer.calculate_qparams()
        arrays[f"{name}/scale"] = scale.reshape(1).float()
        arrays[f"{name}/zero_point"] = zero_point.reshape(1).float()
        arrays[f"{name}/min"] = observer.min_val.reshape(1)
        arrays[f"{name}/max"] = observer.max_val.reshape(1)
    histogram = observers["histogram"]
    arrays["histogram/histogram"] = histogram.histogram
    search_min, search_max = histogram._non_linear_param_search()
    arrays["histogram/search_min"] = search_min.reshape(1)
    arrays["histogram/search_max"] = search_max.reshape(1)

    weights = torch.randn(6, 3, 3, 4) * torch.tensor([0.1, 0.5, 1.0, 2.0, 0.01, 3.0]).reshape(6, 1, 1, 1)
    per_channel = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8,
                                           qscheme=torch.per_channel_symmetric,
                                           quant_min=-128, quant_max=127)
    per_channel(weights)
    scales, _ = per_channel.calculate_qparams()
    arrays.update({"per_channel/weights": weights, "per_channel/scales": scales.float(),
                   "per_channel/min": per_channel.min_val, "per_channel/max": per_channel.max_val})
    write(os.path.join(args.out, "observers.bin"), arrays)


if __name__ == "__main__":
    main()
