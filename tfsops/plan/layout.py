"""Where things live inside the container.

Mount only what serves: each model's own folder is mounted read-only under
``/models``, unless it lies under a declared ``model_roots`` entry, which is
then mounted once instead. A model added later under a declared root can be
hot-loaded by the admin RPC; any other new folder needs a new container
(Docker cannot add a mount to a running container). Never a model's parent:
that folder may hold anything (secrets, the spec, ``/`` itself).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tfsops.spec.model import DeploymentSpec

MODELS_DIR = "/models"
CONFIG_DIR = (
    "/etc/tfsops"  # the state folder's config/ is mounted here (a directory: atomic rewrites show)
)
MODELS_CONFIG = f"{CONFIG_DIR}/models.config"
BATCHING_CONFIG = f"{CONFIG_DIR}/batching.config"
MONITORING_CONFIG = f"{CONFIG_DIR}/monitoring.config"
SSL_CONFIG = f"{CONFIG_DIR}/ssl.config"
GRPC_PORT = 8500
REST_PORT = 8501


@dataclass(frozen=True)
class RootMount:
    host: str
    target: str


@dataclass(frozen=True)
class Layout:
    roots: tuple[RootMount, ...]
    base_paths: dict[str, str]  # model name -> container base_path

    def container_path(self, host_path: Path) -> str | None:
        """The container path of a host path under one of the mounted roots (None if not mounted)."""
        text = os.path.normpath(str(host_path))
        for root in self.roots:
            if text == root.host or text.startswith(root.host.rstrip("/") + "/"):
                rel = os.path.relpath(text, root.host)
                return root.target if rel == "." else f"{root.target}/{rel}"
        return None


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "root"
    return slug[:40]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def layout_for(spec: DeploymentSpec) -> Layout:
    declared = [os.path.normpath(str(r)) for r in spec.model_roots]
    roots: list[str] = []
    for r in declared:
        if not any(_under(r, other) for other in declared if other != r) and r not in roots:
            roots.append(r)
    for model in spec.models:
        path = os.path.normpath(str(model.path))
        if not any(_under(path, r) for r in roots):
            # A model folder may contain folders found so far: keep the outermost.
            roots = [r for r in roots if not _under(r, path)]
            roots.append(path)
    roots.sort()
    names = [_slug(os.path.basename(r) or "root") for r in roots]
    mounts = []
    for root, slug in zip(roots, names, strict=True):
        unique = (
            slug
            if names.count(slug) == 1
            else f"{slug}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"
        )
        mounts.append(RootMount(host=root, target=f"{MODELS_DIR}/{unique}"))
    layout = Layout(roots=tuple(mounts), base_paths={})
    base_paths = {}
    for model in spec.models:
        target = layout.container_path(model.path)
        assert target is not None  # every model is under a root by construction
        base_paths[model.name] = target
    return Layout(roots=tuple(mounts), base_paths=base_paths)
