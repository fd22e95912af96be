#!/usr/bin/env python3
"""Writes runtime/image/testdata: small images in each format qforge reads and
what Pillow and torchvision make of them, for runtime/image/image_test.

  /usr/bin/python3 tools/make_image_goldens.py   # Debian's Pillow and torchvision

For each image and each of RGB and gray (Pillow's convert("RGB") / ("L")):
  NAME.cC.raw          the decoded pixels, [height, width, C] uint8
  NAME.cC.rRcS.raw     torchvision's Resize(R) then CenterCrop(S) of them
manifest.txt lists every raw file with its height, width and channels.
"""

import os

import numpy as np
from PIL import Image
from torchvision import transforms

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   'runtime', 'image', 'testdata')
# (resize, crop): shrinking by about 1.5 and 3 (Pillow's antialiasing widens the
# filter), and enlarging; photo.jpg at 32 is tests/classify_example_test's case.
TRANSFORMS = {'photo.jpg': [(40, 32), (20, 16), (32, 32)], 'gray.jpg': [(40, 32)],
              'palette.png': [(16, 12)], 'rgba.png': [(24, 20)], 'small.png': [(48, 40)],
              'rgb.ppm': [(12, 10)], 'gray.pgm': [(12, 10)], 'cmyk.jpg': [(20, 16)],
              'gray16.png': [(12, 10)]}


def pattern(height, width, channels, seed):
    """Smooth gradients and edges with some noise: what a photo has."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = [128 + 100 * np.sin(x / (3 + c) + y / (5 + 2 * c)) + 20 * ((x + 2 * y) % 17 > 8)
              for c in range(channels)]
    image = np.stack(planes, -1) + rng.normal(0, 12, (height, width, channels))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_inputs():
    Image.fromarray(pattern(61, 97, 3, 0)).save(os.path.join(OUT, 'photo.jpg'), quality=90)
    Image.fromarray(pattern(70, 50, 1, 1)[:, :, 0]).save(os.path.join(OUT, 'gray.jpg'),
                                                         quality=85)
    Image.fromarray(pattern(21, 33, 3, 2)).quantize(16).save(os.path.join(OUT, 'palette.png'))
    rgba = np.concatenate([pattern(30, 40, 3, 3), pattern(30, 40, 1, 4)], -1)
    Image.fromarray(rgba, 'RGBA').save(os.path.join(OUT, 'rgba.png'))
    Image.fromarray(pattern(30, 20, 3, 5)).save(os.path.join(OUT, 'small.png'))
    Image.fromarray(pattern(17, 23, 3, 6)).save(os.path.join(OUT, 'rgb.ppm'))
    Image.fromarray(pattern(25, 19, 1, 7)[:, :, 0]).save(os.path.join(OUT, 'gray.pgm'))
    Image.fromarray(pattern(26, 31, 3, 8)).convert('CMYK').save(os.path.join(OUT, 'cmyk.jpg'),
                                                                  quality=90)
    # 16-bit gray, values up to 1000: Pillow clips them at 255 when converting.
    sixteen = (pattern(15, 17, 1, 9)[:, :, 0].astype(np.uint16) * 4)
    Image.fromarray(sixteen, 'I;16').save(os.path.join(OUT, 'gray16.png'))


def main():
    os.makedirs(OUT, exist_ok=True)
    write_inputs()
    manifest = []
    for name, sizes in TRANSFORMS.items():
        for mode, channels in (('RGB', 3), ('L', 1)):
            image = Image.open(os.path.join(OUT, name)).convert(mode)
            outputs = {f'{name}.c{channels}.raw': image}
            for resize, crop in sizes:
                outputs[f'{name}.c{channels}.r{resize}c{crop}.raw'] = transforms.Compose(
                    [transforms.Resize(resize), transforms.CenterCrop(crop)])(image)
            for file_name, result in outputs.items():
                array = np.asarray(result, dtype=np.uint8).reshape(result.height, result.width,
                                                                   channels)
                array.tofile(os.path.join(OUT, file_name))
                manifest.append(f'{file_name} {result.height} {result.width} {channels}')
    with open(os.path.join(OUT, 'manifest.txt'), 'w') as f:
        f.write('\n'.join(manifest) + '\n')
    print(f'wrote {len(manifest)} files and manifest.txt to {OUT}')


if __name__ == '__main__':
    main()
