"""What the serving container may see of the host.

Mount only what serves: a folder the container mounts (a model's folder, or a
declared ``model_roots`` entry) must not be ``/``, the home folder, tfsops's
state folder, or a folder holding the spec file or the TLS files (a mount
shows everything below it, read-only or not). And every model must be
reachable through the mounts: a symbolic link whose target lies outside
them resolves to nothing inside the container, so the server would wait for
a version it can never load.

Pure apart from reading the file system (links, the home and state folders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tfsops.errors import InvalidInput, problems_message
from tfsops.plan.layout import Layout, layout_for
from tfsops.spec.model import DeploymentSpec


@dataclass(frozen=True)
class _Guarded:
    path: str
    what: str  # "the host's root folder", "the spec file ...", ...
    inside_too: bool = False  # also refuse mounting a folder inside it


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _forms(path: str | Path) -> set[str]:
    """A path as written and as the kernel resolves it (a link to / is still /)."""
    text = os.path.normpath(str(path))
    return {text, os.path.realpath(text)}


def _guarded(spec: DeploymentSpec, spec_file: Path | None) -> list[_Guarded]:
    from tfsops.state import state_root

    out = [_Guarded("/", "the host's root folder")]
    home = os.path.expanduser("~")
    if home and home != "/":
        out.append(_Guarded(home, "your home folder"))
    out.append(_Guarded(str(state_root()), "tfsops's state folder", inside_too=True))
    if spec_file is not None:
        out.append(_Guarded(str(spec_file.absolute()), "the spec file"))
    if spec.tls is not None:
        for field, path in (("cert", spec.tls.cert), ("key", spec.tls.key), ("ca", spec.tls.ca)):
            if path is not None:
                out.append(_Guarded(str(path), f"the TLS {field} file"))
    return out


def _key_for(spec: DeploymentSpec, root: str) -> str:
    """The spec key a mounted folder comes from (for a ``key.path: message`` line)."""
    for i, declared in enumerate(spec.model_roots):
        if os.path.normpath(str(declared)) == root:
            return f"model_roots[{i}]"
    for model in spec.models:
        if os.path.normpath(str(model.path)) == root:
            return f"models.{model.name}.path"
    return "model_roots"


def exposure_problems(spec: DeploymentSpec, spec_file: Path | None = None) -> list[str]:
    """One ``key: message`` line per mounted folder that would show more than serves."""
    layout = layout_for(spec)
    problems = []
    for root in layout.roots:
        forms = _forms(root.host)
        for guard in _guarded(spec, spec_file):
            guard_forms = _forms(guard.path)
            holds = any(_under(g, f) for g in guard_forms for f in forms)
            inside = guard.inside_too and any(_under(f, g) for g in guard_forms for f in forms)
            if holds or inside:
                where = "is" if forms & guard_forms else ("is inside" if inside else "holds")
                problems.append(
                    f"{_key_for(spec, root.host)}: {root.host} {where} {guard.what}"
                    + ("" if where == "is" else f" ({guard.path})")
                    + ": the server's container would see it"
                )
                break
    return problems


def _to_container(layout: Layout, host_path: str) -> str | None:
    return layout.container_path(Path(host_path))


def _to_host(layout: Layout, container_path: str) -> str | None:
    for root in layout.roots:
        if _under(container_path, root.target):
            rel = os.path.relpath(container_path, root.target)
            return root.host if rel == "." else os.path.join(root.host, rel)
    return None


def _link_problem(layout: Layout, link: str) -> str | None:
    """Where a link inside a mount leads in the container, if the container cannot follow it."""
    location = _to_container(layout, link)
    if location is None:
        return None
    try:
        target = os.readlink(link)
    except OSError:  # gone meanwhile
        return None
    in_container = os.path.normpath(
        target if os.path.isabs(target) else os.path.join(os.path.dirname(location), target)
    )
    host = _to_host(layout, in_container)
    if host is not None and os.path.exists(host):
        return None
    return f"{link} is a symbolic link to {target}, which the server's container cannot see"


def link_problems(spec: DeploymentSpec) -> list[str]:
    """Symbolic links on the way to, or inside, a model folder that point outside the mounts.

    A mounted folder that is itself a link is fine (Docker resolves a mount's source).
    """
    layout = layout_for(spec)
    mounted = {r.host for r in layout.roots}
    problems: list[str] = []
    for model in spec.models:
        path = os.path.normpath(str(model.path))
        key = f"models.{model.name}.path"
        candidates: list[str] = []
        # Folders between the mounted root and the model folder (a model under model_roots).
        parent = path
        while parent not in mounted and os.path.dirname(parent) != parent:
            candidates.append(parent)
            parent = os.path.dirname(parent)
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):  # never follows links
                candidates += [os.path.join(folder, n) for n in (*dirs, *files)]
        for candidate in candidates:
            if os.path.islink(candidate):
                problem = _link_problem(layout, candidate)
                if problem is not None:
                    problems.append(f"{key}: {problem}")
    return problems


def check_exposure(spec: DeploymentSpec, spec_file: Path | None = None) -> None:
    """Exit 3 when the container would see more than serves, or could not see a model."""
    # Links only once the mounts are acceptable (never walk a refused root such as /).
    problems = exposure_problems(spec, spec_file) or link_problems(spec)
    if not problems:
        return
    raise InvalidInput(
        problems_message(problems, "with what the container would mount"),
        hint="mount only what serves: put each model in a folder of its own (or declare a "
        "model_roots folder that holds models only); copy linked versions in instead of linking",
        details={"problems": problems},
    )
