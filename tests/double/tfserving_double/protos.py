"""Generated protobuf modules, loaded without running ``tensorflow/__init__``.

Flag and config-file errors must be reported without paying TensorFlow's
import (seconds): ``tensorflow_serving.*_pb2`` only needs the generated
``tensorflow/core/**/_pb2`` modules. While ``tensorflow`` is not imported
yet, a bare package module named ``tensorflow`` (``__path__`` = the
installed folder) is registered for the import and removed afterwards, so a
later real ``import tensorflow`` still runs its ``__init__``.

The configs that tensorflow-serving-api's wheel lacks (batching,
monitoring, SSL) come from tfsops' ``extra_protos`` module, copied next to
this package when the image is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


def load(name: str) -> Any:
    with _lock:
        if name in sys.modules:
            return sys.modules[name]
        if "tensorflow" in sys.modules:
            return importlib.import_module(name)
        spec = importlib.util.find_spec("tensorflow")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("tensorflow is not installed")
        shim = types.ModuleType("tensorflow")
        shim.__path__ = list(spec.submodule_search_locations)
        shim.__spec__ = spec
        shim.__file__ = spec.origin
        sys.modules["tensorflow"] = shim
        try:
            return importlib.import_module(name)
        finally:
            if sys.modules.get("tensorflow") is shim:
                del sys.modules["tensorflow"]


def extra_protos() -> Any:
    try:
        from . import extra_protos as module  # type: ignore[attr-defined]
    except ImportError:  # running from the source tree: use tfsops' copy
        from tfsops.adapters import extra_protos as module
    return module


def model_server_config_pb2() -> Any:
    return load("tensorflow_serving.config.model_server_config_pb2")


def model_management_pb2() -> Any:
    return load("tensorflow_serving.apis.model_management_pb2")
