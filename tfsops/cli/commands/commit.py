"""``tfsops commit``: bake the spec's models into a self-contained image."""

from __future__ import annotations

from typing import Annotated

import typer

from tfsops.cli.app import app
from tfsops.cli.common import load_spec, make_services
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result


@app.command("commit")
def commit(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Deployment name (default: the spec's).")
    ] = None,
    tag: Annotated[str, typer.Option("--tag", help="Image to create, e.g. my/serving:1.0.")] = "",
    image: Annotated[
        str | None, typer.Option("--image", help="Base serving image (default: the spec's).")
    ] = None,
) -> None:
    """Bake the models (and models.config) into an image that serves with no mounts.

    Upstream's recipe, through the Docker SDK: create a base container from
    the serving image, copy the models in, commit with ENV MODEL_NAME (one
    plain model) or the config flags, remove the base container.

    Example: tfsops commit hp2 --tag my/hp2:1
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.commit import commit_image
        from tfsops.errors import InvalidInput

        if not tag:
            raise InvalidInput("--tag IMAGE is required (e.g. --tag my/serving:1.0)")
        if name and opts.deployment is None and opts.spec_file is None:
            opts.deployment = name
        spec, _ = load_spec(opts)
        services = make_services(opts)
        try:
            result = commit_image(spec, tag, services, base_image=image)
        finally:
            services.close()
        return Result(
            data=result.to_dict(),
            text=f"committed {result.tag} ({result.image_id[:19]}) from {result.base_image}: "
            f"models {', '.join(result.models)}; {'; '.join(result.changes)}",
        )

    execute(ctx, "commit", action)
