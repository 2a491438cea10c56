"""A model that cannot load, with the server's default flags as tfsops starts it: the
failure is bounded (load retries tfsops sets), the previous list is restored, and the
next command runs at once. Also a publish of a good version after a failed one.
The real tfsops executable, the real engine, the TF Serving test double."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]


@pytest.fixture
def deployed(  # type: ignore[no-untyped-def]
    tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, serving_image: str
) -> Iterator[Path]:
    rest_port, grpc_port = ports
    # No server_args: the load-retry flags are tfsops's own defaults.
    spec = write_spec(
        tfsops.cwd,
        f"""name: {name}
image: {serving_image}
ports: {{rest: {rest_port}, grpc: {grpc_port}}}
model_roots: [{models}]
models:
  - name: a
    path: {models / "half_plus_two"}
""",
    )
    run = tfsops("apply", "--timeout", "120")
    assert run.code == 0, run
    yield spec
    tfsops("down", "--volumes")


def test_a_model_that_cannot_load_fails_fast_and_is_restored(
    tfsops: Tfsops, deployed: Path, broken_model: Path
) -> None:
    spec_before = deployed.read_text()
    started = time.monotonic()
    run = tfsops("--json", "add-model", "c", "--path", str(broken_model), timeout=200)
    elapsed = time.monotonic() - started
    assert run.code == 5, run
    assert run.json["error"]["details"]["restored"] is True, run
    # Upstream's defaults retry for about 5 minutes; the RPC deadline was a fixed 60 s.
    assert elapsed < 55, elapsed
    assert deployed.read_text() == spec_before
    started = time.monotonic()
    assert tfsops("health").code == 0
    assert time.monotonic() - started < 10


def test_publish_after_a_failed_publish_takes_a_new_number(
    tfsops: Tfsops, deployed: Path, models: Path, broken_model: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad-export"
    shutil.copytree(broken_model / "1", bad)
    run = tfsops("--json", "publish", "a", str(bad), "--timeout", "100", timeout=200)
    assert run.code == 5, run
    assert "3" in run.json["error"]["message"]
    good = tmp_path / "good-export"
    shutil.copytree(models / "half_plus_two" / "2", good)
    run = tfsops("--json", "publish", "a", str(good), "--timeout", "100", timeout=200)
    assert run.code == 0, run
    assert run.json["data"]["version"] == 4  # 3 failed once: the server keeps it as failed
    assert tfsops("health").code == 0
