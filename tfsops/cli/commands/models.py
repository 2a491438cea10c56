"""Hot changes to a running deployment: add-model, remove-model, publish, promote, reload, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.common import make_services, resolve_spec_path
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result
from tfsops.cli.params import (
    option_positive,
    option_seconds,
    option_seconds_or_zero,
    option_version,
)

if TYPE_CHECKING:
    from tfsops.executor import ApplyOptions, ApplyResult
    from tfsops.modelops import ModelOps

TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds to wait for AVAILABLE; also the deadline of each reload RPC.",
        callback=option_seconds,
    ),
]
LockOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for another tfsops run on this deployment.",
        callback=option_seconds_or_zero,
    ),
]


def _options(timeout: float, lock_timeout: float, **kw: Any) -> ApplyOptions:
    from tfsops.executor import ApplyOptions

    return ApplyOptions(timeout=timeout, lock_timeout=lock_timeout, **kw)


def _run(opts: GlobalOptions, work: Any) -> Any:
    from tfsops.modelops import ModelOps

    ops: ModelOps = ModelOps(make_services(opts))
    try:
        return work(ops)
    finally:
        ops.s.close()


def _result(result: ApplyResult, extra: dict[str, Any] | None = None) -> Result:
    data = result.to_dict()
    data.update(extra or {})
    lines = [result.plan.text()]
    if result.health is not None:
        lines.append(result.health.describe())
    if result.revision is not None:
        lines.append(f"revision {result.revision}")
    return Result(data=data, text="\n".join(lines), warnings=result.warnings)


def _parse_labels(values: list[str] | None) -> dict[str, int]:
    from tfsops.errors import InvalidInput

    labels: dict[str, int] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise InvalidInput(f"--label {item!r}: expected LABEL=VERSION, e.g. stable=3")
        labels[key.strip()] = int(value)
    return labels


def _parse_policy(value: str | None) -> dict[str, Any] | None:
    from tfsops.errors import InvalidInput

    if value is None:
        return None
    text = value.strip()
    if text == "all":
        return {"all": {}}
    kind, _, arg = text.partition(":")
    if kind == "latest":
        if arg and not arg.isdigit():
            raise InvalidInput(f"--policy {value!r}: latest:N takes a number")
        return {"latest": int(arg or 1)}
    if kind == "specific" and arg:
        try:
            return {"specific": [int(v) for v in arg.split(",")]}
        except ValueError:
            pass
    raise InvalidInput(f"--policy {value!r}: use latest[:N], all, or specific:V1,V2")


@app.command("add-model")
def add_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    path: Annotated[
        Path, typer.Option("--path", help="Model folder (numeric version subfolders).")
    ],
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="latest[:N] | all | specific:V1,V2 (default latest:1)."),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="LABEL=VERSION (repeatable).")
    ] = None,
    recreate: Annotated[
        bool,
        typer.Option(
            "--recreate",
            help="Allow a new container (a restart: every model is down while it loads) when "
            "the folder is not under one the running container mounts.",
        ),
    ] = False,
    timeout: TimeoutOpt = 300.0,
    lock_timeout: LockOpt = 120.0,
) -> None:
    """Add a model to the spec and hot-load it into the running server (no restart).

    The folder is validated first (exit 3, nothing changed); a model that fails to
    load rolls the server back (exit 5, the server's reason shown). A folder the
    running container cannot see (not under a declared model_roots folder) would
    need a new container: refused with exit 3 unless --recreate.

    Example: tfsops add-model hp3 --path ./models/half_plus_three -d hp2
    """

    def action(opts: GlobalOptions) -> Result:
        spec_path = resolve_spec_path(opts)
        parsed_policy, labels = _parse_policy(policy), _parse_labels(label)
        result = _run(
            opts,
            lambda ops: ops.add_model(
                spec_path,
                name,
                path,
                policy=parsed_policy,
                labels=labels,
                opts=_options(timeout, lock_timeout, hot_only=None if recreate else "add-model"),
            ),
        )
        return _result(result, {"model": name})

    execute(ctx, "add-model", action)


@app.command("remove-model")
def remove_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the model stops being served.")
    ] = False,
    timeout: TimeoutOpt = 300.0,
    lock_timeout: LockOpt = 120.0,
) -> None:
    """Remove a model from the spec and unload it from the running server. Needs --yes."""

    def action(opts: GlobalOptions) -> Result:
        from tfsops.errors import InvalidInput

        if not yes:
            raise InvalidInput(f"removing {name} stops serving it: pass --yes to confirm")
        spec_path = resolve_spec_path(opts)
        result = _run(
            opts,
            lambda ops: ops.remove_model(
                spec_path, name, _options(timeout, lock_timeout, hot_only="remove-model")
            ),
        )
        return _result(result, {"model": name})

    execute(ctx, "remove-model", action)


@app.command("promote")
def promote(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    label: Annotated[str, typer.Option("--label", help="Label to move, e.g. stable.")],
    version: Annotated[
        int,
        typer.Option(
            "--version",
            help="Version the label should point at.",
            callback=option_version,
        ),
    ],
    timeout: TimeoutOpt = 300.0,
    lock_timeout: LockOpt = 120.0,
) -> None:
    """Move a version label safely: the version is loaded and AVAILABLE first, then the
    label moves, then a request through the label verifies it.

    Example: tfsops promote resnet --label stable --version 4
    """

    def action(opts: GlobalOptions) -> Result:
        spec_path = resolve_spec_path(opts, model_hint=model)
        result = _run(
            opts,
            lambda ops: ops.promote(
                spec_path,
                model,
                label,
                version,
                _options(timeout, lock_timeout, hot_only="promote"),
            ),
        )
        return _result(result, {"model": model, "label": label, "version": version})

    execute(ctx, "promote", action)


@app.command("publish")
def publish(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    source: Annotated[Path, typer.Argument(help="A SavedModel folder (holding saved_model.pb).")],
    version: Annotated[
        int | None,
        typer.Option("--version", help="Version number (default: next).", callback=option_version),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until it is AVAILABLE.")
    ] = True,
    timeout: TimeoutOpt = 300.0,
    lock_timeout: LockOpt = 120.0,
) -> None:
    """Publish a new version of a model: copied under a temporary name, then renamed to
    its number, so the server never loads a half-written version.

    Example: tfsops publish resnet ./export/resnet-2026-11-21
    """

    def action(opts: GlobalOptions) -> Result:
        spec_path = resolve_spec_path(opts, model_hint=model)
        data = _run(
            opts,
            lambda ops: ops.publish(
                spec_path,
                model,
                source,
                version,
                _options(timeout, lock_timeout, wait=wait, hot_only="publish"),
            ),
        )
        text = f"published {model} version {data['version']} at {data['path']}"
        if not data["served"]:
            text += " (the model's version policy does not serve it)"
        elif "health" in data:
            text += ": AVAILABLE"
        return Result(data=data, text=text)

    execute(ctx, "publish", action)


@app.command("reload")
def reload(
    ctx: typer.Context,
    prune: Annotated[
        bool, typer.Option("--prune", help="Allow unloading models not in the spec.")
    ] = False,
    timeout: TimeoutOpt = 300.0,
    lock_timeout: LockOpt = 120.0,
) -> None:
    """Re-render models.config from the spec and hot-reload the server (the whole list)."""

    def action(opts: GlobalOptions) -> Result:
        spec_path = resolve_spec_path(opts)
        result = _run(
            opts,
            lambda ops: ops.reload(
                spec_path, _options(timeout, lock_timeout, prune=prune, hot_only="reload")
            ),
        )
        return _result(result)

    execute(ctx, "reload", action)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    to: Annotated[
        int | None,
        typer.Option(
            "--to",
            help="Revision number (default: the previous one).",
            callback=option_positive,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite edits in the spec file that no revision recorded."),
    ] = False,
    timeout: TimeoutOpt = 300.0,
    lock_timeout: LockOpt = 120.0,
) -> None:
    """Restore a recorded revision (spec and models.config) and converge the server to it.

    Refused (exit 3) when the spec file holds edits made since the live revision,
    which it would overwrite; --force overwrites them.
    """

    def action(opts: GlobalOptions) -> Result:
        spec_path = resolve_spec_path(opts)
        result, number = _run(
            opts,
            lambda ops: ops.rollback(
                spec_path, to, _options(timeout, lock_timeout, hot_only="rollback"), force=force
            ),
        )
        return _result(result, {"restored_revision": number})

    execute(ctx, "rollback", action)


@app.command("revisions")
def revisions(ctx: typer.Context) -> None:
    """List the deployment's recorded revisions (for rollback --to N)."""

    def action(opts: GlobalOptions) -> Result:
        from tfsops.cli.output import table
        from tfsops.revisions import list_revisions
        from tfsops.spec.load import load_spec
        from tfsops.state import DeploymentState

        spec = load_spec(resolve_spec_path(opts))
        revs = list_revisions(DeploymentState.for_name(spec.name))
        import time

        rows = [
            [r.number, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created)), r.reason]
            for r in revs
        ]
        return Result(
            data={"deployment": spec.name, "revisions": [r.to_dict() for r in revs]},
            text=table(["REVISION", "CREATED", "REASON"], rows) if rows else "no revisions",
        )

    execute(ctx, "revisions", action)
