"""The server reached through the engine (the relay), forced on against the local engine.

``TFSOPS_FORCE_RELAY=1`` makes tfsops treat the local engine as it treats a remote
one: every connection to the server goes through an exec in the container, never
to the published ports on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]


@pytest.fixture
def relayed(tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, serving_image: str):  # type: ignore[no-untyped-def]
    tfsops.env["TFSOPS_FORCE_RELAY"] = "1"
    rest_port, grpc_port = ports
    write_spec(
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
    yield tfsops
    tfsops("down", "--volumes")


def test_lifecycle_through_the_relay(relayed: Tfsops, models: Path) -> None:
    tfsops = relayed
    run = tfsops("--json", "deploy", "--timeout", "120")
    assert run.code == 0, run
    doctor = tfsops("--json", "doctor")
    assert doctor.json["data"]["engine"]["relay"] is True, doctor
    assert doctor.json["data"]["engine"]["transport"] == "unix"
    run = tfsops("--json", "health")
    assert run.code == 0 and run.json["data"]["ok"] is True, run
    run = tfsops("--json", "status")
    assert run.code == 0, run
    assert "AVAILABLE" in run.stdout
    for extra in ([], ["--grpc"]):
        run = tfsops("--json", "predict", "a", "--instances", "[1.0, 2.0]", *extra)
        assert run.code == 0, run
        assert run.json["data"]["response"]["predictions"] == [2.5, 3.0], run
    run = tfsops("--json", "add-model", "b", "--path", str(models / "half_plus_three"))
    assert run.code == 0, run
    run = tfsops("--json", "predict", "b", "--instances", "[1.0]", "--grpc")
    assert run.json["data"]["response"]["predictions"] == [3.5], run
    # a new version of a (y = 0.5x + 3), then a label on it, both verified through the relay
    run = tfsops("--json", "publish", "a", str(models / "half_plus_three" / "1"), "--version", "3")
    assert run.code == 0, run
    run = tfsops("--json", "promote", "a", "--label", "stable", "--version", "3")
    assert run.code == 0, run
    run = tfsops("--json", "predict", "a", "--instances", "[1.0]", "--label", "stable")
    assert run.json["data"]["response"]["predictions"] == [3.5], run


DECOY = textwrap.dedent(
    """
    import json, socket, subprocess, sys, threading
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    hits = []
    def decoy(port):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.listen(16)
        while True:
            c, _ = s.accept(); hits.append(port)
            c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n{}"); c.close()
    for p in json.loads(sys.argv[1]):
        threading.Thread(target=decoy, args=(p,), daemon=True).start()
    codes = []
    for args in json.loads(sys.argv[2]):
        codes.append(subprocess.run([sys.executable, "-m", "tfsops", *args]).returncode)
    print(json.dumps({"codes": codes, "hits": hits}))
    """
)


def _in_own_network(tfsops: Tfsops, ports: tuple[int, int], commands: list[list[str]]) -> dict:  # type: ignore[type-arg]
    """Run tfsops commands in a fresh network namespace holding decoys on the deployment's
    ports: like a remote engine, whose published ports are not this machine's."""
    proc = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-c",
            DECOY,
            json.dumps(list(ports)),
            json.dumps(commands),
        ],
        cwd=tfsops.cwd,
        env=tfsops.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="needs root, unshare and ip for a private network namespace",
)
def test_decoy_on_the_same_local_port_is_never_contacted(
    relayed: Tfsops, ports: tuple[int, int]
) -> None:
    tfsops = relayed
    assert tfsops("deploy", "--timeout", "120").code == 0
    out = _in_own_network(
        tfsops,
        ports,
        [
            ["health"],
            ["status"],
            ["predict", "a", "--instances", "[1.0]"],
            ["predict", "a", "--instances", "[1.0]", "--grpc"],
            ["reload"],
        ],
    )
    assert out == {"codes": [0, 0, 0, 0, 0], "hits": []}
    # The control: without the relay the same commands talk to the decoy.
    tfsops.env["TFSOPS_FORCE_RELAY"] = "0"
    out = _in_own_network(tfsops, ports, [["health"]])
    assert out["hits"], out


def test_relay_dropped_fails_with_exit_4_and_changes_nothing(
    relayed: Tfsops, name: str, models: Path, docker_client: object
) -> None:
    tfsops = relayed
    assert tfsops("deploy", "--timeout", "120").code == 0
    state = Path(tfsops.env["TFSOPS_STATE_DIR"]) / name / "config" / "models.config"
    before = state.read_text()
    spec_before = (tfsops.cwd / "tfsops.yaml").read_text()
    container = docker_client.containers.get(f"tfsops-{name}")  # type: ignore[attr-defined]
    container.pause()  # the engine refuses execs into it: the relay cannot open its end
    try:
        run = tfsops("--json", "predict", "a", "--instances", "[1.0]", "--timeout", "10")
        assert run.code == 4, run
        assert "relay" in run.json["error"]["message"], run
        assert "paused" in run.json["error"]["message"], run
        run = tfsops(
            "--json", "add-model", "b", "--path", str(models / "half_plus_three"), "--timeout", "20"
        )
        assert run.code in (4, 5), run  # the executor's own check meets the paused container
    finally:
        container.unpause()
    assert state.read_text() == before
    assert (tfsops.cwd / "tfsops.yaml").read_text() == spec_before
    assert tfsops("health").code == 0
