"""``tfsops render``: write or print what would be deployed; touches nothing else."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.common import load_spec
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result


class What(str, Enum):
    config = "config"
    batching = "batching"
    monitoring = "monitoring"
    plan = "plan"
    all = "all"
    k8s = "k8s"
    swarm = "swarm"


FILE_NAMES = {
    What.config: "models.config",
    What.batching: "batching.config",
    What.monitoring: "monitoring.config",
    What.plan: "container-plan.json",
}
SECRET_FILES = {"ssl.config"}


@app.command("render")
def render(
    ctx: typer.Context,
    what: Annotated[What, typer.Argument(help="What to render.")] = What.all,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the files into this folder.")
    ] = None,
    gpu: Annotated[
        bool | None, typer.Option("--gpu/--no-gpu", help="Override the spec's GPU use.")
    ] = None,
    gpu_devices: Annotated[
        str | None,
        typer.Option("--gpu-devices", help='"all" or GPU ids, e.g. 0,1 (implies --gpu).'),
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Override the image (repo or repo:tag).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Override the image tag.")
    ] = None,
) -> None:
    """Render models.config, batching and monitoring files, the container plan,
    Kubernetes manifests (k8s) or the swarm service (swarm).

    Every config is checked against TF Serving's own protos before it is shown.
    Without -o the result is printed; with -o DIR the files are written there
    (nothing else is touched). Secrets (the TLS key) are only written, never printed.

    Example: tfsops render config -f tfsops.yaml
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.plan.container import container_plan
        from tfsops.plan.render import render_all
        from tfsops.spec.load import with_overrides
        from tfsops.state import DeploymentState, atomic_write

        spec, _ = load_spec(opts)
        if any(v is not None for v in (gpu, gpu_devices, image, version)):
            spec = with_overrides(
                spec, image=image, version=version, gpu=gpu, gpu_devices=gpu_devices
            )
        if what in (What.k8s, What.swarm):
            return _render_cluster(spec, what, output)
        files = render_all(spec, with_secrets=output is not None)
        state = DeploymentState.for_name(spec.name)
        plan = container_plan(spec, files, state.config_dir)
        texts: dict[str, str | None] = {
            "models.config": files.models_config,
            "batching.config": files.batching_config,
            "monitoring.config": files.monitoring_config,
            "container-plan.json": json.dumps(plan.to_dict(), indent=2) + "\n",
        }
        if spec.tls is not None:
            texts["ssl.config"] = files.ssl_config
        if what is not What.all:
            name = FILE_NAMES[what]
            if texts[name] is None:
                from tfsops.errors import InvalidInput

                section = "batching" if what is What.batching else "monitoring.prometheus"
                raise InvalidInput(
                    f"the spec does not enable {section}: there is no {name} to render"
                )
            texts = {name: texts[name]}
        present = {k: v for k, v in texts.items() if v is not None}
        data: dict[str, Any] = {"deployment": spec.name}
        if output is not None:
            written = []
            for name, text in present.items():
                target = output / name
                atomic_write(target, text, mode=0o600 if name in SECRET_FILES else 0o644)
                written.append(str(target))
            data["written"] = written
            return Result(data=data, text="\n".join(f"wrote {w}" for w in written))
        shown = {k: v for k, v in present.items() if k not in SECRET_FILES}
        data["files"] = shown
        data["plan"] = plan.to_dict() if "container-plan.json" in shown else None
        if len(shown) == 1:
            return Result(data=data, text=next(iter(shown.values())))
        parts = [f"# ---- {name}\n{text}" for name, text in shown.items()]
        if spec.tls is not None:
            parts.append("# ---- ssl.config holds the TLS private key: written with -o only")
        return Result(data=data, text="\n".join(parts))

    execute(ctx, "render", action)


def _render_cluster(spec: Any, what: What, output: Path | None) -> Result:
    """Kubernetes manifests or the swarm service spec: written with -o, else printed."""
    from tfsops.state import atomic_write

    if what is What.k8s:
        from tfsops.k8s.render import render_k8s

        files = render_k8s(spec)
    else:
        from tfsops.swarm.plan import render_swarm

        files = render_swarm(spec)
    data: dict[str, Any] = {"deployment": spec.name, "target": what.value}
    if output is not None:
        written = []
        for name, text in files.items():
            atomic_write(output / name, text)
            written.append(str(output / name))
        data["written"] = written
        return Result(data=data, text="\n".join(f"wrote {w}" for w in written))
    data["files"] = files
    return Result(data=data, text="\n".join(f"# ---- {n}\n{t}" for n, t in files.items()))
