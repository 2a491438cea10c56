"""Request building and answer formatting for ``tfsops predict``.

Values come from ``--instances`` (row format: one element per batch row) or
``--inputs`` (columnar), each JSON text, ``@file`` or ``@-`` (stdin); the body
is TF Serving's REST body, which the gRPC client accepts too. No network
here: the command hands the body to a ``ServingClient``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from tfsops.errors import InvalidInput

CELL_WIDTH = 60  # longer values are cut in the table (use --json for everything)


def _json_error_text(text: str, exc: json.JSONDecodeError, source: str) -> str:
    line = text.splitlines()[exc.lineno - 1] if text.splitlines() else ""
    pointer = ""
    if line and len(line) <= 200:
        pointer = f"\n  {line}\n  {' ' * (exc.colno - 1)}^"
    where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
    return f"{source}: not valid JSON: {exc.msg} at {where}{pointer}"


def read_json_value(value: str, *, option: str, stdin: TextIO | None = None) -> Any:
    """Parse ``value`` (JSON text, ``@path`` or ``@-``) given to ``option``.

    Bad JSON is an ``InvalidInput`` that names the line, column and offset.
    """
    source = option
    text = value
    if value.startswith("@"):
        name = value[1:]
        if not name:
            raise InvalidInput(f"{option}: '@' must be followed by a file name (or '-' for stdin)")
        if name == "-":
            text = (stdin or sys.stdin).read()
            source = f"{option} (stdin)"
        else:
            path = Path(os.path.expanduser(name))  # an unknown ~user stays as written
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidInput(f"{option}: cannot read {path}: {exc.strerror or exc}") from exc
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"{option}: {path} is not UTF-8 text: {exc}") from exc
            source = f"{option} {path}"
    if not text.strip():
        raise InvalidInput(f"{source}: empty (expected JSON)")
    try:
        # NaN / Infinity tokens are accepted, as TF Serving accepts them.
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(_json_error_text(text, exc, source)) from exc


def build_body(
    *,
    instances: str | None = None,
    inputs: str | None = None,
    signature: str | None = None,
    stdin: TextIO | None = None,
) -> dict[str, Any]:
    """The REST predict body from the command's options (exactly one of instances / inputs).

    A whole request document (``{"instances": [...]}``, e.g. a file written for
    curl) is accepted too; its ``signature_name`` is used unless ``--signature``
    is given.
    """
    if (instances is None) == (inputs is None):
        raise InvalidInput(
            "give exactly one of --instances (row format: a list, one element per example) "
            'or --inputs (columnar format: {"<input>": tensor} or a tensor)'
        )
    key, option, raw = (
        ("instances", "--instances", instances)
        if instances is not None
        else ("inputs", "--inputs", inputs)
    )
    assert raw is not None
    value = read_json_value(raw, option=option, stdin=stdin)
    body: dict[str, Any] = {}
    if isinstance(value, dict) and ("instances" in value or "inputs" in value):
        other = "inputs" if key == "instances" else "instances"
        if other in value:
            raise InvalidInput(
                f"{option}: the document holds '{other}'"
                + (" too" if key in value else "")
                + f"; use --{other} for it"
            )
        extra = set(value) - {key, "signature_name"}
        if extra:
            raise InvalidInput(
                f"{option}: unexpected keys in the request document: {', '.join(sorted(extra))}"
            )
        if isinstance(value.get("signature_name"), str) and signature is None:
            body["signature_name"] = value["signature_name"]
        value = value[key]
    if key == "instances" and (not isinstance(value, list) or not value):
        raise InvalidInput(
            "--instances must be a non-empty JSON list, one element per example "
            '(e.g. [1.0, 2.0] or [{"x": 1.0}]); for a single tensor use --inputs'
        )
    if value is None:
        raise InvalidInput(f"{option}: null is not a tensor")
    if signature is not None:
        if not signature:
            raise InvalidInput("--signature must not be empty")
        body["signature_name"] = signature
    body[key] = value
    return body


def _cell(value: Any, width: int = CELL_WIDTH) -> str:
    if isinstance(value, float):
        text = repr(value) if math.isfinite(value) else str(value)
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, separators=(",", ":"), allow_nan=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _is_rows(value: Any) -> bool:
    return (
        isinstance(value, list)
        and all(isinstance(r, dict) and "b64" not in r for r in value)
        and bool(value)
    )


def response_table(response: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)`` for a predict answer: one row per example.

    - ``{"predictions": [...]}``: columns ``#`` and ``prediction``, or one per
      output name when the model has several outputs.
    - ``{"outputs": ...}``: one column per output name; rows per batch element
      when every output is a list of the same length, else one row per output.
    """
    if "predictions" in response:
        predictions = response["predictions"]
        if not isinstance(predictions, list):
            return ["prediction"], [[_cell(predictions)]]
        if _is_rows(predictions):
            names = sorted({k for row in predictions for k in row})
            rows = [
                [str(i)] + [_cell(row.get(n)) for n in names] for i, row in enumerate(predictions)
            ]
            return ["#", *names], rows
        return ["#", "prediction"], [[str(i), _cell(p)] for i, p in enumerate(predictions)]
    if "outputs" in response:
        outputs = response["outputs"]
        named = isinstance(outputs, dict) and "b64" not in outputs
        columns: dict[str, Any] = dict(outputs) if named else {"output": outputs}
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) == 1 and -1 not in lengths:
            names = sorted(columns)
            batch = lengths.pop()
            rows = [[str(i)] + [_cell(columns[n][i]) for n in names] for i in range(batch)]
            return ["#", *names], rows
        return ["output", "value"], [[n, _cell(v)] for n, v in sorted(columns.items())]
    return ["key", "value"], [[str(k), _cell(v)] for k, v in response.items()]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def format_response(response: Mapping[str, Any]) -> str:
    """A readable table of a predict answer (the ``--json`` output is the answer itself)."""
    headers, rows = response_table(response)
    if not rows:
        return "(no predictions: the batch was empty)"
    return format_table(headers, rows)


def format_json(response: Mapping[str, Any]) -> str:
    return json.dumps(response, indent=2, allow_nan=True)
