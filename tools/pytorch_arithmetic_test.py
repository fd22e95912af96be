#!/usr/bin/env python3
"""pytorch_arithmetic.py's tie counting, weight clamp and grids, and the tie rule
every top-1 of the tools rests on: PyTorch's argmax, like NumPy's and qforge's
runtime, gives a tie to the lower class."""

import os
import sys
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

    def test_qforge_grid_puts_each_channels_largest_weight_on_127(self):
        levels, scale = pytorch_arithmetic.on_grid(self.WEIGHT, 127)
        self.assertEqual(scale.tolist(), [2 / 127, 0.25 / 127])
        self.assertEqual(levels.tolist(), [[[-127, 64, 32]], [[127, -51, 102]]])

    def test_a_finer_grid_clamps_the_largest_weight_to_127(self):
        levels, _ = pytorch_arithmetic.on_grid(self.WEIGHT, 127.5)
        self.assertEqual(levels.tolist(), [[[-127, 64, 32]], [[127, -51, 102]]])
        levels, _ = pytorch_arithmetic.on_grid(self.WEIGHT, 130)
        self.assertEqual(levels.tolist(), [[[-127, 65, 32]], [[127, -52, 104]]])


if __name__ == '__main__':
    unittest.main()
