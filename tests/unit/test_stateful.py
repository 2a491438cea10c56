"""Model-based testing: random command sequences with injected faults, on the fakes.

A hypothesis ``RuleBasedStateMachine`` drives the library (``Executor``,
``ModelOps``) against ``FakeRuntime`` + ``MountedServing`` and real SavedModel
folders: deploy, add, remove, publish, promote, reload, rollback, down, spec
edits, moving a model folder away and back, server restarts. Any step may
carry a fault: Ctrl-C at an engine call or a poll, ``kill -9`` after the
reload RPC or between two file writes (the world is frozen at the kill and
restored after the exception, as no cleanup code would have run), failed
loads, slow loads, a read-only spec or state folder.

After every step the invariants (README, Reliability) are checked:

- ``served-matches-config``: the server serves the list models.config holds,
  unless a pending repair is reported (``plan``);
- ``owns-what-it-removes``: no container or model folder tfsops did not create
  is removed;
- ``hot-is-hot``: add/remove/publish/promote/reload/rollback never restart the
  server when the spec asks for no container change;
- ``edits-kept``: a spec edit is never lost;
- ``no-crash``: a command ends with its result or a documented error (never
  exit 1), and the spec file always validates.

A check that fails because of a row of issue 12 fixed elsewhere is counted as
that row's known gap (``ENFORCED``) instead of failing the run; set the row to
True to enforce it (``TFSOPS_STATEFUL_ENFORCE_ALL=1`` enforces every row).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import tfsops.reload
import tfsops.revisions
import tfsops.state
from tests.conftest import STATEFUL_RUNS
from tests.unit.fakes_runtime import FakeRuntime, MountedServing
from tfsops.errors import ExitCode, TfsopsError
from tfsops.executor import ApplyOptions, Executor
from tfsops.modelops import ModelOps
from tfsops.plan.container import LABEL_CONFIG_HASH, ContainerPlan
from tfsops.plan.diff import parse_models_config
from tfsops.recovery import pending_reload_repair
from tfsops.services import Services
from tfsops.spec.load import load_spec
from tfsops.state import DeploymentState

# Rows of issue 12 fixed on other branches: their checks count violations until enforced.
ENFORCED = {
    "row 7": True,  # a number the server saw fail is reused by the next publish
    "row 12": True,  # a read-only spec: refuse before the change goes live
    "row 21": True,  # rollback overwrites local spec edits silently
}
ENFORCE_ALL = os.environ.get("TFSOPS_STATEFUL_ENFORCE_ALL") == "1"

SEQUENCES = int(os.environ.get("TFSOPS_STATEFUL_SEQUENCES", "200"))
NAME = "sm"
CONTAINER = f"tfsops-{NAME}"
IMAGE = "tfsops-double:latest"
POOL = {  # model name -> source folder (generated SavedModels)
    "a": "half_plus_two",
    "b": "half_plus_three",
    "c": "times_two_plus_one",
    "d": "half_plus_two",
}
RUN = "fakes"


class Killed(BaseException):
    """``kill -9`` here: raised after the world was frozen; no cleanup of it counts."""


FAULTS = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.tuples(
        st.just("interrupt"),
        st.sampled_from(["create", "start", "stop", "remove", "rename", "inspect"]),
        st.sampled_from(["before", "after"]),
    ),
    st.tuples(st.just("interrupt-poll"), st.integers(1, 4)),
    st.tuples(st.just("kill-after-rpc")),
    st.tuples(st.just("kill-write"), st.integers(1, 7)),
    st.tuples(st.just("slow-load"), st.sampled_from([4, 200])),
    st.tuples(st.just("read-only"), st.sampled_from(["spec", "state"])),
)


@dataclass
class Snapshot:
    files: Path
    containers: Any
    created: list[str]
    removed: list[str]
    serving: dict[str, Any]


class World:
    """One deployment's outside world, with the hooks faults go through."""

    def __init__(self, models_src: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tfsops-sm-"))
        self.work = self.root / "work"
        (self.work / "models").mkdir(parents=True)
        for name, src in POOL.items():
            shutil.copytree(models_src / src, self.work / "models" / name)
        self.aside = self.root / "aside"  # where a moved model folder goes
        self.aside.mkdir()
        self.serving = MountedServing(allow_labels_for_unavailable=True)
        self.runtime = FakeRuntime(self.serving, images={IMAGE: {}}, boot_ticks=2)
        # Someone else's container on the same engine: never touched.
        self.foreign = self.runtime.create(
            ContainerPlan("other", IMAGE, (), {}, (), (), {"x": "y"}, "no", None, None)
        )
        self.kill_at_write: int | None = None
        self.kill_after_rpc = False
        self.read_only: Path | None = None
        self.writes = 0
        self.snapshot: Snapshot | None = None
        self.notes: list[str] = []  # comments the user wrote into the spec
        self.user_folders = {
            p for p in (self.work / "models").rglob("*") if p.is_dir() and p.name.isdigit()
        }

    @property
    def spec_path(self) -> Path:
        return self.work / "tfsops.yaml"

    @property
    def state(self) -> DeploymentState:
        return DeploymentState.for_name(NAME)

    # -- faults --------------------------------------------------------------------

    def kill(self) -> None:
        if self.snapshot is None:
            self.snapshot = self.freeze()
        raise Killed

    def freeze(self) -> Snapshot:
        files = self.root / ".frozen"
        shutil.rmtree(files, ignore_errors=True)
        shutil.copytree(self.work, files / "work", symlinks=True)
        if self.state_root.exists():
            shutil.copytree(self.state_root, files / "state", symlinks=True)
        serving = {
            "models": copy.deepcopy(self.serving.models),
            "config_text": self.serving.config_text,
            "starting": self.serving.starting,
            "mounts": list(self.serving.mounts),
        }
        return Snapshot(
            files,
            copy.deepcopy(self.runtime.containers),
            list(self.runtime.created_ids),
            list(self.runtime.removed_ids),
            serving,
        )

    def thaw(self, snap: Snapshot) -> None:
        shutil.rmtree(self.work)
        shutil.copytree(snap.files / "work", self.work, symlinks=True)
        shutil.rmtree(self.state_root, ignore_errors=True)
        if (snap.files / "state").exists():
            shutil.copytree(snap.files / "state", self.state_root, symlinks=True)
        self.runtime.containers = snap.containers
        self.runtime.created_ids = snap.created
        self.runtime.removed_ids = snap.removed
        for key, value in snap.serving.items():
            setattr(self.serving, key, value)
        shutil.rmtree(snap.files)

    @property
    def state_root(self) -> Path:
        return self.root / "state"

    def write_hook(self, path: Path) -> None:
        """Called before each atomic write tfsops makes."""
        self.writes += 1
        if self.kill_at_write is not None and self.writes >= self.kill_at_write:
            self.kill_at_write = None
            self.kill()
        if self.read_only is not None and (
            path == self.read_only or self.read_only in path.parents
        ):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    def services(self) -> Services:
        def admin(_ep: Any) -> Any:
            return _Admin(self)

        return Services(
            runtime_factory=lambda: self.runtime,  # type: ignore[arg-type,return-value]
            serving_factory=lambda _ep: self.serving,
            admin_factory=admin,
            clock=self.runtime.clock(),
        )

    def arm(self, fault: tuple[Any, ...] | None) -> None:
        self.snapshot = None
        self.serving.load_ticks = 1
        if fault is None:
            return
        kind = fault[0]
        if kind == "interrupt":
            inject = self.runtime.fail_next if fault[2] == "before" else self.runtime.after_next
            inject(fault[1], KeyboardInterrupt())
        elif kind == "interrupt-poll":
            self.runtime.interrupt_at_poll = fault[1]
        elif kind == "kill-after-rpc":
            self.kill_after_rpc = True
        elif kind == "kill-write":
            self.writes = 0
            self.kill_at_write = fault[1]
        elif kind == "slow-load":
            self.serving.load_ticks = fault[1]
        elif kind == "read-only":
            self.read_only = self.spec_path if fault[1] == "spec" else self.state.config_dir

    def disarm(self) -> None:
        self.runtime._before.clear()
        self.runtime._after.clear()
        self.runtime.interrupt_at_poll = None
        self.kill_at_write = None
        self.kill_after_rpc = False
        self.read_only = None
        self.serving.load_ticks = 1

    # -- the spec -------------------------------------------------------------------

    def write_spec(self, models: list[str], **extra: Any) -> None:
        lines = [f"name: {NAME}", f"image: {IMAGE}", "restart: unless-stopped"]
        lines += [f"{k}: {json.dumps(v)}" for k, v in extra.items()]
        lines.append("models:")
        for m in models:
            lines += [f"  - name: {m}", f"    path: models/{m}"]
        self.spec_path.write_text("\n".join(lines) + "\n")

    def spec_models(self) -> list[str]:
        return [m.name for m in load_spec(self.spec_path).models]


class _Admin:
    """The admin RPC of the fake server, with the kill-after-RPC fault."""

    def __init__(self, world: World) -> None:
        self.world = world

    def reload_config(self, models_config_text: str, *, timeout: float) -> None:
        self.world.serving.reload_config(models_config_text, timeout=timeout)
        if self.world.kill_after_rpc:
            self.world.kill_after_rpc = False
            self.world.kill()


def _known_crash(what: str, exc: Exception) -> str | None:
    """The row of issue 12 a crash belongs to, when another branch fixes it."""
    if what == "publish" and isinstance(exc, OSError) and ".tfsops-failed-" in str(exc):
        # a failed version's number is reused; its move-aside name collides
        return "row 7"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS and str(exc.filename).endswith(".yaml"):
        return "row 12"  # the spec is written after the change went live
    return None


class DeploymentMachine(RuleBasedStateMachine):
    models_src: Path  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.world = World(self.models_src)
        self._env = os.environ.get("TFSOPS_STATE_DIR")
        os.environ["TFSOPS_STATE_DIR"] = str(self.world.state_root)
        _HOOK.world = self.world
        self.steps = 0
        self.last: dict[str, Any] = {}
        STATEFUL_RUNS[f"{RUN}:sequences"] += 1

    def teardown(self) -> None:
        _HOOK.world = None
        if self._env is None:
            os.environ.pop("TFSOPS_STATE_DIR", None)
        else:
            os.environ["TFSOPS_STATE_DIR"] = self._env
        shutil.rmtree(self.world.root, ignore_errors=True)

    # -- running a command ---------------------------------------------------------

    def opts(self, **kw: Any) -> ApplyOptions:
        """Options as the CLI builds them: the hot commands pass ``hot_only``."""
        return ApplyOptions(timeout=10, lock_timeout=1, **kw)

    def run(self, what: str, fault: tuple[Any, ...] | None, action: Callable[[], Any]) -> None:
        self.steps += 1
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        w = self.world
        before = self._observe()
        w.arm(fault)
        outcome = "ok"
        try:
            action()
        except Killed:
            outcome = "killed"
        except KeyboardInterrupt:
            outcome = "interrupted"
            assert fault is not None and fault[0].startswith("interrupt"), (what, fault)
        except TfsopsError as exc:
            outcome = f"exit {int(exc.exit_code)}"
            # exit 1 is a bug (a kill mid-unwind may surface as any error)
            unexpected = exc.exit_code == ExitCode.ERROR and w.snapshot is None
            if unexpected:
                raise AssertionError(f"{what} with {fault}: exit 1: {exc.message}") from exc
        except Exception as exc:  # exit 1: a bug, unless it is a known row's
            outcome = f"crash {type(exc).__name__}"
            gap = _known_crash(what, exc)
            if w.snapshot is None and (gap is None or ENFORCED.get(gap) or ENFORCE_ALL):
                raise
            if gap is not None:
                STATEFUL_RUNS[f"{RUN}:gap {gap}"] += 1
        finally:
            snap = w.snapshot
            w.disarm()
            if snap is not None:
                outcome = "killed"
                w.thaw(snap)
                w.snapshot = None
        self.last = {"what": what, "fault": fault, "outcome": outcome, "before": before}

    def _observe(self) -> dict[str, Any]:
        running = [c for c in self.world.runtime.of(NAME) if c.status == "running"]
        return {
            "container": (running[0].id, running[0].start_count) if len(running) == 1 else None,
            "hash": running[0].labels[LABEL_CONFIG_HASH] if len(running) == 1 else None,
            "clean": len(self.world.runtime.of(NAME)) == 1
            and pending_reload_repair(self.world.state) is None,
        }

    def executor(self) -> Executor:
        return Executor(self.world.services())

    def modelops(self) -> ModelOps:
        return ModelOps(self.world.services())

    # -- rules -----------------------------------------------------------------------

    @initialize(fault=FAULTS, roots=st.booleans())
    def deploy_first(self, fault: tuple[Any, ...] | None, roots: bool) -> None:
        # With model_roots, models added later are hot; without, adding one needs a new
        # mount, which the hot commands must refuse (exit 3) rather than restart.
        self.world.write_spec(["a"], **({"model_roots": ["models"]} if roots else {}))
        self.run("apply", fault, self._apply)

    def _apply(self) -> None:
        self.executor().apply(load_spec(self.world.spec_path), self.world.spec_path, self.opts())

    @rule(fault=FAULTS)
    def apply(self, fault: tuple[Any, ...] | None) -> None:
        self.run("apply", fault, self._apply)

    @rule(model=st.sampled_from(sorted(POOL)), fault=FAULTS)
    def add_model(self, model: str, fault: tuple[Any, ...] | None) -> None:
        path = self.world.work / "models" / model
        self.run(
            "add-model",
            fault,
            lambda: self.modelops().add_model(
                self.world.spec_path, model, path, policy=None, labels={}, opts=self.opts(hot_only="add-model")
            ),
        )

    @rule(model=st.sampled_from(sorted(POOL)), fault=FAULTS)
    def remove_model(self, model: str, fault: tuple[Any, ...] | None) -> None:
        self.run(
            "remove-model",
            fault,
            lambda: self.modelops().remove_model(self.world.spec_path, model, self.opts(hot_only="remove-model")),
        )

    @rule(model=st.sampled_from(sorted(POOL)), broken=st.booleans(), fault=FAULTS)
    def publish(self, model: str, broken: bool, fault: tuple[Any, ...] | None) -> None:
        source = self.world.work / "models" / "a" / "1"
        if not source.is_dir():
            return
        folder = self.world.work / "models" / model
        numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
        if broken:  # the next version fails to load in the server
            self.world.serving.broken[model] = {max(numbers, default=0) + 1}
        self.run(
            "publish",
            fault,
            lambda: self.modelops().publish(self.world.spec_path, model, source, None, self.opts(hot_only="publish")),
        )
        self.world.serving.broken.pop(model, None)

    @rule(model=st.sampled_from(sorted(POOL)), version=st.integers(1, 3), fault=FAULTS)
    def promote(self, model: str, version: int, fault: tuple[Any, ...] | None) -> None:
        self.run(
            "promote",
            fault,
            lambda: self.modelops().promote(
                self.world.spec_path, model, "stable", version, self.opts(hot_only="promote")
            ),
        )

    @rule(fault=FAULTS)
    def reload(self, fault: tuple[Any, ...] | None) -> None:
        self.run("reload", fault, lambda: self.modelops().reload(self.world.spec_path, self.opts(hot_only="reload")))

    @rule(fault=FAULTS)
    def rollback(self, fault: tuple[Any, ...] | None) -> None:
        self.run(
            "rollback",
            fault,
            lambda: self.modelops().rollback(self.world.spec_path, None, self.opts(hot_only="rollback")),
        )

    @rule(fault=FAULTS, volumes=st.booleans())
    def down(self, fault: tuple[Any, ...] | None, volumes: bool) -> None:
        self.run(
            "down", fault, lambda: self.executor().down(NAME, volumes=volumes, lock_timeout=1)
        )

    @rule(fault=FAULTS)
    def first_deploy(self, fault: tuple[Any, ...] | None) -> None:
        """Everything removed (`down --volumes`), then deployed again."""
        with contextlib.suppress(TfsopsError):
            self.executor().down(NAME, volumes=True, lock_timeout=1)
        self.run("apply", fault, self._apply)

    @rule(fault=FAULTS)
    def change_flags(self, fault: tuple[Any, ...] | None) -> None:
        """A server flag changes in the spec and is applied: a recreate."""
        text = self.world.spec_path.read_text()
        if "server_args" in text:
            text = "".join(line for line in text.splitlines(keepends=True) if "server_args" not in line)
        else:
            text = text.replace(
                "models:\n", "server_args: {tensorflow_intra_op_parallelism: 2}\nmodels:\n", 1
            )
        self.world.spec_path.write_text(text)
        self.run("apply", fault, self._apply)

    @rule(kind=st.sampled_from(["note", "cold", "uncold"]))
    def edit_spec(self, kind: str) -> None:
        """The user edits the spec by hand (no tfsops run)."""
        self.steps += 1
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        text = self.world.spec_path.read_text()
        if kind == "note":
            note = f"# note {self.steps}"
            self.world.notes.append(note)
            text += note + "\n"
        elif kind == "cold" and "server_args" not in text:
            text = text.replace(
                "models:\n", "server_args: {tensorflow_intra_op_parallelism: 2}\nmodels:\n", 1
            )
        elif kind == "uncold":
            text = "".join(
                line for line in text.splitlines(keepends=True) if "server_args" not in line
            )
        self.world.spec_path.write_text(text)
        self.last = {"what": f"edit {kind}", "fault": None, "outcome": "ok", "before": {}}

    @rule(model=st.sampled_from(sorted(POOL)))
    def move_folder(self, model: str) -> None:
        """A model folder moves away (or comes back)."""
        self.steps += 1
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        here, there = self.world.work / "models" / model, self.world.aside / model
        if here.exists():
            here.rename(there)
        elif there.exists():
            there.rename(here)
        self.last = {"what": f"move {model}", "fault": None, "outcome": "ok", "before": {}}

    @precondition(lambda self: any(c.status == "running" for c in self.world.runtime.of(NAME)))
    @rule()
    def restart_server(self) -> None:
        """The server process dies; its restart policy brings it back."""
        self.steps += 1
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        for c in self.world.runtime.of(NAME):
            if c.status == "running":
                self.world.runtime.crash(c.id)
        for _ in range(5):
            self.world.serving.tick()
            self.world.runtime.tick()
        self.last = {"what": "restart", "fault": None, "outcome": "ok", "before": {}}

    # -- invariants ------------------------------------------------------------------

    def check(self, gap: str | None, ok: bool, message: str) -> None:
        if ok:
            return
        if gap is not None and not (ENFORCED.get(gap) or ENFORCE_ALL):
            STATEFUL_RUNS[f"{RUN}:gap {gap}"] += 1
            return
        raise AssertionError(f"{message} (after {self.last})")

    @invariant()
    def served_matches_config(self) -> None:
        w = self.world
        running = [c for c in w.runtime.of(NAME) if c.status == "running" and c.booting == 0]
        if len(running) != 1 or w.serving.starting:
            return
        config = w.state.applied_file("models.config")
        if config is None:
            return
        on_file = {m.name: m.base_path for m in parse_models_config(config)}
        served = {n: m.base_path for n, m in w.serving.models.items() if m.configured}
        if served == on_file:
            return
        pending = False  # reported where users look: `tfsops plan`
        with contextlib.suppress(TfsopsError, OSError):
            plan = self.executor().plan(load_spec(w.spec_path))
            pending = plan.action == "repair" or any("interrupted" in r for r in plan.reasons)
        gap = "row 12" if (self.last.get("fault") or ("",))[0] == "read-only" else None
        self.check(
            gap,
            pending,
            f"served {sorted(served)} but models.config holds {sorted(on_file)}, "
            "and no pending repair is reported",
        )

    @invariant()
    def running_containers_keep_their_files(self) -> None:
        """A container that runs (or restarts by its policy) finds models.config on restart."""
        for c in self.world.runtime.of(NAME):
            if c.status in ("running", "restarting"):
                config = c.host_file("/etc/tfsops/models.config")
                assert config is not None and config.is_file(), (
                    f"{c.name} ({c.status}) lost its models.config (after {self.last})"
                )

    @invariant()
    def fault_free_apply_converges(self) -> None:
        """`apply` without a fault ends with one container running the spec (or exit 3)."""
        last = self.last
        if last.get("what") != "apply" or last.get("fault") is not None:
            return
        assert last["outcome"] in ("ok", "exit 3"), f"apply failed: {last}"
        if last["outcome"] != "ok":
            return
        mine = self.world.runtime.of(NAME)
        assert [(c.name, c.status) for c in mine] == [(CONTAINER, "running")], mine
        desired = self.executor().desired(load_spec(self.world.spec_path))[1].config_hash
        assert mine[0].labels[LABEL_CONFIG_HASH] == desired

    @invariant()
    def owns_what_it_removes(self) -> None:
        w = self.world
        assert w.foreign in w.runtime.containers, "someone else's container was removed"
        assert set(w.runtime.removed_ids) <= set(w.runtime.created_ids)
        for folder in w.user_folders:
            moved = w.aside / folder.relative_to(w.work / "models")
            assert folder.is_dir() or moved.is_dir(), f"{folder} was removed"

    @invariant()
    def hot_is_hot(self) -> None:
        last = self.last
        hot = {"add-model", "remove-model", "publish", "promote", "reload", "rollback"}
        before = last.get("before") or {}
        if last.get("what") not in hot or not before.get("clean") or not before.get("container"):
            return
        if last["outcome"] != "ok":
            return
        try:
            desired = self.executor().desired(load_spec(self.world.spec_path))[1].config_hash
        except (TfsopsError, OSError):
            return
        if desired != before["hash"]:
            return  # the spec asks for a new container (a cold edit was pending)
        cid, starts = before["container"]
        now = self.world.runtime.containers.get(cid)
        assert now is not None and now.status == "running", f"{last['what']} replaced the server"
        assert now.start_count == starts, f"{last['what']} restarted the server"

    @invariant()
    def edits_kept(self) -> None:
        text = self.world.spec_path.read_text()
        lost = [n for n in self.world.notes if n not in text]
        if lost:
            gap = "row 21" if self.last.get("what") == "rollback" else None
            self.check(gap, False, f"spec edits lost: {lost}")
            self.world.notes = [n for n in self.world.notes if n in text]

    @invariant()
    def spec_validates(self) -> None:
        load_spec(self.world.spec_path)  # raises on an invalid spec


class _WriteHook:
    """Every atomic write tfsops makes goes through the current world's fault hook."""

    world: World | None = None

    def __init__(self) -> None:
        self.original = tfsops.state.atomic_write

    def __call__(self, path: Path, text: str, mode: int = 0o644) -> None:
        if self.world is not None:
            self.world.write_hook(Path(path))
        self.original(path, text, mode)


_HOOK = _WriteHook()


def _hooked_access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
    """``os.access`` as a read-only mount answers it: no W_OK under the read-only path."""
    world = _HOOK.world
    if world is not None and world.read_only is not None and mode & os.W_OK:
        where = Path(os.fspath(path)).resolve()
        if where == world.read_only or world.read_only in where.parents:
            return False
    return _REAL_ACCESS(path, mode, *args, **kwargs)


_REAL_ACCESS = os.access


@pytest.fixture
def write_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[_WriteHook]:
    for module in (tfsops.state, tfsops.reload, tfsops.revisions):
        monkeypatch.setattr(module, "atomic_write", _HOOK)
    # A read-only fault is a read-only file system: writes fail and access() says so.
    monkeypatch.setattr(os, "access", _hooked_access)
    yield _HOOK
    _HOOK.world = None


def test_random_command_sequences_keep_the_invariants(
    models_dir: Path, write_hook: _WriteHook
) -> None:
    DeploymentMachine.models_src = models_dir
    run_state_machine_as_test(
        DeploymentMachine,
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate] if os.environ.get("TFSOPS_STATEFUL_NO_SHRINK") else list(Phase),
        ),
    )
    assert STATEFUL_RUNS[f"{RUN}:sequences"] >= SEQUENCES
