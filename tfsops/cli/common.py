"""Helpers shared by command modules (kept light: no heavy imports)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tfsops.cli.context import GlobalOptions

if TYPE_CHECKING:
    from tfsops.executor import Executor
    from tfsops.services import Services
    from tfsops.spec.model import DeploymentSpec


def resolve_spec_path(opts: GlobalOptions, *, model_hint: str | None = None) -> Path:
    """Which spec a command acts on.

    ``-f`` wins; then ``-d NAME`` (the deployment's saved spec); then
    ./tfsops.yaml; then, for commands about one model (``model_hint``), the one
    deployment serving a model of that name. Never "the only deployment there
    is": a guess can stop or replace the wrong server.
    """
    from tfsops.errors import InvalidInput
    from tfsops.spec.load import DEFAULT_SPEC_NAMES, find_spec_file
    from tfsops.state import DeploymentState, list_states

    if opts.spec_file is not None:
        return find_spec_file(opts.spec_file)
    if opts.deployment:
        return DeploymentState.for_name(opts.deployment).spec_path()
    for name in DEFAULT_SPEC_NAMES:
        if Path(name).exists():
            return Path(name)
    states = list_states()
    if model_hint is not None:
        from tfsops.spec.load import load_spec as _load

        serving = []
        for state in states:
            try:
                spec = _load(state.spec_path())
            except Exception:  # a broken or moved spec: not a candidate
                continue
            if any(m.name == model_hint for m in spec.models):
                serving.append(state)
        if len(serving) == 1:
            return serving[0].spec_path()
    known = ", ".join(s.name for s in states) or "none"
    raise InvalidInput(
        f"no spec file ({', '.join(DEFAULT_SPEC_NAMES)}) in {Path.cwd()} and no deployment given",
        hint=f"say which deployment: -f SPEC (a spec file) or -d NAME (deployments: {known})",
    )


def load_spec(opts: GlobalOptions, *, model_hint: str | None = None) -> tuple[DeploymentSpec, Path]:
    from tfsops.spec.load import load_spec as _load

    path = resolve_spec_path(opts, model_hint=model_hint)
    return _load(path), path


def make_services(opts: GlobalOptions) -> Services:
    from tfsops.services import real_services

    return real_services(opts.docker_host, progress=opts.progress, context=opts.context)


def make_executor(opts: GlobalOptions) -> Executor:
    from tfsops.executor import Executor

    return Executor(make_services(opts))
