"""The three-node cluster (one per test session) and the figures the scenarios measure.

``TFSOPS_CLUSTER=<id>`` runs the scenarios on a cluster brought up by hand
(``nox -s cluster -- up``) instead of making one. The figures are printed at
the end of the run (whatever ``-s`` says) and written to
``.cache/cluster-figures.json``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.cluster import Cluster, attach, describe, down, up

FIGURES: dict[str, Any] = {}
FIGURES_FILE = Path(__file__).resolve().parents[2] / ".cache" / "cluster-figures.json"


def record(name: str, value: Any) -> None:
    """A figure for the end-of-run summary (seconds rounded to 0.1)."""
    FIGURES[name] = round(value, 1) if isinstance(value, float) else value
    print(f"[figure] {name}: {FIGURES[name]}", flush=True)


@pytest.fixture(scope="session")
def cluster(
    docker_client: Any, serving_image: str, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    reuse = os.environ.get("TFSOPS_CLUSTER")
    if reuse:
        made = attach(docker_client, reuse, serving_image)
        yield made
        made.close_clients()
        return
    # Bring-up (mostly the engine's work: load, push) overlaps making the test models.
    result: list[Any] = []

    def bring_up() -> None:
        try:
            result.append(up(docker_client, serving_image))
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=bring_up, name="cluster-up")
    worker.start()
    try:
        request.getfixturevalue("models_dir")
    finally:
        worker.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    made = result[0]
    for name, value in made.figures.items():
        record(f"cluster: {name}", value)
    failed_before = request.session.testsfailed
    try:
        yield made
    finally:
        if request.session.testsfailed > failed_before:
            try:
                print(f"[cluster] after a failure:\n{describe(docker_client, made)}")
            except Exception as exc:  # e.g. the engine itself went away
                print(f"[cluster] after a failure: cannot describe it: {exc}")
        left = down(docker_client, made)
        if left:
            print(f"[cluster] left behind: {left}")
        FIGURES["cluster: left behind after teardown"] = len(left)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("tfsops cluster figures (three Docker-in-Docker nodes)")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name}: {value}")
    try:
        FIGURES_FILE.parent.mkdir(exist_ok=True)
        FIGURES_FILE.write_text(json.dumps(FIGURES, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        terminalreporter.write_line(f"could not write {FIGURES_FILE}: {exc}")
