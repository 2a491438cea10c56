"""The deploy lifecycle end to end: the real tfsops executable, the real engine, the serving image."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops, free_ports
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]


def rest(port: int, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", data=data, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def containers_of(docker_client: Any, name: str) -> list[Any]:
    return docker_client.containers.list(
        all=True, filters={"label": f"io.tfsops.deployment={name}"}
    )


def test_one_liner_lifecycle(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
    tmp_path: Path,
    run_id: str,
) -> None:
    rest_port, grpc_port = ports
    deploy = (
        "deploy",
        name,
        "--model-path",
        str(models / "half_plus_two"),
        "--image",
        serving_image,
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
        "--timeout",
        "120",
    )
    run = tfsops(*deploy)
    assert run.code == 0, run
    status = rest(rest_port, f"/v1/models/{name}")
    assert status["model_version_status"][0]["version"] == "2"  # latest of 1, 2
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    [container] = containers_of(docker_client, name)
    first_id = container.id
    # published on loopback, models read-only
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert bindings["8501/tcp"][0]["HostIp"] == "127.0.0.1"
    assert all(m["RW"] is False for m in container.attrs["Mounts"])

    run = tfsops("--json", "health", "-d", name)
    assert run.code == 0, run
    assert run.json["data"]["ok"] is True

    for extra in ((), ("--grpc",)):
        run = tfsops("--json", "predict", name, "--instances", "[1.0, 2.0, 5.0]", *extra)
        assert run.code == 0, run
        response = run.json["data"]["response"]
        assert response["predictions"] == [2.5, 3.0, 4.5]

    # The same deploy again converges to nothing: same container.
    run = tfsops("--json", *deploy)
    assert run.code == 0, run
    assert run.json["data"]["action"] == "noop"
    assert [c.id for c in containers_of(docker_client, name)] == [first_id]

    run = tfsops("--json", "status", "-d", name)
    assert run.code == 0, run
    [entry] = run.json["data"]["deployments"]
    assert entry["state"] == "running"
    assert entry["models"][0]["versions"][0]["state"] == "AVAILABLE"

    # commit: an image that serves with no mounts
    tag = f"tfsops-test-commit/{name}:1"
    run = tfsops("--json", "commit", name, "--tag", tag)
    assert run.code == 0, run
    [port] = free_ports(1)
    baked = docker_client.containers.run(
        tag, detach=True, ports={"8501/tcp": ("127.0.0.1", port)}, labels={"io.tfsops.test": run_id}
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                body = rest(port, f"/v1/models/{name}:predict", {"instances": [1.0, 2.0, 5.0]})
                break
            except OSError:
                assert time.monotonic() < deadline, baked.logs().decode()[-2000:]
                time.sleep(0.5)
        assert body["predictions"] == [2.5, 3.0, 4.5]
        assert not baked.attrs["Mounts"]
    finally:
        baked.remove(force=True)
        docker_client.images.remove(tag, force=True)

    run = tfsops("--json", "down", "-d", name, "--volumes")
    assert run.code == 0, run
    assert containers_of(docker_client, name) == []
    assert not (Path(tfsops.env["TFSOPS_STATE_DIR"]) / name).exists()


def test_spec_apply_hot_reload_keeps_the_container(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    rest_port, grpc_port = ports
    head = f"""name: {name}
image: {serving_image}
ports: {{rest: {rest_port}, grpc: {grpc_port}}}
server_args: {{max_num_load_retries: 0}}
model_roots: [{models}]  # so hp3, added below, hot-loads
models:
  - name: hp2
    path: {models / "half_plus_two"}
    policy: {{all: {{}}}}
    labels: {{stable: 1, canary: 2}}
"""
    spec = write_spec(tfsops.cwd, head)
    run = tfsops("--json", "apply")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "create"
    [container] = containers_of(docker_client, name)

    assert rest(rest_port, "/v1/models/hp2/labels/canary/metadata")["model_spec"]["version"] == "2"

    hp3 = f"""  - name: hp3
    path: {models / "half_plus_three"}
"""
    spec.write_text(head + hp3)
    run = tfsops("--json", "plan")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "hot-reload"
    assert [m["name"] for m in run.json["data"]["models"]["added"]] == ["hp3"]

    run = tfsops("--json", "apply")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "hot-reload"
    assert [c.id for c in containers_of(docker_client, name)] == [container.id]
    assert rest(rest_port, "/v1/models/hp3:predict", {"instances": [1.0]})["predictions"] == [3.5]

    # Removing a model from the spec is refused unless asked for (--prune / remove-model).
    spec.write_text(head)
    run = tfsops("--json", "apply")
    assert run.code == 3, run
    assert "would unload hp3" in run.json["error"]["message"]

    # A cold change (resources) recreates; the new container serves everything.
    spec.write_text(head.replace("models:", "resources: {cpus: 1.5}\nmodels:") + hp3)
    run = tfsops("--json", "apply")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "recreate"
    [new] = containers_of(docker_client, name)
    assert new.id != container.id and new.name == f"tfsops-{name}"
    assert new.attrs["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert rest(rest_port, "/v1/models/hp3:predict", {"instances": [1.0]})["predictions"] == [3.5]
    assert tfsops("down", "--volumes").code == 0


def test_failures_leave_nothing_behind(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    broken_model: Path,
    serving_image: str,
    docker_client: Any,
    container_ids: list[str],
) -> None:
    rest_port, grpc_port = ports
    state = Path(tfsops.env["TFSOPS_STATE_DIR"]) / name

    # Model path missing: exit 3 before Docker is touched.
    run = tfsops(
        "--json", "deploy", name, "--model-path", str(models / "nope"), "--image", serving_image
    )
    assert run.code == 3, run
    assert "does not exist" in run.json["error"]["message"]
    assert not state.exists()

    # Engine unreachable: exit 4 naming the socket.
    run = tfsops(
        "--json",
        "--docker-host",
        "unix:///nonexistent/docker.sock",
        "deploy",
        name,
        "--model-path",
        str(models / "half_plus_two"),
        "--image",
        serving_image,
    )
    assert run.code == 4, run
    assert "unix:///nonexistent/docker.sock" in run.json["error"]["message"]

    # A model that fails to load: the server exits at start-up -> exit 5, logs, nothing left.
    spec = write_spec(
        tfsops.cwd,
        f"""name: {name}
image: {serving_image}
ports: {{rest: {rest_port}, grpc: {grpc_port}}}
server_args: {{max_num_load_retries: 0}}
models:
  - name: broken
    path: {broken_model}
""",
    )
    run = tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 5, run
    error = run.json["error"]
    assert "exited" in error["message"] or "failed to load" in error["message"]
    assert error["details"].get("logs"), error
    assert containers_of(docker_client, name) == []
    assert not state.exists()

    # --keep-failed keeps it for inspection.
    run = tfsops("--json", "apply", "--timeout", "120", "--keep-failed")
    assert run.code == 5, run
    kept = containers_of(docker_client, name)
    container_ids.extend(c.id for c in kept)
    assert len(kept) == 1
    assert tfsops("down", "--volumes").code == 0
    assert containers_of(docker_client, name) == []
    assert not state.exists()
    spec.unlink()

    # GPU on an engine without a GPU runtime: a clear error, no container left.
    run = tfsops(
        "--json",
        "deploy",
        name,
        "--model-path",
        str(models / "half_plus_two"),
        "--image",
        serving_image,
        "--gpu",
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    )
    assert run.code != 0, run
    assert "GPU" in run.json["error"]["message"] or "gpu" in run.json["error"]["message"]
    assert "nvidia-container-toolkit" in (run.json["error"]["hint"] or "")
    assert containers_of(docker_client, name) == []


def test_port_taken_names_the_holder(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    rest_port, grpc_port = ports
    first = (
        "deploy",
        name,
        "--model-path",
        str(models / "half_plus_two"),
        "--image",
        serving_image,
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    )
    assert tfsops(*first).code == 0
    other = f"{name}b"
    run = tfsops(
        "--json",
        "deploy",
        other,
        "--model-path",
        str(models / "half_plus_three"),
        "--image",
        serving_image,
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(free_ports(1)[0]),
    )
    assert run.code == 3, run
    assert f"taken by container tfsops-{name}" in run.json["error"]["message"]
    assert containers_of(docker_client, other) == []
    assert tfsops("down", "-d", name, "--volumes").code == 0


def test_timeout_exit_6(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    rest_port, grpc_port = ports
    run = tfsops(
        "--json",
        "deploy",
        name,
        "--model-path",
        str(models / "half_plus_two"),
        "--image",
        serving_image,
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
        "--timeout",
        "0.5",
    )
    assert run.code == 6, run
    assert run.json["error"]["details"]["health"]["models"][0]["name"] == name
    assert containers_of(docker_client, name) == []


def test_ctrl_c_during_the_wait_leaves_the_container_and_says_so(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    import signal

    rest_port, grpc_port = ports
    proc = tfsops.popen(
        "deploy",
        name,
        "--model-path",
        str(models / "half_plus_two"),
        "--image",
        serving_image,
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    )
    deadline = time.monotonic() + 60
    while not containers_of(docker_client, name):  # interrupt once the container exists
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "left as it is" in err
    assert len(containers_of(docker_client, name)) == 1  # left, as said
    # ... with the files it mounts (a restart without models.config crash-loops), and
    # the next apply waits for it (or repairs it) instead of failing
    config = Path(tfsops.env["TFSOPS_STATE_DIR"]) / name / "config" / "models.config"
    assert config.is_file(), err
    run = tfsops("--json", "apply", "-d", name, "--timeout", "120")
    assert run.code == 0, run
    assert len(containers_of(docker_client, name)) == 1
    assert tfsops("down", "-d", name, "--volumes").code == 0
    assert containers_of(docker_client, name) == []


def test_ctrl_c_during_a_recreate_then_apply_finishes_and_down_removes_both(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    import signal

    spec = tfsops.cwd / "tfsops.yaml"
    text = (
        f"name: {name}\nimage: {serving_image}\nports: {{rest: {ports[0]}, grpc: {ports[1]}}}\n"
        f"models: [{{name: a, path: {models / 'half_plus_two'}}}]\n"
    )
    spec.write_text(text)
    assert tfsops("apply", "--timeout", "120").code == 0
    def interrupted_swap() -> tuple[int, str]:
        """`apply` interrupted with Ctrl-C once the -next container exists."""
        proc = tfsops.popen("apply", "--timeout", "120")
        deadline = time.monotonic() + 60
        while len(containers_of(docker_client, name)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err

    spec.write_text(text + "server_args: {tensorflow_intra_op_parallelism: 2}\n")
    code, err = interrupted_swap()
    assert code == 130, err
    assert f"tfsops-{name}-next" in err and "`tfsops apply` finishes the swap" in err, err
    run = tfsops("--json", "plan")
    assert any(f"tfsops-{name}-next" in r for r in run.json["data"]["reasons"]), run
    run = tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 0, run
    [container] = containers_of(docker_client, name)
    assert container.name == f"tfsops-{name}" and container.status == "running"
    assert tfsops("--json", "plan").json["data"]["action"] == "noop"
    # interrupted again, then one down removes both
    spec.write_text(text)
    interrupted_swap()
    assert tfsops("down", "--volumes").code == 0
    assert containers_of(docker_client, name) == []
