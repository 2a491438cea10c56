"""Which deployment a command acts on, and what the container may see (issue 12 rows 1, 2, 3, 13, 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tfsops.cli.app import app
from tfsops.cli.argv import hoist_global_options

runner = CliRunner()


def run(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = runner.invoke(app, hoist_global_options(["--json", *args]))
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def one_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Path:
    """A state folder holding exactly one deployment, and an empty working folder."""
    state = tmp_path / "state"
    monkeypatch.setenv("TFSOPS_STATE_DIR", str(state))
    # Before the fix the commands below reached the engine: an unreachable one shows it (exit 4).
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/tfsops-exposure.sock")
    deployment = state / "only"
    deployment.mkdir(parents=True)
    (deployment / "tfsops.yaml").write_text(
        f"name: only\nmodels:\n  - {{name: hp2, path: {models_dir / 'half_plus_two'}}}\n"
    )
    (deployment / "deployment.json").write_text(json.dumps({"name": "only"}))
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    return deployment


@pytest.mark.parametrize(
    "argv",
    [
        ["down"],
        ["down", "--volumes"],
        ["apply"],
        ["deploy"],
        ["plan"],
        ["health"],
        ["logs"],
        ["validate"],
        ["render"],
        ["reload"],
        ["rollback"],
        ["revisions"],
        ["remove-model", "hp2", "--yes"],
        ["add-model", "x", "--path", "/nonexistent"],
        ["publish", "hp2", "/nonexistent"],
        ["promote", "hp2", "--label", "stable", "--version", "1"],
        ["predict", "hp2", "--instances", "[1.0]"],
        ["commit", "only", "--tag", "x:1"],
        ["watch", "--once"],
    ],
)
def test_no_spec_and_no_deployment_never_falls_back_to_the_only_one(
    one_deployment: Path, argv: list[str]
) -> None:
    code, envelope = run(*argv)
    assert code == 3, envelope
    error = envelope["error"]
    assert "no deployment given" in error["message"]
    assert "-f SPEC" in error["hint"] and "-d NAME" in error["hint"]
    assert "only" in error["hint"]  # the deployments there are, to pick from
    assert (one_deployment / "tfsops.yaml").exists()  # nothing removed
