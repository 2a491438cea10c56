"""Global options shared by every command, and the one place errors become exit codes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import typer

from tfsops.cli.output import Progress, Result, emit_error, emit_result, emit_unexpected
from tfsops.errors import ExitCode, Interrupted, TfsopsError


@dataclass
class GlobalOptions:
    json: bool = False
    verbose: int = 0
    spec_file: Path | None = None  # -f/--file; None = ./tfsops.yaml or the -d deployment's spec
    deployment: str | None = None  # -d/--deployment
    docker_host: str | None = None
    context: str | None = None  # --context: a docker context by name

    @property
    def progress(self) -> Progress:
        return Progress(enabled=True)


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_object(GlobalOptions)
    if obj is None:  # a command invoked without the callback (tests)
        obj = GlobalOptions()
        ctx.obj = obj
    return obj


def execute(
    ctx: typer.Context, command: str, action: Callable[[GlobalOptions], Result]
) -> NoReturn:
    """Run a command's action, print its result, and exit with the documented code."""
    opts = options(ctx)
    try:
        result = action(opts)
    except TfsopsError as exc:
        if opts.verbose:
            logging.getLogger("tfsops").debug("error", exc_info=exc)
        emit_error(command, exc, as_json=opts.json)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt as exc:
        # A deploy step says what it left (tfsops.recovery.DeployInterrupted).
        exc2 = Interrupted(
            getattr(exc, "message", "interrupted"),
            hint=getattr(exc, "hint", None),
            details=getattr(exc, "details", None),
        )
        emit_error(command, exc2, as_json=opts.json)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug: stay loud
        emit_unexpected(command, exc, as_json=opts.json, verbose=bool(opts.verbose))
        raise typer.Exit(int(ExitCode.ERROR)) from None
    emit_result(command, result, as_json=opts.json)
    raise typer.Exit(int(result.exit_code))
