"""qforge's protobuf messages (trainer checkpoints, model files) in Python,
generated with protoc from the .proto files at import time: nothing generated
is committed, and the classes always match the sources.

Needs protoc (protobuf-compiler) and Python's protobuf (python3-protobuf).
"""

import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OUT = tempfile.mkdtemp(prefix='qforge_protos_')
atexit.register(shutil.rmtree, _OUT, ignore_errors=True)


def _module(proto, module):
    subprocess.run(['protoc', f'--proto_path={ROOT}', f'--python_out={_OUT}'] + proto,
                   check=True)
    if _OUT not in sys.path:
        sys.path.insert(0, _OUT)
    return importlib.import_module(module)


def checkpoint_pb2():
    """trainer/checkpoint.proto (and config.proto)."""
    return _module(['trainer/config.proto', 'trainer/checkpoint.proto'], 'trainer.checkpoint_pb2')


def model_pb2():
    """common/model.proto."""
    return _module(['common/model.proto'], 'common.model_pb2')


def read(message, path):
    """`message` parsed from the file at `path`."""
    with open(path, 'rb') as f:
        message.ParseFromString(f.read())
    return message
