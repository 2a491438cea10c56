"""Load TF Serving / TensorFlow generated ``_pb2`` modules without TensorFlow's runtime.

``import tensorflow_serving.apis.predict_pb2`` imports ``tensorflow`` (its
``__init__`` loads the whole runtime: seconds, and log noise). The generated
modules only need ``tensorflow/core/**/_pb2.py``. When ``tensorflow`` is not
imported yet, we register a bare namespace-like package module named
``tensorflow`` whose ``__path__`` is the installed package folder, import the
``_pb2`` modules through it, and then remove the bare module again, so that a
later ``import tensorflow`` by the user runs the real ``__init__``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()


def _import_light(name: str) -> types.ModuleType:
    if "tensorflow" in sys.modules:  # already real (or already shimmed by us): plain import
        return importlib.import_module(name)
    spec = importlib.util.find_spec("tensorflow")  # finds, does not execute, a top-level package
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "tensorflow (needed for its generated protobuf modules) is not installed; "
            "install tensorflow-serving-api"
        )
    shim = types.ModuleType("tensorflow")
    shim.__path__ = list(spec.submodule_search_locations)
    shim.__spec__ = spec
    shim.__file__ = spec.origin
    sys.modules["tensorflow"] = shim
    try:
        return importlib.import_module(name)
    finally:
        # Leave the generated submodules cached (they are plain protobuf modules),
        # but drop the shim so a real ``import tensorflow`` still runs __init__.
        if sys.modules.get("tensorflow") is shim:
            del sys.modules["tensorflow"]


def load(name: str) -> Any:
    """Import a generated protobuf module (``tensorflow_serving.*_pb2`` / ``tensorflow.core.*_pb2``)."""
    with _lock:
        module = sys.modules.get(name)
        if module is not None:
            return module
        return _import_light(name)


def model_server_config_pb2() -> Any:
    return load("tensorflow_serving.config.model_server_config_pb2")


def monitoring_config_pb2() -> Any:
    return load("tensorflow_serving.config.monitoring_config_pb2")


def ssl_config_pb2() -> Any:
    return load("tensorflow_serving.config.ssl_config_pb2")


def session_bundle_config_pb2() -> Any:
    return load("tensorflow_serving.servables.tensorflow.session_bundle_config_pb2")


def saved_model_pb2() -> Any:
    return load("tensorflow.core.protobuf.saved_model_pb2")


def text_format() -> Any:
    from google.protobuf import text_format as tf_text_format

    return tf_text_format
