"""Option callbacks: command-line values checked by ``tfsops.inputs`` while parsing.

A bad value is a usage error (exit 2, with the JSON envelope under ``--json``)
before the command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tfsops import inputs
from tfsops.errors import InvalidInput

T = TypeVar("T")


def _option(check: Callable[[Any, str], T]) -> Callable[[Any, Any, Any], Any]:
    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if value is None or getattr(ctx, "resilient_parsing", False):
            return value
        flag = (param.opts or [param.name])[0] if param is not None else "value"
        try:
            if isinstance(value, (list, tuple)):
                return type(value)(check(v, flag) for v in value)
            return check(value, flag)
        except InvalidInput as exc:
            import typer

            raise typer.BadParameter(exc.message.removeprefix(f"{flag} ")) from None

    return callback


option_seconds = _option(inputs.seconds)
option_seconds_or_zero = _option(lambda v, w: inputs.seconds(v, w, allow_zero=True))
option_version = _option(inputs.version_number)
option_positive = _option(inputs.positive_int)
option_engine_url = _option(inputs.engine_url)
option_image = _option(inputs.image_reference)
option_name = _option(inputs.name)
option_label = _option(inputs.label)
option_log_tail = _option(inputs.log_tail)
