"""A TensorFlow Lite model served under ``--prefer_tflite_model`` (``tflite_session.cc``).

Upstream loads ``model.tflite`` instead of ``saved_model.pb`` when the flag is
set and the file exists, and serves Predict (and metadata) through a TFLite
interpreter. Signatures come from the model's ``signature_defs_metadata``
(a FlexBuffer map of serialized ``SignatureDef``s); without it, one
``serving_default`` signature maps each input and output tensor's name to
itself. The double runs ``tf.lite.Interpreter``; Classify and Regress are
refused, as TFLite servables have no example parsing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import log
from .servable import DEFAULT_SIGNATURE, Servable, prepare_predict, status_from_exception, tf
from .status import ServingError, invalid_argument

TFLITE_FILE = "model.tflite"
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURES_METADATA = b"signature_defs_metadata"


def tflite_model_found(path: str) -> bool:
    return os.path.isfile(os.path.join(path, TFLITE_FILE))


def _metadata_signatures(model_path: str) -> dict[str, Any]:
    from flatbuffers import flexbuffers
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(model_path)
    for entry in model.metadata or []:
        if entry.name != SIGNATURES_METADATA:
            continue
        root = flexbuffers.GetRoot(bytearray(model.buffers[entry.buffer].data)).AsMap
        return {
            key.AsKey: meta_graph_pb2.SignatureDef.FromString(bytes(value.AsStringBytes))
            for key, value in zip(root.Keys, root.Values, strict=True)
        }
    return {}


def _tensor_name(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


class TfLiteServable:
    def __init__(self, name: str, version: int, path: str, settings: Any) -> None:
        self.name, self.version, self.path, self.settings = name, version, path, settings
        self._interpreter: Any = None
        self._details: dict[str, dict[str, Any]] = {}
        self._outputs: dict[str, dict[str, Any]] = {}
        self._signatures: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.session: Any = None  # Servable.close closes it: a TFLite model has none
        self._in_flight = 0
        self._idle = threading.Condition()

    def load(self) -> None:
        tfm = tf()
        model_path = os.path.join(self.path, TFLITE_FILE)
        log.info(log.LOADER, f"Reading TFLite model from: {model_path}")
        try:
            interpreter = tfm.lite.Interpreter(model_path=model_path)
            interpreter.allocate_tensors()
            signatures = _metadata_signatures(model_path)
        except Exception as exc:
            raise status_from_exception(exc) from None
        self._details = {d["name"]: d for d in interpreter.get_input_details()}
        self._outputs = {d["name"]: d for d in interpreter.get_output_details()}
        if not signatures:
            from tensorflow.core.protobuf import meta_graph_pb2

            sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
            for target, details in ((sig.inputs, self._details), (sig.outputs, self._outputs)):
                for tensor, d in details.items():
                    info = target[tensor]
                    info.name = tensor
                    info.dtype = tfm.as_dtype(d["dtype"]).as_datatype_enum
                    for size in d["shape_signature"]:
                        info.tensor_shape.dim.add(size=int(size))
            signatures = {DEFAULT_SIGNATURE: sig}
        self._interpreter, self._signatures = interpreter, signatures

    @property
    def signatures(self) -> Mapping[str, Any]:
        return self._signatures

    # Requests holding this version finish before it closes, as for a SavedModel.
    acquire = Servable.acquire
    release = Servable.release

    def close(self, grace_seconds: float = 30.0) -> None:
        Servable.close(self, grace_seconds)  # type: ignore[arg-type]
        self._interpreter = None

    def predict(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
        timeout_ms: int = 0,
    ) -> tuple[str, dict[str, tuple[np.ndarray, int]]]:
        signame, sig, values, aliases = prepare_predict(
            self._signatures, signature_name, inputs, output_filter
        )
        with self._lock:
            interpreter = self._interpreter
            try:
                for alias, value in values.items():
                    d = self._details[_tensor_name(sig.inputs[alias].name)]
                    arr = np.asarray(value, dtype=d["dtype"])
                    interpreter.resize_tensor_input(d["index"], list(arr.shape))
                interpreter.allocate_tensors()
                for alias, value in values.items():
                    d = self._details[_tensor_name(sig.inputs[alias].name)]
                    interpreter.set_tensor(d["index"], np.asarray(value, dtype=d["dtype"]))
                interpreter.invoke()
                out = {
                    alias: (
                        np.array(
                            interpreter.get_tensor(
                                self._outputs[_tensor_name(sig.outputs[alias].name)]["index"]
                            )
                        ),
                        int(sig.outputs[alias].dtype),
                    )
                    for alias in aliases
                }
            except (KeyError, ValueError, RuntimeError) as exc:
                raise invalid_argument(str(exc)) from None
        return signame, out

    def classify(self, *_args: Any, **_kwargs: Any) -> Any:
        raise ServingError("UNIMPLEMENTED", "Classify is not supported for TFLite models.")

    def regress(self, *_args: Any, **_kwargs: Any) -> Any:
        raise ServingError("UNIMPLEMENTED", "Regress is not supported for TFLite models.")
