"""From a model's ``smoke:`` entries in the spec to a ``SmokePlan``, and their checks.

Checked before anything changes (with the model folders): a smoke file that
is not JSON, a request naming an input the signature lacks or giving a value
of the wrong dtype is invalid input (exit 3) naming the file and the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfsops.errors import InvalidInput
from tfsops.smoke import SmokePlan, SmokeRequest, request_problems

if TYPE_CHECKING:
    from tfsops.savedmodel.validate import ModelDirReport
    from tfsops.spec.model import ModelSpec


def _load(value: Any, what: str) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        from tfsops.predict import read_json_value

        return read_json_value(value, option=what)
    return value


def smoke_requests(model: ModelSpec) -> tuple[SmokeRequest, ...]:
    """The model's ``smoke:`` requests with their files read; ``InvalidInput`` if one is bad."""
    if not model.smoke:
        return ()
    out = []
    for i, entry in enumerate(model.smoke):
        what = f"models.{model.name}.smoke[{i}]"
        source = entry.request[1:] if isinstance(entry.request, str) else what
        body = _load(entry.request, f"{what}.request")
        expect = _load(entry.expect, f"{what}.expect")
        problems = request_problems(body, None, source)
        if problems:
            raise InvalidInput(problems[0], details={"problems": problems})
        out.append(SmokeRequest(body, source=source, expect=expect, tolerance=entry.tolerance))
    return tuple(out)


def smoke_plan(model: ModelSpec) -> SmokePlan | None:
    """None when the model's smoke requests are switched off (``smoke: false``)."""
    if model.smoke is False:
        return None
    return SmokePlan(model.path, smoke_requests(model))


def smoke_problems(model: ModelSpec, report: ModelDirReport) -> list[str]:
    """Why the model's smoke requests do not fit the signatures of its served versions."""
    from tfsops.savedmodel.inspect import inspect_version
    from tfsops.savedmodel.validate import DEFAULT_TAGS

    try:
        requests = smoke_requests(model)
    except InvalidInput as exc:
        return [exc.message]
    problems: list[str] = []
    for check in report.versions:
        if not check.served or not requests:
            continue
        try:
            meta = inspect_version(check.path, check.version).meta_graph(DEFAULT_TAGS)
        except InvalidInput as exc:
            problems.append(exc.message)
            continue
        for request in requests:
            signature = meta.signature(request.signature) if meta else None
            if signature is None or signature.internal:
                problems.append(
                    f"{request.source}: signature_name {request.signature!r} is not a signature "
                    f"of version {check.version}"
                )
                continue
            for problem in request_problems(request.body, signature, request.source):
                if problem not in problems:
                    problems.append(problem)
    return problems
