"""Shared test fixtures: the real Docker engine, the serving image, generated models.

Integration tests carry the ``docker`` marker (and ``double`` when they need
the TF Serving image). When no engine answers they are skipped with the
reason printed; ``.ci/run`` sets ``TFSOPS_REQUIRE_DOCKER=1`` so that a skip
there fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.modelgen import make_models

TEST_LABEL = "io.tfsops.test"
SHARED_TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "tfserving"


def test_image() -> str:
    return os.environ.get("TFSOPS_TEST_IMAGE", "tfsops-double:latest")


def _engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Docker engine reachable ({type(exc).__name__}: {exc})"
    return None


def _image_problem() -> str | None:
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.images.get(test_image())
    except docker.errors.ImageNotFound:
        return f"serving image {test_image()!r} not found (build it: nox -s double_image)"
    finally:
        client.close()
    return None


def pytest_configure(config: pytest.Config) -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and an
    # ignored signal stays ignored across exec: the tfsops processes the tests Ctrl-C
    # would never see it. A handler (unlike SIG_IGN) is reset to the default on exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_docker = [
        i for i in items if i.get_closest_marker("docker") or i.get_closest_marker("double")
    ]
    if not needs_docker:
        return
    problem = _engine_problem()
    if problem is None and any(i.get_closest_marker("double") for i in needs_docker):
        image_problem = _image_problem()
    else:
        image_problem = None
    for item in needs_docker:
        reason = problem or (image_problem if item.get_closest_marker("double") else None)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


# Filled by the model-based (stateful) tests: "<run>:sequences", "<run>:steps", "<run>:gap <row>".
STATEFUL_RUNS: Counter[str] = Counter()


def _stateful_summary(terminalreporter: Any) -> None:
    runs = sorted({key.partition(":")[0] for key in STATEFUL_RUNS})
    for run in runs:
        gaps = ", ".join(
            f"{key.partition(':gap ')[2]}: {n}"
            for key, n in sorted(STATEFUL_RUNS.items())
            if key.startswith(f"{run}:gap ")
        )
        terminalreporter.write_line(
            f"tfsops stateful ({run}): {STATEFUL_RUNS[f'{run}:sequences']} sequences, "
            f"{STATEFUL_RUNS[f'{run}:steps']} steps"
            + (f"; known gaps (not enforced yet): {gaps}" if gaps else "")
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    _stateful_summary(terminalreporter)
    skipped = terminalreporter.stats.get("skipped", [])
    docker_skips = [
        r
        for r in skipped
        if "Docker engine" in str(r.longrepr) or "serving image" in str(r.longrepr)
    ]
    if docker_skips:
        terminalreporter.write_line(
            f"tfsops: {len(docker_skips)} integration test(s) skipped: {docker_skips[0].longrepr[2]}"
        )
        if os.environ.get("TFSOPS_REQUIRE_DOCKER") == "1":
            terminalreporter.write_line(
                "tfsops: TFSOPS_REQUIRE_DOCKER=1 and integration tests were skipped: failing"
            )
            terminalreporter._session.exitstatus = 1


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def serving_image() -> str:
    return test_image()


@pytest.fixture(scope="session")
def run_id() -> str:
    """Label value for resources this session creates directly: ``{TEST_LABEL: run_id}``."""
    return uuid.uuid4().hex[:8]


# Deployment names this test session used: only their resources are cleaned up
# at the end, so concurrent test runs on one engine do not remove each other's.
SESSION_DEPLOYMENTS: set[str] = set()


def remember_deployment(name: str) -> str:
    SESSION_DEPLOYMENTS.add(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def _cleanup_labelled(run_id: str) -> Iterator[None]:
    """Remove what the tests created (by label), also after failures."""
    yield
    if _engine_problem() is not None:
        return
    import docker

    client = docker.from_env(timeout=60)
    filters = [f"{TEST_LABEL}={run_id}"] + [
        f"io.tfsops.deployment={n}" for n in sorted(SESSION_DEPLOYMENTS)
    ]
    try:
        for label in filters:
            for kind in ("services", "containers", "configs", "networks"):
                try:
                    collection = getattr(client, kind)
                    items = (
                        collection.list(all=True, filters={"label": label})
                        if kind == "containers"
                        else collection.list(filters={"label": label})
                    )
                    for item in items:
                        if kind == "containers":
                            item.remove(force=True)
                        else:
                            item.remove()
                except docker.errors.APIError:
                    pass  # not a swarm manager, or already gone
    finally:
        client.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated SavedModels (TF2 exports), shared by the whole session.

    - ``half_plus_two/{1,2}``: y = 0.5x + 2
    - ``half_plus_three/1``: y = 0.5x + 3
    - ``times_two_plus_one/1``: y = 2x + 1
    """
    root = tmp_path_factory.mktemp("models")
    jobs: list[dict[str, object]] = [
        {"path": str(root / "half_plus_two" / "1"), "a": 0.5, "b": 2.0},
        {"path": str(root / "half_plus_two" / "2"), "a": 0.5, "b": 2.0},
        {"path": str(root / "half_plus_three" / "1"), "a": 0.5, "b": 3.0},
        {"path": str(root / "times_two_plus_one" / "1"), "a": 2.0, "b": 1.0},
    ]
    make_models(jobs)
    # Container users other than root must be able to read the mounts.
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    root.chmod(0o755)
    return root


@pytest.fixture
def model_copy(models_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copy a generated model into a private folder the test may change."""

    def copy(name: str, dest_name: str | None = None) -> Path:
        dest = tmp_path / "models" / (dest_name or name)
        shutil.copytree(models_dir / name, dest)
        return dest

    return copy


@pytest.fixture(scope="session")
def upstream_testdata() -> Path:
    """Upstream TF Serving test models; optional tests skip when they are absent."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip(f"upstream testdata not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA


@pytest.fixture(scope="session")
def answer_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models that load but may not answer, made with TensorFlow in one child process.

    - ``keras_broken/1``: Keras 3 + BatchNormalization saved the broken way
      (tf.Module + tf.saved_model.save, keras-team/keras#20095)
    - ``keras_good/1``: the same model through ``model.export()``
    - ``fails_at_run_time/1``: y = k / x, asserting x > 0 (zeros fail)
    - ``jpeg_classifier/1``: JPEG bytes -> 10 class probabilities; ``cat.jpg``
    """
    from tests.modelgen import make_special

    root = tmp_path_factory.mktemp("answer_models")
    kinds = ("keras_broken", "keras_good", "fails_at_run_time", "jpeg_classifier")
    jobs = [{"kind": k, "path": str(root / k / "1")} for k in kinds]
    jobs.append({"kind": "jpeg", "path": str(root / "cat.jpg")})
    make_special(jobs)
    root.chmod(0o755)
    return root
