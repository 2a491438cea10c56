"""Security by default: loopback ports, read-only model mounts, private state, validated
names, no secrets in any output, no shell strings, and gRPC over TLS end to end.

The real tfsops executable, the real engine, the TF Serving test double (which serves
gRPC over TLS from ``--ssl_config_file`` like the real server).
"""

from __future__ import annotations

import ast
import json
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops, free_ports
from tests.integration.conftest import write_spec

ROOT = Path(__file__).resolve().parents[2]


def containers_of(docker_client: Any, name: str) -> list[Any]:
    return docker_client.containers.list(
        all=True, filters={"label": f"io.tfsops.deployment={name}"}
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------
# no shell strings (static; no engine needed)


def _shell_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        where = f"{path.name}:{node.lineno}"
        if func in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            problems.append(f"{where}: {func}()")
        for kw in node.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                problems.append(f"{where}: shell={ast.unparse(kw.value)}")
        if func.split(".")[-1] in ("run", "Popen", "call", "check_call", "check_output") and (
            "subprocess" in func or func in ("Popen",)
        ):
            first = node.args[0] if node.args else None
            if isinstance(first, (ast.JoinedStr, ast.BinOp)) or (
                isinstance(first, ast.Constant) and isinstance(first.value, str)
            ):
                problems.append(f"{where}: {func}() with a string command")
    return problems


def test_no_shell_strings_in_tfsops() -> None:
    files = sorted((ROOT / "tfsops").rglob("*.py"))
    assert len(files) > 30
    problems = [p for f in files for p in _shell_problems(f)]
    text_hits = [
        f"{f.relative_to(ROOT)}: {needle}"
        for f in files
        for needle in ("shell=True", "os.system(", "os.popen(")
        if needle in f.read_text(encoding="utf-8")
    ]
    assert problems == [] and text_hits == [], problems + text_hits


def test_the_shell_check_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"  # only parsed, never imported
    code = (
        "import os, subprocess\n"
        "os.system('id')\n"
        "subprocess.run(f'ls {x}')\n"
        "subprocess.run(['ls'], shell=True)\n"
        "subprocess.check_output('id')\n"
        "subprocess.run(['ls', x])\n"
    )
    bad.write_text(code)
    found = _shell_problems(bad)
    assert len(found) == 4, found


# ---------------------------------------------------------------------------
# a default deployment: loopback, read-only models, private state


@pytest.mark.docker
@pytest.mark.double
@pytest.mark.slow
def test_secure_defaults(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    rest_port, grpc_port = ports
    write_spec(
        tfsops.cwd,
        f"""name: {name}
image: {serving_image}
ports: {{rest: {rest_port}, grpc: {grpc_port}}}
models:
  - name: a
    path: {models / "half_plus_two"}
""",
    )
    state_root = Path(tfsops.env["TFSOPS_STATE_DIR"])
    try:
        run = tfsops("--json", "apply", "--timeout", "120")
        assert run.code == 0, run
        [container] = containers_of(docker_client, name)

        # ports published on loopback only
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert {b["HostIp"] for binds in bindings.values() for b in binds} == {"127.0.0.1"}
        doctor = tfsops("--json", "doctor")
        assert doctor.code in (0, 3), doctor
        assert not any(name in w for w in doctor.json["warnings"]), doctor.json["warnings"]

        # model folders mounted read-only: the server cannot change them
        mounts = container.attrs["Mounts"]
        assert mounts and all(m["RW"] is False for m in mounts), mounts
        model_mount = next(m for m in mounts if m["Destination"].startswith("/models/"))
        code, out = container.exec_run(
            ["touch", f"{model_mount['Destination']}/written-by-the-server"]
        )
        assert code != 0 and b"Read-only file system" in out, out
        assert not (models / "half_plus_two" / "written-by-the-server").exists()

        # the state folder is private; files the server reads are readable, not writable
        state = state_root / name
        assert mode(state_root) == 0o700
        assert mode(state) == 0o700
        assert mode(state / "deployment.json") == 0o600
        assert mode(state / "lock") == 0o600
        assert mode(state / "revisions") == 0o700
        assert mode(state / "config") == 0o755
        assert mode(state / "config" / "models.config") == 0o644

        # model names are validated before they reach a path, a URL or models.config
        spec_before = (tfsops.cwd / "tfsops.yaml").read_text()
        for hostile in ("../x", "a/b", 'x"}', "a\nb", "..", "a b"):
            run = tfsops("--json", "add-model", hostile, "--path", str(models / "half_plus_three"))
            assert run.code == 3, (hostile, run)
            assert "Traceback" not in run.stderr
        assert (tfsops.cwd / "tfsops.yaml").read_text() == spec_before
        assert sorted(p.name for p in state.iterdir()) == sorted(
            ["config", "deployment.json", "lock", "revisions"]
        )
        assert not (state_root / "x").exists() and not (state_root.parent / "x").exists()
    finally:
        tfsops("down", "--volumes")


# ---------------------------------------------------------------------------
# gRPC over TLS, bound to every interface


@dataclass
class Tls:
    cert: Path
    key: Path
    key_lines: list[str]  # the base64 body of the private key: must never be printed


@pytest.fixture
def tls_files(tmp_path: Path) -> Tls:
    folder = tmp_path / "tls"
    folder.mkdir()
    cert, key = folder / "server.crt", folder / "server.key"
    done = subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate here: {done.stderr.strip()[-300:]}")
    key.chmod(0o600)
    body = [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]
    return Tls(cert, key, body)


def assert_no_key(text: str, tls: Tls, where: str) -> None:
    assert "PRIVATE KEY" not in text, where
    for line in tls.key_lines[:3] + tls.key_lines[-2:]:
        assert line not in text, where


@pytest.fixture
def tls_deployment(
    tfsops: Tfsops, name: str, models: Path, serving_image: str, tls_files: Tls
) -> Iterator[tuple[str, int, Tls]]:
    [grpc_port] = free_ports(1)
    write_spec(
        tfsops.cwd,
        f"""name: {name}
image: {serving_image}
ports: {{rest: null, grpc: {grpc_port}, bind: 0.0.0.0}}   # gRPC only, every interface
tls: {{cert: {tls_files.cert}, key: {tls_files.key}, server_name: localhost}}
models:
  - name: a
    path: {models / "half_plus_two"}
""",
    )
    run = tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 0, run
    assert_no_key(run.stdout + run.stderr, tls_files, "apply")
    yield name, grpc_port, tls_files
    tfsops("down", "--volumes")


@pytest.mark.docker
@pytest.mark.double
@pytest.mark.slow
def test_grpc_tls_end_to_end(
    tfsops: Tfsops, tls_deployment: tuple[str, int, Tls], docker_client: Any
) -> None:
    name, grpc_port, tls = tls_deployment
    outputs: dict[str, str] = {}

    # health (gRPC: the spec publishes no REST port) and predict --grpc work over TLS
    run = tfsops("--json", "health")
    assert run.code == 0, run
    assert run.json["data"]["ok"] is True
    outputs["health"] = run.stdout + run.stderr
    run = tfsops("--json", "predict", "a", "--grpc", "--instances", "[1.0, 2.0, 5.0]")
    assert run.code == 0, run
    assert run.json["data"]["response"]["predictions"] == [2.5, 3.0, 4.5]
    outputs["predict"] = run.stdout + run.stderr

    # a plain-text gRPC client is refused; so is TLS with a certificate nobody vouches for
    import grpc

    from tfsops.adapters import protos

    status_pb2 = protos.load("tensorflow_serving.apis.get_model_status_pb2")
    service = protos.load("tensorflow_serving.apis.model_service_pb2_grpc")
    request = status_pb2.GetModelStatusRequest()
    request.model_spec.name = "a"
    for channel in (
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}"),
        grpc.secure_channel(
            f"127.0.0.1:{grpc_port}",
            grpc.ssl_channel_credentials(),  # the system CAs: they do not know this cert
            options=[("grpc.ssl_target_name_override", "localhost")],
        ),
    ):
        with channel, pytest.raises(grpc.RpcError) as refused:
            service.ModelServiceStub(channel).GetModelStatus(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # ... and a TLS client with the right CA answers (the same call, trusted)
    with grpc.secure_channel(
        f"127.0.0.1:{grpc_port}",
        grpc.ssl_channel_credentials(root_certificates=tls.cert.read_bytes()),
        options=[("grpc.ssl_target_name_override", "localhost")],
    ) as channel:
        answer = service.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        assert answer.model_version_status[0].version == 2

    # tfsops itself without the CA (a spec without tls:) cannot talk to it either
    plain = tfsops.cwd / "plain.yaml"
    plain.write_text(
        re.sub(r"^tls: .*\n", "", (tfsops.cwd / "tfsops.yaml").read_text(), flags=re.M)
    )
    # (through docker-proxy a refused TLS handshake looks like a server still starting: exit 6)
    for args in (("health",), ("predict", "a", "--grpc", "--instances", "[1.0]")):
        run = tfsops("--json", "-f", str(plain), *args, timeout=60)
        assert run.code == 6, (args, run)
        assert "Traceback" not in run.stderr

    # bound to every interface: doctor says so
    run = tfsops("--json", "doctor")
    assert run.code in (0, 3), run
    assert any(name in w and "reachable from other hosts" in w for w in run.json["warnings"]), (
        run.json["warnings"]
    )
    [container] = containers_of(docker_client, name)
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert bindings["8500/tcp"][0]["HostIp"] == "0.0.0.0"
    assert "8501/tcp" not in bindings
    outputs["doctor"] = run.stdout + run.stderr

    # secrets never printed: not by render (text or --json), plan, status, logs
    for args in (
        ("render",),
        ("--json", "render"),
        ("--json", "render", "all"),
        ("--json", "render", "plan"),
        ("--json", "render", "k8s"),
        ("--json", "plan"),
        ("--json", "status"),
        ("--json", "logs"),
        ("--json", "revisions"),
        ("--json", "validate"),
    ):
        run = tfsops(*args)
        assert run.code == 0, (args, run)
        outputs[" ".join(args)] = run.stdout + run.stderr
    for where, text in outputs.items():
        assert_no_key(text, tls, where)
    assert "ssl.config holds the TLS private key" in outputs["render"]
    # nor handed to Docker where `docker inspect` shows it (env, args, labels)
    assert_no_key(json.dumps(container.attrs), tls, "docker inspect")
    assert any("--ssl_config_file=" in arg for arg in container.attrs["Args"])

    # the key is only in ssl.config (0600) in the private state folder, and in files
    # render -o writes with 0600
    state = Path(tfsops.env["TFSOPS_STATE_DIR"]) / name
    ssl_config = state / "config" / "ssl.config"
    assert mode(ssl_config) == 0o600 and mode(state) == 0o700
    holders = [
        p.relative_to(state)
        for p in state.rglob("*")
        if p.is_file() and tls.key_lines[1] in p.read_text(errors="replace").replace("\\n", "\n")
    ]
    assert holders == [Path("config/ssl.config")], holders
    out_dir = tfsops.cwd / "rendered"
    run = tfsops("--json", "render", "-o", str(out_dir))
    assert run.code == 0, run
    assert_no_key(run.stdout + run.stderr, tls, "render -o")
    assert mode(out_dir / "ssl.config") == 0o600
    assert re.search(r"server_key: \"-----BEGIN", (out_dir / "ssl.config").read_text())
