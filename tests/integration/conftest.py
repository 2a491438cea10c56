"""Fixtures for tests that run tfsops against the real engine and the serving image."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import remember_deployment
from tests.integration.cli import Tfsops, free_ports


@pytest.fixture
def tfsops(tmp_path: Path) -> Tfsops:
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    return Tfsops(state, work)


@pytest.fixture
def name() -> str:
    return remember_deployment(f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def ports() -> tuple[int, int]:
    rest, grpc = free_ports(2)
    return rest, grpc


@pytest.fixture
def models(tmp_path: Path, models_dir: Path) -> Path:
    """A private, writable copy of the generated models (tests publish and break things)."""
    dest = tmp_path / "models"
    shutil.copytree(models_dir, dest)
    return dest


@pytest.fixture
def broken_model(models: Path) -> Path:
    """half_plus_three with a truncated variables file: validates, then fails to load in the server."""
    dest = models / "broken"
    shutil.copytree(models / "half_plus_three", dest)
    data = next((dest / "1" / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:3])
    return dest


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "tfsops.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def container_ids(docker_client: Any) -> Iterator[list[str]]:
    """Containers a test wants removed even when tfsops failed to clean up."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        with contextlib.suppress(Exception):
            docker_client.containers.get(cid).remove(force=True)
