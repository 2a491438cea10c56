"""``tfsops inspect PATH``: a SavedModel's versions, tag-sets and signatures, without TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result, table
from tfsops.cli.params import option_version

if TYPE_CHECKING:  # the savedmodel package is imported inside the action, not at startup
    from tfsops.savedmodel.inspect import InspectResult, Signature


@app.command("inspect")
def inspect_command(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="A model base folder (holding numeric versions) or one version folder.",
            metavar="PATH",
            show_default=False,
        ),
    ],
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            help="Show only this version.",
            show_default=False,
            callback=option_version,
        ),
    ] = None,
    signature: Annotated[
        str | None,
        typer.Option("--signature", "-s", help="Show only this signature.", show_default=False),
    ] = None,
) -> None:
    """Show what TF Serving will find in a model folder.

    For every numeric version (as TF Serving discovers them): the MetaGraph
    tag-sets and every signature with its method, inputs and outputs (key,
    tensor name, dtype, shape; -1 is an unknown dimension). Like
    `saved_model_cli show --all`, but it reads saved_model.pb directly and
    does not load the TensorFlow runtime, so it answers in milliseconds.
    TF2's internal __saved_model_init_op is listed and marked internal.

    \b
    Examples:
      tfsops inspect ./models/resnet
      tfsops inspect ./models/resnet/3 --signature serving_default
      tfsops --json inspect ./models/resnet --version 3
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.savedmodel.inspect import inspect_path

        found = inspect_path(path, version=version, signature=signature)
        data, text, warnings = found.to_dict(), render(found), list(found.warnings)
        text += _add_warmup(found, data, warnings)
        return Result(data=data, text=text, warnings=warnings)

    execute(ctx, "inspect", action)


def render(found: InspectResult) -> str:
    """The human view: one block per version, one table per signature."""
    numbers = [str(v.version) for v in found.versions if v.version is not None]
    count = len(found.versions)
    head = f"{found.path}: {count} version{'s' if count != 1 else ''}"
    lines = [head + (f" ({', '.join(numbers)})" if numbers else "")]
    for info in found.versions:
        label = f"version {info.version}" if info.version is not None else "SavedModel"
        lines += ["", f"{label}: {info.path / info.file}"]
        for mg in info.meta_graphs:
            tags = ", ".join(mg.tags) or "(no tags)"
            built = f" (TensorFlow {mg.tensorflow_version})" if mg.tensorflow_version else ""
            lines.append(f"  tag-set: {tags}{built}")
            if not mg.signatures:
                lines.append("    (no signatures)")
            for sig in mg.signatures:
                lines += _signature_lines(sig)
    return "\n".join(lines)


def _add_warmup(found: InspectResult, data: dict[str, Any], warnings: list[str]) -> str:
    """Add each version's warmup records (assets.extra) to ``data``; return the text for them."""
    from tfsops.errors import InvalidInput
    from tfsops.warmup import describe_warmup

    lines: list[str] = []
    for info, entry in zip(found.versions, data["versions"], strict=True):
        try:
            records = describe_warmup(info.path)
        except InvalidInput as exc:
            warnings.append(exc.message)
            continue
        if records is None:
            continue
        entry["warmup"] = records
        label = f"version {info.version}" if info.version is not None else "SavedModel"
        lines.append(f"{label}: {len(records)} warmup record(s) in assets.extra")
        for i, rec in enumerate(records):
            inputs = ", ".join(f"{k} {v}" for k, v in rec.get("inputs", {}).items())
            lines.append(f"  [{i}] {rec['kind']} {rec.get('signature', '')} {inputs}".rstrip())
    return "\n\n" + "\n".join(lines) if lines else ""


def _signature_lines(sig: Signature) -> list[str]:
    if sig.internal:
        about = "internal: TF2's initialisation op, not callable"
    else:
        about = f"method {sig.method_name or '(none)'}"
    lines = [f"    signature {sig.key} ({about})"]
    rows = [("input", t.key, t.dtype, t.shape_text(), t.name) for t in sig.inputs]
    rows += [("output", t.key, t.dtype, t.shape_text(), t.name) for t in sig.outputs]
    if not rows:
        return [*lines, "      (no inputs or outputs)"]
    text = table(["", "key", "dtype", "shape", "tensor"], rows)
    return lines + ["      " + line for line in text.splitlines()]
