"""Presentation: commands return a ``Result``; this module prints it.

stdout carries data only: a human table/text, or with ``--json`` one
versioned envelope and nothing else. Progress and diagnostics go to stderr.
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tfsops.errors import ExitCode, TfsopsError

ENVELOPE_SCHEMA = "tfsops/v1"


@dataclass
class Result:
    """What a command produced: data for ``--json`` and text for people."""

    data: dict[str, Any]
    text: str = ""
    exit_code: ExitCode = ExitCode.OK
    warnings: list[str] = field(default_factory=list)


def envelope(
    command: str,
    *,
    data: dict[str, Any] | None,
    exit_code: ExitCode,
    error: dict[str, Any] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "schema": ENVELOPE_SCHEMA,
        "command": command,
        "ok": exit_code == ExitCode.OK,
        "exit_code": int(exit_code),
        "data": data,
        "error": error,
        "warnings": list(warnings),
    }


def dump_json(obj: Any, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    text = json.dumps(finite_json(obj), indent=2, sort_keys=False, default=str, allow_nan=False)
    stream.write(text + "\n")
    stream.flush()


def finite_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as the strings "NaN", "Infinity", "-Infinity".

    JSON has no such numbers (Python would print bare ``NaN``, which strict
    parsers such as ``jq`` refuse); a model's output may well hold them.
    """
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def error_payload(exc: TfsopsError) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": exc.message,
        "hint": exc.hint,
        "details": exc.details,
    }


def emit_result(command: str, result: Result, *, as_json: bool) -> None:
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if as_json:
        dump_json(
            envelope(
                command, data=result.data, exit_code=result.exit_code, warnings=result.warnings
            )
        )
    elif result.text:
        sys.stdout.write(result.text if result.text.endswith("\n") else result.text + "\n")
        sys.stdout.flush()


def emit_error(command: str, exc: TfsopsError, *, as_json: bool) -> None:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    if as_json:
        dump_json(envelope(command, data=None, exit_code=exc.exit_code, error=error_payload(exc)))


def emit_unexpected(command: str, exc: BaseException, *, as_json: bool, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
    if not verbose:
        print("hint: run again with -v for the traceback", file=sys.stderr)
    if as_json:
        payload: dict[str, Any] = {
            "type": type(exc).__name__,
            "message": str(exc),
            "hint": None,
            "details": {},
        }
        dump_json(envelope(command, data=None, exit_code=ExitCode.ERROR, error=payload))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain, fixed-width text table (no colour: output is often piped)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


class Progress:
    """Progress lines on stderr; silent when not wanted (e.g. ``--json`` in CI keeps them)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(message, file=self.stream, flush=True)
