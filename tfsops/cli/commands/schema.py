"""``tfsops schema``: the JSON Schema of the spec."""

from __future__ import annotations

import json

import typer

from tfsops.cli.app import app
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result


@app.command("schema")
def schema(ctx: typer.Context) -> None:
    """Print the JSON Schema of tfsops.yaml (for editors and CI linting).

    Example: tfsops schema > tfsops.schema.json
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.spec.model import DeploymentSpec

        data = DeploymentSpec.model_json_schema()
        data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        data["title"] = "tfsops deployment spec"
        return Result(data={"schema": data}, text=json.dumps(data, indent=2))

    execute(ctx, "schema", action)
