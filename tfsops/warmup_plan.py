"""Which versions get a warmup file, and the records for each; used by ``tfsops warmup``.

Every record is built and checked against its version's signature before any
file is written, so a bad source changes nothing (exit 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfsops.errors import InvalidInput
from tfsops.savedmodel._fs import show


@dataclass(frozen=True)
class WarmupTarget:
    version: int
    path: Path
    records: tuple[bytes, ...]


def request_bodies(value: Any, source: str) -> list[dict[str, Any]]:
    """A JSON list of REST bodies, one body, or ``{"requests": [...]}`` -> bodies."""
    if isinstance(value, dict) and "requests" in value and set(value) == {"requests"}:
        value = value["requests"]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{source}: expected a JSON list of predict request bodies")
    for i, body in enumerate(value):
        if not isinstance(body, dict):
            raise InvalidInput(f"{source}: request [{i}] is not a JSON object")
    return value


def plan_warmup(
    model: str,
    base: Path,
    versions: Sequence[int],
    bodies: Sequence[dict[str, Any]],
    source: str,
) -> list[WarmupTarget]:
    from tfsops.savedmodel.inspect import inspect_version
    from tfsops.savedmodel.validate import DEFAULT_TAGS
    from tfsops.savedmodel.versions import scan_versions
    from tfsops.smoke import DEFAULT_SIGNATURE, request_problems
    from tfsops.warmup import prediction_log

    scan = scan_versions(base)
    targets = []
    for version in versions:
        entry = scan.versions.get(version)
        if entry is None:
            raise InvalidInput(
                f"{show(base)} has no version {version} "
                f"(versions: {', '.join(str(v) for v in scan.numbers) or 'none'})"
            )
        meta = inspect_version(entry.path, version).meta_graph(DEFAULT_TAGS)
        records = []
        for i, body in enumerate(bodies):
            where = f"{source} request [{i}]"
            name = body.get("signature_name") or DEFAULT_SIGNATURE
            signature = meta.signature(str(name)) if meta else None
            if signature is None or signature.internal:
                raise InvalidInput(f"{where}: version {version} has no signature {name!r}")
            problems = request_problems(body, signature, where)
            if problems:
                raise InvalidInput(problems[0], details={"problems": problems})
            try:
                records.append(prediction_log(model, body, signature))
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc.message}") from None
        targets.append(WarmupTarget(version, entry.path, tuple(records)))
    return targets
