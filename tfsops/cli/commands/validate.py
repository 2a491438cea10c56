"""``tfsops validate``: the spec and every model folder, without touching anything."""

from __future__ import annotations

import typer

from tfsops.cli.app import app
from tfsops.cli.common import load_spec
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result


@app.command("validate")
def validate(ctx: typer.Context) -> None:
    """Check the spec and each model folder: numeric versions present, saved_model.pb
    parses, the `serve` tag, signatures, labels on served versions.

    Exit 0 when everything is fine, 3 with one line per problem otherwise.
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.plan.expected import check_models
        from tfsops.plan.exposure import check_exposure
        from tfsops.plan.render import render_all

        spec, path = load_spec(opts)
        check_exposure(spec, path)  # what the container would see, and links it cannot follow
        reports = check_models(spec)
        render_all(spec, with_secrets=False)  # a renderer bug must fail here, not at deploy
        lines = [f"{path}: spec OK (deployment {spec.name}, {len(spec.models)} model(s))"]
        warnings: list[str] = []
        models = []
        for model in spec.models:
            report = reports[model.name]
            data = report.to_dict()
            data["name"] = model.name
            models.append(data)
            served = ", ".join(str(v) for v in data["served"]) or "none"
            sigs = sorted({s for v in data["versions"] for s in v.get("signatures", [])})
            lines.append(
                f"  {model.name}: serves version(s) {served}; signatures: {', '.join(sigs) or '-'}"
            )
            warnings += [f"{model.name}: {w}" for w in data["warnings"]]
        return Result(
            data={"spec": str(path), "deployment": spec.name, "models": models},
            text="\n".join(lines),
            warnings=warnings,
        )

    execute(ctx, "validate", action)
