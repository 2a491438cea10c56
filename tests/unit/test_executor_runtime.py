"""The executor's create / recreate / start / hot-reload decisions on the in-memory engine.

``FakeRuntime`` (the ``ContainerRuntime`` port) and ``MountedServing`` stand in
for the engine and the server: no Docker. Interruptions (Ctrl-C) are injected
at each engine call and at each poll of the readiness wait.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.fakes_runtime import FakeRuntime, MountedServing
from tfsops.errors import OperationFailed
from tfsops.executor import ApplyOptions, ApplyResult, Executor
from tfsops.plan.container import LABEL_CONFIG_HASH
from tfsops.plan.diff import CREATE, HOT_RELOAD, NOOP, RECREATE, START
from tfsops.recovery import REPAIR, DeployInterrupted
from tfsops.revisions import list_revisions
from tfsops.services import Services
from tfsops.spec.load import load_spec
from tfsops.state import DeploymentState

NAME = "unit"
CONTAINER = f"tfsops-{NAME}"
IMAGE = "tfsops-double:latest"


@dataclass
class World:
    """One deployment's outside world: spec file, engine, server, state folder."""

    root: Path
    runtime: FakeRuntime
    serving: MountedServing

    @property
    def spec_path(self) -> Path:
        return self.root / "tfsops.yaml"

    @property
    def state(self) -> DeploymentState:
        return DeploymentState.for_name(NAME)

    def write_spec(self, models: dict[str, str], **extra: Any) -> None:
        doc: dict[str, Any] = {
            "name": NAME,
            "image": IMAGE,
            "models": [{"name": n, "path": f"models/{p}"} for n, p in models.items()],
            "model_roots": ["models"],  # models added later are hot: their root is mounted
            **extra,
        }
        self.spec_path.write_text(json.dumps(doc) + "\n")

    def executor(self) -> Executor:
        services = Services(
            runtime_factory=lambda: self.runtime,  # type: ignore[arg-type,return-value]
            serving_factory=lambda _ep: self.serving,
            admin_factory=lambda _ep: self.serving,
            clock=self.runtime.clock(),
        )
        return Executor(services)

    def apply(self, **opts: Any) -> ApplyResult:
        spec = load_spec(self.spec_path)
        return self.executor().apply(
            spec, self.spec_path, ApplyOptions(timeout=30, lock_timeout=1, **opts)
        )

    def plan_action(self) -> str:
        return self.executor().plan(load_spec(self.spec_path)).action

    def desired_hash(self) -> str:
        executor = self.executor()
        return executor.desired(load_spec(self.spec_path))[1].config_hash

    def assert_converged(self) -> None:
        """One container, named as the deployment's, running the spec, every model served."""
        mine = self.runtime.of(NAME)
        assert [c.name for c in mine] == [CONTAINER], [(c.name, c.status) for c in mine]
        assert mine[0].status == "running"
        assert mine[0].labels[LABEL_CONFIG_HASH] == self.desired_hash()
        assert (self.state.config_dir / "models.config").is_file()
        assert self.plan_action() == NOOP

    def assert_running_containers_have_their_files(self) -> None:
        for c in self.runtime.of(NAME):
            if c.status in ("running", "restarting"):
                config = c.host_file("/etc/tfsops/models.config")
                assert config is not None and config.is_file(), (c.name, c.status)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> World:
    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "work"
    (root / "models").mkdir(parents=True)
    for name in ("half_plus_two", "half_plus_three"):
        shutil.copytree(models_dir / name, root / "models" / name)
    serving = MountedServing(allow_labels_for_unavailable=True)
    runtime = FakeRuntime(serving, images={IMAGE: {}}, boot_ticks=3)
    w = World(root, runtime, serving)
    w.write_spec({"a": "half_plus_two"})
    return w


def test_create_then_noop_then_hot_reload(world: World) -> None:
    result = world.apply()
    assert result.plan.action == CREATE
    assert result.health is not None and result.health.ok
    world.assert_converged()
    assert world.apply().plan.action == NOOP
    world.write_spec({"a": "half_plus_two", "b": "half_plus_three"})
    assert world.apply().plan.action == HOT_RELOAD
    assert set(world.serving.served_list()) == {"a", "b"}
    assert [c.start_count for c in world.runtime.of(NAME)] == [1]  # hot: never restarted
    world.assert_converged()


def test_recreate_replaces_the_container_and_keeps_one(world: World) -> None:
    world.apply()
    old = world.runtime.of(NAME)[0].id
    world.write_spec({"a": "half_plus_two"}, server_args={"tensorflow_intra_op_parallelism": 2})
    assert world.apply().plan.action == RECREATE
    world.assert_converged()
    assert old in world.runtime.removed_ids


def test_failed_recreate_restarts_the_old_container(world: World) -> None:
    world.apply()
    old = world.runtime.of(NAME)[0].id
    world.write_spec({"a": "half_plus_two"}, server_args={"tensorflow_intra_op_parallelism": 2})
    world.runtime.fail_next("start", OperationFailed("starting the container: boom"))
    with pytest.raises(OperationFailed):
        world.apply()
    assert [(c.id, c.status) for c in world.runtime.of(NAME)] == [(old, "running")]
    world.write_spec({"a": "half_plus_two"})
    world.assert_converged()


# ---- row 4: Ctrl-C during a first deploy --------------------------------------------------


def test_ctrl_c_during_first_deploy_keeps_the_mounted_files(world: World) -> None:
    world.runtime.interrupt_at_poll = 2  # while the server is still loading
    with pytest.raises(KeyboardInterrupt) as info:
        world.apply()
    assert isinstance(info.value, DeployInterrupted)
    assert CONTAINER in info.value.message and "running" in info.value.message
    (container,) = world.runtime.of(NAME)
    assert container.status == "running"
    assert (world.state.config_dir / "models.config").is_file()  # was deleted before the fix
    # The server restarts (its policy) and comes back on the same files, not a crash loop.
    world.runtime.crash(container.id)
    assert container.status == "running"
    result = world.apply()
    assert result.health is not None and result.health.ok
    world.assert_converged()


def test_apply_repairs_a_crash_looping_container(world: World) -> None:
    """A container left by an older run without its models.config crash-loops: apply
    writes the files again and restarts it, instead of failing at the first restart."""
    world.apply()
    (container,) = world.runtime.of(NAME)
    (world.state.config_dir / "models.config").unlink()
    world.runtime.crash(container.id)
    assert container.status == "restarting"
    assert world.plan_action() == START
    result = world.apply()
    assert result.plan.action == START
    assert result.health is not None and result.health.ok
    assert container.status == "running"
    world.assert_converged()


def test_a_container_that_restarted_before_can_be_started_again(world: World) -> None:
    """Restarts before this run are history, not a crash during this wait."""
    world.apply()
    (container,) = world.runtime.of(NAME)
    world.runtime.crash(container.id)
    world.runtime.crash(container.id)
    world.runtime.stop(container.id)
    assert container.restart_count == 2
    result = world.apply()
    assert result.plan.action == START
    assert result.health is not None and result.health.ok


# ---- row 5: Ctrl-C during a recreate ------------------------------------------------------


def _interrupted_recreate(world: World) -> DeployInterrupted:
    world.apply()
    world.write_spec({"a": "half_plus_two"}, server_args={"tensorflow_intra_op_parallelism": 2})
    world.runtime.interrupt_at_poll = 2
    with pytest.raises(KeyboardInterrupt) as info:
        world.apply()
    assert isinstance(info.value, DeployInterrupted)
    return info.value


def test_ctrl_c_during_recreate_names_both_containers(world: World) -> None:
    exc = _interrupted_recreate(world)
    assert f"{CONTAINER}-next" in exc.message and f"{CONTAINER} (current" in exc.message
    states = {c.name: c.status for c in world.runtime.of(NAME)}
    assert states == {CONTAINER: "exited", f"{CONTAINER}-next": "running"}
    assert f"{CONTAINER}-next" in " ".join(world.executor().plan(load_spec(world.spec_path)).reasons)
    world.assert_running_containers_have_their_files()


def test_apply_finishes_an_interrupted_swap(world: World) -> None:
    _interrupted_recreate(world)
    result = world.apply()
    assert result.health is not None and result.health.ok
    world.assert_converged()


def test_apply_undoes_an_interrupted_swap_when_the_spec_went_back(world: World) -> None:
    _interrupted_recreate(world)
    world.write_spec({"a": "half_plus_two"})
    result = world.apply()
    assert result.plan.action == START
    world.assert_converged()


def test_one_down_removes_both_containers_of_an_interrupted_swap(world: World) -> None:
    _interrupted_recreate(world)
    removed = world.executor().down(NAME, volumes=False, lock_timeout=1)
    assert world.runtime.of(NAME) == []
    assert len(removed["also_removed"]) == 1


# ---- Ctrl-C at every engine call of create and recreate ---------------------------------

CALLS = ["inspect", "create", "start", "stop", "remove", "rename", "port_holders", "find"]


def _first_run(world: World) -> None:
    """Nothing deployed yet: the apply under test creates."""


def _recreate_setup(world: World) -> None:
    world.apply()
    world.write_spec({"a": "half_plus_two"}, server_args={"tensorflow_intra_op_parallelism": 2})


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("method", CALLS)
@pytest.mark.parametrize("setup", [_first_run, _recreate_setup], ids=["create", "recreate"])
def test_ctrl_c_at_each_engine_call_then_apply_and_down_converge(
    world: World, setup: Callable[[World], None], method: str, when: str
) -> None:
    setup(world)
    created_before = set(world.runtime.created_ids)
    inject = world.runtime.fail_next if when == "before" else world.runtime.after_next
    inject(method, KeyboardInterrupt())
    with contextlib.suppress(KeyboardInterrupt):
        world.apply()
    # Nothing of someone else's was touched, and what runs keeps its files.
    assert set(world.runtime.removed_ids) <= set(world.runtime.created_ids)
    world.assert_running_containers_have_their_files()
    world.runtime._before.clear()
    world.runtime._after.clear()
    result = world.apply()
    assert result.health is None or result.health.ok
    world.assert_converged()
    assert created_before <= set(world.runtime.created_ids)
    world.executor().down(NAME, volumes=False, lock_timeout=1)
    assert world.runtime.of(NAME) == []


def test_ctrl_c_that_cuts_the_create_call_short_keeps_the_files(world: World) -> None:
    """The engine made the container, but Ctrl-C came before the SDK call returned its id:
    the container exists and mounts the config folder, so its files stay."""
    world.runtime.after_next("create", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt) as info:
        world.apply()
    assert isinstance(info.value, DeployInterrupted)
    [container] = world.runtime.of(NAME)
    assert container.name in info.value.message
    config = container.host_file("/etc/tfsops/models.config")
    assert config is not None and config.is_file()
    world.runtime._after.clear()
    world.apply()
    world.assert_converged()


@pytest.mark.parametrize("poll", [1, 2, 3])  # the recreate's wait takes 3 polls here
def test_ctrl_c_at_each_poll_of_the_wait(world: World, poll: int) -> None:
    _recreate_setup(world)
    world.runtime.interrupt_at_poll = poll
    with pytest.raises(KeyboardInterrupt) as info:
        world.apply()
    assert isinstance(info.value, DeployInterrupted)
    world.assert_running_containers_have_their_files()
    world.apply()
    world.assert_converged()


# ---- row 15: a revision folder without meta.json ------------------------------------------


def test_a_revision_folder_without_meta_is_skipped(world: World) -> None:
    world.apply()
    assert [r.number for r in list_revisions(world.state)] == [1]
    orphan = world.state.revisions_dir / "000002"  # a run killed between mkdir and write
    orphan.mkdir()
    (orphan / "spec.yaml").write_text("half")
    world.write_spec({"a": "half_plus_two"}, server_args={"tensorflow_intra_op_parallelism": 2})
    result = world.apply()  # FileExistsError (exit 1) after the container was replaced, before
    assert result.plan.action == RECREATE
    assert result.revision == 3
    assert [r.number for r in list_revisions(world.state)] == [1, 3]
    world.write_spec({"a": "half_plus_two", "b": "half_plus_three"})
    assert world.apply().revision == 4
    assert not [p for p in world.state.revisions_dir.iterdir() if p.name.startswith(".")]


def test_a_revision_with_unreadable_meta_is_skipped(world: World) -> None:
    world.apply()
    broken = world.state.revisions_dir / "000002"
    broken.mkdir()
    (broken / "meta.json").write_text("{half")
    assert [r.number for r in list_revisions(world.state)] == [1]


# ---- row 14: a kill -9 mid-RPC leaves a pending repair that plan reports --------------------


class Killed(BaseException):
    """A kill -9 at this point: nothing after it runs (no except clause catches it)."""


def test_plan_reports_the_repair_a_killed_reload_left(world: World) -> None:
    world.apply()
    world.write_spec({"a": "half_plus_two", "b": "half_plus_three"})
    original = world.serving.reload_config

    def reload_then_die(text: str, *, timeout: float) -> None:
        original(text, timeout=timeout)
        raise Killed

    world.serving.reload_config = reload_then_die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        world.apply()
    del world.serving.reload_config
    assert set(world.serving.served_list()) == {"a", "b"}  # live, but models.config says a
    world.write_spec({"a": "half_plus_two"})  # the spec edit was never written either
    plan = world.executor().plan(load_spec(world.spec_path))
    assert plan.action == REPAIR  # "noop" before
    assert any("interrupted" in r for r in plan.reasons)
    world.apply()  # repairs
    assert set(world.serving.served_list()) == {"a"}
    assert world.plan_action() == NOOP


def test_a_reload_in_progress_is_no_pending_repair(world: World) -> None:
    """The intent of a run that still holds the lock is work in progress, not a repair."""
    from tfsops.lock import deployment_lock
    from tfsops.recovery import pending_reload_repair

    world.apply()
    intent = world.state.root / "reload-intent.json"
    intent.write_text(json.dumps({"pid": 1, "config": ""}))
    with deployment_lock(world.state.lock_path, timeout=1, purpose="add-model b"):
        assert pending_reload_repair(world.state) is None
        assert world.plan_action() == NOOP
    assert "interrupted" in (pending_reload_repair(world.state) or "")
    assert world.plan_action() == REPAIR
