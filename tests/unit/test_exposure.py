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
    meta = {"name": "only", "spec_file": str(deployment / "tfsops.yaml")}
    (deployment / "deployment.json").write_text(json.dumps(meta))
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
        # a model the deployment does not serve (a model it serves names it: see below)
        ["publish", "other", "/nonexistent"],
        ["promote", "other", "--label", "stable", "--version", "1"],
        ["predict", "other", "--instances", "[1.0]"],
        ["commit", "--tag", "x:1"],
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


# ---- row 2: mount only what serves ---------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Path:
    """A project folder: the spec, a TLS key beside the models, and a copy of a model."""
    import shutil

    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/tfsops-exposure.sock")
    proj = tmp_path / "proj"
    (proj / "tls").mkdir(parents=True)
    (proj / "tls" / "server.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    shutil.copytree(models_dir / "half_plus_two", proj / "models" / "hp2")
    return proj


def _spec(proj: Path, extra: str = "", model_path: str = "models/hp2") -> Path:
    path = proj / "tfsops.yaml"
    path.write_text(f"name: exp\nmodels:\n  - {{name: hp2, path: '{model_path}'}}\n{extra}")
    return path


def test_the_layout_mounts_the_model_folder_not_its_parent(project: Path) -> None:
    from tfsops.plan.exposure import exposure_problems
    from tfsops.plan.layout import layout_for
    from tfsops.spec.load import load_spec

    spec_file = _spec(project)
    spec = load_spec(spec_file)
    layout = layout_for(spec)
    assert [r.host for r in layout.roots] == [str(project / "models" / "hp2")]
    assert layout.base_paths == {"hp2": "/models/hp2"}
    assert exposure_problems(spec, spec_file) == []
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 0, envelope


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("model_roots: ['.']\n", "holds the spec file"),
        ("model_roots: ['..']\n", "holds"),
        ("model_roots: ['/']\n", "is the host's root folder"),
        ("model_roots: ['~']\n", "is your home folder"),
        ("model_roots: ['{state}']\n", "is tfsops's state folder"),
        ("model_roots: ['{state}/exp']\n", "is inside tfsops's state folder"),
        ("model_roots: ['{state}/..']\n", "holds tfsops's state folder"),
        (
            "model_roots: ['models']\ntls: {cert: models/tls/server.key, key: models/tls/server.key}\n",
            "holds the TLS cert file",
        ),
    ],
)
def test_roots_that_show_more_than_serves_are_refused(
    project: Path, extra: str, expected: str
) -> None:
    state = Path(str(project.parent / "state"))
    if "models/tls" in extra:
        (project / "models" / "tls").mkdir()
        (project / "models" / "tls" / "server.key").write_text("secret\n")
    spec_file = _spec(project, extra.replace("{state}", str(state)))
    for command in (["validate"], ["plan"], ["apply"], ["deploy"]):
        code, envelope = run(*command, "-f", str(spec_file))
        assert code == 3, (command, envelope)
        assert expected in envelope["error"]["message"], envelope
        assert "the server's container would see it" in envelope["error"]["message"]
    assert not state.exists() or not any(state.iterdir())  # nothing written


@pytest.mark.parametrize("model_path", ["/", "~", "."])
def test_model_folders_that_show_more_than_serves_are_refused(
    project: Path, model_path: str
) -> None:
    spec_file = _spec(project, model_path=model_path)
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 3, envelope
    assert "models.hp2.path" in envelope["error"]["message"]
    assert "the server's container would see it" in envelope["error"]["message"]


def test_a_model_under_a_root_that_is_a_link_to_slash_is_refused(project: Path) -> None:
    (project / "everything").symlink_to("/")
    spec_file = _spec(project, "model_roots: [everything]\n", model_path="everything/tmp")
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 3, envelope
    assert "is the host's root folder" in envelope["error"]["message"]


# ---- row 21: links the container cannot follow ------------------------------------------


def test_a_version_linked_from_outside_the_mounts_is_refused(project: Path) -> None:
    import shutil

    outside = project / "elsewhere"
    shutil.copytree(project / "models" / "hp2" / "2", outside / "2")
    shutil.rmtree(project / "models" / "hp2" / "2")
    (project / "models" / "hp2" / "2").symlink_to(outside / "2")  # absolute
    spec_file = _spec(project)
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 3, envelope
    assert "symbolic link" in envelope["error"]["message"]
    assert "cannot see" in envelope["error"]["message"]
    # relative, leaving the mount: the same
    (project / "models" / "hp2" / "2").unlink()
    (project / "models" / "hp2" / "2").symlink_to("../../elsewhere/2")
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 3, envelope
    # a relative link that stays inside the mount is fine
    (project / "models" / "hp2" / "2").unlink()
    shutil.copytree(outside / "2", project / "models" / "hp2" / ".v2")
    (project / "models" / "hp2" / "2").symlink_to(".v2")
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 0, envelope


def test_a_model_folder_that_is_a_link_is_fine_but_not_under_a_root(project: Path) -> None:
    (project / "linked").symlink_to(project / "models" / "hp2")
    spec_file = _spec(project, model_path="linked")
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 0, envelope  # Docker resolves a mount's source
    (project / "root").mkdir()
    (project / "root" / "hp2").symlink_to(project / "models" / "hp2")
    spec_file = _spec(project, "model_roots: [root]\n", model_path="root/hp2")
    code, envelope = run("validate", "-f", str(spec_file))
    assert code == 3, envelope
    assert "root/hp2 is a symbolic link" in envelope["error"]["message"]


# ---- row 3: a hot command never restarts the server ----------------------------------------


def _container_for(spec_file: Path, status: str = "running") -> object:
    from tfsops.executor import Executor
    from tfsops.ports import ContainerInfo
    from tfsops.services import Services
    from tfsops.spec.load import load_spec

    services = Services(
        runtime_factory=lambda: None,  # type: ignore[arg-type,return-value]
        serving_factory=None,  # type: ignore[arg-type]
        admin_factory=None,  # type: ignore[arg-type]
    )
    _, plan, _ = Executor(services).desired(load_spec(spec_file))
    return ContainerInfo(
        id="c0ffee",
        name=plan.name,
        status=status,
        image=plan.image,
        labels=dict(plan.labels),
        ports=[],
    )


class _OneContainer:
    """The engine as far as a refused change gets: it finds the running container."""

    def __init__(self, info: object) -> None:
        self.info = info
        self.calls: list[str] = []

    def find(self, name: str) -> object:
        self.calls.append("find")
        return self.info

    def inspect(self, name: str) -> object:
        """Reads by container name (an interrupted swap's ``-next`` container is looked for)."""
        self.calls.append("inspect")
        return self.info if name == getattr(self.info, "name", None) else None

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"a refused change touched the engine: {name}")


def test_plan_says_recreate_for_a_folder_the_container_does_not_mount(project: Path) -> None:
    import shutil

    from tfsops.executor import Executor
    from tfsops.plan.diff import HOT_RELOAD, RECREATE, compute_plan
    from tfsops.services import Services
    from tfsops.spec.load import load_spec

    executor = Executor(Services(lambda: None, None, None))  # type: ignore[arg-type,return-value]
    spec_file = _spec(project)
    one = load_spec(spec_file)
    one_container = _container_for(spec_file)
    shutil.copytree(project / "models" / "hp2", project / "extra" / "tf2")
    spec_file.write_text(spec_file.read_text() + "  - {name: tf2, path: extra/tf2}\n")
    files, desired, _ = executor.desired(load_spec(spec_file))
    plan = compute_plan(desired, files.models_config, one_container, None)  # type: ignore[arg-type]
    assert plan.action == RECREATE
    assert any(str(project / "extra" / "tf2") in r for r in plan.reasons), plan.reasons
    assert "Docker cannot add a mount" in plan.text()
    # Removing a model needs no new container: its mount stays until the next one.
    two_container = _container_for(spec_file)
    files, desired, _ = executor.desired(one)
    plan = compute_plan(desired, files.models_config, two_container, None)  # type: ignore[arg-type]
    assert plan.action == HOT_RELOAD


def test_add_model_outside_the_mounts_is_refused_without_a_restart(project: Path) -> None:
    import shutil

    from tfsops.errors import InvalidInput
    from tfsops.executor import ApplyOptions
    from tfsops.modelops import ModelOps
    from tfsops.services import Services

    spec_file = _spec(project)
    before = spec_file.read_text()
    engine = _OneContainer(_container_for(spec_file))
    shutil.copytree(project / "models" / "hp2", project / "extra" / "tf2")
    ops = ModelOps(Services(lambda: engine, None, None))  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidInput) as info:
        ops.add_model(
            spec_file,
            "tf2",
            project / "extra" / "tf2",
            policy=None,
            labels={},
            opts=ApplyOptions(hot_only="add-model"),
        )
    error = info.value
    assert "add-model would restart the server" in error.message
    assert str(project / "extra" / "tf2") in error.message
    assert error.hint is not None and "--recreate" in error.hint and "model_roots" in error.hint
    assert error.details["would_recreate"] is True
    assert spec_file.read_text() == before  # nothing changed
    assert set(engine.calls) <= {"find", "inspect"}  # reads only


def test_publish_into_a_folder_the_container_does_not_mount_is_refused(project: Path) -> None:
    from tfsops.errors import InvalidInput
    from tfsops.executor import ApplyOptions
    from tfsops.modelops import ModelOps
    from tfsops.services import Services

    old = _spec(project)
    engine = _OneContainer(_container_for(old))
    import shutil

    shutil.copytree(project / "models" / "hp2", project / "moved" / "hp2")
    spec_file = _spec(project, model_path="moved/hp2")  # edited, not applied
    ops = ModelOps(Services(lambda: engine, None, None))  # type: ignore[arg-type,return-value]
    with pytest.raises(InvalidInput, match="does not mount"):
        ops.publish(
            spec_file,
            "hp2",
            project / "models" / "hp2" / "1",
            None,
            ApplyOptions(hot_only="publish"),
        )
    assert sorted(p.name for p in (project / "moved" / "hp2").iterdir()) == ["1", "2"]


# ---- row 13: a served model's folder moved away --------------------------------------------


def test_missing_model_folders_are_listed(project: Path) -> None:
    from tfsops.plan.folders import describe_missing, missing_model_folders
    from tfsops.spec.load import load_spec

    spec = load_spec(_spec(project))
    assert missing_model_folders(spec) == []
    (project / "models" / "hp2").rename(project / "models" / "hp2.moved")
    missing = missing_model_folders(spec)
    assert missing == [{"model": "hp2", "path": str(project / "models" / "hp2")}]
    text = "\n".join(describe_missing(missing))
    assert "is missing" in text and "a restart would not come back" in text


def test_watch_reports_a_missing_folder_and_refuses_discoveries_outside_the_roots(
    project: Path,
) -> None:
    import shutil

    from tfsops.services import Services
    from tfsops.spec.load import load_spec
    from tfsops.watch import EventLog, Watcher, WatchOptions

    spec_file = _spec(project)
    before = spec_file.read_text()
    dropbox = project / "dropbox"
    shutil.copytree(project / "models" / "hp2", dropbox / "fresh")
    lines: list[str] = []
    engine = _OneContainer(None)
    watcher = Watcher(
        spec_file,
        Services(lambda: engine, None, None),  # type: ignore[arg-type,return-value]
        WatchOptions(discover=[dropbox]),
        EventLog(True, lines.append),
    )
    watcher.spec = load_spec(spec_file)
    watcher.discover()
    watcher.discover()  # logged once, not on every event
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["discover-refused"], events
    assert "model_roots" in events[0]["error"] and "restart" in events[0]["error"]
    assert spec_file.read_text() == before and engine.calls == []
    # the served model's folder goes away, and comes back
    lines.clear()
    (project / "models" / "hp2").rename(project / "hp2.moved")
    watcher.check()
    watcher.check()
    (project / "hp2.moved").rename(project / "models" / "hp2")
    watcher.check()
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["model-folder-missing", "model-folder-back"], events
    assert "a restart would not come back" in events[0]["restart"]


def test_a_model_name_served_by_one_deployment_names_it(one_deployment: Path) -> None:
    # predict/publish/promote name a model: the one deployment serving it is meant.
    code, envelope = run("publish", "hp2", "/nonexistent")
    assert code == 3, envelope
    assert "no deployment given" not in envelope["error"]["message"]
    assert "/nonexistent" in envelope["error"]["message"]
