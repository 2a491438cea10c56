"""Smoke requests: does every expected version answer a predict request?

AVAILABLE is the server's word that a version loaded; a version whose
variables were never restored is AVAILABLE too and fails every request. So
readiness ends with one or more predict requests per expected version, sent
to ``/versions/N``:

- the model's ``smoke:`` requests from the spec (a REST body, or ``@file``),
  each with optional expected outputs (compared within a tolerance);
- without ``smoke:``, one request generated from the serving signature:
  zeros (``""`` / ``false`` for strings / booleans) of the input's dtype and
  shape, batch 1, which must answer without error.

Pure logic over a ``ServingClient``; the health code calls ``SmokePlan.check``
once a model's versions are AVAILABLE.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsops.errors import InvalidInput, TfsopsError

if TYPE_CHECKING:
    from tfsops.ports import ServingClient
    from tfsops.savedmodel.inspect import Signature

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_TOLERANCE = 1e-6
ANSWER_CHARS = 400  # of the server's answer in a failure message

_INT_TYPES = frozenset(
    {"DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32"}
    | {"DT_UINT64", "DT_QINT8", "DT_QUINT8", "DT_QINT32"}
)
_FLOAT_TYPES = frozenset({"DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"})


@dataclass(frozen=True)
class SmokeRequest:
    """One request: the REST body, what it must answer (None: anything but an error)."""

    body: Mapping[str, Any]
    source: str  # for messages: "models.resnet.smoke[0]" or a file name
    expect: Any = None
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def signature(self) -> str:
        name = self.body.get("signature_name")
        return name if isinstance(name, str) and name else DEFAULT_SIGNATURE


# -- request generation -------------------------------------------------------------


def zero_value(dtype: str) -> Any:
    if dtype == "DT_STRING":
        return ""
    if dtype == "DT_BOOL":
        return False
    if dtype in _INT_TYPES:
        return 0
    return 0.0


def _filled(shape: Sequence[int], value: Any) -> Any:
    if not shape:
        return value
    return [_filled(shape[1:], value) for _ in range(shape[0])]


def generated_request(signature: Signature) -> dict[str, Any]:
    """A columnar body of zeros for ``signature``: batch 1, unknown dims 1."""
    inputs: dict[str, Any] = {}
    for spec in signature.inputs:
        if spec.shape is None:
            shape: list[int] = [1]
        else:
            shape = [d if d >= 0 else 1 for d in spec.shape]
        inputs[spec.key] = _filled(shape, zero_value(spec.dtype))
    body: dict[str, Any] = {"inputs": inputs}
    if signature.key != DEFAULT_SIGNATURE:
        body["signature_name"] = signature.key
    return body


# -- validation against a signature --------------------------------------------------


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _dtype_problem(dtype: str, value: Any) -> str | None:
    for leaf in _leaves(value):
        if isinstance(leaf, dict):
            if dtype == "DT_STRING" and set(leaf) == {"b64"}:
                continue
            return f"an object where {dtype} is expected"
        if dtype == "DT_STRING":
            if not isinstance(leaf, str):
                return f"{type(leaf).__name__} {leaf!r} where DT_STRING (a string) is expected"
        elif dtype == "DT_BOOL":
            if not isinstance(leaf, bool):
                return f"{leaf!r} where DT_BOOL (true/false) is expected"
        elif dtype in _INT_TYPES:
            if isinstance(leaf, bool) or not isinstance(leaf, int):
                return f"{leaf!r} where {dtype} (an integer) is expected"
        elif dtype in _FLOAT_TYPES and (
            isinstance(leaf, bool) or not isinstance(leaf, int | float)
        ):
            return f"{leaf!r} where {dtype} (a number) is expected"
    return None


def request_problems(body: Any, signature: Signature | None, source: str) -> list[str]:
    """Why ``body`` does not fit ``signature`` (unknown inputs, wrong dtypes); [] when it does."""
    if not isinstance(body, Mapping):
        return [f"{source}: a request must be a JSON object, not {type(body).__name__}"]
    keys = {"instances", "inputs"} & set(body)
    if len(keys) != 1:
        return [f'{source}: a request needs exactly one of "instances" or "inputs"']
    extra = set(body) - {"instances", "inputs", "signature_name"}
    if extra:
        return [f"{source}: unexpected field(s) {', '.join(sorted(extra))}"]
    if signature is None:
        return []
    specs = {s.key: s for s in signature.inputs}
    key = keys.pop()
    value = body[key]
    named: dict[str, Any] = {}
    if key == "inputs":
        if isinstance(value, dict) and "b64" not in value:
            named = dict(value)
        elif len(specs) == 1:
            named = {next(iter(specs)): value}
        else:
            return [f"{source}: inputs must name each of {', '.join(sorted(specs))}"]
    else:
        if not isinstance(value, list) or not value:
            return [f"{source}: instances must be a non-empty list"]
        rows = [r for r in value if isinstance(r, dict) and "b64" not in r]
        if rows:
            for row in rows:
                for name, v in row.items():
                    named.setdefault(name, [])
                    named[name].append(v)
        elif len(specs) == 1:
            named = {next(iter(specs)): value}
        else:
            return [f"{source}: instances must be objects naming {', '.join(sorted(specs))}"]
    problems = []
    for name, v in sorted(named.items()):
        spec = specs.get(name)
        if spec is None:
            problems.append(
                f"{source}: input {name!r} is not in signature {signature.key!r} "
                f"(inputs: {', '.join(sorted(specs)) or 'none'})"
            )
            continue
        problem = _dtype_problem(spec.dtype, v)
        if problem:
            problems.append(f"{source}: input {name!r}: {problem}")
    return problems


# -- comparing answers ----------------------------------------------------------------


def _answer_value(answer: Mapping[str, Any]) -> Any:
    return answer["predictions"] if "predictions" in answer else answer.get("outputs")


def compare(actual: Any, expected: Any, tolerance: float, path: str = "") -> str | None:
    """Where ``actual`` differs from ``expected`` (numbers within ``tolerance``); None if equal."""
    where = path or "the answer"
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{where}: expected an object, got {_short(actual)}"
        for key in expected:
            if key not in actual:
                return f"{where}: no {key!r} in the answer"
            diff = compare(actual[key], expected[key], tolerance, f"{path}.{key}" if path else key)
            if diff:
                return diff
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected {_short(expected)}, got {_short(actual)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            diff = compare(a, e, tolerance, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return f"{where}: expected {expected!r}, got {_short(actual)}"
        if math.isnan(expected) and math.isnan(actual):
            return None
        if not math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance):
            return f"{where}: expected {expected!r} (±{tolerance:g}), got {actual!r}"
        return None
    if actual != expected:
        return f"{where}: expected {_short(expected)}, got {_short(actual)}"
    return None


def check_answer(answer: Mapping[str, Any], request: SmokeRequest) -> str | None:
    if request.expect is None:
        return None
    expect = request.expect
    if isinstance(expect, Mapping) and ({"predictions", "outputs"} & set(expect)):
        return compare(answer, expect, request.tolerance)
    return compare(_answer_value(answer), expect, request.tolerance)


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, default=str, allow_nan=True)
    return text if len(text) <= ANSWER_CHARS else text[: ANSWER_CHARS - 3] + "..."


# -- the plan the health code runs ---------------------------------------------------


@dataclass
class SmokePlan:
    """The smoke requests of one model; ``requests`` empty means "generate from the signature"."""

    model_path: Path
    requests: tuple[SmokeRequest, ...] = ()
    _generated: dict[int, SmokeRequest] = field(default_factory=dict, repr=False)
    _passed: set[tuple[int, int]] = field(default_factory=set, repr=False)  # (client id, version)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def requests_for(self, version: int) -> tuple[SmokeRequest, ...]:
        if self.requests:
            return self.requests
        with self._lock:
            cached = self._generated.get(version)
        if cached is None:
            cached = SmokeRequest(
                generated_request(self._signature(version)),
                source=f"the request generated from version {version}'s signature",
            )
            with self._lock:
                self._generated[version] = cached
        return (cached,)

    def bodies(self, version: int) -> list[Mapping[str, Any]]:
        return [r.body for r in self.requests_for(version)]

    def _signature(self, version: int) -> Signature:
        from tfsops.savedmodel.inspect import inspect_version
        from tfsops.savedmodel.validate import DEFAULT_TAGS
        from tfsops.savedmodel.versions import scan_versions

        entry = scan_versions(self.model_path).versions.get(version)
        if entry is None:
            raise InvalidInput(f"{self.model_path} has no version {version} on this host")
        meta = inspect_version(entry.path, version).meta_graph(DEFAULT_TAGS)
        signatures = meta.public_signatures if meta else ()
        if not signatures:
            raise InvalidInput(f"version {version} of {self.model_path} has no signature")
        default = next((s for s in signatures if s.key == DEFAULT_SIGNATURE), None)
        return default or signatures[0]

    def check(
        self, client: ServingClient, model: str, versions: Sequence[int], *, timeout: float
    ) -> str | None:
        """Send every request to every version in ``versions``; the first failure, or None.

        A version that passed once is not asked again through the same client
        (a wait polls health repeatedly; each swarm replica has its own client).
        """
        for version in sorted(versions):
            if (id(client), version) in self._passed:
                continue
            try:
                requests = self.requests_for(version)
            except InvalidInput as exc:
                return f"no smoke request for version {version}: {exc.message}"
            for request in requests:
                try:
                    answer = client.predict(
                        model, request.body, version=version, timeout=max(timeout, 10.0)
                    )
                except TfsopsError as exc:
                    return (
                        f"smoke request ({request.source}) to version {version} failed: "
                        f"{exc.message}"
                    )
                diff = check_answer(answer, request)
                if diff:
                    return (
                        f"smoke request ({request.source}) to version {version} answered "
                        f"unexpectedly: {diff}"
                    )
            with self._lock:
                self._passed.add((id(client), version))
        return None
