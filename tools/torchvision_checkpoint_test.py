"""tools/torchvision_checkpoint.py against PyTorch itself.

- A qforge checkpoint exported to PyTorch loads into torchvision's MobileNetV2
  and imports back bit for bit.
- A torchvision MobileNetV2 (and a QuantizableMobileNetV2) with random weights,
  imported, gives PyTorch's logits in qforge's trainer to 1e-4 at 224x224.
- A file that does not fit the model is refused, naming the first tensor.

Arguments: the trainer binary, tools/checkpoint_logits, the committed small
model's checkpoint.pb.
"""

import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchvision_checkpoint  # pylint: disable=wrong-import-position

TRAINER, LOGITS, SMALL_CHECKPOINT = sys.argv[1:4]
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'torchvision_checkpoint.py')


def run_tool(*args, check=True):
    result = subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f'{args}: {result.stdout}{result.stderr}')
    return result


def import_args(pth, out_dir, *flags):
    return ('import', pth, f'--output_dir={out_dir}', f'--trainer={TRAINER}') + flags


def calibrated(model):
    """Random weights with batch-norm statistics from data, as a trained model has."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # the running statistics average the batches
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.normal_(module.bias, 0, 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 224, 224))
    return model.eval()


class TorchvisionCheckpointTest(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))
        torch.manual_seed(0)  # the random weights and images, the same every run

    def test_export_loads_in_torchvision_and_imports_back_bit_identical(self):
        pth = os.path.join(self.work, 'small.pth')
        run_tool('export', SMALL_CHECKPOINT, pth)
        # The committed model: width 0.25, Fashion-MNIST's one channel, 10 classes.
        model = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10)
        model.features[0][0] = torch.nn.Conv2d(1, 8, 3, 2, 1, bias=False)
        model.load_state_dict(torch.load(pth))  # strict: every name and shape
        out_dir = os.path.join(self.work, 'imported')
        run_tool(*import_args(pth, out_dir, '--width_mult=0.25', '--geometry=small'))
        before = torchvision_checkpoint.read_checkpoint(SMALL_CHECKPOINT)
        after = torchvision_checkpoint.read_checkpoint(os.path.join(out_dir, 'checkpoint.pb'))
        self.assertEqual([t.name for t in after.tensors], [t.name for t in before.tensors])
        for a, b in zip(before.tensors, after.tensors):
            self.assertEqual(list(a.shape), list(b.shape), a.name)
            self.assertEqual(a.data, b.data, a.name)
        self.assertEqual(after.config.model.geometry, 'small')
        self.assertEqual(after.config.model.num_classes, 10)
        self.assertEqual(after.epoch, 0)

    def check_logits(self, model, width_mult, relu6, images):
        pth = os.path.join(self.work, 'model.pth')
        torch.save(model.state_dict(), pth)
        out_dir = os.path.join(self.work, 'imported')
        run_tool(*import_args(pth, out_dir, f'--width_mult={width_mult}',
                              f'--relu6={"true" if relu6 else "false"}'))
        x = torch.randn(images, 3, 224, 224)
        with torch.no_grad():
            expected = model(x).numpy()
        x_path, y_path = os.path.join(self.work, 'x.f32'), os.path.join(self.work, 'y.f32')
        x.permute(0, 2, 3, 1).contiguous().numpy().astype('<f4').tofile(x_path)
        subprocess.run([LOGITS, f'--checkpoint={out_dir}/checkpoint.pb', f'--images={x_path}',
                        f'--count={images}', '--size=224', '--channels=3', f'--logits={y_path}'],
                       check=True)
        actual = np.fromfile(y_path, dtype='<f4').reshape(expected.shape)
        scale = np.abs(expected).max()
        error = np.abs(actual - expected).max() / scale
        print(f'width {width_mult}: largest logit {scale:.3g}, '
              f'largest difference {error:.2e} of it')
        self.assertGreater(scale, 1e-2)  # the logits are not all ~0
        self.assertLess(error, 1e-4)
        # The same class, image by image.
        np.testing.assert_array_equal(actual.argmax(1), expected.argmax(1))

    def test_torchvision_mobilenet_v2_logits_match_pytorch(self):
        model = calibrated(torchvision.models.mobilenet_v2())
        self.check_logits(model, 1.0, relu6=True, images=2)

    def test_quantizable_mobilenet_v2_logits_match_pytorch(self):
        # torchvision's QuantizableMobileNetV2 (before fuse_model) uses ReLU.
        model = torchvision.models.quantization.mobilenet_v2(width_mult=0.5)
        self.check_logits(calibrated(model), 0.5, relu6=False, images=1)

    def test_imported_model_quantizes_on_an_image_folder(self):
        # The ImageNet recipe's first steps on a small folder of JPEGs: import
        # torchvision weights, then ptq, which measures float and int8 top-1
        # and top-5 in the runtime on val/.
        from PIL import Image  # pylint: disable=import-outside-toplevel
        root = os.path.join(self.work, 'folder')
        rng = np.random.default_rng(0)
        for split, count in (('train', 3), ('val', 2)):
            for label in range(12):
                os.makedirs(os.path.join(root, split, f'c{label:02d}'))
                for i in range(count):
                    pixels = rng.integers(0, 256, (60 + 7 * i, 80, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(
                        os.path.join(root, split, f'c{label:02d}', f'{i}.jpg'))
        model = calibrated(torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=12))
        pth = os.path.join(self.work, 'model.pth')
        torch.save(model.state_dict(), pth)
        out_dir = os.path.join(self.work, 'imported')
        run_tool(*import_args(pth, out_dir, '--width_mult=0.35'), '--', '--dataset=imagefolder',
                 f'--data_dir={root}', '--image_size=64')
        result = subprocess.run([TRAINER, 'ptq', f'--checkpoint={out_dir}/checkpoint.pb',
                                 '--calib_batches=2', '--calib_batch_size=8', '--threads=1'],
                                capture_output=True, text=True, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn('top-5 in the runtime: int8 ', result.stdout)
        self.assertTrue(os.path.exists(
            os.path.join(out_dir, 'model_int8_per_channel_histogram.qfm')))

    def test_a_file_that_does_not_fit_names_the_first_tensor(self):
        pth = os.path.join(self.work, 'wide.pth')
        torch.save(torchvision.models.mobilenet_v2().state_dict(), pth)
        result = run_tool(*import_args(pth, os.path.join(self.work, 'x'), '--width_mult=0.5'),
                          check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn('features.0.0.weight has shape [32, 3, 3, 3] where the model\'s is '
                      '[16, 3, 3, 3]', result.stderr)
        state = torchvision.models.mobilenet_v2().state_dict()
        state['features.0.0.weight_fake_quant.scale'] = torch.ones(1)
        torch.save(state, pth)
        result = run_tool(*import_args(pth, os.path.join(self.work, 'y')), check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn('has no tensor features.0.0.weight_fake_quant.scale', result.stderr)


if __name__ == '__main__':
    unittest.main(argv=sys.argv[:1])
