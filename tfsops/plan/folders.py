"""Model folders that went away under a running server.

TF Serving keeps serving what it loaded when a model's folder is moved away,
so the server looks healthy. A restart then never comes back: Docker cannot
mount a folder that is not there, and the server waits for every configured
model before it opens its ports. ``health``, ``status`` and ``watch`` say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfsops.spec.model import DeploymentSpec

RESTART_CONSEQUENCE = (
    "the server still serves what it loaded, but a restart would not come back: Docker cannot "
    "mount a missing folder, and the server waits for every model before it opens its ports"
)


def missing_model_folders(
    spec: DeploymentSpec, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One entry per model (of ``names``, default all) whose folder is not a folder any more."""
    out = []
    for model in spec.models:
        if names is not None and model.name not in names:
            continue
        if not model.path.is_dir():
            out.append({"model": model.name, "path": str(model.path)})
    return out


def describe_missing(missing: Sequence[dict[str, Any]]) -> list[str]:
    if not missing:
        return []
    lines = [f"{m['model']}: model folder {m['path']} is missing" for m in missing]
    return [*lines, f"  ({RESTART_CONSEQUENCE})"]
