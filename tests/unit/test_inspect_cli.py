"""``tfsops inspect`` through the real typer app: exit codes, JSON envelope, human output."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tfsops.cli.app import app
from tfsops.cli.argv import hoist_global_options

runner = CliRunner()

UPSTREAM_SIGNATURES = {
    "serving_default",
    "classify_x_to_y",
    "regress_x_to_y",
    "regress_x_to_y2",
    "regress_x2_to_y3",
}


def invoke(*args: str) -> Any:
    return runner.invoke(app, hoist_global_options(list(args)))


def envelope(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_json_over_generated_model(models_dir: Path) -> None:
    result = invoke("--json", "inspect", str(models_dir / "half_plus_two"))
    assert result.exit_code == 0, result.stderr
    env = envelope(result)
    assert env["ok"] is True
    assert env["command"] == "inspect"
    assert env["exit_code"] == 0
    versions = env["data"]["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    (mg,) = versions[0]["meta_graphs"]
    assert mg["tags"] == ["serve"]
    sigs = mg["signatures"]
    assert list(sigs) == ["serving_default", "twice", "__saved_model_init_op"]
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert sigs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert sigs["serving_default"]["inputs"]["x"]["shape"] == [-1]
    assert sigs["__saved_model_init_op"]["internal"] is True


def test_global_json_after_the_command(models_dir: Path) -> None:
    result = invoke("inspect", str(models_dir / "half_plus_two"), "--json", "--version", "2")
    assert result.exit_code == 0, result.stderr
    assert [v["version"] for v in envelope(result)["data"]["versions"]] == [2]


def test_human_output(models_dir: Path) -> None:
    result = invoke("inspect", str(models_dir / "half_plus_two"), "--signature", "twice")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"{models_dir / 'half_plus_two'}: 2 versions (1, 2)" in out
    assert "version 1: " in out
    assert "version 2: " in out
    assert "tag-set: serve" in out
    assert "signature twice (method tensorflow/serving/predict)" in out
    assert "serving_default" not in out
    lines = [line.split() for line in out.splitlines()]
    assert lines[next(i for i, w in enumerate(lines) if w[:1] == ["input"])][:4] == [
        "input",
        "x",
        "DT_FLOAT",
        "[-1]",
    ]


def test_human_output_marks_init_op_internal(models_dir: Path) -> None:
    result = invoke("inspect", str(models_dir / "half_plus_two" / "1"))
    assert result.exit_code == 0, result.stderr
    assert "signature __saved_model_init_op (internal" in result.stdout
    assert "unknown rank" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope"], "does not exist"),
        (["{tmp}"], "holds no numeric version directory"),
        (["{models}/half_plus_two", "--version", "9"], "has no version 9 (versions: 1, 2)"),
        (["{models}/half_plus_two", "-s", "nope"], "has no signature 'nope'"),
    ],
    ids=["missing", "empty", "no-version", "no-signature"],
)
def test_bad_input_exits_3(models_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    argv = [a.format(tmp=tmp_path, models=models_dir) for a in args]
    result = invoke("--json", "inspect", *argv)
    assert result.exit_code == 3
    env = envelope(result)
    assert env["ok"] is False
    assert env["exit_code"] == 3
    assert env["data"] is None
    assert env["error"]["type"] == "InvalidInput"
    assert message in env["error"]["message"]
    assert f"error: {env['error']['message']}" in result.stderr
    human = invoke("inspect", *argv)
    assert human.exit_code == 3
    assert human.stdout == ""
    assert message in human.stderr


def test_garbage_is_exit_3_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff")
    result = invoke("inspect", str(tmp_path))
    assert result.exit_code == 3
    assert "is not a SavedModel (parse error" in result.stderr
    assert "Traceback" not in result.stderr


def test_partly_broken_model_warns(models_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(models_dir / "half_plus_two" / "1", tmp_path / "1")
    (tmp_path / "2").mkdir()
    result = invoke("--json", "inspect", str(tmp_path))
    assert result.exit_code == 0
    env = envelope(result)
    assert [v["version"] for v in env["data"]["versions"]] == [1]
    assert any("has no saved_model.pb" in w for w in env["warnings"])
    assert "warning: " in result.stderr


def test_upstream_acceptance(upstream_testdata: Path) -> None:
    path = upstream_testdata / "saved_model_half_plus_two_cpu"
    human = invoke("inspect", str(path))
    assert human.exit_code == 0, human.stderr
    assert "version 123: " in human.stdout
    for name in UPSTREAM_SIGNATURES:
        assert f"signature {name} (" in human.stdout
    result = invoke("--json", "inspect", str(path))
    (version,) = envelope(result)["data"]["versions"]
    assert version["version"] == 123
    (mg,) = version["meta_graphs"]
    assert set(mg["signatures"]) == UPSTREAM_SIGNATURES
    assert mg["signatures"]["serving_default"]["inputs"]["x"] == {
        "name": "x:0",
        "dtype": "DT_FLOAT",
        "shape": [-1, 1],
    }


def test_upstream_bad_model(upstream_testdata: Path) -> None:
    result = invoke("inspect", str(upstream_testdata / "bad_half_plus_two"))
    assert result.exit_code == 3
    assert "legacy SessionBundle export, which TF Serving cannot load" in result.stderr


def test_help_text() -> None:
    result = invoke("inspect", "--help")
    assert result.exit_code == 0
    assert "does not load the" in result.stdout
    assert "tfsops inspect ./models/resnet" in result.stdout


def _fresh(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_command_module_top_level_imports_are_light() -> None:
    import tfsops.cli.commands.inspect as module

    tree = ast.parse(Path(module.__file__).read_text())
    names: list[str] = []
    for node in tree.body:  # module level only; imports inside the action are fine
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    allowed = ("__future__", "pathlib", "typing", "typer", "tfsops.cli.")
    assert all(n.startswith(allowed) or n in allowed for n in names), names


def test_importing_the_command_loads_no_savedmodel_code() -> None:
    _fresh(
        "import sys\n"
        "import tfsops.cli.commands.inspect\n"
        "bad = [m for m in sys.modules if m.startswith(('tfsops.savedmodel', 'tensorflow'))]\n"
        "assert not bad, bad\n"
    )


def _assert_inspect_skips_tensorflow_init(path: Path) -> None:
    _fresh(
        "import sys\n"
        "from tfsops.cli.app import main\n"
        "try:\n"
        f"    main(['--json', 'inspect', {str(path)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "assert 'tensorflow.python' not in sys.modules\n"
        "assert 'tensorflow' not in sys.modules\n"
        "assert 'tensorflow.core.protobuf.saved_model_pb2' in sys.modules\n"
    )


def test_inspect_does_not_run_tensorflow_init(models_dir: Path) -> None:
    _assert_inspect_skips_tensorflow_init(models_dir / "half_plus_two")


def test_inspect_upstream_does_not_run_tensorflow_init(upstream_testdata: Path) -> None:
    _assert_inspect_skips_tensorflow_init(upstream_testdata / "saved_model_half_plus_two_cpu")
