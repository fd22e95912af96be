#!/usr/bin/env python3
"""pytorch_arithmetic.py's tie counting, weight clamp and grids, and the tie rule
every top-1 of the tools rests on: PyTorch's argmax, like NumPy's and qforge's
runtime, gives a tie to the lower class."""

import argparse
import os
import sys
import types
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_arithmetic  # pylint: disable=wrong-import-position


class TieTest(unittest.TestCase):

    # Rows: two ties the lower class decides right and the exact logits wrong;
    # one the other way round; one both decide right; a tie without the label;
    # no tie.
    INT8 = torch.tensor([[2.0, 2.0, 0.0], [0.0, 2.0, 2.0], [2.0, 2.0, 0.0], [2.0, 2.0, 0.0],
                         [2.0, 2.0, 0.0], [0.0, 1.0, 2.0]])
    EXACT = torch.tensor([[2.0, 2.1, 0.0], [0.0, 2.0, 2.1], [2.0, 2.1, 0.0], [2.1, 2.0, 0.0],
                          [2.0, 2.1, 0.0], [0.0, 1.0, 2.0]])
    LABELS = torch.tensor([0, 1, 1, 0, 2, 2])

    def test_argmax_gives_a_tie_to_the_lower_class(self):
        logits = [[0.0, 2.0, 1.0, 2.0], [3.0, 3.0, 3.0, 0.0]]
        self.assertEqual(torch.tensor(logits).argmax(1).tolist(), [1, 0])
        self.assertEqual(np.array(logits).argmax(1).tolist(), [1, 0])

    def test_tie_decisions(self):
        # ties; with the label among them; right by class order; right by exact logits
        self.assertEqual(pytorch_arithmetic.tie_decisions(self.INT8, self.EXACT, self.LABELS),
                         [5, 4, 3, 2])
        self.assertEqual(pytorch_arithmetic.top1(self.INT8, self.LABELS), 4 / 6)

    def test_side_stats_sum_counts_and_keep_each_draws_loss(self):
        stats = {}
        pytorch_arithmetic.add_side_stats(stats, self.INT8, self.EXACT, self.LABELS)
        pytorch_arithmetic.add_side_stats(stats, self.INT8, self.INT8, self.LABELS)
        losses = [torch.nn.functional.cross_entropy(x, self.LABELS).item()
                  for x in (self.EXACT, self.INT8)]
        self.assertEqual(stats['test cross-entropy, exact logits'], losses)
        self.assertEqual(stats['test cross-entropy, int8 logits'], [losses[1], losses[1]])
        # The second draw's exact logits are its int8 ones: ties go by class order.
        self.assertEqual([stats[row] for row in pytorch_arithmetic.TIE_ROWS],
                         [5 + 5, 4 + 4, 3 + 3, 2 + 3])


class ClampTest(unittest.TestCase):

    def test_only_minus_128_moves_and_the_scales_stay(self):
        weight = torch._make_per_channel_quantized_tensor(  # pylint: disable=protected-access
            torch.tensor([[-128, -127, 127], [5, -128, 0]], dtype=torch.int8),
            torch.tensor([0.5, 0.25], dtype=torch.float64), torch.zeros(2, dtype=torch.long), 0)
        clamped = pytorch_arithmetic.clamped_to_qforge_range(weight)
        self.assertEqual(clamped.int_repr().tolist(), [[-127, -127, 127], [5, -127, 0]])
        self.assertEqual(clamped.q_per_channel_scales().tolist(), [0.5, 0.25])
        self.assertEqual(clamped.q_per_channel_axis(), 0)


class GridTest(unittest.TestCase):

    WEIGHT = torch.tensor([[[-2.0, 1.0, 0.5]], [[0.25, -0.1, 0.2]]], dtype=torch.float64)

    def test_grid_127_puts_each_channels_largest_weight_on_127(self):
        levels, scale = pytorch_arithmetic.on_grid(self.WEIGHT, 127)
        self.assertEqual(scale.tolist(), [2 / 127, 0.25 / 127])
        self.assertEqual(levels.tolist(), [[[-127, 64, 32]], [[127, -51, 102]]])

    def test_a_finer_grid_clamps_the_largest_weight_to_127(self):
        levels, _ = pytorch_arithmetic.on_grid(self.WEIGHT, 127.5)
        self.assertEqual(levels.tolist(), [[[-127, 64, 32]], [[127, -51, 102]]])
        levels, _ = pytorch_arithmetic.on_grid(self.WEIGHT, 130)
        self.assertEqual(levels.tolist(), [[[-127, 65, 32]], [[127, -52, 104]]])

    def test_an_all_zero_channel_gets_the_least_scale(self):
        levels, scale = pytorch_arithmetic.on_grid(torch.zeros(1, 1, 3, dtype=torch.float64), 127)
        self.assertEqual(levels.tolist(), [[[0, 0, 0]]])
        self.assertEqual(scale.tolist(), [float(np.finfo(np.float32).eps)])

    def test_grids_must_be_distinct_numbers_above_zero(self):
        self.assertEqual(pytorch_arithmetic.grids('126.5,127'), [126.5, 127.0])
        for bad in ('', '127,x', '0', '-127', 'nan', 'inf', '127,127'):
            with self.assertRaises(argparse.ArgumentTypeError, msg=bad):
                pytorch_arithmetic.grids(bad)


class Toy(torch.nn.Module):
    """The parts of QuantizableMobileNetV2 regridded touches: a conv in
    features, a linear layer second in classifier."""

    def __init__(self, conv, linear):
        super().__init__()
        self.features = torch.nn.Sequential(conv)
        self.classifier = torch.nn.Sequential(torch.nn.Identity(), linear)


class RegridTest(unittest.TestCase):

    def test_weights_on_the_grid_and_biases_on_the_accumulators_step(self):
        torch.manual_seed(0)
        float_model = Toy(torch.nn.Conv2d(2, 3, 1), torch.nn.Linear(3, 4))
        ours = Toy(torch.ao.nn.quantized.Conv2d(2, 3, 1), torch.ao.nn.quantized.Linear(3, 4))
        # with_qforge_numbers wraps features with the pool.
        ours.features = torch.nn.Sequential(ours.features, pytorch_arithmetic.QuantizedMean(1, 0))
        kinds = types.SimpleNamespace(CONV2D=1, FULLY_CONNECTED=2)
        qforge = types.SimpleNamespace(
            pb=kinds, activation=lambda index: ((0.5, 0.25)[index], 128),
            ops={'features.0': types.SimpleNamespace(kind=kinds.CONV2D, inputs=[0]),
                 'classifier.1': types.SimpleNamespace(kind=kinds.FULLY_CONNECTED, inputs=[1])})
        before = {name: pytorch_arithmetic.pytorch_weight_and_bias(m)[0].int_repr()
                  for name, m in pytorch_arithmetic.unwrapped_modules(ours).items()
                  if name in qforge.ops}
        model, changed = pytorch_arithmetic.regridded(ours, qforge, float_model, 127.5)
        modules = pytorch_arithmetic.unwrapped_modules(model)
        differ = total = 0
        for (name, layer), input_scale in zip((('features.0', float_model.features[0]),
                                               ('classifier.1', float_model.classifier[1])),
                                              (0.5, 0.25)):
            weight, bias = pytorch_arithmetic.pytorch_weight_and_bias(modules[name])
            levels, scale = pytorch_arithmetic.on_grid(layer.weight.detach().double(), 127.5)
            self.assertTrue(torch.equal(weight.int_repr().double(), levels), name)
            self.assertTrue(torch.allclose(weight.q_per_channel_scales(), scale), name)
            steps = bias.double() / (input_scale * scale)
            self.assertTrue(torch.allclose(steps, steps.round(), atol=1e-4), name)
            self.assertTrue(torch.allclose(bias.double(), layer.bias.double(),
                                           atol=float(input_scale * scale.max())), name)
            differ += int((before[name].double() != levels).sum())
            total += levels.numel()
        self.assertEqual(changed, differ / total)
        self.assertGreater(changed, 0)


if __name__ == '__main__':
    unittest.main()
