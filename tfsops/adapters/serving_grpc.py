"""TF Serving's gRPC API behind the ``ServingClient`` and ``ModelAdmin`` ports.

Status, metadata and predict mirror the REST adapter (same return shapes, same
error classes), so callers can switch transport with a flag. ``reload_config``
is gRPC-only: ``HandleReloadConfigRequest`` replaces the server's whole model
list and blocks until every *new* model is AVAILABLE, which can be forever
(upstream #1447/#1565), so it always runs under a deadline.

Generated modules come through ``protos.load`` (never ``import
tensorflow_serving...``: that runs TensorFlow's ``__init__``, seconds).
Tensors are converted without numpy: JSON-ish values (numbers, strings,
``{"b64": ...}``, nested lists) to ``TensorProto`` and back.

Translated server errors carry ``details["server_message"]`` (the server's
text, verbatim) and ``details["grpc_code"]``. Import this module lazily.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from tfsops.adapters import protos
from tfsops.errors import (
    InvalidInput,
    ModelNotFound,
    NotReady,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.ports import Endpoint, VersionStatus

_model_service_grpc = protos.load("tensorflow_serving.apis.model_service_pb2_grpc")
_prediction_service_grpc = protos.load("tensorflow_serving.apis.prediction_service_pb2_grpc")
_status_pb2 = protos.load("tensorflow_serving.apis.get_model_status_pb2")
_metadata_pb2 = protos.load("tensorflow_serving.apis.get_model_metadata_pb2")
_predict_pb2 = protos.load("tensorflow_serving.apis.predict_pb2")
_management_pb2 = protos.load("tensorflow_serving.apis.model_management_pb2")
_tensor_pb2 = protos.load("tensorflow.core.framework.tensor_pb2")
_types_pb2 = protos.load("tensorflow.core.framework.types_pb2")
_error_codes_pb2 = protos.load("tensorflow.core.protobuf.error_codes_pb2")

INT32_MAX = 2**31 - 1  # what tensorflow_model_server allows in both directions
DEFAULT_SIGNATURE = "serving_default"
_SHORTEST_LIMIT = 100_000  # float32 outputs up to this size are shown as their shortest decimal

RELOAD_DEADLINE_HINT = (
    "TF Serving's reload waits until every newly added model has a version AVAILABLE; "
    "a new model whose base path is missing or holds no numeric version directory makes "
    "it wait forever (upstream issues #1447, #1565). Check the new models' directories "
    "(tfsops validate); if later reloads keep timing out, restart the server"
)
STARTING_HINT = (
    "TF Serving opens its ports only after every configured model has loaded or failed; "
    "wait (tfsops health --wait) or look at the container logs"
)
LABEL_HINT = (
    "labels are assigned in models.config (version_labels) and TF Serving only "
    "accepts a label on a version that is AVAILABLE"
)

# dtype name -> (TensorProto field for *_val, struct format for tensor_content, kind)
_DTYPES: dict[str, tuple[str, str, str]] = {
    "DT_FLOAT": ("float_val", "f", "float"),
    "DT_DOUBLE": ("double_val", "d", "float"),
    "DT_HALF": ("half_val", "e", "float"),  # half_val holds the 16-bit patterns
    "DT_BFLOAT16": ("half_val", "H", "float"),
    "DT_INT8": ("int_val", "b", "int"),
    "DT_INT16": ("int_val", "h", "int"),
    "DT_INT32": ("int_val", "i", "int"),
    "DT_UINT8": ("int_val", "B", "int"),
    "DT_UINT16": ("int_val", "H", "int"),
    "DT_INT64": ("int64_val", "q", "int"),
    "DT_UINT32": ("uint32_val", "I", "int"),
    "DT_UINT64": ("uint64_val", "Q", "int"),
    "DT_BOOL": ("bool_val", "?", "bool"),
    "DT_STRING": ("string_val", "", "string"),
}


# ---------------------------------------------------------------------------
# tensors <-> JSON-ish values


def dtype_name(dtype: int) -> str:
    try:
        return str(_types_pb2.DataType.Name(dtype))
    except ValueError:
        return f"dtype {dtype}"


def _is_b64(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value.keys()) == {"b64"}


def _shape_and_leaves(value: Any, where: str) -> tuple[list[int], list[Any]]:
    if isinstance(value, (list, tuple)):
        if not value:
            return [0], []
        shapes: list[list[int]] = []
        leaves: list[Any] = []
        for item in value:
            shape, sub = _shape_and_leaves(item, where)
            shapes.append(shape)
            leaves.extend(sub)
        if any(s != shapes[0] for s in shapes):
            raise InvalidInput(
                f"{where}: nested lists have different lengths (a tensor must be rectangular)"
            )
        return [len(value), *shapes[0]], leaves
    if isinstance(value, Mapping) and not _is_b64(value):
        raise InvalidInput(
            f'{where}: unexpected object {value!r} (only {{"b64": ...}} is allowed in a tensor)'
        )
    return [], [value]


def _infer_dtype(leaves: Sequence[Any]) -> str:
    if not leaves:
        return "DT_FLOAT"
    if all(isinstance(v, bool) for v in leaves):
        return "DT_BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in leaves):
        return "DT_INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in leaves):
        return "DT_FLOAT"
    return "DT_STRING"


def _to_bytes(value: Any, where: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: invalid base64 in {value!r}: {exc}") from exc
    raise InvalidInput(f'{where}: value {value!r} is not a string or {{"b64": ...}}')


def to_tensor_proto(value: Any, dtype: int | str | None = None, *, name: str = "input") -> Any:
    """A ``TensorProto`` from a JSON-ish value; ``dtype`` (enum or ``"DT_..."``) from the signature.

    Nested lists give the shape; scalars give rank 0. Without a dtype, ints
    become DT_INT64, floats DT_FLOAT, strings / ``{"b64": ...}`` DT_STRING.
    """
    where = f"input {name!r}"
    shape, leaves = _shape_and_leaves(value, where)
    if dtype is None:
        dname = _infer_dtype(leaves)
    elif isinstance(dtype, str):
        dname = dtype
    else:
        dname = dtype_name(dtype)
    if dname not in _DTYPES:
        raise InvalidInput(
            f"{where}: dtype {dname} is not supported by tfsops' gRPC predict (use REST)"
        )
    field, fmt, kind = _DTYPES[dname]
    tensor = _tensor_pb2.TensorProto(dtype=_types_pb2.DataType.Value(dname))
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    values: list[Any] = []
    for leaf in leaves:
        if kind == "string":
            values.append(_to_bytes(leaf, where))
            continue
        ok = (
            (kind == "float" and isinstance(leaf, (int, float)) and not isinstance(leaf, bool))
            or (kind == "int" and isinstance(leaf, int) and not isinstance(leaf, bool))
            or (kind == "bool" and isinstance(leaf, bool))
        )
        if not ok:
            raise InvalidInput(f"{where}: value {leaf!r} is not of expected type {dname}")
        if dname == "DT_HALF":
            values.append(struct.unpack("<H", struct.pack("<e", leaf))[0])
        elif dname == "DT_BFLOAT16":
            values.append(_float_to_bfloat16_bits(float(leaf)))
        elif kind == "int":
            try:
                struct.pack("<" + fmt, leaf)
            except struct.error as exc:
                raise InvalidInput(f"{where}: value {leaf} does not fit {dname}") from exc
            values.append(leaf)
        else:
            values.append(leaf)
    try:
        getattr(tensor, field).extend(values)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"{where}: {exc}") from exc
    return tensor


def _float_to_bfloat16_bits(x: float) -> int:
    bits: int = struct.unpack("<I", struct.pack("<f", x))[0]
    if math.isnan(x):
        return (bits >> 16) | 0x40  # keep it a NaN after truncation
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF  # round to nearest even


def _shortest(x: float, fmt: str, first: int) -> float:
    """The shortest decimal that still rounds to the same float32/half: 0.1, not 0.10000000149."""
    if not math.isfinite(x):
        return x
    for digits in range(first, 18):
        y = float(f"{x:.{digits}g}")
        try:
            if struct.unpack("<" + fmt, struct.pack("<" + fmt, y))[0] == x:
                return y
        except (OverflowError, struct.error):
            break
    return x


def _reshape(flat: list[Any], shape: Sequence[int]) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _string_out(raw: bytes, binary: bool) -> Any:
    if not binary:
        try:
            return raw.decode()
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(raw).decode()}


def tensor_to_value(tensor: Any, *, binary: bool = False) -> Any:
    """Nested lists (or a scalar) from a ``TensorProto``, as TF Serving's REST API prints it.

    Strings come back as text, or ``{"b64": ...}`` when not UTF-8 or when
    ``binary`` (REST does that for outputs named ``*_bytes``).
    """
    dname = dtype_name(tensor.dtype)
    if dname not in _DTYPES:
        raise OperationFailed(
            f"the server returned a {dname} tensor, which tfsops cannot decode (use REST)"
        )
    field, fmt, kind = _DTYPES[dname]
    shape = [int(d.size) for d in tensor.tensor_shape.dim]
    if any(s < 0 for s in shape):
        raise OperationFailed(f"the server returned a tensor with an unknown dimension: {shape}")
    count = math.prod(shape)
    values: list[Any]
    if kind == "string":
        values = [_string_out(v, binary) for v in tensor.string_val]
    elif tensor.tensor_content:
        size = struct.calcsize("<" + fmt)
        if len(tensor.tensor_content) != size * count:
            raise OperationFailed(
                f"the server returned a {dname} tensor of shape {shape} with "
                f"{len(tensor.tensor_content)} content bytes"
            )
        values = list(struct.unpack(f"<{count}{fmt}", tensor.tensor_content))
        if dname == "DT_BFLOAT16":
            values = [_bfloat16_to_float(v) for v in values]
    else:
        values = list(getattr(tensor, field))
        if dname == "DT_HALF":
            values = [struct.unpack("<e", struct.pack("<H", v))[0] for v in values]
        elif dname == "DT_BFLOAT16":
            values = [_bfloat16_to_float(v) for v in values]
    if count > _SHORTEST_LIMIT:
        pass  # exact float32 values as doubles: shortening costs ~1 s per million values
    elif dname == "DT_FLOAT":
        values = [_shortest(v, "f", 6) for v in values]
    elif dname in ("DT_HALF", "DT_BFLOAT16"):
        values = [
            _shortest(v, "e", 3) if dname == "DT_HALF" else _shortest(v, "f", 3) for v in values
        ]
    if len(values) < count:
        # TensorProto allows a short *_val list: the last value repeats (constant tensors).
        filler = (
            values[-1] if values else ("" if kind == "string" else False if kind == "bool" else 0)
        )
        values.extend([filler] * (count - len(values)))
    return _reshape(values[:count], shape)


def _bfloat16_to_float(bits: int) -> float:
    value: float = struct.unpack("<f", struct.pack("<I", (bits & 0xFFFF) << 16))[0]
    return value


# ---------------------------------------------------------------------------
# predict body <-> PredictRequest / PredictResponse


def _columns_from_body(
    body: Mapping[str, Any], input_names: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """``({input: value}, row_format)`` from a REST-style predict body."""
    has_instances = "instances" in body
    has_inputs = "inputs" in body
    if has_instances == has_inputs:
        raise InvalidInput(
            "the predict body needs exactly one of 'instances' (row format) or 'inputs' (columnar)"
        )
    unknown = set(body) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise InvalidInput(f"unexpected keys in the predict body: {', '.join(sorted(unknown))}")
    if has_instances:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput("'instances' must be a non-empty list (one element per batch row)")
        named = [isinstance(r, Mapping) and not _is_b64(r) for r in instances]
        if all(named):
            keys = list(instances[0].keys())
            for i, row in enumerate(instances):
                if set(row.keys()) != set(keys):
                    raise InvalidInput(
                        f"instance {i} has inputs {sorted(row)}, instance 0 has {sorted(keys)}"
                    )
            return {k: [row[k] for row in instances] for k in keys}, True
        if any(named):
            raise InvalidInput("'instances' mixes named objects and plain values")
        return {_single_input(input_names): instances}, True
    inputs = body["inputs"]
    if isinstance(inputs, Mapping) and not _is_b64(inputs):
        if not inputs:
            raise InvalidInput("'inputs' is an empty object")
        return dict(inputs), False
    return {_single_input(input_names): inputs}, False


def _single_input(input_names: Sequence[str]) -> str:
    if len(input_names) != 1:
        raise InvalidInput(
            "unnamed values need a signature with exactly one input; this one has "
            f'{", ".join(sorted(input_names)) or "none"}: name them ({{"<input>": ...}})'
        )
    return input_names[0]


def build_predict_request(
    model: str,
    body: Mapping[str, Any],
    signature: Any | None = None,
    *,
    version: int | None = None,
    label: str | None = None,
) -> tuple[Any, bool]:
    """``(PredictRequest, row_format)`` for a REST-style body.

    ``signature`` (a ``SignatureDef``) supplies input names and dtypes; without
    it, values must be named and dtypes are inferred.
    """
    signature_name = body.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise InvalidInput("'signature_name' must be a string")
    input_names = list(signature.inputs.keys()) if signature is not None else []
    columns, row = _columns_from_body(body, input_names)
    request = _predict_pb2.PredictRequest()
    _fill_spec(request.model_spec, model, version=version, label=label)
    request.model_spec.signature_name = signature_name
    for name, value in columns.items():
        dtype: int | None = None
        if signature is not None:
            if name not in signature.inputs:
                raise InvalidInput(
                    f"the signature has no input {name!r}; its inputs are "
                    f"{', '.join(sorted(signature.inputs)) or 'none'}"
                )
            dtype = int(signature.inputs[name].dtype)
        request.inputs[name].CopyFrom(to_tensor_proto(value, dtype, name=name))
    return request, row


def predict_response_to_json(response: Any, *, row: bool) -> dict[str, Any]:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar), as REST answers."""
    outputs = {
        name: tensor_to_value(response.outputs[name], binary=name.endswith("_bytes"))
        for name in sorted(response.outputs.keys())
    }
    if not row:
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values()))}
        return {"outputs": outputs}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values()))}
    lengths = {len(v) if isinstance(v, list) else -1 for v in outputs.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise OperationFailed(
            "the outputs do not share their first (batch) dimension, so they cannot be "
            "shown as rows",
            hint="use --inputs (columnar format) instead of --instances",
        )
    batch = lengths.pop()
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(batch)]}


def _fill_spec(spec: Any, model: str, *, version: int | None, label: str | None) -> None:
    if not model:
        raise InvalidInput("a model name is required")
    if version is not None and label is not None:
        raise InvalidInput("give a version or a label, not both")
    spec.name = model
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(f"version must be a non-negative integer, got {version!r}")
        spec.version.value = version
    elif label is not None:
        if not label:
            raise InvalidInput("a label must not be empty")
        spec.version_label = label


def signature_map_to_json(sigmap: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    result: dict[str, Any] = json_format.MessageToDict(sigmap, preserving_proto_field_name=True)
    return result


# ---------------------------------------------------------------------------
# the client


class GrpcServingClient:
    """``ServingClient`` + ``ModelAdmin`` over TF Serving's gRPC port.

    Owns one channel (thread-safe, shared by concurrent health checks);
    close it with ``close()`` or a ``with`` block. TLS when
    ``endpoint.tls_ca`` (PEM text) is set.
    """

    def __init__(self, endpoint: Endpoint, *, max_message_bytes: int = INT32_MAX) -> None:
        self.target = endpoint.grpc_target
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            # Like the REST client: no HTTP proxy from the environment between us and our server.
            ("grpc.enable_http_proxy", 0),
        ]
        if endpoint.tls_ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=endpoint.tls_ca.encode())
            if endpoint.tls_server_name:
                options.append(("grpc.ssl_target_name_override", endpoint.tls_server_name))
            self._channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(self.target, options=options)
        self._models = _model_service_grpc.ModelServiceStub(self._channel)
        self._predictions = _prediction_service_grpc.PredictionServiceStub(self._channel)
        self._signatures: dict[tuple[str, int | None, str | None], Any] = {}

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcServingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- ServingClient -----------------------------------------------------

    def model_status(self, model: str, *, timeout: float = 5.0) -> list[VersionStatus]:
        """Every version the server tracks for ``model`` (AVAILABLE or not)."""
        request = _status_pb2.GetModelStatusRequest()
        _fill_spec(request.model_spec, model, version=None, label=None)
        what = f"status of model {model!r}"
        try:
            response = self._models.GetModelStatus(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._translate(exc, what, timeout, model=model) from exc
        state_names = _status_pb2.ModelVersionStatus.State
        result = [
            VersionStatus(
                version=int(entry.version),
                state=str(state_names.Name(entry.state))
                if entry.state in state_names.values()
                else "UNKNOWN",
                error_code=_error_code_name(int(entry.status.error_code)),
                error_message=str(entry.status.error_message),
            )
            for entry in response.model_version_status
        ]
        return sorted(result, key=lambda s: s.version)

    def label_version(self, model: str, label: str, *, timeout: float = 5.0) -> int:
        """The version ``label`` resolves to (GetModelMetadata with ``version_label``)."""
        response = self._metadata(model, version=None, label=label, timeout=timeout)
        if not response.model_spec.HasField("version"):
            raise OperationFailed(
                f"label {label!r} of model {model!r}: the server's answer names no version"
            )
        return int(response.model_spec.version.value)

    def metadata(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Same shape as REST: ``{"model_spec": {...}, "metadata": {"signature_def": {...}}}``."""
        response = self._metadata(model, version=version, label=label, timeout=timeout)
        sigmap = self._signature_map(response, model)
        spec = response.model_spec
        return {
            "model_spec": {
                "name": spec.name,
                "signature_name": spec.signature_name,
                "version": str(spec.version.value) if spec.HasField("version") else "",
            },
            "metadata": {"signature_def": signature_map_to_json(sigmap)},
        }

    def predict(
        self,
        model: str,
        body: Mapping[str, Any],
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Predict with a REST-style body; returns what REST would (``predictions`` / ``outputs``).

        Reads the signature once (input names and dtypes) so ``[1, 2]`` goes
        to a float input as floats, as the REST API does.
        """
        if not isinstance(body, Mapping):
            raise InvalidInput("a predict body must be a JSON object")
        signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
        if not isinstance(signature_name, str):
            raise InvalidInput("'signature_name' must be a string")
        signature = self._signature(model, version, label, signature_name, timeout)
        request, row = build_predict_request(model, body, signature, version=version, label=label)
        what = f"predict on model {model!r}"
        try:
            response = self._predictions.Predict(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._translate(exc, what, timeout, model=model, label=label) from exc
        return predict_response_to_json(response, row=row)

    # -- ModelAdmin --------------------------------------------------------

    def reload_config(self, models_config_text: str, *, timeout: float) -> None:
        """Replace the server's whole model list with ``models_config_text`` (a ModelServerConfig).

        Returns when the server accepted it and every new model is AVAILABLE;
        raises ``OperationFailed`` with the server's text otherwise, or when
        ``timeout`` passes first.
        """
        text_format = protos.text_format()
        config_pb2 = protos.model_server_config_pb2()
        try:
            config = text_format.Parse(models_config_text, config_pb2.ModelServerConfig())
        except text_format.ParseError as exc:
            raise InvalidInput(f"the models.config text does not parse: {exc}") from exc
        if config.WhichOneof("config") != "model_config_list":
            raise InvalidInput(
                "the models.config text holds no model_config_list (the only kind "
                "HandleReloadConfigRequest accepts; 'model_config_list {}' unloads everything)"
            )
        request = _management_pb2.ReloadConfigRequest()
        request.config.CopyFrom(config)
        try:
            response = self._models.HandleReloadConfigRequest(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._translate(exc, "reload", timeout, reload=True) from exc
        if response.status.error_code != 0:  # the RPC normally fails instead; be safe
            message = str(response.status.error_message)
            raise OperationFailed(f"reload failed: {message}", details={"server_message": message})

    # -- plumbing ----------------------------------------------------------

    def _metadata(
        self, model: str, *, version: int | None, label: str | None, timeout: float
    ) -> Any:
        request = _metadata_pb2.GetModelMetadataRequest()
        _fill_spec(request.model_spec, model, version=version, label=label)
        request.metadata_field.append("signature_def")
        what = (
            f"label {label!r} of model {model!r}"
            if label is not None
            else f"metadata of model {model!r}"
        )
        try:
            return self._predictions.GetModelMetadata(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise self._translate(exc, what, timeout, model=model, label=label) from exc

    def _signature_map(self, response: Any, model: str) -> Any:
        sigmap = _metadata_pb2.SignatureDefMap()
        packed = (
            response.metadata.get("signature_def") if "signature_def" in response.metadata else None
        )
        if packed is None or not packed.Unpack(sigmap):
            raise OperationFailed(
                f"metadata of model {model!r}: the answer from {self.target} holds no "
                "signature_def map; is this TF Serving?"
            )
        return sigmap

    def _signature(
        self, model: str, version: int | None, label: str | None, name: str, timeout: float
    ) -> Any:
        key = (model, version, label)
        sigmap = self._signatures.get(key)
        if sigmap is None:
            response = self._metadata(model, version=version, label=label, timeout=timeout)
            sigmap = self._signature_map(response, model)
            self._signatures[key] = sigmap
        if name not in sigmap.signature_def:
            raise OperationFailed(
                f'Serving signature name: "{name}" not found in signature def of model {model!r}; '
                f"it has {', '.join(sorted(sigmap.signature_def)) or 'none'}"
            )
        return sigmap.signature_def[name]

    def _translate(
        self,
        exc: grpc.RpcError,
        what: str,
        timeout: float,
        *,
        model: str | None = None,
        label: str | None = None,
        reload: bool = False,
    ) -> TfsopsError:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        text = str(exc.details() or "") if callable(getattr(exc, "details", None)) else str(exc)
        code_name = code.name if code is not None else "UNKNOWN"
        details: dict[str, Any] = {
            "grpc_code": code_name,
            "server_message": text,
            "target": self.target,
        }
        if code == grpc.StatusCode.UNAVAILABLE:
            lowered = text.lower()
            if "ssl" in lowered or "handshake" in lowered or "certificate" in lowered:
                return OperationFailed(
                    f"{what}: TLS with {self.target} failed: {text}",
                    hint="check the CA certificate and the server name (tls_server_name)",
                    details=details,
                )
            if "Failed parsing HTTP/2" in text or "http1.x" in text.lower():
                return OperationFailed(
                    f"{what}: {self.target} does not speak gRPC ({text})",
                    hint="is this the REST port? gRPC is usually 8500, REST 8501",
                    details=details,
                )
            if "Model labels does not init yet" in text:
                return NotReady(f"{what}: {text}", hint=STARTING_HINT, details=details)
            return ServerStarting(
                f"{what}: nothing answers at {self.target} yet ({text})",
                hint=STARTING_HINT,
                details=details,
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            if reload:
                return OperationFailed(
                    f"reload did not finish within {timeout:g}s: {text}",
                    hint=RELOAD_DEADLINE_HINT,
                    details=details,
                )
            return NotReady(
                f"{what}: {self.target} did not answer within {timeout:g}s",
                hint="the server may be overloaded or stuck; try a longer --timeout",
                details=details,
            )
        if "Unrecognized servable version label" in text:
            return ModelNotFound(
                f"model {model!r} has no version label {label!r}: {text}",
                hint=LABEL_HINT,
                details=details,
            )
        if code == grpc.StatusCode.NOT_FOUND and not reload:
            hint = None
            if text.startswith("Servable not found"):
                hint = "the model (or this version) is not AVAILABLE; see tfsops status"
            return ModelNotFound(f"{what}: {text}", hint=hint, details=details)
        prefix = "reload failed" if reload else f"{what} failed"
        return OperationFailed(f"{prefix} ({code_name}): {text}", details=details)


def _error_code_name(code: int) -> str:
    try:
        return str(_error_codes_pb2.Code.Name(code))
    except ValueError:
        return str(code)
