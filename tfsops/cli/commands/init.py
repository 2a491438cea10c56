"""``tfsops init``: write a commented starter spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tfsops.cli.app import app
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result

TEMPLATE = """\
# tfsops deployment spec. Validate with `tfsops validate`, see every key with `tfsops schema`.
name: {name}                    # deployment name; the container is tfsops-{name}
image: {image}       # repository ("repo:tag" to pin a tag here instead of version)
{version_line}
ports:
  rest: 8501
  grpc: 8500
  bind: 127.0.0.1               # loopback only; 0.0.0.0 makes the server reachable from other hosts
# gpu: {{devices: all, memory_fraction: 0.5}}   # or devices: [0, 1]
models:
  - name: {model}
    path: {path}    # folder of numeric version subfolders (1/, 2/ ...)
    policy: {{latest: 1}}         # or {{all: {{}}}} or {{specific: [1, 2]}}
    # labels: {{stable: 1}}
# batching: {{max_batch_size: 32, batch_timeout_micros: 1000, num_batch_threads: 4}}
# monitoring: {{prometheus: true}}             # /monitoring/prometheus/metrics on the REST port
# server_args: {{tensorflow_intra_op_parallelism: 4}}
# resources: {{cpus: 2, memory: 4g}}
restart: unless-stopped
"""


@app.command("init")
def init(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Deployment name.")] = "serving",
    model_path: Annotated[
        Path | None, typer.Option("--model-path", help="An existing model folder to serve.")
    ] = None,
    model_name: Annotated[
        str | None, typer.Option("--model-name", help="Model name (default: folder name).")
    ] = None,
    example: Annotated[
        bool,
        typer.Option(
            "--example", help="Also generate a small example model (y = 0.5x + 2) with TensorFlow."
        ),
    ] = False,
    image: Annotated[
        str, typer.Option("--image", help="Serving image repository or repo:tag.")
    ] = "tensorflow/serving",
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the spec.")] = Path(
        "tfsops.yaml"
    ),
    overwrite: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec.")] = False,
) -> None:
    """Write a commented starter tfsops.yaml (and with --example a model to serve).

    Example: tfsops init --example && tfsops deploy
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops import inputs
        from tfsops.errors import InvalidInput
        from tfsops.spec.load import parse_text, spec_from_data
        from tfsops.state import atomic_write

        target = opts.spec_file or output
        if target.exists() and not overwrite:
            raise InvalidInput(f"{target} exists", hint="pass --force to overwrite it")
        if example and model_path is not None:
            raise InvalidInput("give --example or --model-path, not both")
        # Checked before anything is written (an existing spec stays as it was).
        inputs.name(name, "--name")
        if model_name is not None:
            inputs.name(model_name, "--model-name")
        inputs.image_reference(image, "--image")
        folder = target.resolve().parent
        created_model = None
        if example:
            from tfsops.example import half_plus

            created_model = folder / "models" / "half_plus_two"
            if not created_model.exists():
                opts.progress(
                    f"writing an example model to {created_model} (TensorFlow, a few seconds)"
                )
                half_plus(created_model, 0.5, 2.0, (1,))
            path_text, model = "./models/half_plus_two", model_name or "half_plus_two"
        elif model_path is not None:
            path_text = _yaml_path(str(model_path))
            model = inputs.name(model_name or model_path.resolve().name, "model name")
        else:
            path_text, model = "./models/my_model", model_name or "my_model"
        from tfsops.spec.model import image_has_tag

        has_tag = image_has_tag(image)
        text = TEMPLATE.format(
            name=name,
            image=image,
            version_line="# version: set in image"
            if has_tag
            else 'version: "2.19.0"            # image tag, pinned; "-gpu" is added for GPU',
            model=model,
            path=path_text,
        )
        # The starter must itself be valid: checked in memory, then written once.
        spec_from_data(parse_text(text, str(target), "yaml"), base_dir=folder, source=str(target))
        atomic_write(target, text)
        data = {"spec": str(target), "model_created": str(created_model) if created_model else None}
        return Result(
            data=data, text=f"wrote {target}" + (f" and {created_model}" if created_model else "")
        )

    execute(ctx, "init", action)


def _yaml_path(path: str) -> str:
    """A path as written by a person when it is plain, else quoted so YAML reads it back."""
    import re

    from tfsops import inputs

    return path if re.fullmatch(r"[A-Za-z0-9_./~+-]+", path) else inputs.yaml_string(path)
