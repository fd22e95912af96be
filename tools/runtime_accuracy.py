#!/usr/bin/env python3
"""The top-1 accuracy of Fashion-MNIST model files as today's runtime scores
them, next to the accuracy recorded in each file when it was converted: how
model files made earlier are measured again after the runtime's numerics
change (README, "Numerics").

  bazel build //tools:model_outputs
  python3 tools/runtime_accuracy.py runs/sbs/qforge_seed*/model_int8_*.qfm

Each model runs on all 10,000 test images through tools/model_outputs (one
thread, the default backend), normalized as the trainer's loader does.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qforge_protos  # pylint: disable=wrong-import-position
import runtime_logits  # pylint: disable=wrong-import-position
import side_by_side  # pylint: disable=wrong-import-position


def recorded(model):
    """The accuracy the file records, and over how many images if not all."""
    images = model.metadata.accuracy_images
    if images == 0:
        return '-'
    top1 = f'{model.metadata.accuracy_top1:.2%}'
    return top1 if images == 10000 else f'{top1} of {images:,} images'


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('models', nargs='+', help='.qfm files of Fashion-MNIST models')
    p.add_argument('--model_outputs', default=runtime_logits.MODEL_OUTPUTS)
    args = p.parse_args()
    runtime_logits.require(args.model_outputs)
    pb = qforge_protos.model_pb2()
    models = {}
    for path in args.models:  # all checked before any runs
        if not os.path.isfile(path):
            sys.exit(f'{path}: no such file')
        models[path] = qforge_protos.read(pb.Model(), path)
        if models[path].metadata.dataset != 'fashion-mnist':
            sys.exit(f'{path}: a model of "{models[path].metadata.dataset}", not fashion-mnist')
    train, _, test, labels = runtime_logits.fashion_mnist()
    images = side_by_side.Normalizer(train)(test).numpy().transpose(0, 2, 3, 1)  # NHWC
    print('| model | recorded top-1 | top-1 now |')
    print('|---|---|---|')
    for path, model in models.items():
        now = runtime_logits.runtime_top1(path, images, labels, args.model_outputs)
        print(f'| {path} | {recorded(model)} | {now:.2%} |', flush=True)


if __name__ == '__main__':
    main()
