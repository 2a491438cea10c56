"""REST JSON <-> tensors, after ``tensorflow_serving/util/json_tensor.cc``.

Requests are parsed into numpy arrays typed by the signature's input
dtypes; responses are written with an emulation of rapidjson's
``PrettyWriter`` (4-space indent, single-line arrays where upstream
switches them on) and upstream's float formatting (``absl::StrCat`` six
digits, full precision when that does not round-trip, ``.0`` on whole
numbers, ``NaN``/``Infinity`` tokens). Error texts are upstream's.

Needs numpy only (no TensorFlow).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .status import ServingError, Status, invalid_argument

# tensorflow/core/framework/types.proto
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_INT64, DT_BOOL, DT_UINT16, DT_HALF, DT_UINT32, DT_UINT64 = 9, 10, 17, 19, 22, 23
DTYPE_NAMES: dict[int, str] = {
    1: "float", 2: "double", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
    14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "half",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64",
}  # fmt: skip
NUMPY_TYPES: dict[int, Any] = {
    DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_UINT8: np.uint8,
    DT_INT16: np.int16, DT_INT8: np.int8, DT_STRING: object, DT_INT64: np.int64,
    DT_BOOL: np.bool_, DT_UINT32: np.uint32, DT_UINT64: np.uint64,
}  # fmt: skip

INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT32 = (0, (1 << 32) - 1)
UINT64 = (0, (1 << 64) - 1)
FLOAT_MAX = float(np.finfo(np.float32).max)


def dtype_name(dtype: int) -> str:
    return DTYPE_NAMES.get(dtype, f"unknown dtype enum ({dtype})")


# ---------------------------------------------------------------------------
# Writing (rapidjson PrettyWriter emulation)


def format_decimal(value: float, single: bool) -> str:
    """``WriteDecimal<float|double>`` of json_tensor.cc."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"  # absl::StrCat(float/double) == "%g" with six digits
    parsed = float(text)
    roundtrip = np.float32(parsed) == np.float32(value) if single else parsed == value
    if not roundtrip:
        text = f"{value:.9g}" if single else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


_ESCAPES = {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}


def json_string(raw: bytes | str) -> str:
    """rapidjson ``Writer::String``: escapes quote, backslash and controls, passes other bytes.

    Non-UTF-8 bytes survive as surrogate escapes; the HTTP layer encodes the
    body with ``surrogateescape`` so they go out unchanged, as upstream.
    """
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    out = ['"']
    for ch in text:
        code = ord(ch)
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
        elif code < 0x20:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@dataclass
class _Level:
    in_array: bool
    count: int = 0


class PrettyWriter:
    """``rapidjson::PrettyWriter<StringBuffer>`` with the default 4-space indent."""

    def __init__(self) -> None:
        self._out: list[str] = []
        self._stack: list[_Level] = []
        self.single_line_arrays = False

    def _indent(self) -> None:
        self._out.append(" " * (4 * len(self._stack)))

    def _prefix(self) -> None:
        if not self._stack:
            return
        level = self._stack[-1]
        if level.in_array:
            if level.count > 0:
                self._out.append(",")
                if self.single_line_arrays:
                    self._out.append(" ")
            if not self.single_line_arrays:
                self._out.append("\n")
                self._indent()
        else:
            if level.count > 0:
                self._out.append(",\n" if level.count % 2 == 0 else ": ")
            else:
                self._out.append("\n")
            if level.count % 2 == 0:
                self._indent()
        level.count += 1

    def start_object(self) -> None:
        self._prefix()
        self._stack.append(_Level(in_array=False))
        self._out.append("{")

    def end_object(self) -> None:
        level = self._stack.pop()
        if level.count:
            self._out.append("\n")
            self._indent()
        self._out.append("}")

    def start_array(self) -> None:
        self._prefix()
        self._stack.append(_Level(in_array=True))
        self._out.append("[")

    def end_array(self) -> None:
        level = self._stack.pop()
        if level.count and not self.single_line_arrays:
            self._out.append("\n")
            self._indent()
        self._out.append("]")

    def key(self, name: str) -> None:
        self._prefix()
        self._out.append(json_string(name))

    def raw(self, token: str) -> None:
        self._prefix()
        self._out.append(token)

    def string(self, value: bytes | str) -> None:
        self.raw(json_string(value))

    def text(self) -> str:
        return "".join(self._out)


def _dom_number(value: float) -> str:
    """rapidjson ``Writer::Double`` (shortest round-trip, ``1.0``, ``1e21``)."""
    if math.isnan(value) or math.isinf(value):
        return format_decimal(value, single=False)
    text = repr(float(value))
    return re.sub(
        r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text
    )


def _write_dom(writer: PrettyWriter, value: Any) -> None:
    if isinstance(value, dict):
        writer.start_object()
        for k, v in value.items():
            writer.key(k)
            _write_dom(writer, v)
        writer.end_object()
    elif isinstance(value, list):
        writer.start_array()
        for v in value:
            _write_dom(writer, v)
        writer.end_array()
    elif value is None:
        writer.raw("null")
    elif isinstance(value, bool):
        writer.raw("true" if value else "false")
    elif isinstance(value, int):
        writer.raw(str(value))
    elif isinstance(value, float):
        writer.raw(_dom_number(value))
    else:
        writer.string(value)


def json_value_to_string(value: Any) -> str:
    """``JsonValueToString`` (used in error messages)."""
    if isinstance(value, float):
        return format_decimal(value, single=_fits_float(value))
    writer = PrettyWriter()
    _write_dom(writer, value)
    return writer.text()


def _fits_float(value: float) -> bool:
    # rapidjson IsFloat(): the double survives a round trip through float.
    if math.isnan(value) or math.isinf(value):
        return True
    return abs(value) <= FLOAT_MAX and float(np.float32(value)) == value


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


# ---------------------------------------------------------------------------
# Parsing

_PY_TO_RAPIDJSON = (
    ("Expecting value", "Invalid value."),
    ("Expecting property name enclosed in double quotes", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Extra data", "The document root must not be followed by other values."),
)


def _first_key_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # rapidjson keeps duplicate members and FindMember returns the first.
    out: dict[str, Any] = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _rapidjson_message(exc: json.JSONDecodeError) -> str:
    msg = exc.msg
    if msg.startswith("Expecting ',' delimiter"):
        # Which bracket is open decides rapidjson's wording.
        depth: list[str] = []
        in_str = esc = False
        for ch in exc.doc[: exc.pos]:
            if in_str:
                esc = (ch == "\\") and not esc
                if ch == '"' and not esc:
                    in_str = False
                continue
            if ch == '"':
                in_str = True
            elif ch in "[{":
                depth.append(ch)
            elif ch in "]}" and depth:
                depth.pop()
        if depth and depth[-1] == "[":
            return "Missing a comma or ']' after an array element."
        return "Missing a comma or '}' after an object member."
    for prefix, text in _PY_TO_RAPIDJSON:
        if msg.startswith(prefix):
            return text
    return "Invalid value."


def parse_json(body: bytes) -> dict[str, Any]:
    """``ParseJson``: the request must be a JSON object."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from None
    if not text.strip():
        raise invalid_argument(f"JSON Parse error: The document is empty. at offset: {len(text)}")
    try:
        doc = json.loads(text, object_pairs_hook=_first_key_wins)
    except json.JSONDecodeError as exc:
        raise invalid_argument(
            f"JSON Parse error: {_rapidjson_message(exc)} at offset: {exc.pos}"
        ) from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: Unspecific syntax error. at offset: 0") from None
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {json_value_to_string(doc)} Is not object")
    return doc


def signature_name(doc: Mapping[str, Any]) -> str:
    """``FillSignature``: optional ``signature_name`` string."""
    if "signature_name" not in doc:
        return ""
    value = doc["signature_name"]
    if not isinstance(value, str):
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(dict(doc))} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return value


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _b64decode(value: Any) -> bytes:
    if not _is_b64(value):
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(value)} not formatted correctly for base64 data"
        )
    text: str = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {json_value_to_string(value)} Type: {json_type(value)} "
        f"is not of expected type: {dtype_name(dtype)}"
    )


def _lossless(value: int | float, digits: int, max_value: float) -> bool:
    if isinstance(value, float):
        if not math.isfinite(value):
            return True
        return -max_value <= value <= max_value
    return abs(value) <= (1 << digits) - 1


def _convert_value(value: Any, dtype: int) -> Any:
    """``AddValueToTensor`` for one leaf."""
    if dtype in (DT_FLOAT, DT_DOUBLE):
        if not _is_number(value):
            raise _type_error(value, dtype)
        single = dtype == DT_FLOAT
        if not _lossless(value, 24 if single else 53, FLOAT_MAX if single else float("inf")):
            raise invalid_argument(
                f"Cannot convert JSON value: {json_value_to_string(value)} to "
                f"{'float' if single else 'double'} without loss of precision."
            )
        return float(value)
    if dtype in (DT_INT32, DT_INT16, DT_INT8, DT_UINT8):
        if not (
            isinstance(value, int) and not isinstance(value, bool) and INT32[0] <= value <= INT32[1]
        ):
            raise _type_error(value, dtype)
        return value
    if dtype == DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8", "surrogateescape")
    if dtype == DT_INT64:
        if not (
            isinstance(value, int) and not isinstance(value, bool) and INT64[0] <= value <= INT64[1]
        ):
            raise _type_error(value, dtype)
        return value
    if dtype == DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == DT_UINT32:
        if not (
            isinstance(value, int)
            and not isinstance(value, bool)
            and UINT32[0] <= value <= UINT32[1]
        ):
            raise _type_error(value, dtype)
        return value
    if dtype == DT_UINT64:
        if not (
            isinstance(value, int)
            and not isinstance(value, bool)
            and UINT64[0] <= value <= UINT64[1]
        ):
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        "UNIMPLEMENTED",
        f"Conversion of JSON Value: {json_value_to_string(value)} to type: {dtype_name(dtype)}",
    )


def _dense_shape(value: Any) -> list[int]:
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, dtype: int, shape: list[int], out: list[Any]) -> None:
    """``FillTensorProto``: walk the nested lists, checking a dense shape."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {json_value_to_string(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != DT_STRING:
                raise _type_error(value, dtype)
            out.append(_b64decode(value))
        else:
            out.append(_convert_value(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, dtype, shape, out)


def _to_array(values: list[Any], shape: list[int], dtype: int) -> np.ndarray:
    np_type = NUMPY_TYPES.get(dtype, object)
    if np_type is object:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr.reshape(shape)
    if np.issubdtype(np.dtype(np_type), np.integer):
        # C++ stores int_val then narrows; wrap instead of numpy's overflow error.
        wide = np.array(values, dtype=np.uint64 if dtype == DT_UINT64 else np.int64)
        return wide.astype(np_type).reshape(shape)
    return np.array(values, dtype=np_type).reshape(shape)


def value_to_array(value: Any, dtype: int) -> np.ndarray:
    shape = _dense_shape(value)
    values: list[Any] = []
    _fill(value, 0, dtype, shape, values)
    return _to_array(values, shape, dtype)


@dataclass(frozen=True)
class InputInfo:
    dtype: int


def _status_text(exc: ServingError) -> str:
    return str(exc.status)


def _instances_to_arrays(
    instances: list[Any], infos: Mapping[str, InputInfo]
) -> dict[str, np.ndarray]:
    """``FillTensorMapFromInstancesList``: rows batched along a new 0-th dim."""
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )

    def is_object(v: Any) -> bool:
        return isinstance(v, dict) and not _is_b64(v)

    as_objects = is_object(instances[0])
    names = sorted(infos)
    rows: dict[str, list[Any]] = {}
    shapes: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}

    def add(item: Any, name: str) -> None:
        if name not in infos:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        shape = _dense_shape(item)
        values: list[Any] = []
        _fill(item, 0, infos[name].dtype, shape, values)
        if name not in sizes:
            sizes[name], shapes[name] = len(values), shape
        elif sizes[name] != len(values):
            raise invalid_argument(f"Expecting tensor size: {sizes[name]} but got: {len(values)}")
        elif shapes[name] != shape:
            raise invalid_argument(
                f"Expecting shape [{','.join(map(str, shapes[name]))}] but got: "
                f"[{','.join(map(str, shape))}]"
            )
        rows.setdefault(name, []).extend(values)

    for count, elem in enumerate(instances):
        if as_objects:
            if not is_object(elem):
                raise invalid_argument(
                    f"Expecting object but got list at item {count} of input list"
                )
            for key, item in elem.items():
                try:
                    add(item, key)
                except ServingError as exc:
                    raise invalid_argument(
                        f"Failed to process element: {count} key: {key} of 'instances' list. "
                        f"Error: {_status_text(exc)}"
                    ) from None
            if set(elem) != set(names):
                raise invalid_argument(
                    f"Failed to process element: {count} of 'instances' list. JSON object: "
                    f"{json_value_to_string(elem)} must only have keys: {','.join(names)}"
                )
        else:
            if is_object(elem):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {count} of input list"
                )
            try:
                add(elem, names[0])
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {count} of 'instances' list. "
                    f"Error: {_status_text(exc)}"
                ) from None
    n = len(instances)
    return {
        name: _to_array(values, [n, *shapes[name]], infos[name].dtype)
        for name, values in rows.items()
    }


def _inputs_to_arrays(value: Any, infos: Mapping[str, InputInfo]) -> dict[str, np.ndarray]:
    """``FillTensorMapFromInputsMap``: columnar tensors as given."""
    if not isinstance(value, dict) or _is_b64(value):
        if len(infos) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name = sorted(infos)[0]
        return {name: value_to_array(value, infos[name].dtype)}
    out: dict[str, np.ndarray] = {}
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        out[name] = value_to_array(value[name], infos[name].dtype)
    return out


def predict_inputs(
    doc: Mapping[str, Any], infos: Mapping[str, InputInfo], signame: str
) -> tuple[str, dict[str, np.ndarray]]:
    """Rest of ``FillPredictRequestFromJson`` once the signature is known.

    Returns the format (``row`` / ``columnar``) and the input arrays.
    """
    if not infos:
        raise invalid_argument(f"Failed to get input map for signature: {signame or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(dict(doc))} Not formatted correctly expecting only "
            "one of 'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {json_value_to_string(dict(doc))} Excepting 'instances' to be an "
                "list/array"
            )
        if not instances:
            raise invalid_argument(
                f"JSON Value: {json_value_to_string(dict(doc))} No values in 'instances' array"
            )
        return "row", _instances_to_arrays(instances, infos)
    if has_inputs:
        return "columnar", _inputs_to_arrays(doc["inputs"], infos)
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------
# Classify / regress requests -> tf.Example-like feature dicts


@dataclass
class Feature:
    kind: str = ""  # "" | bytes | float | int64
    values: list[Any] | None = None


def _add_feature_value(value: Any, name: str, feature: Feature) -> None:
    def want(kind: str) -> None:
        if feature.kind not in ("", kind):
            raise invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {feature.kind}"
            )
        feature.kind = kind
        if feature.values is None:
            feature.values = []

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64(value)):
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
        )
    if isinstance(value, bool):
        want("int64")
        assert feature.values is not None
        feature.values.append(1 if value else 0)
    elif isinstance(value, dict):
        want("bytes")
        assert feature.values is not None
        feature.values.append(_b64decode(value))
    elif isinstance(value, str):
        want("bytes")
        assert feature.values is not None
        feature.values.append(value.encode("utf-8", "surrogateescape"))
    elif isinstance(value, float):
        want("float")
        if not _lossless(value, 24, FLOAT_MAX):
            raise invalid_argument(
                f"Cannot convert JSON value: {json_value_to_string(value)} to float without loss "
                "of precision."
            )
        assert feature.values is not None
        feature.values.append(value)
    else:
        want("int64")
        if value > INT64[1]:
            raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
        assert feature.values is not None
        feature.values.append(value)


def example_from_json(value: Any) -> dict[str, Feature]:
    """``MakeExampleFromJsonObject``."""
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    example: dict[str, Feature] = {}
    for name, content in value.items():
        feature = Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
        example[name] = feature
    return example


def classify_regress_inputs(
    doc: Mapping[str, Any],
) -> tuple[dict[str, Feature] | None, list[dict[str, Feature]]]:
    """``FillClassifyRegressRequestFromJson``: (context, examples)."""
    context = example_from_json(doc["context"]) if "context" in doc else None
    if "examples" not in doc:
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(dict(doc))} When method is classify, key "
            "'examples' is expected and was not found"
        )
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(dict(doc))} Expecting 'examples' value to be an "
            "list/array"
        )
    if not examples:
        raise invalid_argument(
            f"JSON Value: {json_value_to_string(dict(doc))} 'examples' value is an empty array"
        )
    return context, [example_from_json(e) for e in examples]


# ---------------------------------------------------------------------------
# Responses


def _write_scalar(writer: PrettyWriter, value: Any, dtype: int, as_bytes: bool) -> None:
    if dtype in (DT_FLOAT, DT_HALF):
        writer.raw(format_decimal(float(value), single=True))
    elif dtype == DT_DOUBLE:
        writer.raw(format_decimal(float(value), single=False))
    elif dtype == DT_STRING:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
        if as_bytes:
            writer.start_object()
            writer.key("b64")
            writer.string(base64.b64encode(raw).decode("ascii"))
            writer.end_object()
        else:
            writer.string(raw)
    elif dtype == DT_BOOL:
        writer.raw("true" if bool(value) else "false")
    elif dtype in NUMPY_TYPES:
        writer.raw(str(int(value)))
    else:
        raise invalid_argument(f"Failed to write JSON value for tensor type: {dtype_name(dtype)}")


def _write_tensor(writer: PrettyWriter, arr: np.ndarray, dtype: int, as_bytes: bool) -> None:
    """``AddTensorValues``: nested arrays; a scalar is written bare."""
    if arr.ndim == 0:
        _write_scalar(writer, arr.item() if arr.dtype != object else arr[()], dtype, as_bytes)
        return
    writer.start_array()
    for item in arr:
        if isinstance(item, np.ndarray):
            _write_tensor(writer, item, dtype, as_bytes)
        else:
            _write_scalar(writer, item, dtype, as_bytes)
    writer.end_array()


def _is_bytes_output(name: str, dtype: int) -> bool:
    return dtype == DT_STRING and name.endswith("_bytes")


def predict_response(fmt: str, outputs: Mapping[str, tuple[np.ndarray, int]]) -> str:
    """``MakeJsonFromTensors``: outputs maps alias -> (array, dtype enum)."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    writer = PrettyWriter()
    writer.start_object()
    if fmt == "row":
        batch = -1
        for name in names:
            arr, _ = outputs[name]
            if arr.ndim == 0:
                raise invalid_argument(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and arr.shape[0] != batch:
                raise invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {arr.shape[0]} "
                    f"expecting: {batch}"
                )
            batch = arr.shape[0]
        writer.key("predictions")
        writer.start_array()
        many = len(names) > 1
        for i in range(batch):
            if many:
                writer.start_object()
            writer.single_line_arrays = True
            for name in names:
                arr, dtype = outputs[name]
                if many:
                    writer.key(name)
                row = arr[i]
                if isinstance(row, np.ndarray):
                    _write_tensor(writer, row, dtype, _is_bytes_output(name, dtype))
                else:
                    _write_scalar(writer, row, dtype, _is_bytes_output(name, dtype))
            writer.single_line_arrays = False
            if many:
                writer.end_object()
        writer.end_array()
    else:
        writer.key("outputs")
        many = len(names) > 1
        if many:
            writer.start_object()
        for name in names:
            arr, dtype = outputs[name]
            if many:
                writer.key(name)
            _write_tensor(writer, np.asarray(arr), dtype, _is_bytes_output(name, dtype))
        if many:
            writer.end_object()
    writer.end_object()
    return writer.text()


def classify_response(results: Iterable[Iterable[tuple[bytes, float]]]) -> str:
    """``MakeJsonFromClassificationResult``: ``{"results": [[[label, score], ...], ...]}``."""
    rows = [list(r) for r in results]
    if not rows:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    writer = PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.start_array()
    for row in rows:
        writer.single_line_arrays = True
        writer.start_array()
        for label, score in row:
            writer.start_array()
            writer.string(label)
            writer.raw(format_decimal(float(score), single=True))
            writer.end_array()
        writer.end_array()
        writer.single_line_arrays = False
    writer.end_array()
    writer.end_object()
    return writer.text()


def regress_response(values: Iterable[float]) -> str:
    """``MakeJsonFromRegressionResult``: ``{"results": [v, ...]}``."""
    vals = list(values)
    if not vals:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    writer = PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.single_line_arrays = True
    writer.start_array()
    for v in vals:
        writer.raw(format_decimal(float(v), single=True))
    writer.end_array()
    writer.end_object()
    return writer.text()


__all__ = [
    "InputInfo",
    "PrettyWriter",
    "ServingError",
    "Status",
    "classify_regress_inputs",
    "classify_response",
    "format_decimal",
    "parse_json",
    "predict_inputs",
    "predict_response",
    "regress_response",
    "signature_name",
]
