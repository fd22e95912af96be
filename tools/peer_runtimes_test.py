#!/usr/bin/env python3
"""peer_runtimes.py's matching of OpenVINO's nodes to qforge's ops: the layer
names torch.onnx gives MobileNetV2's modules, and the per-layer table of
--peer_profile (a residual add counted with the conv before it)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_runtimes  # pylint: disable=wrong-import-position


class LayerNameTest(unittest.TestCase):

    def test_torch_onnx_module_paths(self):
        name = peer_runtimes.layer_name
        self.assertEqual(name("/features/features.0/features.0.0/Conv"), "features.0.0")
        self.assertEqual(name("/features/features.2/conv/conv.0/conv.0.0/Conv"),
                         "features.2.conv.0.0")
        self.assertEqual(name("/features/features.1/conv/conv.1/Conv"), "features.1.conv.1")
        self.assertEqual(name("/classifier/classifier.1/Gemm"), "classifier.1")

    def test_fused_nodes_and_others(self):
        name = peer_runtimes.layer_name
        # OpenVINO lists every node it fused into one; the first conv names it.
        self.assertEqual(name("/features/features.3/conv/conv.2/Conv/WithoutBiases,"
                              "/features/features.3/Add"), "features.3.conv.2")
        self.assertIsNone(name("/features/features.3/Add"))
        self.assertIsNone(name("input_QuantizeLinear"))


class LayerLinesTest(unittest.TestCase):

    def test_largest_differences_first_with_adds_on_their_conv(self):
        qforge = [["quant", 0.01], ["features.0.0", 0.30], ["features.3.conv.2", 0.10],
                  ["features.3.skip_add", 0.05], ["classifier.1", 0.04]]
        openvino = {"features.0.0": 0.20, "features.3.conv.2": 0.10, "classifier.1": 0.10}
        lines = peer_runtimes.layer_lines(qforge, openvino, shown=2)
        self.assertEqual(lines[4], "| features.0.0 | 0.300 | 0.200 | +0.100 |")
        self.assertEqual(lines[5], "| features.3.conv.2 | 0.150 | 0.100 | +0.050 |")
        self.assertEqual(lines[6], "| the other 1 | 0.040 | 0.100 | -0.060 |")
        self.assertEqual(peer_runtimes.layer_lines([], openvino), [])


if __name__ == "__main__":
    unittest.main()
