"""Numbered revisions of what was live: (spec text, models.config), for rollback."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfsops.errors import InvalidInput
from tfsops.state import DeploymentState, atomic_write


@dataclass(frozen=True)
class Revision:
    number: int
    path: Path
    created: float
    reason: str

    @property
    def spec_text(self) -> str:
        return (self.path / "spec.yaml").read_text(encoding="utf-8")

    @property
    def models_config(self) -> str:
        return (self.path / "models.config").read_text(encoding="utf-8")

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "created": self.created,
            "reason": self.reason,
            "path": str(self.path),
        }


def list_revisions(state: DeploymentState) -> list[Revision]:
    """Complete revisions, oldest first. A folder without a readable ``meta.json`` (a run
    killed while recording it) is skipped; ``record_revision`` numbers past it."""
    out: list[Revision] = []
    if not state.revisions_dir.is_dir():
        return out
    for child in state.revisions_dir.iterdir():
        if not child.name.isdigit():
            continue
        try:
            meta = json.loads((child / "meta.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                continue
            out.append(
                Revision(
                    int(child.name),
                    child,
                    float(meta.get("created", 0)),
                    str(meta.get("reason", "")),
                )
            )
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda r: r.number)


def record_revision(
    state: DeploymentState, spec_text: str, models_config: str, reason: str
) -> Revision:
    existing = list_revisions(state)
    if (
        existing
        and existing[-1].spec_text == spec_text
        and existing[-1].models_config == models_config
    ):
        return existing[-1]
    # Number past every numeric folder, complete or not, so a folder left without its
    # meta.json is never reused; build the revision under a hidden name and rename it in,
    # so a kill leaves no numbered folder half-written.
    state.revisions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    taken = [int(p.name) for p in state.revisions_dir.iterdir() if p.name.isdigit()]
    number = max(taken, default=0) + 1
    staging = Path(tempfile.mkdtemp(prefix=f".{number:06d}.", dir=state.revisions_dir))
    try:
        atomic_write(staging / "spec.yaml", spec_text, mode=0o600)
        atomic_write(staging / "models.config", models_config, mode=0o600)
        created = time.time()
        atomic_write(
            staging / "meta.json",
            json.dumps({"created": created, "reason": reason}) + "\n",
            mode=0o600,
        )
        path = state.revisions_dir / f"{number:06d}"
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Revision(number, path, created, reason)


def get_revision(state: DeploymentState, number: int | None) -> Revision:
    revisions = list_revisions(state)
    if not revisions:
        raise InvalidInput(f"deployment {state.name!r} has no recorded revisions")
    if number is None:
        if len(revisions) < 2:
            raise InvalidInput(
                f"deployment {state.name!r} has only revision {revisions[-1].number}: nothing to roll back to"
            )
        return revisions[-2]
    for r in revisions:
        if r.number == number:
            return r
    raise InvalidInput(
        f"no revision {number} of {state.name!r} (revisions: {', '.join(str(r.number) for r in revisions)})"
    )
