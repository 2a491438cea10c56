"""``tfsops deploy`` / ``apply`` / ``plan``: converge a deployment, or show what that would do."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.common import load_spec, make_executor
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result
from tfsops.cli.params import option_seconds

if TYPE_CHECKING:
    from tfsops.executor import ApplyResult
    from tfsops.spec.model import DeploymentSpec

GpuOpt = Annotated[
    bool | None,
    typer.Option("--gpu/--no-gpu", help="Serve on GPUs (device request, -gpu image tag)."),
]
GpuDevicesOpt = Annotated[
    str | None, typer.Option("--gpu-devices", help='"all" or GPU ids, e.g. 0,1 (implies --gpu).')
]
GpuMemOpt = Annotated[
    float | None,
    typer.Option("--gpu-memory-fraction", help="--per_process_gpu_memory_fraction (0-1]."),
]
ImageOpt = Annotated[
    str | None,
    typer.Option("--image", help="Serving image: repo (tag from --version) or repo:tag."),
]
VersionOpt = Annotated[str | None, typer.Option("--version", help="Image tag, e.g. 2.19.0.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until every model is AVAILABLE.")
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds to wait for AVAILABLE (exit 6 after).",
        callback=option_seconds,
    ),
]
KeepOpt = Annotated[
    bool,
    typer.Option("--keep-failed", help="Keep a container that failed to start, to inspect it."),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Deploy an image whose build labels do not fit this host.")
]
PullOpt = Annotated[
    bool, typer.Option("--pull/--no-pull", help="Pull the image when it is not present.")
]
PruneOpt = Annotated[
    bool,
    typer.Option("--prune", help="Allow unloading models that are served now but not in the spec."),
]


def _overrides(spec: DeploymentSpec, **kw: Any) -> DeploymentSpec:
    if all(v is None for v in kw.values()):
        return spec
    from tfsops.spec.load import with_overrides

    return with_overrides(spec, **kw)


def summarize(result: ApplyResult, spec: DeploymentSpec) -> str:
    from tfsops.services import endpoint_for

    ep = endpoint_for(spec)
    lines = [result.plan.text()]
    if result.container_id:
        lines.append(
            f"container {result.plan.container.name} ({result.container_id[:12]}), image {result.plan.container.image}"
        )
    if ep.rest_port:
        lines.append(f"REST  {ep.rest_url}/v1/models/<model>")
    if ep.grpc_port:
        lines.append(f"gRPC  {ep.grpc_target}")
    if result.health is not None:
        lines.append(result.health.describe())
    if result.revision is not None:
        lines.append(f"revision {result.revision}")
    return "\n".join(lines)


def _apply(
    opts: GlobalOptions,
    spec: DeploymentSpec,
    spec_path: Path,
    refresh: Callable[[], DeploymentSpec] | None = None,
    **flags: Any,
) -> Result:
    from tfsops.errors import Interrupted
    from tfsops.executor import ApplyOptions

    executor = make_executor(opts)
    options = ApplyOptions(
        wait=flags["wait"],
        timeout=flags["timeout"],
        keep_failed=flags["keep_failed"],
        force=flags["force"],
        pull=flags["pull"],
        prune=flags["prune"],
    )
    try:
        if spec.target == "swarm":
            from tfsops.swarm.executor import SwarmExecutor

            swarm_result = SwarmExecutor(executor.s).apply(spec, spec_path, options)
            return Result(data=swarm_result.to_dict(), text=swarm_result.text())
        result = executor.apply(spec, spec_path, options, refresh)
    except KeyboardInterrupt as exc:
        from tfsops.recovery import DeployInterrupted

        if isinstance(exc, DeployInterrupted):  # it names the containers that exist
            raise Interrupted(exc.message, hint=exc.hint, details=exc.details) from None
        raise Interrupted(
            f"interrupted; the container {spec.container_name} (if created) was left as it is",
            hint="see it with `tfsops status`, remove it with `tfsops down`",
        ) from None
    finally:
        executor.s.close()
    data = result.to_dict()
    return Result(data=data, text=summarize(result, spec), warnings=result.warnings)


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Deployment name (with --model-path: a one-liner).")
    ] = None,
    model_path: Annotated[
        list[str] | None,
        typer.Option(
            "--model-path", help="Model folder (numeric version subfolders); NAME=PATH for several."
        ),
    ] = None,
    gpu: GpuOpt = None,
    gpu_devices: GpuDevicesOpt = None,
    gpu_memory_fraction: GpuMemOpt = None,
    image: ImageOpt = None,
    version: VersionOpt = None,
    rest_port: Annotated[
        int | None, typer.Option("--rest-port", help="Host port for REST.")
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option("--grpc-port", help="Host port for gRPC.")
    ] = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 300.0,
    keep_failed: KeepOpt = False,
    force: ForceOpt = False,
    pull: PullOpt = True,
    prune: PruneOpt = False,
) -> None:
    """Deploy: create or update the container and wait until every model is AVAILABLE.

    With a spec (-f, or ./tfsops.yaml) this is `apply`. The one-liner
    `tfsops deploy NAME --model-path PATH` needs no spec: tfsops writes one in
    the deployment's state folder, so later commands work with `-d NAME`.

    Example: tfsops deploy resnet --model-path ./export/resnet --gpu
    """

    def action(opts: GlobalOptions) -> Result:
        flags = {
            "wait": wait,
            "timeout": timeout,
            "keep_failed": keep_failed,
            "force": force,
            "pull": pull,
            "prune": prune,
        }
        overrides = {
            "image": image,
            "version": version,
            "gpu": gpu,
            "gpu_devices": gpu_devices,
            "gpu_memory_fraction": gpu_memory_fraction,
        }
        if model_path:
            spec, spec_path = _flag_spec(name, model_path, rest_port, grpc_port, overrides)
            return _apply(opts, spec, spec_path, None, **flags)
        if name and opts.deployment is None and opts.spec_file is None:
            opts.deployment = name
        spec, spec_path = load_spec(opts)
        if name and spec.name != name:
            from tfsops.errors import InvalidInput

            raise InvalidInput(f"the spec {spec_path} deploys {spec.name!r}, not {name!r}")
        spec = _overrides(spec, **overrides)
        if rest_port or grpc_port:
            from tfsops.errors import InvalidInput

            raise InvalidInput(
                "--rest-port/--grpc-port only go with --model-path; set ports in the spec"
            )
        return _apply(opts, spec, spec_path, _rereader(spec_path, overrides), **flags)

    execute(ctx, "deploy", action)


def _flag_spec(
    name: str | None,
    model_path: list[str],
    rest_port: int | None,
    grpc_port: int | None,
    overrides: dict[str, Any],
) -> tuple[DeploymentSpec, Path]:
    """A spec from flags alone, saved in the deployment's state folder."""
    import yaml

    from tfsops.errors import InvalidInput
    from tfsops.spec.load import spec_from_flags, with_overrides
    from tfsops.state import DeploymentState, atomic_write

    if not name:
        raise InvalidInput(
            "--model-path needs a deployment NAME: tfsops deploy NAME --model-path PATH"
        )
    models: list[tuple[str, Path]] = []
    for item in model_path:
        model_name, sep, path = item.partition("=")
        if not sep:
            model_name, path = name, item
        models.append((model_name, Path(os.path.expanduser(path)).resolve()))
    ports = {}
    if rest_port is not None:
        ports["rest"] = rest_port
    if grpc_port is not None:
        ports["grpc"] = grpc_port
    spec = spec_from_flags(name, model_paths=models, overrides={"ports": ports or None})
    spec = (
        with_overrides(spec, **overrides)
        if any(v is not None for v in overrides.values())
        else spec
    )
    state = DeploymentState.for_name(spec.name)
    meta = state.read_meta()
    if meta.get("spec_file") and Path(meta["spec_file"]) != state.generated_spec_path:
        raise InvalidInput(
            f"deployment {spec.name!r} was deployed from {meta['spec_file']}",
            hint="edit that spec and run `tfsops apply -f` it, or choose another name",
        )
    state.ensure()
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data = {"name": data.pop("name"), **data}
    text = "# Written by `tfsops deploy` from command-line flags.\n" + yaml.safe_dump(
        data, sort_keys=False
    )
    atomic_write(state.generated_spec_path, text, mode=0o600)
    return spec, state.generated_spec_path


@app.command("apply")
def apply(
    ctx: typer.Context,
    gpu: GpuOpt = None,
    gpu_devices: GpuDevicesOpt = None,
    gpu_memory_fraction: GpuMemOpt = None,
    image: ImageOpt = None,
    version: VersionOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 300.0,
    keep_failed: KeepOpt = False,
    force: ForceOpt = False,
    pull: PullOpt = True,
    prune: PruneOpt = False,
) -> None:
    """Converge the deployment to the spec (idempotent; hot-reloads when only models changed).

    Example: tfsops apply -f tfsops.yaml --timeout 120
    """

    def action(opts: GlobalOptions) -> Result:
        spec, spec_path = load_spec(opts)
        overrides = {
            "image": image,
            "version": version,
            "gpu": gpu,
            "gpu_devices": gpu_devices,
            "gpu_memory_fraction": gpu_memory_fraction,
        }
        spec = _overrides(spec, **overrides)
        flags = {
            "wait": wait,
            "timeout": timeout,
            "keep_failed": keep_failed,
            "force": force,
            "pull": pull,
            "prune": prune,
        }
        return _apply(opts, spec, spec_path, _rereader(spec_path, overrides), **flags)

    execute(ctx, "apply", action)


def _rereader(spec_path: Path, overrides: dict[str, Any]) -> Callable[[], DeploymentSpec]:
    """Read the spec file again (under the deployment lock), with the same overrides."""

    def reread() -> DeploymentSpec:
        from tfsops.spec.load import load_spec as read_spec

        return _overrides(read_spec(spec_path), **overrides)

    return reread


@app.command("plan")
def plan(
    ctx: typer.Context,
    gpu: GpuOpt = None,
    gpu_devices: GpuDevicesOpt = None,
    image: ImageOpt = None,
    version: VersionOpt = None,
) -> None:
    """Show what `apply` would do: create / recreate / start / hot-reload / repair / noop, and the model diff.

    Changes nothing. Exit 0 either way (read the action in --json: data.action).
    "repair": nothing to change but what an interrupted run left (a reload cut
    short by a kill, a half-done container swap); `apply` makes the repair.
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.plan.exposure import check_exposure

        spec, spec_path = load_spec(opts)
        spec = _overrides(spec, image=image, version=version, gpu=gpu, gpu_devices=gpu_devices)
        check_exposure(spec, spec_path)  # apply would refuse: say so here
        executor = make_executor(opts)
        try:
            if spec.target == "swarm":
                from tfsops.swarm.executor import SwarmExecutor

                swarm_plan = SwarmExecutor(executor.s).plan(spec)
                return Result(data=swarm_plan.to_dict(), text=swarm_plan.text())
            result = executor.plan(spec)
        finally:
            executor.s.close()
        return Result(data=result.to_dict(), text=result.text())

    execute(ctx, "plan", action)
