"""Day-2 commands: health, status/ps, predict, logs, down."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.common import load_spec, make_services
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result, table
from tfsops.cli.params import (
    option_label,
    option_log_tail,
    option_seconds,
    option_seconds_or_zero,
    option_version,
)
from tfsops.errors import ExitCode


@app.command("health")
def health(
    ctx: typer.Context,
    models: Annotated[
        list[str] | None, typer.Argument(help="Only these models (default: all).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Poll until healthy or the timeout.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds for --wait (exit 6 after).",
            callback=option_seconds_or_zero,
        ),
    ] = 60.0,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            help="Seconds between polls with --wait.",
            callback=option_seconds,
        ),
    ] = 1.0,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke/--no-smoke",
            help="Also send each model's smoke requests (spec smoke:, or one generated from "
            "the signature) to every expected version; a failing one is exit 5.",
        ),
    ] = False,
) -> None:
    """Is every expected model version AVAILABLE and every label resolvable?

    Checks all models of the deployment at once, through the model status API
    (state must be AVAILABLE: the endpoint answers 200 while loading) and
    /labels/L/metadata for labels (the status endpoint ignores labels).
    Exit 0 healthy, 6 not (yet) healthy, 5 a version failed to load (or, with
    --smoke, loaded but failed a smoke request) or a repair is pending (a reload
    cut short by a kill: run `tfsops apply`), 3 a model's folder is missing (the
    server still serves it, but a restart would not come back).

    Example: tfsops health --wait --timeout 120 --smoke   (a CI gate)
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.health import wait_until_healthy
        from tfsops.plan.expected import expected_models
        from tfsops.services import endpoint_for

        spec, _ = load_spec(opts)
        names = list(models) if models else None
        if names:
            unknown = sorted(set(names) - {m.name for m in spec.models})
            if unknown:
                from tfsops.errors import InvalidInput

                raise InvalidInput(
                    f"not in deployment {spec.name}: {', '.join(unknown)}",
                    hint=f"models: {', '.join(m.name for m in spec.models)}",
                )
        services = make_services(opts)
        if spec.target == "swarm":
            from tfsops.swarm.executor import SwarmExecutor

            swarm_health = SwarmExecutor(services).health(
                spec, timeout=timeout if wait else 0.0, smoke=smoke
            )
            swarm_error = swarm_health.error(timeout=timeout if wait else None)
            if swarm_error is not None:
                print(f"error: {swarm_error.message}", file=sys.stderr)
            return Result(
                data=swarm_health.to_dict(),
                text=swarm_health.text(),
                exit_code=ExitCode.OK if swarm_error is None else swarm_error.exit_code,
            )
        client = services.serving_factory(endpoint_for(spec))
        report = wait_until_healthy(
            client,
            expected_models(spec, names, smoke=smoke),
            timeout=timeout if wait else 0.0,
            interval=interval,
        )
        data = {"deployment": spec.name, **report.to_dict()}
        error = report.error(timeout=timeout if wait else None)
        code = ExitCode.OK if error is None else error.exit_code
        text = report.describe()
        if error is not None:
            print(f"error: {error.message}", file=sys.stderr)
        code, text = _report_missing_folders(spec, names, data, code, text)
        code, text = _report_repairs(spec.name, data, code, text)
        return Result(data=data, text=text, exit_code=code)

    execute(ctx, "health", action)


def _report_missing_folders(
    spec: Any, names: list[str] | None, data: dict[str, Any], code: ExitCode, text: str
) -> tuple[ExitCode, str]:
    """A served model's folder moved away: not healthy, even though the server still answers."""
    from tfsops.plan.folders import RESTART_CONSEQUENCE, describe_missing, missing_model_folders

    missing = missing_model_folders(spec, names)
    data["missing_folders"] = missing
    if not missing:
        return code, text
    data["ok"] = False
    data["if_restarted"] = RESTART_CONSEQUENCE
    lines = describe_missing(missing)
    print(f"error: {lines[0]}: {RESTART_CONSEQUENCE}", file=sys.stderr)
    return (ExitCode.INVALID if code == ExitCode.OK else code), "\n".join([text, *lines])


def _report_repairs(
    name: str, data: dict[str, Any], code: ExitCode, text: str
) -> tuple[ExitCode, str]:
    """A run killed mid-reload may have left the server off models.config: not healthy (exit 5)
    until the next apply/reload/model command repairs it."""
    from tfsops.recovery import pending_reload_repair
    from tfsops.state import DeploymentState

    repair = pending_reload_repair(DeploymentState.for_name(name))
    data["pending_repair"] = [repair] if repair else []
    if repair is None:
        return code, text
    data["ok"] = False
    print(f"error: pending repair: {repair}", file=sys.stderr)
    text += f"\npending repair: {repair}"
    return (ExitCode.FAILED if code == ExitCode.OK else code), text


def _uptime(started: str | None) -> str:
    if not started or started.startswith("0001"):
        return ""
    from datetime import datetime, timezone

    try:
        start = datetime.fromisoformat(started.replace("Z", "+00:00")[:26] + "+00:00")
    except ValueError:
        return ""
    seconds = int((datetime.now(timezone.utc) - start).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _model_states(client: Any, names: list[str]) -> list[dict[str, Any]]:
    """Each model's version states, all models asked at once (in the order of ``names``)."""
    from tfsops.errors import TfsopsError

    def one(name: str) -> dict[str, Any]:
        try:
            versions = [
                {"version": v.version, "state": v.state, "error": v.error_message or None}
                for v in client.model_status(name)
            ]
        except TfsopsError as exc:
            return {"name": name, "versions": [], "problem": exc.message}
        return {"name": name, "versions": versions}

    if len(names) <= 1:
        return [one(n) for n in names]
    from concurrent.futures import ThreadPoolExecutor

    from tfsops.health import MAX_WORKERS

    with ThreadPoolExecutor(min(MAX_WORKERS, len(names)), "tfsops-status") as pool:
        return list(pool.map(one, names))


def _status(opts: GlobalOptions, command: str) -> Result:
    from tfsops.errors import TfsopsError
    from tfsops.plan.container import LABEL_DEPLOYMENT
    from tfsops.recovery import pending_reload_repair
    from tfsops.services import endpoint_for
    from tfsops.spec.load import load_spec as read_spec
    from tfsops.spec.model import DeploymentSpec
    from tfsops.state import DeploymentState, list_states

    services = make_services(opts)
    containers: dict[str, Any] = {}
    staged: dict[str, Any] = {}  # tfsops-<name>-next left by an interrupted recreate
    for c in services.runtime.list_deployments():
        key = c.labels.get(LABEL_DEPLOYMENT, c.name)
        if c.name == f"tfsops-{key}-next":
            staged[key] = c
        if key not in containers or containers[key].name.endswith("-next"):
            containers[key] = c
    names = sorted(set(containers) | {s.name for s in list_states()})
    if opts.deployment:
        names = [n for n in names if n == opts.deployment]
    elif opts.spec_file is not None:
        given, _ = load_spec(opts)
        names = [given.name]
    rows = []
    swarm_texts: list[str] = []
    deployments: list[dict[str, Any]] = []
    for name in names:
        info = containers.get(name)
        entry: dict[str, Any] = {
            "deployment": name,
            "container": info.name if info else None,
            "state": info.status if info else "absent",
            "image": info.image if info else None,
            "ports": [
                {"host_ip": ip, "host_port": hp, "container_port": cp} for ip, hp, cp in info.ports
            ]
            if info
            else [],
            "uptime": _uptime(info.started_at) if info and info.status == "running" else "",
            "models": [],
        }
        spec: DeploymentSpec | None = None
        try:
            spec = read_spec(DeploymentState.for_name(name).spec_path())
        except TfsopsError as exc:
            entry["problem"] = exc.message
        if spec is not None:
            from tfsops.plan.folders import missing_model_folders

            entry["missing_folders"] = missing_model_folders(spec)
        if spec is not None and spec.target == "swarm":
            from tfsops.swarm.executor import SwarmExecutor, status_text

            swarm_status = SwarmExecutor(services).status(spec)
            entry.update(state="swarm service", swarm=swarm_status)
            swarm_texts.append(status_text(swarm_status))
        elif spec is not None and info is not None and info.status == "running":
            client = services.serving_factory(endpoint_for(spec))
            entry["models"] = _model_states(client, [m.name for m in spec.models])
        repairs = []
        if name in staged:
            repairs.append(
                f"an interrupted recreate left {staged[name].name} ({staged[name].status}): "
                "`tfsops apply` finishes or undoes the swap, `tfsops down` removes both"
            )
        reload_repair = pending_reload_repair(DeploymentState.for_name(name))
        if reload_repair is not None:
            repairs.append(reload_repair)
        entry["pending_repair"] = repairs
        deployments.append(entry)
        ports = ",".join(f"{ip}:{hp}->{cp}" for ip, hp, cp in (info.ports if info else []))
        models_text = "; ".join(
            f"{m['name']} "
            + (
                ",".join(f"{v['version']}:{v['state']}" for v in m["versions"])
                or m.get("problem", "?")
            )
            for m in entry["models"]
        )
        rows.append(
            [name, entry["state"], entry["image"] or "", ports, entry["uptime"], models_text]
        )
    services.close()
    headers = ["DEPLOYMENT", "STATE", "IMAGE", "PORTS", "UP", "MODELS (version:state)"]
    text = table(headers, rows) if rows else "no deployments"
    for d in deployments:
        text += "".join(f"\n{d['deployment']}: pending repair: {r}" for r in d["pending_repair"])
    if swarm_texts:
        text += "\n\n" + "\n\n".join(swarm_texts)
    from tfsops.plan.folders import describe_missing

    for entry in deployments:
        missing_lines = describe_missing(entry.get("missing_folders", []))
        if missing_lines:
            text += f"\n{entry['deployment']}: " + "\n".join(missing_lines)
    return Result(data={"deployments": deployments}, text=text)


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Deployments: container state, image, ports, uptime, and each model version's state.

    All deployments, or the one named with -d / given with -f.
    """
    execute(ctx, "status", lambda opts: _status(opts, "status"))


@app.command("ps")
def ps(ctx: typer.Context) -> None:
    """Alias of `status`."""
    execute(ctx, "ps", lambda opts: _status(opts, "ps"))


@app.command("predict")
def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    instances: Annotated[
        str | None, typer.Option("--instances", help="Row format: JSON list, @file or @- (stdin).")
    ] = None,
    inputs: Annotated[
        str | None, typer.Option("--inputs", help="Columnar format: JSON, @file or @- (stdin).")
    ] = None,
    signature: Annotated[str | None, typer.Option("--signature", help="Signature name.")] = None,
    version: Annotated[
        int | None,
        typer.Option("--version", help="A specific version.", callback=option_version),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="A version label.", callback=option_label)
    ] = None,
    grpc: Annotated[
        bool, typer.Option("--grpc", help="Use gRPC PredictionService (default REST).")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds for the request.", callback=option_seconds),
    ] = 30.0,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="An image file (repeatable: one example each), base64-encoded into the "
            "signature's single DT_STRING input.",
            show_default=False,
        ),
    ] = None,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="NAME=VALUE for one input (repeatable): JSON, @file or @-; for a DT_STRING "
            "input @file sends the file's raw bytes.",
            show_default=False,
        ),
    ] = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            help="Show the K highest scores per example (a classifier); --json has all values.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Send a predict request to a model (smoke test), over REST or gRPC.

    Bodies of any size come from files (@file) or stdin (@-). With --image or
    --input the signature decides the JSON: no need to write it.

    \b
    Examples:
      tfsops predict hp2 --instances '[1.0, 2.0, 5.0]'
      tfsops predict resnet --image cat.jpg --top-k 5
      tfsops predict hp2 --inputs @big-request.json
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.errors import InvalidInput
        from tfsops.predict import build_body, format_response
        from tfsops.services import endpoint_for

        if version is not None and label is not None:
            raise InvalidInput("give --version or --label, not both")
        from_files = bool(image or input_)
        if from_files and (instances is not None or inputs is not None):
            raise InvalidInput("give --image/--input, or --instances/--inputs, not both")
        if top is not None and top < 1:
            raise InvalidInput("--top-k must be at least 1")
        body = (
            {}
            if from_files
            else build_body(instances=instances, inputs=inputs, signature=signature)
        )
        spec, _ = load_spec(opts, model_hint=model)
        if model not in {m.name for m in spec.models}:
            raise InvalidInput(
                f"deployment {spec.name} has no model {model!r}",
                hint=f"models: {', '.join(m.name for m in spec.models)}",
            )
        if from_files:
            from tfsops.predict_inputs import body_from_files, model_signature

            entry = next(m for m in spec.models if m.name == model)
            sig = model_signature(entry, signature, version, label)
            body = body_from_files(sig, image or [], input_ or [])
        endpoint = endpoint_for(spec)
        services = make_services(opts)
        try:
            # admin_factory is the gRPC client; both go through the relay when one is needed
            if grpc:
                client: Any = services.admin_factory(endpoint)
            else:
                client = services.serving_factory(endpoint)
            with client:
                response = client.predict(
                    model, body, version=version, label=label, timeout=timeout
                )
        finally:
            services.close()
        data = {"model": model, "transport": "grpc" if grpc else "rest", "response": response}
        text = format_response(response)
        if top is not None:
            from tfsops.predict import format_table
            from tfsops.predict_inputs import top_k, top_k_rows

            data["top_k"] = top_k(response, top)
            text = format_table(*top_k_rows(data["top_k"]))
        return Result(data=data, text=text)

    execute(ctx, "predict", action)


@app.command("logs")
def logs(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    tail: Annotated[
        str,
        typer.Option("--tail", help='Lines from the end, or "all".', callback=option_log_tail),
    ] = "200",
) -> None:
    """The serving container's logs (stdout and stderr of tensorflow_model_server).

    Note: here -f means --follow; give the spec file as --file.
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.errors import InvalidInput

        spec, _ = load_spec(opts)
        services = make_services(opts)
        info = services.runtime.find(spec.name)
        if info is None:
            raise InvalidInput(f"deployment {spec.name} has no container", hint="deploy it first")
        n: int | str = "all" if tail == "all" else int(tail) if tail.isdigit() else 200
        if follow and not opts.json:
            try:
                for chunk in services.runtime.follow_logs(info.id, tail=n):
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
            except KeyboardInterrupt:
                pass
            return Result(data={}, text="")
        text = services.runtime.logs(info.id, tail=n)
        return Result(
            data={"deployment": spec.name, "container": info.name, "logs": text.splitlines()},
            text=text,
        )

    execute(ctx, "logs", action)


@app.command("down")
def down(
    ctx: typer.Context,
    volumes: Annotated[
        bool,
        typer.Option("--volumes", help="Also remove tfsops's state: rendered files, revisions."),
    ] = False,
) -> None:
    """Stop and remove the deployment's container (and with --volumes its state folder).

    Model folders are never touched.
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.executor import Executor
        from tfsops.state import DeploymentState

        name = opts.deployment
        target = None
        if name is None:
            spec, _ = load_spec(opts)
            name, target = spec.name, spec.target
        target = target or DeploymentState.for_name(name).read_meta().get("target", "docker")
        executor = Executor(make_services(opts))
        try:
            if target == "swarm":
                from tfsops.swarm.executor import SwarmExecutor

                swarm_removed = SwarmExecutor(executor.s).down(name, volumes)
                return Result(
                    data=swarm_removed, text=f"{name}: removed the swarm service and its configs"
                )
            removed = executor.down(name, volumes=volumes)
        finally:
            executor.s.close()
        text = f"{name}: " + (
            f"removed container {removed['container'][:12]}"
            if removed["container"]
            else "no container"
        )
        if removed["state_removed"]:
            text += "; removed the state folder"
        return Result(data=removed, text=text)

    execute(ctx, "down", action)
