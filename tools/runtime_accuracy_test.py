#!/usr/bin/env python3
"""tools/runtime_accuracy.py scores the committed small model files on the full
Fashion-MNIST test set as the runtime did when they were made, which checks
the Python tools' one path to the runtime (tools/runtime_logits.py: the
images' normalization and order, the argmax); and it refuses what it cannot
score, saying why. The int8 model's count is exact on every CPU
(tests/committed_model_test pins it); the float model runs on XNNPACK, whose
float kernels differ by CPU, so it may be one image off.

Arguments: tools/model_outputs, the committed int8 and float model files.
"""

import os
import subprocess
import sys
import unittest

MODEL_OUTPUTS, INT8_MODEL, FLOAT_MODEL = sys.argv[1:4]
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'runtime_accuracy.py')


def percent(text):
    return float(text.rstrip('%'))


def run(*args):
    return subprocess.run([sys.executable, TOOL, f'--model_outputs={MODEL_OUTPUTS}', *args],
                          capture_output=True, text=True, check=False)


class RuntimeAccuracyTest(unittest.TestCase):

    def test_committed_models_score_as_recorded(self):
        result = run(INT8_MODEL, FLOAT_MODEL)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = [line.strip('| ').split(' | ') for line in result.stdout.splitlines()
                if line.startswith('| ') and '.qfm' in line]
        self.assertEqual([row[0] for row in rows], [INT8_MODEL, FLOAT_MODEL])
        (_, int8_recorded, int8_now), (_, float_recorded, float_now) = rows
        # To 0.01% of 10,000 images: the same count of right answers.
        self.assertEqual(int8_now, int8_recorded)
        self.assertLessEqual(abs(percent(float_now) - percent(float_recorded)), 0.01 + 1e-9)

    def test_refuses_a_missing_model_file(self):
        result = run(INT8_MODEL, 'no_such_model.qfm')
        self.assertNotEqual(result.returncode, 0)
        self.assertIn('no_such_model.qfm: no such file', result.stderr)
        self.assertNotIn('|', result.stdout)  # checked before any model runs

    def test_says_how_to_build_model_outputs(self):
        result = run('--model_outputs=/nonexistent/model_outputs', INT8_MODEL)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn('bazel build //tools:model_outputs', result.stderr)


if __name__ == '__main__':
    unittest.main(argv=sys.argv[:1])
