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
from typing import Annotated, Any

import typer

from tfsops import __version__
from tfsops.cli.argv import GLOBAL_OPTIONS, hoist_global_options
from tfsops.cli.context import GlobalOptions
from tfsops.cli.params import option_engine_url, option_name
from tfsops.errors import EXIT_CODE_HELP, ExitCode

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
        typer.Option(
            "-d",
            "--deployment",
            help="Act on a deployment by name (its saved spec).",
            callback=option_name,
        ),
    ] = None,
    docker_host: Annotated[
        str | None,
        typer.Option(
            "--docker-host",
            help="Docker engine URL: unix://, tcp:// (TLS with DOCKER_TLS_VERIFY), "
            "ssh://user@host[:port] (else --context, DOCKER_HOST, DOCKER_CONTEXT, the "
            "current docker context, the local socket).",
            callback=option_engine_url,
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
    if not _wants_json(args):
        app(args=args, prog_name="tfsops")
        return
    # --json promises one envelope on stdout for every outcome, usage errors included.
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="tfsops", standalone_mode=False)
    except typer.Abort:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        _usage_envelope(args, exc)
        sys.exit(int(ExitCode.USAGE))
    sys.exit(code if isinstance(code, int) else 0)


def _wants_json(args: list[str]) -> bool:
    for token in args:
        if token == "--":
            return False
        if token == "--json":
            return True
    return False


def _is_usage_error(exc: BaseException) -> bool:
    # click's UsageError (typer vendors click, so the class is not imported by name).
    return getattr(exc, "exit_code", None) == ExitCode.USAGE and hasattr(exc, "format_message")


def _usage_envelope(args: list[str], exc: Any) -> None:
    from tfsops.cli.output import emit_error
    from tfsops.errors import UsageError

    ctx: Any = getattr(exc, "ctx", None)
    in_command = ctx is not None and ctx.parent is not None
    first_word, skip = "", False
    for token in args:  # the command name: the first word that is no global option's value
        if skip or token.startswith("-"):
            skip = GLOBAL_OPTIONS.get(token, False)
            continue
        first_word = token
        break
    command = str(ctx.info_name) if in_command else first_word
    hint = f"see `tfsops {command} --help`" if in_command else "see `tfsops --help`"
    emit_error(command or "tfsops", UsageError(exc.format_message(), hint=hint), as_json=True)
