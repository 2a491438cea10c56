"""Predict requests without writing JSON: ``--image``, ``--input NAME=@file``, and ``--top-k``.

The signature (read from the model folder on this host, no TensorFlow) says
which input an image goes into (its single DT_STRING input) and whether a
file is raw bytes (DT_STRING: base64-encoded into ``{"b64": ...}``) or JSON.
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsops.errors import InvalidInput

if TYPE_CHECKING:
    from tfsops.savedmodel.inspect import Signature
    from tfsops.spec.model import ModelSpec

DEFAULT_SIGNATURE = "serving_default"


def _read_bytes(name: str, option: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    path = Path(os.path.expanduser(name))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{option}: cannot read {path}: {exc.strerror or exc}") from exc


def model_signature(
    model: ModelSpec, name: str | None, version: int | None, label: str | None
) -> Signature:
    """The signature ``name`` of the version a request would reach (host copy of the model)."""
    from tfsops.savedmodel.inspect import inspect_path
    from tfsops.savedmodel.validate import DEFAULT_TAGS
    from tfsops.savedmodel.versions import served_versions

    if version is None and label is not None:
        version = model.labels.get(label)
    if version is None:
        served = served_versions(model.path, model.policy_kind).served
        version = max(served) if served else None
    found = inspect_path(model.path, version=version)
    meta = found.versions[-1].meta_graph(DEFAULT_TAGS)
    key = name or DEFAULT_SIGNATURE
    signature = meta.signature(key) if meta else None
    if signature is None or signature.internal:
        names = [s.key for s in meta.public_signatures] if meta else []
        raise InvalidInput(
            f"model {model.name} has no signature {key!r} (signatures: {', '.join(names)})"
        )
    return signature


def body_from_files(
    signature: Signature, images: Sequence[str], named: Sequence[str]
) -> dict[str, Any]:
    """A columnar body from ``--image FILE`` (repeatable) and ``--input NAME=VALUE`` options."""
    from tfsops.predict import read_json_value

    specs = {s.key: s for s in signature.inputs}
    inputs: dict[str, Any] = {}
    if images:
        strings = [s for s in signature.inputs if s.dtype == "DT_STRING"]
        if len(strings) != 1:
            raise InvalidInput(
                f"--image needs a signature with exactly one DT_STRING input; "
                f"{signature.key!r} has {len(strings)} (use --input NAME=@file)"
            )
        inputs[strings[0].key] = [
            {"b64": base64.b64encode(_read_bytes(i, "--image")).decode("ascii")} for i in images
        ]
    for item in named:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--input {item!r}: expected NAME=VALUE (JSON, @file or @-)")
        spec = specs.get(name)
        if spec is None:
            raise InvalidInput(
                f"--input {name}: signature {signature.key!r} has no input {name!r} "
                f"(inputs: {', '.join(sorted(specs))})"
            )
        if name in inputs:
            raise InvalidInput(f"--input {name}: given twice")
        if spec.dtype == "DT_STRING" and value.startswith("@"):
            raw = _read_bytes(value[1:], f"--input {name}")
            inputs[name] = [{"b64": base64.b64encode(raw).decode("ascii")}]
        else:
            inputs[name] = read_json_value(value, option=f"--input {name}")
    body: dict[str, Any] = {"inputs": inputs}
    if signature.key != DEFAULT_SIGNATURE:
        body["signature_name"] = signature.key
    return body


def _vectors(response: Mapping[str, Any]) -> tuple[str, list[list[float]]] | None:
    """(output name, one score vector per example) from a classifier's answer."""
    value: Any = response.get("predictions", response.get("outputs"))
    name = "output"
    if isinstance(value, Mapping):
        keys = sorted(value)
        key = next((k for k in ("probabilities", "scores", "probs") if k in value), keys[0])
        name, value = key, value[key]
    elif isinstance(value, list) and value and isinstance(value[0], Mapping):
        keys = sorted(value[0])
        key = next((k for k in ("probabilities", "scores", "probs") if k in keys), keys[0])
        name, value = key, [row.get(key) for row in value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int | float) for v in value):
        value = [value]
    if not all(isinstance(v, list) and all(isinstance(x, int | float) for x in v) for v in value):
        return None
    return name, value


def top_k(response: Mapping[str, Any], k: int) -> list[dict[str, Any]]:
    """Per example, the ``k`` highest scores with their class index."""
    if k < 1:
        raise InvalidInput("--top-k must be at least 1")
    found = _vectors(response)
    if found is None:
        raise InvalidInput(
            "--top-k needs an answer with one score vector per example (a classifier's "
            "probabilities); this model answered something else (see --json)"
        )
    name, vectors = found
    out = []
    for i, scores in enumerate(vectors):
        ranked = sorted(range(len(scores)), key=lambda c: scores[c], reverse=True)[:k]
        out.append(
            {
                "example": i,
                "output": name,
                "top": [{"class": c, "score": scores[c]} for c in ranked],
            }
        )
    return out


def top_k_rows(results: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    rows = []
    for result in results:
        for rank, entry in enumerate(result["top"], start=1):
            rows.append(
                [str(result["example"]), str(rank), str(entry["class"]), f"{entry['score']:.6g}"]
            )
    return ["#", "rank", "class", "score"], rows
