#!/usr/bin/env python3
"""pytorch_arithmetic.py's tie counting, and the tie rule every top-1 of the
tools rests on: PyTorch's argmax, like NumPy's and qforge's runtime, gives a
tie to the lower class."""

import os
import sys
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_arithmetic  # pylint: disable=wrong-import-position


class TieTest(unittest.TestCase):

    def test_argmax_gives_a_tie_to_the_lower_class(self):
        logits = [[0.0, 2.0, 1.0, 2.0], [3.0, 3.0, 3.0, 0.0]]
        self.assertEqual(torch.tensor(logits).argmax(1).tolist(), [1, 0])
        self.assertEqual(np.array(logits).argmax(1).tolist(), [1, 0])

    def test_tie_decisions(self):
        int8 = torch.tensor([[2.0, 2.0, 0.0],    # tie, label 0: the lower class is right
                             [2.0, 2.0, 0.0],    # tie, label 1: wrong by class order
                             [2.0, 2.0, 0.0],    # tie, label 2 not among the tied
                             [0.0, 1.0, 2.0]])   # no tie
        exact = torch.tensor([[2.0, 2.1, 0.0],   # exact logits: wrong
                              [2.0, 2.1, 0.0],   # right
                              [2.0, 2.1, 0.0],
                              [0.0, 1.0, 2.0]])
        labels = torch.tensor([0, 1, 2, 2])
        self.assertEqual(pytorch_arithmetic.tie_decisions(int8, exact, labels), [3, 2, 1, 1])
        self.assertEqual(pytorch_arithmetic.top1(int8, labels), 0.5)


if __name__ == '__main__':
    unittest.main()
