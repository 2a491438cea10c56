"""Model folders the running container mounts, and when a change needs a new one.

Docker cannot add a mount to a running container. A model whose folder is
not reachable through the container's mounts (its own folder, or a declared
``model_roots`` entry holding it) therefore needs a new container: a restart,
during which every model is down. Commands documented as hot refuse that
instead of doing it silently; ``apply`` does it and says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from tfsops.errors import InvalidInput
from tfsops.plan.container import LABEL_MOUNTS, ContainerPlan
from tfsops.ports import ContainerInfo


def _pairs(labels: Mapping[str, str]) -> set[tuple[str, str]] | None:
    text = labels.get(LABEL_MOUNTS)
    if not text:
        return None
    try:
        return {(str(h), str(t)) for h, t in json.loads(text)}
    except (ValueError, TypeError):
        return None


def unmounted_folders(observed: ContainerInfo, desired: ContainerPlan) -> list[str]:
    """Host folders the desired layout mounts that the observed container does not (same target)."""
    want = _pairs(desired.labels) or set()
    have = _pairs(observed.labels)
    if have is None:  # a container from before this label: its config hash decides
        return []
    return sorted(host for host, target in want - have)


def unmounted_reason(folders: list[str]) -> str:
    return (
        f"model folder(s) not mounted in the running container: {', '.join(folders)} "
        "(Docker cannot add a mount to a running container)"
    )


def restart_refused(
    command: str, folders: list[str], reasons: list[str], container: str
) -> InvalidInput:
    """The error of a hot command whose change would need a new container."""
    if folders:
        what = (
            f"{command} would restart the server: {', '.join(folders)} is not under a folder "
            f"{container} mounts, and Docker cannot add a mount to a running container"
        )
        hint = (
            "choose: pass --recreate to accept the restart (every model is down while the new "
            "container loads), or declare a folder holding it in model_roots and run "
            "`tfsops apply` once (one restart; models added under it later hot-load)"
            if command == "add-model"
            else "declare a folder holding it in model_roots, or run `tfsops apply` to accept "
            "the restart (every model is down while the new container loads)"
        )
    else:
        what = f"{command} would restart the server: {'; '.join(reasons)}"
        hint = "run `tfsops apply` to accept the restart (`tfsops plan` shows what changes)"
    return InvalidInput(
        what,
        hint=hint,
        details={"would_recreate": True, "folders": folders, "reasons": reasons},
    )


def mounted_in(observed: ContainerInfo, host_path: Path) -> bool | None:
    """Whether the running container reaches ``host_path`` through its mounts (None: unknown)."""
    have = _pairs(observed.labels)
    if have is None:
        return None
    path = os.path.normpath(str(host_path))
    return any(path == h or path.startswith(h.rstrip("/") + "/") for h, _ in have)


def check_publish_target(observed: ContainerInfo | None, model: str, folder: Path) -> None:
    """Exit 3 before copying when the running container cannot see the model's folder."""
    if observed is None or mounted_in(observed, folder) is not False:
        return
    raise InvalidInput(
        f"{observed.name} does not mount {folder}, the folder of {model}: a version published "
        "there would never load (the spec changed since the container was created)",
        hint="run `tfsops plan` to see the change, then `tfsops apply` (it recreates the "
        "container) before publishing",
        details={"would_recreate": True, "folders": [str(folder)]},
    )
