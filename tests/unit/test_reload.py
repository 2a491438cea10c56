"""The transactional reload path against the in-memory TF Serving (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fakes import FakeServing
from tfsops.errors import InvalidInput, OperationFailed
from tfsops.plan.layout import layout_for
from tfsops.plan.render import render_models_config
from tfsops.reload import transactional_reload
from tfsops.revisions import list_revisions
from tfsops.services import Services
from tfsops.spec.load import spec_from_data
from tfsops.spec.model import DeploymentSpec
from tfsops.state import DeploymentState


def make_spec(models_dir: Path, *models: dict[str, object]) -> DeploymentSpec:
    return spec_from_data({"name": "unit", "models": list(models)}, base_dir=models_dir, source="t")


def disk_for(spec: DeploymentSpec, models_dir: Path) -> dict[str, list[int]]:
    # The fake reads versions at the container paths; map them to the host folders.
    layout = layout_for(spec)
    out = {}
    for m in spec.models:
        out[layout.base_paths[m.name]] = sorted(
            int(p.name) for p in m.path.iterdir() if p.name.isdigit()
        )
    return out


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))
    a = {"name": "a", "path": "half_plus_two"}
    spec = make_spec(models_dir, a)
    full = make_spec(
        models_dir,
        a,
        {"name": "b", "path": "half_plus_three"},
        {"name": "c", "path": "times_two_plus_one"},
    )
    fake = FakeServing(allow_labels_for_unavailable=True, disk=disk_for(full, models_dir))
    text = render_models_config(spec)
    fake.reload_config(text, timeout=5)
    fake.settle()
    state = DeploymentState.for_name("unit")
    state.ensure()
    state.write_config_files({"models.config": text})
    services = Services(
        runtime_factory=lambda: None,  # type: ignore[arg-type,return-value]
        serving_factory=lambda _ep: fake,
        admin_factory=lambda _ep: fake,
        clock=fake.ticking_clock(),
    )
    return fake, services, state, a


def test_adding_a_model_reloads_then_writes_the_file(env, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake, services, state, a = env
    spec = make_spec(models_dir, a, {"name": "b", "path": "half_plus_three"})
    outcome = transactional_reload(spec, "spec text", services, state)
    assert outcome.changed and [m.name for m in outcome.diff.added] == ["b"]
    assert outcome.health is not None and outcome.health.ok
    assert state.applied_file("models.config") == render_models_config(spec)
    assert fake.config_text == render_models_config(spec)
    assert [r.number for r in list_revisions(state)] == [1]
    # nothing changed: no RPC at all
    sent = len(fake.reloads)
    assert not transactional_reload(spec, "spec text", services, state).changed
    assert len(fake.reloads) == sent


def test_a_model_that_fails_to_load_is_rolled_back(env, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake, services, state, a = env
    before = state.applied_file("models.config")
    spec = make_spec(models_dir, a, {"name": "c", "path": "times_two_plus_one"})
    fake.add_model("c", [], base_path=layout_for(spec).base_paths["c"])
    fake.remove_model("c")
    fake.fail_version("c", 1, "Failed to load: truncated variables")
    with pytest.raises(OperationFailed) as info:
        transactional_reload(spec, "spec text", services, state, timeout=5)
    assert "the previous model list was restored" in info.value.message
    assert fake.config_text == before  # the last good list is live again
    assert state.applied_file("models.config") == before  # and the file never changed
    assert list_revisions(state) == []


def test_unloading_a_model_nobody_removed_is_refused(env, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake, services, state, _a = env
    spec = make_spec(models_dir, {"name": "b", "path": "half_plus_three"})
    sent = len(fake.reloads)
    with pytest.raises(InvalidInput, match="would unload a"):
        transactional_reload(spec, "t", services, state)
    assert len(fake.reloads) == sent
    transactional_reload(spec, "t", services, state, allow_remove=["a"])
    assert 'name: "a"' not in (fake.config_text or "")


def test_invalid_model_folder_is_refused_before_any_rpc(
    env, models_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    fake, services, state, a = env
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = make_spec(models_dir, a, {"name": "e", "path": str(empty)})
    sent = len(fake.reloads)
    with pytest.raises(InvalidInput, match="no numeric version"):
        transactional_reload(spec, "t", services, state)
    assert len(fake.reloads) == sent


def test_moving_a_label_loads_first_then_moves(env, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake, services, state, _a = env
    # A new model "p" serving only version 1, labelled stable.
    pinned = {
        "name": "p",
        "path": "half_plus_two",
        "policy": {"specific": [1]},
        "labels": {"stable": 1},
    }
    transactional_reload(make_spec(models_dir, pinned), "t", services, state, allow_remove=["a"])
    fake.settle()
    moved = dict(pinned, policy={"specific": [1, 2]}, labels={"stable": 2})
    outcome = transactional_reload(make_spec(models_dir, moved), "t", services, state)
    # Phase 1 kept stable on 1 (2 was not AVAILABLE yet: upstream refuses that move), phase 2 moved it.
    assert outcome.phases == ["models", "labels"]
    assert fake.label_version("p", "stable") == 2


def test_no_status_reads_before_the_reload_when_no_label_moves(env, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake, services, state, _a = env
    labelled = {"name": "a", "path": "half_plus_two", "labels": {"stable": 2}}
    transactional_reload(make_spec(models_dir, labelled), "t", services, state)
    fake.settle()
    fake.calls.clear()
    # Adding a model keeps every label where it is: the server's view is not needed.
    spec = make_spec(models_dir, labelled, {"name": "b", "path": "half_plus_three"})
    outcome = transactional_reload(spec, "t", services, state)
    first_reload = fake.calls.index(("reload_config", ""))
    assert fake.calls[:first_reload] == []
    assert outcome.phases == ["models"]
    assert fake.label_version("a", "stable") == 2
