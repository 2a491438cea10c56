"""The typer application: global options, command registration, entry point.

Each command lives in ``tfsops/cli/commands/<name>.py`` and registers itself
on ``app``; command modules import nothing heavy at module level (docker,
grpc, tensorflow_serving, requests, watchdog, jinja2 are imported inside the
action) so ``tfsops --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from tfsops import __version__
from tfsops.cli.argv import hoist_global_options
from tfsops.cli.context import GlobalOptions
from tfsops.errors import EXIT_CODE_HELP

app = typer.Typer(
    name="tfsops",
    help=(
        "Deploy and operate TensorFlow Serving in Docker.\n\n"
        "Global options may be given before or after the command name.\n\n"
        "\b\n" + EXIT_CODE_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"tfsops {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine output: one JSON envelope on stdout.")
    ] = False,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="More detail on stderr (-vv: debug).")
    ] = 0,
    spec_file: Annotated[
        Path | None,
        typer.Option("-f", "--file", help="Spec file (default ./tfsops.yaml).", show_default=False),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option("-d", "--deployment", help="Act on a deployment by name (its saved spec)."),
    ] = None,
    docker_host: Annotated[
        str | None,
        typer.Option(
            "--docker-host",
            help="Docker engine URL: unix://, tcp:// (TLS with DOCKER_TLS_VERIFY), "
            "ssh://user@host[:port] (else --context, DOCKER_HOST, DOCKER_CONTEXT, the "
            "current docker context, the local socket).",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="Docker context by name, as `docker --context` (else DOCKER_CONTEXT, "
            "then the current context of `docker context use`).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Deploy and operate TensorFlow Serving in Docker."""
    ctx.obj = GlobalOptions(
        json=json_output,
        verbose=verbose,
        spec_file=spec_file,
        deployment=deployment,
        docker_host=docker_host,
        context=context,
    )
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def _register_commands() -> None:
    # Importing a command module registers it on ``app``.
    import importlib
    import pkgutil

    from tfsops.cli import commands

    # Help lists commands in registration order: the order a user meets them.
    order = [
        "init",
        "validate",
        "inspect",
        "render",
        "schema",
        "deploy",
        "operate",
        "models",
        "watch",
        "commit",
        "build",
        "doctor",
    ]
    names = sorted(
        (m.name for m in pkgutil.iter_modules(commands.__path__)),
        key=lambda n: (order.index(n) if n in order else len(order), n),
    )
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}")


_register_commands()


def main(argv: list[str] | None = None) -> None:
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    app(args=args, prog_name="tfsops")
