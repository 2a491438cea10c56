"""Check every model folder of a spec and derive what a healthy server must show."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tfsops.errors import InvalidInput, problems_message
from tfsops.ports import ExpectedModel
from tfsops.spec.model import DeploymentSpec, ModelSpec

if TYPE_CHECKING:
    from tfsops.savedmodel.validate import ModelDirReport


def check_models(
    spec: DeploymentSpec, names: Sequence[str] | None = None
) -> dict[str, ModelDirReport]:
    """Validate each model folder (versions, saved_model.pb, serve tag, labels).

    Raises one ``InvalidInput`` (exit 3) listing every problem of every model;
    returns name -> report for the rest of the run.
    """
    from tfsops.savedmodel.validate import check_model_dir

    reports = {}
    problems: list[str] = []
    for model in spec.models:
        if names is not None and model.name not in names:
            continue
        report = check_model_dir(
            model.path, model.policy_kind, dict(model.labels), what=f"models.{model.name}.path"
        )
        reports[model.name] = report
        problems += list(report.problems)
        if report.ok:
            from tfsops.smoke_spec import smoke_problems

            problems += smoke_problems(model, report)
    if problems:
        raise InvalidInput(
            problems_message(problems, "with model folders"),
            hint="run `tfsops inspect PATH` to see what TF Serving would find",
            details={"problems": problems},
        )
    return reports


def expected_model(model: ModelSpec, served: Sequence[int], smoke: bool = True) -> ExpectedModel:
    from tfsops.smoke_spec import smoke_plan

    return ExpectedModel(
        name=model.name,
        versions=frozenset(served),
        labels=dict(model.labels),
        smoke=smoke_plan(model) if smoke else None,
    )


def expected_models(
    spec: DeploymentSpec, names: Sequence[str] | None = None, *, smoke: bool = True
) -> list[ExpectedModel]:
    """What must be AVAILABLE (and answer its smoke requests, unless ``smoke`` is False):
    the versions each policy selects from the folder right now."""
    from tfsops.savedmodel.versions import served_versions

    out = []
    for model in spec.models:
        if names is not None and model.name not in names:
            continue
        try:
            selection = served_versions(model.path, model.policy_kind)
        except InvalidInput:
            selection = None
        out.append(expected_model(model, selection.served if selection else (), smoke))
    return out
