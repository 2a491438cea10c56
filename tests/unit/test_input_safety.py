"""User input that reaches a path, a URL, a YAML document or a number, and the spec edits
and publishes that must not lose or break anything (issue 12's rows, on fakes)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.fakes import FakeServing
from tfsops import inputs
from tfsops.errors import ExitCode, InvalidInput, OperationFailed, TfsopsError
from tfsops.executor import ApplyOptions, Executor
from tfsops.modelops import ModelOps
from tfsops.plan.layout import layout_for
from tfsops.plan.render import render_models_config
from tfsops.ports import END, ContainerInfo
from tfsops.reload import transactional_reload
from tfsops.services import Services
from tfsops.spec.load import load_spec, spec_from_data
from tfsops.spec.model import DeploymentSpec
from tfsops.state import DeploymentState

ROOT = Path(__file__).resolve().parents[2]


# ---- the validation layer ------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 2**63, 10**20, True])
def test_versions_outside_int64_are_refused(value: int) -> None:
    with pytest.raises(InvalidInput, match="whole number from 0"):
        inputs.version_number(value)


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, -math.inf, 1e30])
def test_timeouts_must_be_finite_and_positive(value: float) -> None:
    with pytest.raises(InvalidInput):
        inputs.seconds(value)


@pytest.mark.parametrize(
    "url",
    ["bogus", "tcp://", "tcp://host:99999", "tcp://host:port", "unix://", "ssh://", "ftp://h", ""],
)
def test_malformed_engine_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="not a Docker engine URL"):
        inputs.engine_url(url)


@pytest.mark.parametrize(
    "url", ["unix:///var/run/docker.sock", "tcp://10.0.0.5:2376", "ssh://me@host", "ssh://h:22"]
)
def test_engine_urls_accepted(url: str) -> None:
    assert inputs.engine_url(url) == url


@pytest.mark.parametrize("tag", ["Bad/UPPER", "a b", "", "x:", "-x", "my/img:" + "t" * 200])
def test_image_references_docker_refuses_are_refused(tag: str) -> None:
    with pytest.raises(InvalidInput, match="not an image reference"):
        inputs.image_reference(tag)


@pytest.mark.parametrize("tag", ["my/serving:1.0", "localhost:5000/a/b:v2", "img"])
def test_image_references_accepted(tag: str) -> None:
    assert inputs.image_reference(tag) == tag


def test_a_spec_that_is_not_utf8_is_exit_3(tmp_path: Path) -> None:
    from tfsops.spec.edit import edit_spec

    spec = tmp_path / "tfsops.yaml"
    spec.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        inputs.text_file(spec, "spec file")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        edit_spec(spec, lambda _data: None)


def test_json_output_never_holds_bare_nan() -> None:
    import io

    from tfsops.cli.output import dump_json

    out = io.StringIO()
    dump_json({"predictions": [math.nan, math.inf, -math.inf, 1.5]}, out)

    def refuse(token: str) -> None:
        raise ValueError(f"bare {token} in JSON output")

    assert json.loads(out.getvalue(), parse_constant=refuse) == {
        "predictions": ["NaN", "Infinity", "-Infinity", 1.5]
    }


# ---- the command line ------------------------------------------------------------------


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TFSOPS_STATE_DIR=str(cwd or ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tfsops", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--json", "nosuchcmd"], "nosuchcmd"),
        (["health", "--bogus", "--json"], "health"),
        (["--json", "predict", "m", "--timeout", "0"], "predict"),
        (["--json", "predict", "m", "--timeout", "nan"], "predict"),
        (["--json", "publish", "m", "src", "--version", "99999999999999999999"], "publish"),
        (["--json", "publish", "m", "src", "--version=-1"], "publish"),
        (["--json", "--docker-host", "bogus", "status"], "status"),
        (["--json", "add-model", "m", "--path", "p", "--lock-timeout", "-3"], "add-model"),
    ],
)
def test_usage_errors_under_json_print_one_envelope(argv: list[str], command: str) -> None:
    proc = _cli(*argv)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    envelope = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert envelope["command"] == command
    assert envelope["exit_code"] == 2 and envelope["ok"] is False
    assert envelope["error"]["type"] == "UsageError" and envelope["error"]["message"]
    assert "Traceback" not in proc.stderr


def test_a_malformed_docker_host_variable_is_exit_3(tmp_path: Path) -> None:
    env_host = "tcp://:99999"
    proc = subprocess.run(
        [sys.executable, "-m", "tfsops", "--json", "doctor"],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(ROOT), DOCKER_HOST=env_host),
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == ExitCode.INVALID, proc.stderr
    assert "DOCKER_HOST" in json.loads(proc.stdout)["error"]["message"]


def test_init_with_a_bad_name_keeps_the_existing_spec(tmp_path: Path) -> None:
    spec = tmp_path / "tfsops.yaml"
    spec.write_text("name: mine  # my comments\n")
    for args in (["--name", "bad name"], ["--name", "x\nimage: evil"], ["--image", "Bad/UPPER"]):
        proc = _cli("--json", "init", "--force", *args, cwd=tmp_path)
        assert proc.returncode == ExitCode.INVALID, proc.stderr
        assert spec.read_text() == "name: mine  # my comments\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfsops.yaml"]


def test_init_quotes_a_model_path_yaml_would_misread(tmp_path: Path, models_dir: Path) -> None:
    odd = tmp_path / "a #b: c"
    shutil.copytree(models_dir / "half_plus_two", odd)
    proc = _cli("init", "--model-path", str(odd), "--model-name", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_spec(tmp_path / "tfsops.yaml").models[0].path == odd


# ---- a deployment on the fakes ---------------------------------------------------------


class RunningContainer:
    """The part of the container runtime a hot change reads: the one running container."""

    def __init__(self) -> None:
        self.info: ContainerInfo | None = None

    def find(self, name: str) -> ContainerInfo | None:
        return self.info if self.info is not None and self.info.name.endswith(name) else None

    def inspect(self, name: str) -> ContainerInfo | None:
        return self.info if self.info is not None and self.info.name == name else None

    def close(self) -> None:
        pass


class RecordingAdmin:
    """The fake server's admin port, recording each reload's deadline; ``during`` runs
    inside the RPC (a user editing files while tfsops waits)."""

    def __init__(self, fake: FakeServing) -> None:
        self.fake = fake
        self.deadlines: list[float] = []
        self.during: Any = None

    def reload_config(self, text: str, *, timeout: float) -> None:
        self.deadlines.append(timeout)
        if self.during is not None:
            self.during()
        self.fake.reload_config(text, timeout=timeout)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path):  # type: ignore[no-untyped-def]
    """A running deployment of model ``a`` (half_plus_two) with a spec file in ``tmp_path``."""
    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))
    models = tmp_path / "models"
    for folder in ("half_plus_two", "half_plus_three", "times_two_plus_one"):
        shutil.copytree(models_dir / folder, models / folder)
    spec_path = tmp_path / "tfsops.yaml"
    spec_path.write_text(
        "name: unit  # comment kept\nmodel_roots: [./models]\nmodels:\n"
        "  - name: a\n    path: ./models/half_plus_two\n"
    )
    spec = load_spec(spec_path)
    fake = FakeServing(allow_labels_for_unavailable=True)
    admin = RecordingAdmin(fake)
    runtime = RunningContainer()
    services = Services(
        runtime_factory=lambda: runtime,  # type: ignore[arg-type,return-value]
        serving_factory=lambda _ep: fake,
        admin_factory=lambda _ep: admin,
        clock=fake.ticking_clock(),
    )
    _sync_disk(fake, spec)
    text = render_models_config(spec)
    fake.reload_config(text, timeout=5)
    fake.settle()
    state = DeploymentState.for_name("unit")
    state.ensure()
    state.write_config_files({"models.config": text})
    plan = Executor(services).desired(spec)[1]
    runtime.info = ContainerInfo(
        id="c1", name=plan.name, status="running", image=plan.image, labels=plan.labels, ports=()
    )
    return spec_path, fake, admin, services, state


def _sync_disk(fake: FakeServing, spec: DeploymentSpec) -> None:
    """The fake reads versions at container paths: map them to the host folders."""
    layout = layout_for(spec)
    for m in spec.models:
        fake.disk[layout.base_paths[m.name]] = sorted(
            int(p.name) for p in m.path.iterdir() if p.name.isdigit()
        )


def _all_models_spec(spec_path: Path) -> DeploymentSpec:
    data = {
        "name": "unit",
        "model_roots": ["./models"],
        "models": [
            {"name": n, "path": f"./models/{f}"}
            for n, f in (
                ("a", "half_plus_two"),
                ("b", "half_plus_three"),
                ("c", "times_two_plus_one"),
            )
        ],
    }
    return spec_from_data(data, base_dir=spec_path.parent, source="t")


OPTS = ApplyOptions(timeout=30, lock_timeout=5)
FOLDERS = {"b": "half_plus_three", "c": "times_two_plus_one"}


def _add(ops: ModelOps, spec_path: Path, name: str, opts: ApplyOptions = OPTS) -> None:
    """``add-model NAME`` of one of the copied models (b or c), through ``spec_path``."""
    folder = spec_path.resolve().parent / "models" / FOLDERS[name]
    ops.add_model(spec_path, name, folder, policy=None, labels={}, opts=opts)


def test_reload_deadline_follows_the_timeout(deployment) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, admin, services, state = deployment
    spec = _all_models_spec(spec_path)
    _sync_disk(fake, spec)
    transactional_reload(spec, "t", services, state, timeout=7)
    assert admin.deadlines == [7]


def test_a_failed_load_is_restored_even_with_a_short_timeout(deployment) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, admin, services, state = deployment
    before = state.applied_file("models.config")
    spec = _all_models_spec(spec_path)
    _sync_disk(fake, spec)
    fake.add_model("b", [], base_path=layout_for(spec).base_paths["b"])
    fake.remove_model("b")
    fake.fail_version("b", 1, "Failed to load: truncated variables")
    with pytest.raises(OperationFailed, match="previous model list was restored"):
        transactional_reload(spec, "t", services, state, timeout=2)
    # The restore waits for the server's bounded load retries, not only --timeout.
    assert admin.deadlines[0] == 2 and admin.deadlines[-1] >= 10
    assert fake.config_text == before


def test_the_server_runs_with_bounded_load_retries(tmp_path: Path, models_dir: Path) -> None:
    from tfsops.plan.container import server_command
    from tfsops.plan.render import render_all

    def command(extra: dict[str, Any]) -> tuple[str, ...]:
        spec = spec_from_data(
            {"name": "n", "models": [{"name": "a", "path": str(models_dir / "half_plus_two")}]}
            | extra,
            base_dir=tmp_path,
            source="t",
        )
        return server_command(spec, render_all(spec))

    assert "--max_num_load_retries=2" in command({})
    assert "--load_retry_interval_micros=5000000" in command({})
    mine = command({"server_args": {"max_num_load_retries": 0}})
    assert [a for a in mine if a.startswith("--max_num_load_retries")] == [
        "--max_num_load_retries=0"
    ]


def test_add_model_through_a_symlinked_spec_edits_the_target(deployment, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, _admin, services, _state = deployment
    elsewhere = tmp_path / "link"
    elsewhere.mkdir()
    link = elsewhere / "tfsops.yaml"
    link.symlink_to(spec_path)
    _sync_disk(fake, _all_models_spec(spec_path))
    _add(ModelOps(services), link, "b")
    assert link.is_symlink() and link.resolve() == spec_path
    assert [m.name for m in load_spec(spec_path).models] == ["a", "b"]
    assert "# comment kept" in spec_path.read_text()


def test_an_edit_made_during_add_model_is_kept(deployment) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, admin, services, _state = deployment
    _sync_disk(fake, _all_models_spec(spec_path))
    admin.during = lambda: spec_path.write_text(
        spec_path.read_text() + "restart: always  # edited meanwhile\n"
    )
    with pytest.raises(InvalidInput, match="changed while") as info:
        _add(ModelOps(services), spec_path, "b")
    assert info.value.exit_code == ExitCode.INVALID
    text = spec_path.read_text()
    assert "restart: always  # edited meanwhile" in text  # their edit
    assert [m.name for m in load_spec(spec_path).models] == ["a", "b"]  # and ours, merged


def test_a_read_only_spec_is_refused_before_the_server_changes(
    deployment, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    spec_path, _fake, admin, services, state = deployment
    folder = spec_path.parent
    real_access = os.access

    def read_only(path: Any, mode: int, **kw: Any) -> bool:
        # A read-only mount (root ignores mode bits, so the answer is given here).
        if mode & os.W_OK and Path(path).resolve() in (folder, spec_path):
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr("tfsops.spec.edit.os.access", read_only)
    before = spec_path.read_text()
    applied = state.applied_file("models.config")
    ops = ModelOps(services)
    with pytest.raises(InvalidInput, match="not writable"):
        _add(ops, spec_path, "b")
    with pytest.raises(InvalidInput, match="not writable"):
        ops.rollback(spec_path, None, OPTS)
    assert admin.deadlines == []  # the server was not touched
    assert spec_path.read_text() == before
    assert state.applied_file("models.config") == applied


def test_rollback_refuses_to_overwrite_unrecorded_edits(deployment) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, _admin, services, _state = deployment
    _sync_disk(fake, _all_models_spec(spec_path))
    ops = ModelOps(services)
    _add(ops, spec_path, "b")
    _add(ops, spec_path, "c")
    spec_path.write_text(spec_path.read_text() + "# a note of mine\n")
    with pytest.raises(InvalidInput, match="rollback would overwrite them"):
        ops.rollback(spec_path, None, OPTS)
    assert spec_path.read_text().endswith("# a note of mine\n")
    ops.rollback(spec_path, None, OPTS, force=True)
    assert [m.name for m in load_spec(spec_path).models] == ["a", "b"]


def test_a_bad_new_version_of_one_model_does_not_block_changes_to_others(deployment) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, _admin, services, _state = deployment
    garbage = spec_path.parent / "models/half_plus_two/9"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(b"\x00garbage" * 10)
    _sync_disk(fake, _all_models_spec(spec_path))
    ops = ModelOps(services)
    _add(ops, spec_path, "b", ApplyOptions(timeout=5, lock_timeout=5))
    assert [m.name for m in load_spec(spec_path).models] == ["a", "b"]


# ---- publish ---------------------------------------------------------------------------


def test_publish_refuses_a_version_beyond_int64(deployment, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec_path, _fake, _admin, services, _state = deployment
    with pytest.raises(InvalidInput, match="whole number"):
        ModelOps(services).publish(spec_path, "a", models_dir / "half_plus_two/1", 2**64, OPTS)
    assert sorted(p.name for p in (spec_path.parent / "models/half_plus_two").iterdir()) == [
        "1",
        "2",
    ]


def test_publish_refuses_to_unload_a_labelled_version(deployment, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec_path, _fake, _admin, services, _state = deployment
    folder = spec_path.parent / "models/half_plus_two"
    shutil.rmtree(folder / "2")
    spec_path.write_text(
        "name: unit\nmodel_roots: [./models]\nmodels:\n"
        "  - name: a\n    path: ./models/half_plus_two\n    policy: {latest: 1}\n"
        "    labels: {x: 1}\n"
    )
    with pytest.raises(InvalidInput, match="would unload the labelled") as info:
        ModelOps(services).publish(spec_path, "a", models_dir / "half_plus_two/1", None, OPTS)
    assert info.value.details["labels"] == {"x": 1}
    assert sorted(p.name for p in folder.iterdir()) == ["1"]  # nothing copied


def test_publish_skips_a_number_the_server_saw_fail(deployment, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec_path, fake, _admin, services, _state = deployment
    folder = spec_path.parent / "models/half_plus_two"
    (folder / ".tfsops-failed-3-1700000000").mkdir()
    fake.set_state("a", 4, END, "UNKNOWN", "Failed to load: truncated")  # reported, folder gone
    ops = ModelOps(services)
    with pytest.raises(InvalidInput, match="failed to load before"):
        ops.publish(spec_path, "a", models_dir / "half_plus_two/1", 3, OPTS)
    result = ops.publish(
        spec_path, "a", models_dir / "half_plus_two/1", None, ApplyOptions(wait=False)
    )
    assert result["version"] == 5
    assert (folder / "5" / "saved_model.pb").is_file()


def test_publish_removes_copies_a_killed_publish_left(deployment, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec_path, _fake, _admin, services, _state = deployment
    folder = spec_path.parent / "models/half_plus_two"
    dead = subprocess.run(["true"], check=True)  # a pid that has exited
    del dead
    stale_old = folder / ".tfsops-publish-3-deadbeef"  # older name, no pid
    stale = folder / ".tfsops-publish-3-999999999-0badc0de"
    alive = folder / f".tfsops-publish-7-{os.getpid()}-12345678"  # a publish running now
    for p in (stale_old, stale, alive):
        shutil.copytree(models_dir / "half_plus_two/1", p)
    ModelOps(services).publish(
        spec_path, "a", models_dir / "half_plus_two/1", None, ApplyOptions(wait=False)
    )
    assert not stale.exists() and not stale_old.exists()
    assert alive.exists()


# ---- watch -----------------------------------------------------------------------------


def test_watch_start_sends_no_reload_when_the_server_serves_the_config(deployment) -> None:  # type: ignore[no-untyped-def]
    from tfsops.watch import EventLog, Watcher, WatchOptions

    spec_path, fake, admin, services, _state = deployment
    lines: list[str] = []
    watcher = Watcher(spec_path, services, WatchOptions(once=True), EventLog(True, lines.append))
    watcher._handle({"spec"})
    assert admin.deadlines == []  # nothing sent
    assert json.loads(lines[-1])["event"] == "synced"
    # A server that came back without its models (a restart) is still put back at once.
    fake.models.pop("a")
    watcher2 = Watcher(spec_path, services, WatchOptions(once=True), EventLog(True, lines.append))
    watcher2._handle({"spec"})
    assert len(admin.deadlines) == 1
    assert any(json.loads(line)["event"] == "server-lost-models" for line in lines)


def test_a_library_caller_gets_exit_3_too(tmp_path: Path) -> None:
    with pytest.raises(TfsopsError) as info:
        inputs.seconds(math.nan, "timeout")
    assert info.value.exit_code == ExitCode.INVALID


# ---- large saved_model.pb, commit tags, ssh engines -----------------------------------


def test_a_large_saved_model_is_read_lean_with_the_same_answer(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsops.savedmodel import inspect

    version = models_dir / "half_plus_two" / "1"
    whole = inspect.inspect_version(version)
    monkeypatch.setattr(inspect, "LEAN_THRESHOLD", 0)  # every file counts as large
    lean = inspect.inspect_version(version)
    assert lean == whole
    # The graph is skipped, not trusted blindly: a truncated copy is still refused.
    cut = tmp_path / "1"
    shutil.copytree(version, cut)
    pb = cut / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    with pytest.raises(InvalidInput, match="not a SavedModel"):
        inspect.inspect_version(cut)


def test_commit_refuses_a_bad_tag_before_touching_the_engine(
    tmp_path: Path, models_dir: Path
) -> None:
    from tfsops.commit import commit_image

    spec = spec_from_data(
        {"name": "n", "models": [{"name": "a", "path": str(models_dir / "half_plus_two")}]},
        base_dir=tmp_path,
        source="t",
    )

    def no_engine() -> Any:
        raise AssertionError("the engine was reached")

    services = Services(
        runtime_factory=no_engine,
        serving_factory=lambda _ep: FakeServing(),
        admin_factory=lambda _ep: FakeServing(),
    )
    with pytest.raises(InvalidInput, match="not an image reference"):
        commit_image(spec, "Bad/UPPER", services)


def test_ssh_engines_have_their_transport_installed() -> None:
    import importlib.util

    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("docker[ssh]") for d in deps)
    assert importlib.util.find_spec("paramiko") is not None


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--json", "-d", "../../etc", "status"], "status"),
        (["--json", "predict", "m", "--instances", "[1]", "--label", "a/../b"], "predict"),
        (["--json", "logs", "--tail", "lots"], "logs"),
    ],
)
def test_names_that_reach_a_path_or_url_are_checked(argv: list[str], command: str) -> None:
    proc = _cli(*argv)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert json.loads(proc.stdout)["command"] == command
