#!/usr/bin/env python3
"""side_by_side.py's replicas of qforge's loader and dropout against the values
qforge's C++ gives (data/batch_loader_test, trainer/nn/elementwise_test pin the
same numbers on the C++ side): if either side drifts, one of them fails."""

import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side  # pylint: disable=wrong-import-position


class ReplicaTest(unittest.TestCase):

    def test_loader_order_and_crop(self):
        self.assertEqual(list(side_by_side.qforge_order(60000, 0, 0)[:8]),
                         [32998, 16474, 7192, 40058, 52457, 38692, 54688, 50110])
        self.assertEqual(list(side_by_side.qforge_order(60000, 0, 3)[:4]),
                         [35435, 2011, 51536, 38757])
        rng = side_by_side.SplitMix64(side_by_side.derive_seed(0, 2, 5, 1234))
        self.assertEqual((rng.below(5), rng.below(5), rng.next() >> 63), (2, 0, 1))

    def test_dropout_masks(self):
        mask = side_by_side.qforge_dropout_mask((2, 5), 0.2, 3, 17)
        np.testing.assert_array_equal(mask.ravel(), np.array(
            [1.25, 0, 1.25, 1.25, 0, 1.25, 1.25, 0, 0, 1.25], np.float32))
        k = np.float32(1) / (np.float32(1) - np.float32(0.7))
        self.assertEqual(float(k).hex(), '0x1.aaaaaa0000000p+1')
        mask = side_by_side.qforge_dropout_mask((1, 8), 0.7, 12, 4)
        np.testing.assert_array_equal(mask.ravel(), np.array([0, k, 0, k, 0, k, k, k], np.float32))


if __name__ == '__main__':
    unittest.main()
