"""The CLI as a user meets it: global options anywhere, JSON envelope, exit codes, fast start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tfsops.cli.app import app
from tfsops.cli.argv import hoist_global_options

runner = CliRunner()
UPSTREAM_2V = (
    Path(__file__).resolve().parents[3]
    / "shared/testdata/tfserving/saved_model_half_plus_two_2_versions"
)


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, hoist_global_options(list(args)))
    return result.exit_code, result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "--json"], ["--json", "status"]),
        (["--json", "status"], ["--json", "status"]),
        (
            ["render", "config", "-f", "x.yaml", "-o", "out"],
            ["-f", "x.yaml", "render", "config", "-o", "out"],
        ),
        (["logs", "-f", "--file", "s.yaml"], ["--file", "s.yaml", "logs", "-f"]),
        (["predict", "m", "--", "--json"], ["predict", "m", "--", "--json"]),
        (["--help"], ["--help"]),
    ],
)
def test_global_options_before_or_after_the_command(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_options(argv) == expected


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "tfsops.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def good_spec(tmp_path: Path, models_dir: Path) -> Path:
    return write_spec(
        tmp_path,
        f"""name: demo
models:
  - name: hp2
    path: {models_dir / "half_plus_two"}
    policy: {{all: {{}}}}
    labels: {{stable: 1}}
""",
    )


def test_render_config_json_envelope(good_spec: Path) -> None:
    code, out = run("render", "config", "-f", str(good_spec), "--json")
    assert code == 0
    envelope = json.loads(out)  # stdout holds the envelope and nothing else
    assert (
        envelope["schema"] == "tfsops/v1" and envelope["ok"] is True and envelope["exit_code"] == 0
    )
    assert 'version_labels { key: "stable" value: 1 }' in envelope["data"]["files"]["models.config"]


def test_render_writes_files_only_with_output(good_spec: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, _ = run("-f", str(good_spec), "render", "-o", str(out_dir))
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["container-plan.json", "models.config"]


def test_render_plan_with_gpu(good_spec: Path) -> None:
    code, out = run("--json", "-f", str(good_spec), "render", "plan", "--gpu")
    assert code == 0
    plan = json.loads(out)["data"]["plan"]
    assert plan["image"] == "tensorflow/serving:2.19.0-gpu"
    assert plan["device_requests"] == [
        {"count": -1, "device_ids": None, "capabilities": [["gpu"]], "driver": ""}
    ]
    code, out = run("--json", "-f", str(good_spec), "render", "plan", "--gpu-devices", "0,2")
    assert json.loads(out)["data"]["plan"]["device_requests"][0]["device_ids"] == ["0", "2"]


def test_validate_ok(good_spec: Path) -> None:
    code, out = run("--json", "validate", "-f", str(good_spec))
    assert code == 0, out
    models = json.loads(out)["data"]["models"]
    assert models[0]["served"] == [1, 2]


@pytest.mark.parametrize(
    ("spec_text", "fragment"),
    [
        ("name: x\nmodels:\n  - name: a\n   path: b\n", "line 4"),
        ("name: x\nbogus: 1\nmodels: [{name: a, path: /tmp}]\n", "bogus: unknown key"),
        ("name: x\nmodels: [{name: a, path: 3, policy: {latest: two}}]\n", "models.a.policy"),
        ("name: x\nmodels: [{name: a, path: /tmp}, {name: a, path: /tmp}]\n", "listed twice: a"),
        ("name: x\nmodels: [{name: 'a b', path: /tmp}]\n", "models[0].name"),
        ("name: x\nmodels: [{name: a, path: /nonexistent/x}]\n", "/nonexistent/x does not exist"),
        (
            "name: x\nmodels: [{name: a, path: /tmp/tfsops-empty-dir-for-test}]\n",
            "no numeric version",
        ),
    ],
)
def test_bad_input_exit_3_and_nothing_written(
    tmp_path: Path, spec_text: str, fragment: str
) -> None:
    Path("/tmp/tfsops-empty-dir-for-test").mkdir(exist_ok=True)
    spec = write_spec(tmp_path, spec_text)
    before = sorted(tmp_path.rglob("*"))
    code, out = run("--json", "validate", "-f", str(spec))
    assert code == 3
    envelope = json.loads(out)
    assert envelope["ok"] is False and envelope["exit_code"] == 3
    text = envelope["error"]["message"] + json.dumps(envelope["error"]["details"])
    assert fragment in text
    assert sorted(tmp_path.rglob("*")) == before


def test_label_to_a_version_not_served(tmp_path: Path, models_dir: Path) -> None:
    spec = write_spec(
        tmp_path,
        f"name: x\nmodels: [{{name: a, path: {models_dir / 'half_plus_two'}, labels: {{stable: 1}}}}]\n",
    )
    code, out = run("--json", "validate", "-f", str(spec))
    assert code == 3
    assert "label 'stable' points at version 1" in json.loads(out)["error"]["message"]


def test_not_a_saved_model(tmp_path: Path) -> None:
    model = tmp_path / "m" / "1"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"\x00garbage\xff" * 10)
    spec = write_spec(tmp_path, f"name: x\nmodels: [{{name: a, path: {model.parent}}}]\n")
    code, out = run("--json", "validate", "-f", str(spec))
    assert code == 3
    assert "not a SavedModel" in json.loads(out)["error"]["message"]


def test_missing_spec_file(tmp_path: Path) -> None:
    code, out = run("--json", "render", "-f", str(tmp_path / "nope.yaml"))
    assert code == 3
    assert "spec file not found" in json.loads(out)["error"]["message"]


def test_schema_command() -> None:
    code, out = run("--json", "schema")
    assert code == 0
    assert json.loads(out)["data"]["schema"]["title"] == "tfsops deployment spec"


def test_init_writes_a_valid_spec(tmp_path: Path) -> None:
    target = tmp_path / "tfsops.yaml"
    code, _ = run("init", "--model-path", str(tmp_path / "m"), "-o", str(target))
    assert code == 0 and "name: serving" in target.read_text()
    code, _ = run("init", "-o", str(target))
    assert code == 3  # exists; --force to overwrite


HEAVY = ("tensorflow.python", "docker", "grpc", "requests", "watchdog", "jinja2")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["render", "--help"],
        ["inspect", "--help"],
    ],
)
def test_fast_start_imports_nothing_heavy(args: list[str]) -> None:
    """In a fresh interpreter: --help must not import TensorFlow's runtime, docker, grpc..."""
    code = (
        "import sys\n"
        "from tfsops.cli.app import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "HEAVY=\n" in proc.stdout or proc.stdout.rstrip().endswith("HEAVY="), (
        proc.stdout + proc.stderr
    )


def test_render_and_inspect_do_not_import_the_tensorflow_runtime(
    good_spec: Path, models_dir: Path
) -> None:
    code = (
        "import sys\n"
        "from tfsops.cli.app import main\n"
        "for args in (['render', '-f', sys.argv[1]], ['validate', '-f', sys.argv[1]], ['inspect', sys.argv[2]]):\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n        assert not e.code, (args, e.code)\n"
        "heavy = [m for m in ('tensorflow.python', 'docker', 'grpc') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(good_spec), str(models_dir / "half_plus_two")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize(
    "args",
    [
        ["add-model", "b", "--path", "/tmp"],
        ["remove-model", "hp2", "--yes"],
        ["promote", "hp2", "--label", "stable", "--version", "2"],
        ["reload"],
        ["rollback"],
        ["watch"],
    ],
)
def test_hot_changes_are_refused_for_a_swarm_service(
    tmp_path: Path, models_dir: Path, args: list[str]
) -> None:
    spec = write_spec(
        tmp_path,
        f"name: sw\ntarget: swarm\nswarm: {{replicas: 2}}\nmodels:\n"
        f"  - {{name: hp2, path: {models_dir / 'half_plus_two'}}}\n",
    )
    before = spec.read_text()
    code, out = run("--json", "-f", str(spec), *args)
    assert code == 3, out
    assert "swarm" in json.loads(out)["error"]["message"]
    assert spec.read_text() == before
