"""Warmup files: ``assets.extra/tf_serving_warmup_requests``, written without TensorFlow.

TF Serving replays this file when it loads a version (``--enable_model_warmup``,
on by default; at most 1000 records), so the first real request does not pay
for graph initialisation, and a record that fails makes the load fail. The
file is a TFRecord file: per record the length (uint64, little-endian), the
masked CRC32C of those 8 bytes, the data, the masked CRC32C of the data. Each
record is a serialised ``PredictionLog`` holding a ``PredictRequest``, built
here from the same REST bodies that ``predict`` and ``smoke:`` take.
"""

from __future__ import annotations

import base64
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tfsops.adapters import protos
from tfsops.errors import InvalidInput
from tfsops.savedmodel._fs import show

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # upstream's kMaxNumRecords
_MASK_DELTA = 0xA282EAD8


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord files use it."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def tfrecord_bytes(records: Iterable[bytes]) -> bytes:
    """The TFRecord encoding of ``records`` (no compression)."""
    out = bytearray()
    for data in records:
        length = struct.pack("<Q", len(data))
        out += length + struct.pack("<I", masked_crc32c(length))
        out += data + struct.pack("<I", masked_crc32c(data))
    return bytes(out)


def read_tfrecords(data: bytes, source: str = "the file") -> Iterator[bytes]:
    """The records of a TFRecord file, their checksums verified; ``InvalidInput`` if corrupt."""
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise InvalidInput(f"{source}: truncated record header at byte {pos}")
        length_bytes = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (crc,) = struct.unpack_from("<I", data, pos + 8)
        if crc != masked_crc32c(length_bytes):
            raise InvalidInput(f"{source}: bad length checksum at byte {pos} (not a TFRecord file)")
        start = pos + 12
        end = start + length
        if end + 4 > len(data):
            raise InvalidInput(f"{source}: truncated record at byte {pos}")
        record = data[start:end]
        (crc,) = struct.unpack_from("<I", data, end)
        if crc != masked_crc32c(record):
            raise InvalidInput(f"{source}: bad data checksum in the record at byte {pos}")
        yield record
        pos = end + 4


# -- JSON values to TensorProtos -------------------------------------------------------

_VALUE_FIELD = {
    "DT_FLOAT": "float_val",
    "DT_DOUBLE": "double_val",
    "DT_INT32": "int_val",
    "DT_INT16": "int_val",
    "DT_INT8": "int_val",
    "DT_UINT8": "int_val",
    "DT_UINT16": "int_val",
    "DT_INT64": "int64_val",
    "DT_UINT32": "uint32_val",
    "DT_UINT64": "uint64_val",
    "DT_BOOL": "bool_val",
    "DT_STRING": "string_val",
    "DT_HALF": "half_val",
}


def _shape_and_leaves(value: Any, where: str) -> tuple[list[int], list[Any]]:
    if isinstance(value, list):
        if not value:
            return [0], []
        parts = [_shape_and_leaves(v, where) for v in value]
        inner = parts[0][0]
        if any(p[0] != inner for p in parts):
            raise InvalidInput(f"{where}: ragged list (rows of different shapes)")
        return [len(value), *inner], [x for p in parts for x in p[1]]
    return [], [value]


def _leaf(value: Any, dtype: str, where: str) -> Any:
    if dtype == "DT_STRING":
        if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError as exc:
                raise InvalidInput(f"{where}: b64 value is not base64: {exc}") from None
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes):
            return value
    elif dtype == "DT_BOOL":
        if isinstance(value, bool):
            return value
    elif dtype in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInput(f"{where}: {value!r} is not a {dtype} value")


def tensor_proto(value: Any, dtype: str, where: str) -> Any:
    """A ``TensorProto`` of ``dtype`` from a JSON value (nested lists; ``{"b64"}`` for bytes)."""
    if dtype not in _VALUE_FIELD:
        raise InvalidInput(f"{where}: dtype {dtype} is not supported in warmup requests")
    tensor_pb2 = protos.load("tensorflow.core.framework.tensor_pb2")
    types_pb2 = protos.load("tensorflow.core.framework.types_pb2")
    shape, leaves = _shape_and_leaves(value, where)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(dtype))
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    values = [_leaf(v, dtype, where) for v in leaves]
    if dtype == "DT_HALF":
        import array

        halves = array.array("H", (struct.unpack("<H", struct.pack("<e", v))[0] for v in values))
        proto.half_val.extend(halves)
    else:
        getattr(proto, _VALUE_FIELD[dtype]).extend(values)
    return proto


def columnar_inputs(body: Mapping[str, Any], input_keys: Sequence[str]) -> dict[str, Any]:
    """The ``inputs`` of a REST body as {input: value}; row-format ``instances`` transposed."""
    if "inputs" in body:
        value = body["inputs"]
        if isinstance(value, dict) and "b64" not in value:
            return dict(value)
        if len(input_keys) != 1:
            raise InvalidInput("inputs must name each input of the signature")
        return {input_keys[0]: value}
    rows = body.get("instances")
    if not isinstance(rows, list) or not rows:
        raise InvalidInput('a request needs a non-empty "instances" list or "inputs"')
    if all(isinstance(r, dict) and "b64" not in r for r in rows):
        names = sorted({k for r in rows for k in r})
        missing = [n for n in names if any(n not in r for r in rows)]
        if missing:
            raise InvalidInput(f"every instance must give {', '.join(missing)}")
        return {n: [r[n] for r in rows] for n in names}
    if len(input_keys) != 1:
        raise InvalidInput("instances must be objects naming each input of the signature")
    return {input_keys[0]: rows}


def prediction_log(model: str, body: Mapping[str, Any], signature: Any) -> bytes:
    """A serialised ``PredictionLog`` with the ``PredictRequest`` for ``body``."""
    prediction_log_pb2 = protos.load("tensorflow_serving.apis.prediction_log_pb2")
    specs = {t.key: t for t in signature.inputs}
    entry = prediction_log_pb2.PredictionLog()
    request = entry.predict_log.request
    request.model_spec.name = model
    request.model_spec.signature_name = signature.key
    for name, value in columnar_inputs(body, list(specs)).items():
        spec = specs.get(name)
        if spec is None:
            raise InvalidInput(
                f"input {name!r} is not in signature {signature.key!r} "
                f"(inputs: {', '.join(sorted(specs))})"
            )
        request.inputs[name].CopyFrom(tensor_proto(value, spec.dtype, f"input {name!r}"))
    return bytes(entry.SerializeToString())


def write_warmup(version_dir: Path, records: Sequence[bytes]) -> Path:
    """Write (atomically) ``assets.extra/tf_serving_warmup_requests`` of a version dir."""
    if not records:
        raise InvalidInput("no warmup requests to write")
    if len(records) > MAX_RECORDS:
        raise InvalidInput(
            f"{len(records)} warmup requests; TF Serving reads at most {MAX_RECORDS}"
        )
    folder = version_dir / WARMUP_DIR
    target = folder / WARMUP_FILE
    try:
        folder.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".warmup-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(tfrecord_bytes(records))
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        from tfsops.errors import OperationFailed

        raise OperationFailed(f"cannot write {show(target)}: {exc.strerror or exc}") from exc
    return target


def describe_warmup(version_dir: Path) -> list[dict[str, Any]] | None:
    """The warmup records of a version dir, one summary each; None when it has no file."""
    path = version_dir / WARMUP_DIR / WARMUP_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {show(path)}: {exc.strerror or exc}") from exc
    prediction_log_pb2 = protos.load("tensorflow_serving.apis.prediction_log_pb2")
    out: list[dict[str, Any]] = []
    for raw in read_tfrecords(data, show(path)):
        entry = prediction_log_pb2.PredictionLog.FromString(raw)
        kind = entry.WhichOneof("log_type") or "unknown"
        summary: dict[str, Any] = {"kind": kind, "bytes": len(raw)}
        if kind == "predict_log":
            req = entry.predict_log.request
            summary["signature"] = req.model_spec.signature_name or "serving_default"
            summary["inputs"] = {
                k: [d.size for d in v.tensor_shape.dim] for k, v in sorted(req.inputs.items())
            }
        out.append(summary)
    return out
