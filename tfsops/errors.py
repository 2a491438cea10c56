"""The one error hierarchy and the one exit-code enum of tfsops.

Adapters translate third-party exceptions (docker, requests, grpc) into these
classes with ``raise ... from``; the CLI maps them to exit codes in one place.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes; stable, documented in README and ``--help``."""

    OK = 0
    ERROR = 1  # unexpected error (a bug): traceback with -v
    USAGE = 2  # bad command line (typer/click's own code)
    INVALID = 3  # invalid spec or input; nothing was changed
    ENGINE = 4  # Docker engine unreachable
    FAILED = 5  # deploy / build / reload failed; the server's message is shown
    NOT_READY = 6  # not every model AVAILABLE before the timeout
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODE_HELP = """Exit codes:
  0   ok
  1   unexpected error
  2   usage error
  3   invalid spec or input (nothing changed)
  4   Docker engine unreachable
  5   deploy, build or reload failed (the server's message is shown)
  6   not every model AVAILABLE before the timeout
  130 interrupted"""


class TfsopsError(Exception):
    """Root of every error tfsops reports to a user.

    ``message`` says what went wrong, ``hint`` what to do about it, and
    ``details`` carries structured data for ``--json`` output.
    """

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = details or {}


class InvalidInput(TfsopsError):
    """Bad spec, bad model directory, bad flag value: refused before anything changed."""

    exit_code = ExitCode.INVALID


class UsageError(TfsopsError):
    """A bad command line (unknown command or option, a flag value out of range,
    options that contradict each other)."""

    exit_code = ExitCode.USAGE


def problems_message(problems: list[str], what: str) -> str:
    """One problem as it is; several as ``N problems WHAT:`` and one indented line each."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems {what}:\n" + "\n".join(f"  {p}" for p in problems)


class SpecError(InvalidInput):
    """A spec that does not validate; one ``key.path: message`` line per problem."""

    def __init__(self, problems: list[str], *, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        if len(problems) == 1:
            message = f"invalid spec {where}{problems[0]}"
        else:
            message = f"invalid spec {where}{len(problems)} problems\n" + "\n".join(
                f"  {p}" for p in problems
            )
        super().__init__(message, details={"problems": problems, "source": source})
        self.problems = problems


class EngineUnreachable(TfsopsError):
    """The Docker engine did not answer."""

    exit_code = ExitCode.ENGINE


class OperationFailed(TfsopsError):
    """A deploy, build or reload failed; the message carries the server's reason."""

    exit_code = ExitCode.FAILED


class NotReady(TfsopsError):
    """Models were not all AVAILABLE before the deadline."""

    exit_code = ExitCode.NOT_READY


class Interrupted(TfsopsError):
    """The user pressed Ctrl-C; the message says what was left as it was."""

    exit_code = ExitCode.INTERRUPTED


class ServerStarting(TfsopsError):
    """Connection refused: TF Serving opens its ports only after the initial load."""

    exit_code = ExitCode.NOT_READY


class ModelNotFound(TfsopsError):
    """The server does not know this model (or version / label)."""

    exit_code = ExitCode.FAILED
