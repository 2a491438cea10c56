"""The real ``DockerRuntime`` passes the contract ``FakeRuntime`` passes (so the fake
cannot drift from the engine)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import remember_deployment
from tests.integration.cli import free_ports
from tests.unit.fakes_runtime import run_runtime_contract
from tests.unit.test_runtime_contract import contract_plans
from tfsops.adapters.docker_runtime import DockerRuntime

pytestmark = [pytest.mark.docker, pytest.mark.double]


@pytest.fixture
def runtime() -> Iterator[DockerRuntime]:
    rt = DockerRuntime()
    yield rt
    rt.close()


def test_docker_runtime_passes_the_runtime_contract(
    runtime: DockerRuntime,
    docker_client: Any,
    serving_image: str,
    tmp_path: Path,
    models_dir: Path,
) -> None:
    deployment = f"c{uuid.uuid4().hex[:8]}"
    for suffix in ("a", "b"):
        remember_deployment(f"{deployment}{suffix}")  # cleaned up even when the test fails

    def crash(container_id: str) -> None:
        pid = docker_client.containers.get(container_id).attrs["State"]["Pid"]
        os.kill(pid, signal.SIGKILL)  # the server dies; no `docker kill` (a manual stop)

    def wait(what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"never {what} within 60 s")
            time.sleep(0.2)

    rest, grpc = free_ports(2)
    run_runtime_contract(
        runtime,
        contract_plans(tmp_path, models_dir, serving_image, deployment),
        image=serving_image,
        ports=(rest, grpc),
        crash=crash,
        wait=wait,
    )
