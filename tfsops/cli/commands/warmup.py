"""``tfsops warmup MODEL``: write TF Serving's warmup file from predict request bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.common import load_spec
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result


@app.command("warmup")
def warmup_command(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help="A model of the deployment, or a model base folder.", show_default=False
        ),
    ],
    version: Annotated[
        list[int] | None,
        typer.Option(
            "--version",
            help="Only this version (repeatable; default: the versions the policy serves, "
            "or every version of a folder).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="JSON file of predict request bodies (a list, or one body; '-' for stdin). "
            "Default: the model's warmup: file in the spec, else its smoke: requests.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write assets.extra/tf_serving_warmup_requests into a model's version folders.

    The file is a TFRecord file of PredictionLog records (one per request
    body), which TF Serving replays when it loads the version
    (--enable_model_warmup, on by default; at most 1000 records); a record
    that fails makes the load fail. Every request is checked against the
    version's signature first: a mismatch is exit 3 and nothing is written.
    `tfsops inspect` lists the records.

    \b
    Examples:
      tfsops warmup resnet --from requests.json
      tfsops warmup ./models/resnet --version 3 --from requests.json
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.errors import InvalidInput
        from tfsops.predict import read_json_value
        from tfsops.savedmodel.versions import scan_versions, served_versions
        from tfsops.warmup import write_warmup
        from tfsops.warmup_plan import plan_warmup, request_bodies

        bodies: list[dict[str, Any]] | None = None
        label = "--from"
        if source is not None:
            where = f"--from {source}" if source != "-" else "--from (stdin)"
            value = read_json_value("@" + source, option="--from")
            bodies, label = request_bodies(value, where), where
        folder = Path(model)
        if folder.is_dir():
            name = folder.resolve().name
            base = folder
            chosen = list(version or scan_versions(base).numbers)
        else:
            spec, _ = load_spec(opts, model_hint=model)
            entry = next((m for m in spec.models if m.name == model), None)
            if entry is None:
                raise InvalidInput(
                    f"{model!r} is neither a model of deployment {spec.name} nor a folder",
                    hint=f"models: {', '.join(m.name for m in spec.models)}",
                )
            name, base = entry.name, entry.path
            chosen = list(version or served_versions(base, entry.policy_kind).served)
            if bodies is None and entry.warmup is not None:
                label = f"models.{name}.warmup {entry.warmup}"
                bodies = request_bodies(
                    read_json_value(f"@{entry.warmup}", option=f"models.{name}.warmup"), label
                )
            if bodies is None and entry.smoke:
                from tfsops.smoke_spec import smoke_requests

                label = f"models.{name}.smoke"
                bodies = [dict(r.body) for r in smoke_requests(entry)]
        if bodies is None:
            raise InvalidInput(
                "no warmup requests: give --from FILE (a JSON list of predict request bodies)"
            )
        if not chosen:
            raise InvalidInput(f"{base} has no version to write a warmup file into")
        targets = plan_warmup(name, base, chosen, bodies, label)
        written = [
            {
                "version": t.version,
                "path": str(write_warmup(t.path, t.records)),
                "records": len(t.records),
            }
            for t in targets
        ]
        text = "\n".join(
            f"version {w['version']}: {w['records']} record(s) -> {w['path']}" for w in written
        )
        return Result(data={"model": name, "written": written}, text=text)

    execute(ctx, "warmup", action)
