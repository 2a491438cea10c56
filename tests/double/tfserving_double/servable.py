"""One loaded SavedModel version, executed with real TensorFlow.

Loaded with the v1 session loader in its own Graph/Session (works for TF1
exports such as upstream's test models and for TF2 exports alike, where
``tf.saved_model.load`` fails on some TF1 signatures). Signatures run by
tensor name through callables made from ``CallableOptions``, which, like
the C++ server, do not check feeds against a placeholder's static shape
(``docker.md`` feeds shape [3] into ``x:0`` declared [-1, 1]).
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import log
from .jsontensor import DT_FLOAT, DT_STRING, dtype_name
from .status import NAMES, ServingError, invalid_argument

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
MAX_WARMUP_RECORDS = 1000
_tf_lock = threading.Lock()


def tf() -> Any:
    """The real TensorFlow module (imported once, on first use)."""
    with _tf_lock:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")
        return tensorflow


def status_from_exception(exc: BaseException) -> ServingError:
    if isinstance(exc, ServingError):
        return exc
    errors = tf().errors
    if isinstance(exc, errors.OpError):
        return ServingError(NAMES.get(exc.error_code, "UNKNOWN"), exc.message)
    return ServingError("UNKNOWN", f"{type(exc).__name__}: {exc}")


@dataclass
class LoadSettings:
    tags: tuple[str, ...] = ("serve",)
    session_config: Any = None  # tf ConfigProto
    enable_warmup: bool = True
    warmup_iterations: int = 1
    batching: Any = None  # BatchingParameters or None when batching is off
    method_name_check: bool = False
    tensor_content: bool = False  # --enable_serialization_as_tensor_content


def _has_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb")) or os.path.isfile(
        os.path.join(path, "saved_model.pbtxt")
    )


def ndarray_from_proto(proto: Any) -> np.ndarray:
    return np.asarray(tf().make_ndarray(proto))


def ndarray_to_proto(arr: np.ndarray, dtype: int, tensor_content: bool = False) -> Any:
    """``Tensor::AsProtoField``: typed repeated fields, like the C++ server."""
    tfm = tf()
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto()
    proto.dtype = dtype
    proto.tensor_shape.SetInParent()  # set even for a scalar (no dims), as AsProtoField does
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=d)
    flat = arr.reshape(-1)
    if dtype == DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
        return proto
    if tensor_content:
        proto.tensor_content = np.ascontiguousarray(arr).tobytes()
        return proto
    kind = arr.dtype
    if kind == np.float32:
        proto.float_val.extend(flat.tolist())
    elif kind == np.float64:
        proto.double_val.extend(flat.tolist())
    elif kind in (np.int32, np.int16, np.int8, np.uint8, np.uint16):
        proto.int_val.extend(int(v) for v in flat)
    elif kind == np.int64:
        proto.int64_val.extend(int(v) for v in flat)
    elif kind == np.bool_:
        proto.bool_val.extend(bool(v) for v in flat)
    elif kind == np.uint32:
        proto.uint32_val.extend(int(v) for v in flat)
    elif kind == np.uint64:
        proto.uint64_val.extend(int(v) for v in flat)
    elif kind == np.float16:
        proto.half_val.extend(int(v) for v in flat.view(np.uint16))
    else:
        return tfm.make_tensor_proto(arr)
    return proto


def input_values(sig: Any, request_inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TensorFlow's ``GetInputValues`` (``cc/saved_model/util.cc``), used by ``RunPredict``.

    Every signature input comes from the request or, failing that, from the
    signature's ``defaults``; a request input the signature lacks is refused.
    """
    defaults = sig.defaults
    values: dict[str, np.ndarray] = {}
    seen: list[str] = []
    for alias in sorted(sig.inputs):
        if alias in request_inputs:
            values[alias] = request_inputs[alias]
            seen.append(alias)
        elif alias in defaults:
            values[alias] = ndarray_from_proto(defaults[alias])
        else:
            raise invalid_argument(
                f"Signature input alias: {alias}(feed name: {sig.inputs[alias].name}) not found "
                "in request and no default value provided. Inputs expected to be in the request "
                f"{{{','.join(sorted(request_inputs))}}}, or default input alias set: "
                f"{','.join(sorted(defaults))}"
            )
    if request_inputs and len(seen) != len(request_inputs):
        raise invalid_argument(
            f"Inputs contains invalid name. Used request inputs: {','.join(seen)}, request "
            f"input: {','.join(sorted(request_inputs))}"
        )
    return values


def prepare_predict(
    signatures: Mapping[str, Any],
    signature_name: str,
    inputs: Mapping[str, np.ndarray],
    output_filter: Sequence[str],
) -> tuple[str, Any, dict[str, np.ndarray], list[str]]:
    """``RunPredict``'s checks: (signature name, SignatureDef, inputs, output aliases)."""
    signame = signature_name or DEFAULT_SIGNATURE
    sig = signatures.get(signame)
    if sig is None:
        raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{signame}" not found.')
    values = input_values(sig, inputs)
    wanted: list[str] = []
    for alias in output_filter:
        if alias not in sig.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(sig.outputs))}}}."
            )
        if alias in wanted:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        wanted.append(alias)
    return signame, sig, values, sorted(wanted or sig.outputs)


def _read_tfrecords(path: str) -> list[bytes]:
    records: list[bytes] = []
    with open(path, "rb") as fh:
        while True:
            header = fh.read(12)
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            data = fh.read(length)
            fh.read(4)
            if len(data) < length:
                raise ServingError("DATA_LOSS", f"truncated record at {path}")
            records.append(data)
            if len(records) > MAX_WARMUP_RECORDS:
                raise invalid_argument(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
    return records


@dataclass
class Servable:
    name: str
    version: int
    path: str
    settings: LoadSettings
    session: Any = None
    meta_graph: Any = None
    _callables: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)

    # -- lifecycle -------------------------------------------------------

    def load(self) -> None:
        """Load the SavedModel; raises ServingError with upstream-like texts."""
        tfm = tf()
        tags = list(self.settings.tags)
        tag_text = "{ " + " ".join(tags) + " }"
        log.info(log.LOADER, f"Reading SavedModel from: {self.path}")
        if not _has_saved_model(self.path):
            raise ServingError(
                "NOT_FOUND",
                "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
                f"{self.path}. Check that the directory exists and that you have the right "
                "permissions for accessing it.",
            )
        self._check_batching()
        start = time.monotonic()
        log.info(log.LOADER, f"Reading meta graph with tags {tag_text}")
        graph = tfm.Graph()
        session = tfm.compat.v1.Session(graph=graph, config=self.settings.session_config)
        try:
            with graph.as_default():
                meta_graph = tfm.compat.v1.saved_model.loader.load(session, tags, self.path)
        except RuntimeError as exc:
            session.close()
            if "could not be found in SavedModel" in str(exc):
                raise ServingError(
                    "NOT_FOUND",
                    f"Could not find meta graph def matching supplied tags: {tag_text}. To inspect "
                    "available tag-sets in the SavedModel, please use the SavedModel CLI: "
                    "`saved_model_cli`",
                ) from None
            raise status_from_exception(exc) from None
        except OSError as exc:
            session.close()
            if "Cannot parse file" in str(exc):
                # What the C++ loader's ReadBinaryProto says about a corrupt saved_model.pb.
                pb = os.path.join(self.path, "saved_model.pb")
                raise ServingError("DATA_LOSS", f"Can't parse {pb} as binary proto") from None
            raise status_from_exception(exc) from None
        except Exception as exc:
            session.close()
            raise status_from_exception(exc) from None
        self.session, self.meta_graph = session, meta_graph
        micros = int((time.monotonic() - start) * 1e6)
        log.info(
            log.LOADER,
            f"SavedModel load for tags {tag_text}; Status: success: OK. Took {micros} "
            "microseconds.",
        )
        if self.settings.enable_warmup:
            try:
                self._warmup()
            except Exception:
                self.session.close()
                raise

    def _check_batching(self) -> None:
        params = self.settings.batching
        if params is None or not params.allowed_batch_sizes:
            return
        sizes = list(params.allowed_batch_sizes)
        if any(b <= a for a, b in itertools.pairwise(sizes)):
            raise invalid_argument("allowed_batch_sizes entries must be monotonically increasing")
        max_batch = params.max_batch_size.value if params.HasField("max_batch_size") else 1000
        if sizes[-1] != max_batch:
            raise invalid_argument(
                "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                f"{sizes[-1]}; expected {max_batch}"
            )

    def _warmup(self) -> None:
        path = os.path.join(self.path, "assets.extra", "tf_serving_warmup_requests")
        if not os.path.isfile(path):
            return
        from . import protos

        prediction_log_pb2 = protos.load("tensorflow_serving.apis.prediction_log_pb2")
        log.info(
            "tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc",
            f"Starting to read warmup data for model at {path} with model-warmup-options ",
        )
        start = time.monotonic()
        records = _read_tfrecords(path)
        for raw in records:
            entry = prediction_log_pb2.PredictionLog.FromString(raw)
            kind = entry.WhichOneof("log_type")
            for _ in range(max(self.settings.warmup_iterations, 1)):
                if kind == "predict_log":
                    req = entry.predict_log.request
                    inputs = {k: ndarray_from_proto(v) for k, v in req.inputs.items()}
                    self.predict(req.model_spec.signature_name, inputs, list(req.output_filter))
                elif kind in ("classify_log", "regress_log"):
                    req = getattr(entry, kind).request
                    examples = serialized_examples(req.input)
                    if kind == "classify_log":
                        self.classify(req.model_spec.signature_name, examples)
                    else:
                        self.regress(req.model_spec.signature_name, examples)
                else:
                    raise invalid_argument(f"Unsupported log_type for warmup: {kind}")
        micros = int((time.monotonic() - start) * 1e6)
        log.info(
            "tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc",
            f"Finished reading warmup data for model at {path}. Number of warmup records read: "
            f"{len(records)}. Elapsed time (microseconds): {micros}.",
        )

    def acquire(self) -> None:
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def close(self, grace_seconds: float = 30.0) -> None:
        # Requests already holding this version finish first (ServableHandle semantics).
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace_seconds)
        if self.session is not None:
            self.session.close()
            self.session = None

    # -- execution ---------------------------------------------------------

    @property
    def signatures(self) -> Mapping[str, Any]:
        signatures: Mapping[str, Any] = self.meta_graph.signature_def
        return signatures

    def _callable(self, feeds: Sequence[str], fetches: Sequence[str], timeout_ms: int) -> Any:
        key = (tuple(feeds), tuple(fetches), timeout_ms)
        with self._lock:
            fn = self._callables.get(key)
            if fn is None:
                tf()
                from tensorflow.core.protobuf import config_pb2

                options = config_pb2.CallableOptions()
                options.feed.extend(feeds)
                options.fetch.extend(fetches)
                if timeout_ms > 0:
                    options.run_options.timeout_in_ms = timeout_ms
                fn = self.session._make_callable_from_options(options)
                self._callables[key] = fn
            return fn

    def _run(self, feeds: Mapping[str, Any], fetches: Sequence[str], timeout_ms: int) -> list[Any]:
        names = sorted(feeds)
        fn = self._callable(names, fetches, timeout_ms)
        try:
            return list(fn(*[feeds[n] for n in names]))
        except Exception as exc:
            raise status_from_exception(exc) from None

    def _check_batch_size(self, arrays: Mapping[str, np.ndarray]) -> None:
        params = self.settings.batching
        if params is None:
            return
        if (
            params.HasField("enable_large_batch_splitting")
            and params.enable_large_batch_splitting.value
        ):
            return
        limit = params.max_batch_size.value if params.HasField("max_batch_size") else 1000
        for arr in arrays.values():
            if arr.ndim and arr.shape[0] > limit:
                raise invalid_argument(
                    f"Task size {arr.shape[0]} is larger than maximum input batch size {limit}"
                )

    def predict(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
        timeout_ms: int = 0,
    ) -> tuple[str, dict[str, tuple[np.ndarray, int]]]:
        """``predict_util.cc::RunPredict``: returns (signature, alias -> (array, dtype))."""
        signame, sig, inputs, aliases = prepare_predict(
            self.signatures, signature_name, inputs, output_filter
        )
        self._check_batch_size(inputs)
        feeds = {sig.inputs[a].name: value for a, value in inputs.items()}
        fetched = self._run(feeds, [sig.outputs[a].name for a in aliases], timeout_ms)
        out: dict[str, tuple[np.ndarray, int]] = {}
        for alias, value in zip(aliases, fetched, strict=True):
            out[alias] = (np.asarray(value), int(sig.outputs[alias].dtype))
        return signame, out

    def _example_signature(self, signature_name: str, method: str, kind: str) -> tuple[str, Any]:
        signame = signature_name or DEFAULT_SIGNATURE
        sig = self.signatures.get(signame)
        if sig is None:
            raise invalid_argument(f"No signature was found with the name: {signame}")
        if self.settings.method_name_check and sig.method_name != method:
            raise invalid_argument(
                f"Expected {kind} signature method_name to be {method}. Was: {sig.method_name}"
            )
        if len(sig.inputs) != 1:
            raise invalid_argument("Expected one input Tensor.")
        return signame, sig

    def classify(
        self, signature_name: str, examples: Sequence[bytes], timeout_ms: int = 0
    ) -> tuple[str, list[list[tuple[bytes, float]]]]:
        """``classifier.cc``: per example, (label, score) pairs."""
        signame, sig = self._example_signature(signature_name, CLASSIFY_METHOD, "classification")
        if len(sig.outputs) not in (1, 2):
            raise invalid_argument(f"Expected one or two output Tensors, found {len(sig.outputs)}")
        if "classes" not in sig.outputs and "scores" not in sig.outputs:
            raise invalid_argument(
                "Expected classification signature outputs to contain at least one of: "
                "classes, scores"
            )
        if not examples:
            raise invalid_argument("Input is empty.")
        aliases = [a for a in ("classes", "scores") if a in sig.outputs]
        batch = np.array(list(examples), dtype=object)
        feed = {next(iter(sig.inputs.values())).name: batch}
        fetched = dict(
            zip(
                aliases,
                self._run(feed, [sig.outputs[a].name for a in aliases], timeout_ms),
                strict=True,
            )
        )
        n = len(examples)
        classes = fetched.get("classes")
        scores = fetched.get("scores")
        for alias, found in (("classes", classes), ("scores", scores)):
            if found is None:
                continue
            arr = np.asarray(found)
            if arr.ndim != 2:
                raise invalid_argument(
                    f"Expected Tensor shape: [batch_size num_classes] but got {list(arr.shape)}"
                )
            if arr.shape[0] != n:
                raise invalid_argument(
                    f"Expected {alias} output batch size of {n} but got {arr.shape[0]}"
                )
        if scores is not None and np.asarray(scores).dtype != np.float32:
            raise invalid_argument(
                "Expected scores Tensor of DT_FLOAT. Got: "
                + dtype_name(int(sig.outputs["scores"].dtype))
            )
        width = np.asarray(scores if scores is not None else classes).shape[1]
        results: list[list[tuple[bytes, float]]] = []
        for i in range(n):
            row = []
            for j in range(width):
                label = bytes(classes[i][j]) if classes is not None else b""
                score = float(scores[i][j]) if scores is not None else 0.0
                row.append((label, score))
            results.append(row)
        return signame, results

    def regress(
        self, signature_name: str, examples: Sequence[bytes], timeout_ms: int = 0
    ) -> tuple[str, list[float]]:
        """``regressor.cc``: one float per example."""
        signame, sig = self._example_signature(signature_name, REGRESS_METHOD, "regression")
        if len(sig.outputs) != 1:
            raise invalid_argument("Expected one output Tensor.")
        if "outputs" not in sig.outputs:
            raise invalid_argument("No regression outputs found.")
        if not examples:
            raise invalid_argument("Input is empty.")
        batch = np.array(list(examples), dtype=object)
        feed = {next(iter(sig.inputs.values())).name: batch}
        (value,) = self._run(feed, [sig.outputs["outputs"].name], timeout_ms)
        arr = np.asarray(value)
        n = len(examples)
        if not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)) or arr.shape[0] != n:
            raise invalid_argument(
                "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but "
                f"got {list(arr.shape)}"
            )
        if int(sig.outputs["outputs"].dtype) != DT_FLOAT and arr.dtype != np.float32:
            raise invalid_argument(
                "Expected output Tensor of DT_FLOAT.  Got: "
                + dtype_name(int(sig.outputs["outputs"].dtype))
            )
        return signame, [float(v) for v in arr.reshape(-1)]


def serialized_examples(input_proto: Any) -> list[bytes]:
    """``InputToSerializedExampleTensor``: context bytes + example bytes (proto merge)."""
    which = input_proto.WhichOneof("kind")
    if which == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if which == "example_list_with_context":
        ctx = input_proto.example_list_with_context.context.SerializeToString()
        return [ctx + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    return []
