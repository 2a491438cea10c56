"""The upstream-suite runner's tree, shim and test list (no TensorFlow, no server)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.upstream import run_upstream as ru

SUITE = """
class TensorflowModelServerTest(base.TensorflowModelServerTestBase):
  def setUp(self):
    pass

  def testGetModelStatus(self):
    pass

  def _TestHelper(self, model_path):
    pass

  def test_tf_text(self):
    pass
"""


def _upstream(root: Path) -> Path:
    servers = root / "tensorflow_serving" / "model_servers"
    (servers / "test_util").mkdir(parents=True)
    (servers / "tensorflow_model_server_test.py").write_text(SUITE)
    (servers / "test_util" / "tensorflow_model_server_test_base.py").write_text("")
    return root


def test_test_names_are_the_suites_test_methods(tmp_path: Path) -> None:
    upstream = _upstream(tmp_path / "upstream")
    assert ru.test_names(upstream / ru.TEST_FILE) == ["testGetModelStatus", "test_tf_text"]


def test_tree_has_the_shim_where_the_base_class_looks_and_joinable_packages(
    tmp_path: Path,
) -> None:
    srcdir = ru.make_tree(_upstream(tmp_path / "upstream"), tmp_path / "srcdir")
    pkg = srcdir / "tf_serving" / "tensorflow_serving"
    shim = pkg / "model_servers" / "tensorflow_model_server"
    assert os.access(shim, os.X_OK)
    for folder in (pkg, pkg / "model_servers", pkg / "model_servers" / "test_util"):
        assert "extend_path" in (folder / "__init__.py").read_text()
    # The shim starts the double with the same argv: --version answers without TensorFlow.
    out = subprocess.run(
        [str(shim), "--version"], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("TensorFlow ModelServer: "), out.stdout


def test_absent_suite_is_skipped_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ru.main(["--upstream", str(tmp_path / "nowhere")]) == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_not_applicable_tests_exist_in_the_real_suite() -> None:
    suite = ru.DEFAULT_UPSTREAM / ru.TEST_FILE
    if not suite.is_file():
        pytest.skip(f"upstream suite not found at {suite}")
    names = ru.test_names(suite)
    assert len(names) == 30
    assert set(ru.NOT_APPLICABLE) | set(ru.KERAS_TESTS) | set(ru.EXCLUSIVE) <= set(names)
