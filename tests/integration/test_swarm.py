"""``target: swarm`` against the real engine and the TF Serving test double.

A single-node swarm is used (created with ``docker swarm init --advertise-addr
127.0.0.1`` when the engine is not in one, and left again at the end). The
routing mesh needs IPVS, which some kernels lack, so nothing here publishes
ports: every replica is checked from a helper container on the deployment's
attachable overlay network, exactly as ``tfsops`` itself does.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tfsops.errors import OperationFailed
from tfsops.executor import ApplyOptions
from tfsops.services import real_services
from tfsops.spec.load import spec_from_data
from tfsops.spec.model import DeploymentSpec
from tfsops.swarm.executor import SwarmExecutor, status_text
from tfsops.swarm.plan import CREATE, NOOP, UPDATE, SwarmSettings, object_name

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.swarm, pytest.mark.slow]

# Fast feedback: healthcheck every second, short monitor window.
SETTINGS = SwarmSettings(
    health_interval=1.0, health_timeout=3.0, health_start_period=120.0, monitor=2.0
)
TIMEOUT = 120.0
HELPER_LABEL = "io.tfsops.swarm-test"  # short-lived helpers, removed by the test itself


@pytest.fixture(scope="module")
def swarm(docker_client: Any) -> Iterator[Any]:
    """A swarm manager for the module; leaves the swarm afterwards if it created it."""
    info = docker_client.info().get("Swarm") or {}
    created = False
    if info.get("LocalNodeState") != "active":
        docker_client.swarm.init(advertise_addr="127.0.0.1")
        created = True
    elif not info.get("ControlAvailable"):
        pytest.skip("this engine is a swarm worker, not a manager")
    try:
        yield docker_client
    finally:
        if created:
            docker_client.swarm.leave(force=True)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def name() -> str:
    return f"swt-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def executor() -> Iterator[SwarmExecutor]:
    services = real_services(None, progress=lambda line: print(f"[tfsops] {line}"))
    yield SwarmExecutor(services, settings=SETTINGS)
    services.close()


@pytest.fixture
def cleanup(swarm: Any, executor: SwarmExecutor) -> Iterator[list[str]]:
    """Deployment names to take down after the test, whatever happened."""
    names: list[str] = []
    yield names
    for n in names:
        try:
            executor.down(n, volumes=True)
        except Exception as exc:  # best effort; the session cleanup is the net
            print(f"cleanup of {n}: {exc}")


def write_spec(folder: Path, data: dict[str, Any]) -> tuple[DeploymentSpec, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tfsops.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return spec_from_data(data, base_dir=folder, source=str(path)), path


def base_spec(
    name: str, image: str, models: list[dict[str, Any]], replicas: int = 2
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "target": "swarm",
        "swarm": {"replicas": replicas, "update": {"parallelism": 1, "delay": 0.2}},
        # A broken model must fail at once, not after 5 x 60 s of retries.
        "server_args": {"max_num_load_retries": 0},
        "models": models,
    }


def predict_everywhere(
    docker_client: Any, network: str, image: str, ips: list[str], model: str, value: float
) -> dict[str, Any]:
    """POST a predict to every replica from a helper container on the overlay network.

    Plain bash (``/dev/tcp``), as the real tensorflow/serving image has no python or curl.
    """
    script = (
        "model=$1; body=$2; shift 2\n"
        'for ip in "$@"; do\n'
        '  if exec 3<>"/dev/tcp/$ip/8501"; then\n'
        '    printf "POST /v1/models/%s:predict HTTP/1.0\\r\\nHost: %s\\r\\n'
        'Content-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n%s" '
        '"$model" "$ip" "${#body}" "$body" >&3\n'
        "    answer=$(timeout 10 cat <&3); exec 3<&-\n"
        '    printf "@@ %s %s\\n" "$ip" "$(printf %s "$answer" | tr -d "\\r\\n" '
        "| sed 's/^[^{]*//')\"\n"
        "  else\n"
        '    printf "@@ %s {\\"error\\": \\"no connection\\"}\\n" "$ip"\n'
        "  fi\n"
        "done\n"
    )
    body = json.dumps({"instances": [float(value)]})
    container = docker_client.containers.create(
        image,
        entrypoint=["bash", "-c", script, "predict", model, body, *ips],
        network=network,
        labels={HELPER_LABEL: "predict"},
    )
    try:
        container.start()
        container.wait(timeout=60)
        logs = container.logs(stdout=True, stderr=False)
    finally:
        container.remove(force=True)
    out: dict[str, Any] = {}
    for line in logs.decode().splitlines():
        if line.startswith("@@ "):
            _, ip, answer = line.split(" ", 2)
            try:
                out[ip] = json.loads(answer)
            except ValueError:
                out[ip] = {"error": answer}
    return out


def running_ips(status: dict[str, Any]) -> list[str]:
    return [
        t["ip"]
        for t in status["tasks"]
        if t["desired_state"] == "running" and t["state"] == "running"
    ]


def opts() -> ApplyOptions:
    return ApplyOptions(timeout=TIMEOUT, pull=False)


def test_apply_two_replicas_each_serves(
    swarm: Any,
    executor: SwarmExecutor,
    cleanup: list[str],
    name: str,
    models_dir: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    spec, path = write_spec(
        tmp_path / "spec",
        base_spec(
            name,
            serving_image,
            [{"name": "half_plus_two", "path": str(models_dir / "half_plus_two")}],
        ),
    )
    cleanup.append(name)
    started = time.monotonic()
    result = executor.apply(spec, path, opts())
    print(f"apply (create, 2 replicas) took {time.monotonic() - started:.1f}s")
    assert result.plan.action == CREATE
    assert result.health is not None and result.health.ok, result.health and result.health.text()
    assert len(result.health.replicas) == 2
    # Both replicas serve version 2 (latest), each on its own task and address.
    for replica in result.health.replicas:
        assert replica.report is not None
        versions = replica.report.model("half_plus_two").versions
        assert [v.version for v in versions if v.available] == [2]
    status = executor.status(spec)
    assert status["ok"] is True
    assert status["service"]["replicas"] == 2 and status["service"]["running"] == 2
    ips = running_ips(status)
    assert len(set(ips)) == 2
    assert all(t["node"] and t["error"] is None for t in status["tasks"] if t["state"] == "running")
    text = status_text(status)
    assert "2/2 running" in text and text.count("half_plus_two: ok") == 2, text
    answers = predict_everywhere(swarm, object_name(name), serving_image, ips, "half_plus_two", 4.0)
    assert answers == {ip: {"predictions": [4.0]} for ip in ips}
    # Config object: content-hashed name, mounted where the server reads it.
    configs = swarm.configs.list(filters={"label": f"io.tfsops.deployment={name}"})
    assert [c.name for c in configs] == [result.plan.service.configs[0].name]
    assert configs[0].name.startswith(f"tfsops-{name}-models.config-")
    # Applying the same spec again changes nothing.
    again = executor.apply(spec, path, opts())
    assert again.plan.action == NOOP
    assert again.health is not None and again.health.ok
    assert executor.health(spec, timeout=5).ok


def test_model_set_change_rolls_out_to_every_replica(
    swarm: Any,
    executor: SwarmExecutor,
    cleanup: list[str],
    name: str,
    models_dir: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    hp2 = {"name": "half_plus_two", "path": str(models_dir / "half_plus_two")}
    spec, path = write_spec(tmp_path / "spec", base_spec(name, serving_image, [hp2]))
    cleanup.append(name)
    executor.apply(spec, path, opts())
    old_config = executor.desired(spec).config("models.config")
    assert old_config is not None

    hp3 = {"name": "half_plus_three", "path": str(models_dir / "half_plus_three")}
    spec2, path = write_spec(tmp_path / "spec", base_spec(name, serving_image, [hp2, hp3]))
    plan = executor.plan(spec2)
    assert plan.action == UPDATE
    assert [m.name for m in plan.models.added] == ["half_plus_three"]
    started = time.monotonic()
    result = executor.apply(spec2, path, opts())
    print(f"rolling update took {time.monotonic() - started:.1f}s")
    assert result.plan.action == UPDATE
    assert result.health is not None and result.health.ok, result.health and result.health.text()
    status = executor.status(spec2)
    ips = running_ips(status)
    assert len(ips) == 2
    # Every running replica is a new task and serves the new model.
    new_hash = result.plan.service.template_hash
    assert all(
        t["template_hash"] == new_hash for t in status["tasks"] if t["desired_state"] == "running"
    )
    answers = predict_everywhere(
        swarm, object_name(name), serving_image, ips, "half_plus_three", 4.0
    )
    assert answers == {ip: {"predictions": [5.0]} for ip in ips}
    # The old config object is gone; only the new one is left.
    names = {c.name for c in swarm.configs.list(filters={"label": f"io.tfsops.deployment={name}"})}
    assert names == {c.name for c in result.plan.service.configs}
    assert old_config.name not in names


def _break_model(folder: Path) -> None:
    """Truncate the variables data: the folder still validates, the server cannot load it."""
    for data in folder.rglob("variables.data-*"):
        data.write_bytes(data.read_bytes()[:7])


def test_broken_model_update_rolls_back(
    swarm: Any,
    executor: SwarmExecutor,
    cleanup: list[str],
    name: str,
    models_dir: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    hp2 = {"name": "half_plus_two", "path": str(models_dir / "half_plus_two")}
    spec, path = write_spec(tmp_path / "spec", base_spec(name, serving_image, [hp2]))
    cleanup.append(name)
    first = executor.apply(spec, path, opts())
    good_hash = first.plan.service.template_hash

    broken = tmp_path / "models" / "broken"
    shutil.copytree(models_dir / "times_two_plus_one", broken)
    broken.chmod(0o755)
    _break_model(broken)
    spec2, path = write_spec(
        tmp_path / "spec",
        base_spec(name, serving_image, [hp2, {"name": "broken", "path": str(broken)}]),
    )
    started = time.monotonic()
    with pytest.raises(OperationFailed) as caught:
        executor.apply(spec2, path, opts())
    print(f"failed update + rollback took {time.monotonic() - started:.1f}s")
    error = caught.value
    assert error.exit_code == 5
    assert "rolled" in error.message and "back" in error.message
    assert error.details.get("task") is not None
    print(error.message)

    # Swarm rolled back: the old spec runs on both replicas and still serves.
    status = executor.status(spec)
    assert status["ok"] is True, status
    running = [t for t in status["tasks"] if t["desired_state"] == "running"]
    assert len(running) == 2
    assert all(t["template_hash"] == good_hash and t["state"] == "running" for t in running)
    answers = predict_everywhere(
        swarm, object_name(name), serving_image, running_ips(status), "half_plus_two", 2.0
    )
    assert all(a == {"predictions": [3.0]} for a in answers.values())
    # The broken revision's config object is not left behind.
    names = {c.name for c in swarm.configs.list(filters={"label": f"io.tfsops.deployment={name}"})}
    assert names == {c.name for c in first.plan.service.configs}
    assert executor.plan(spec).action == NOOP


def test_down_leaves_nothing(
    swarm: Any,
    executor: SwarmExecutor,
    name: str,
    models_dir: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    hp3 = {"name": "half_plus_three", "path": str(models_dir / "half_plus_three")}
    data = base_spec(name, serving_image, [hp3], replicas=1)
    data["batching"] = {"max_batch_size": 8, "batch_timeout_micros": 1000}
    spec, path = write_spec(tmp_path / "spec", data)
    try:
        result = executor.apply(spec, path, ApplyOptions(timeout=TIMEOUT, pull=False, wait=False))
        assert {c.file for c in result.plan.service.configs} == {"models.config", "batching.config"}
        # What the server reads at /etc/tfsops/<file> is exactly the rendered file.
        for config in result.plan.service.configs:
            stored = swarm.configs.get(config.name).attrs["Spec"]["Data"]
            assert base64.b64decode(stored).decode() == config.data
    finally:
        removed = executor.down(name, volumes=True)
    assert removed["service"] and removed["network"] == object_name(name)
    assert len(removed["configs"]) == 2
    label = {"label": f"io.tfsops.deployment={name}"}
    assert swarm.services.list(filters=label) == []
    assert swarm.configs.list(filters=label) == []
    assert swarm.networks.list(names=[object_name(name)]) == []
    assert (
        swarm.containers.list(all=True, filters={"label": f"io.tfsops.swarm.deployment={name}"})
        == []
    )
    assert swarm.containers.list(all=True, filters={"label": f"io.tfsops.probe={name}"}) == []


def test_update_that_fails_smoke_rolls_back(
    swarm: Any,
    executor: SwarmExecutor,
    cleanup: list[str],
    name: str,
    models_dir: Path,
    answer_models: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    # The replica probe sends the generated smoke request to every replica: the new
    # model loads (AVAILABLE) but fails it, so the update is rolled back.
    hp2 = {"name": "half_plus_two", "path": str(models_dir / "half_plus_two")}
    spec, path = write_spec(tmp_path / "spec", base_spec(name, serving_image, [hp2]))
    cleanup.append(name)
    first = executor.apply(spec, path, opts())
    assert first.health is not None and first.health.ok
    assert executor.health(spec, timeout=5, smoke=True).ok
    recip = tmp_path / "models" / "recip"
    shutil.copytree(answer_models / "fails_at_run_time", recip)
    recip.parent.chmod(0o755)
    spec2, path = write_spec(
        tmp_path / "spec",
        base_spec(name, serving_image, [hp2, {"name": "recip", "path": str(recip)}]),
    )
    with pytest.raises(OperationFailed) as caught:
        executor.apply(spec2, path, opts())
    assert caught.value.exit_code == 5
    assert "x must be positive" in caught.value.message
    assert "rolled" in caught.value.message
    status = executor.status(spec)
    assert status["ok"] is True, status
