"""Mount only what serves, never restart on a hot command, report a folder that went away.

The real tfsops executable, the real engine and the TF Serving test double
(issue 12 rows 2, 3 and 13).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]

SECRET = "-----BEGIN PRIVATE KEY-----\nnot-for-the-server\n"


def _container(docker_client: Any, name: str) -> Any:
    [container] = docker_client.containers.list(
        all=True, filters={"label": f"io.tfsops.deployment={name}"}
    )
    return container


def _sh(container: Any, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", script])
    return code, out.decode(errors="replace")


def test_mount_only_what_serves_and_never_restart_on_a_hot_command(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    rest, grpc = ports
    proj = tfsops.cwd
    # A model beside secrets: a sibling key in the model's parent, TLS files beside the spec.
    shutil.copytree(models / "half_plus_two", proj / "models" / "hp2")
    (proj / "models" / "secret.key").write_text(SECRET)
    (proj / "tls").mkdir()
    (proj / "tls" / "server.key").write_text(SECRET)
    spec = write_spec(
        proj,
        f"""name: {name}
image: {serving_image}
ports: {{rest: {rest}, grpc: {grpc}}}
models:
  - name: hp2
    path: ./models/hp2
""",
    )
    run = tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 0, run
    container = _container(docker_client, name)
    started = container.attrs["State"]["StartedAt"]

    # ---- row 2: the model folder itself, read-only, and nothing else of the host
    sources = {m["Source"]: m for m in container.attrs["Mounts"]}
    assert str(proj / "models" / "hp2") in sources, sources
    assert str(proj / "models") not in sources and "/" not in sources
    assert all(not m["RW"] for m in sources.values())
    code, out = _sh(container, "ls /models")
    assert code == 0 and out.split() == ["hp2"], out
    code, out = _sh(
        container, "grep -rl 'not-for-the-server' /models /etc/tfsops 2>/dev/null; echo done"
    )
    assert out.strip() == "done", out  # neither the sibling key nor the TLS key is visible
    code, out = _sh(container, "ls /models/root /models/models 2>&1; echo done")
    assert "No such file" in out, out
    # The engine's socket and the host's / never show up inside.
    code, out = _sh(container, "test -e /var/run/docker.sock && echo visible || echo absent")
    assert out.strip() == "absent", out

    # `/` or a folder holding the spec as a root: refused before anything changes.
    for root in ("/", "."):
        spec.write_text(spec.read_text() + f"model_roots: ['{root}']\n")
        refused = tfsops("--json", "apply", "--timeout", "60")
        assert refused.code == 3, refused
        assert "would see it" in refused.json["error"]["message"]
        spec.write_text(spec.read_text().replace(f"model_roots: ['{root}']\n", ""))
    assert _container(docker_client, name).attrs["State"]["StartedAt"] == started

    # ---- row 3: a model outside every mounted folder: exit 3, no restart, spec unchanged
    shutil.copytree(models / "times_two_plus_one", proj / "extra" / "tf2")
    before = spec.read_text()
    add = tfsops("--json", "add-model", "ext", "--path", str(proj / "extra" / "tf2"))
    assert add.code == 3, add
    error = add.json["error"]
    assert "would restart the server" in error["message"]
    assert "--recreate" in error["hint"] and "model_roots" in error["hint"]
    assert spec.read_text() == before
    again = _container(docker_client, name)
    assert again.id == container.id
    assert again.attrs["State"]["StartedAt"] == started
    assert again.attrs["RestartCount"] == 0
    predict = tfsops("--json", "predict", "hp2", "--instances", "[1.0, 2.0]")
    assert predict.code == 0, predict
    # `plan` for the same change says "recreate", and why.
    spec.write_text(before + "  - {name: ext, path: ./extra/tf2}\n")
    plan = tfsops("--json", "plan")
    assert plan.code == 0, plan
    assert plan.json["data"]["action"] == "recreate"
    assert any(str(proj / "extra" / "tf2") in r for r in plan.json["data"]["reasons"])
    spec.write_text(before)

    # ---- row 13: the served model's folder moved away: health and status say so
    (proj / "models" / "hp2").rename(proj / "models" / "hp2.moved")
    try:
        health = tfsops("--json", "health")
        assert health.code == 3, health
        assert health.json["data"]["missing_folders"] == [
            {"model": "hp2", "path": str(proj / "models" / "hp2")}
        ]
        assert "a restart would not come back" in health.json["data"]["if_restarted"]
        assert "a restart would not come back" in health.stderr
        status = tfsops("--json", "status", "-f", str(spec))
        assert status.code == 0, status
        [entry] = status.json["data"]["deployments"]
        assert entry["missing_folders"][0]["model"] == "hp2"
        human = tfsops("status", "-f", str(spec))
        assert "model folder" in human.stdout and "is missing" in human.stdout, human
    finally:
        (proj / "models" / "hp2.moved").rename(proj / "models" / "hp2")
    assert tfsops("health").code == 0
    json.dumps(health.json)  # one envelope on stdout
    down = tfsops("down", "--volumes")
    assert down.code == 0, down
    # down removes what tfsops made, never the user's files
    assert sorted(p.name for p in (proj / "models" / "hp2").iterdir()) == ["1", "2"]
    assert (proj / "models" / "secret.key").read_text() == SECRET
    assert spec.read_text() == before
