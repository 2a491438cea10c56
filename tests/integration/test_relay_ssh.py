"""An ssh:// engine, end to end: an ssh server on this machine (paramiko's server side)
runs ``docker system dial-stdio`` for each channel, as sshd does on an engine host.
The server is reached through the relay over that ssh connection."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [
    pytest.mark.docker,
    pytest.mark.double,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (dial-stdio)"),
]


def _pump_channel(channel: Any, command: str) -> None:
    proc = subprocess.Popen(command.split(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    def upstream() -> None:
        with contextlib.suppress(OSError):
            while data := channel.recv(65536):
                proc.stdin.write(data)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]

    threading.Thread(target=upstream, daemon=True).start()
    with contextlib.suppress(OSError):
        while data := proc.stdout.read1(65536):
            channel.sendall(data)
    channel.send_exit_status(proc.wait())
    channel.close()


@contextlib.contextmanager
def ssh_engine(authorized: Any, host_key: Any) -> Iterator[int]:
    import paramiko

    class Server(paramiko.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

        def check_auth_publickey(self, username: str, key: Any) -> int:
            ok = key.get_base64() == authorized.get_base64()
            return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

        def check_channel_request(self, kind: str, chanid: int) -> int:
            return paramiko.OPEN_SUCCEEDED

        def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
            if command.decode() != "docker system dial-stdio":
                return False
            threading.Thread(
                target=_pump_channel, args=(channel, command.decode()), daemon=True
            ).start()
            return True

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                transport = paramiko.Transport(conn)
                transport.add_server_key(host_key)
                transport.start_server(server=Server())

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_lifecycle_over_ssh(
    tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, serving_image: str
) -> None:
    import paramiko

    home = tfsops.cwd.parent / "home"
    (home / ".ssh").mkdir(parents=True)
    client_key = paramiko.RSAKey.generate(2048)
    client_key.write_private_key_file(str(home / ".ssh" / "id_rsa"))
    os.chmod(home / ".ssh" / "id_rsa", 0o600)
    host_key = paramiko.RSAKey.generate(2048)
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "SSH_AUTH_SOCK", "TFSOPS_FORCE_RELAY"):
        tfsops.env.pop(var, None)
    tfsops.env.update(HOME=str(home), DOCKER_CONFIG=str(home / ".docker"))
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
    with ssh_engine(client_key, host_key) as port:
        (home / ".ssh" / "known_hosts").write_text(
            f"[127.0.0.1]:{port} ssh-rsa {host_key.get_base64()}\n"
        )
        tfsops.env["DOCKER_HOST"] = f"ssh://ci@127.0.0.1:{port}"
        try:
            doctor = tfsops("--json", "doctor")
            engine = doctor.json["data"]["engine"]
            assert (engine["transport"], engine["local"], engine["relay"]) == (
                "ssh",
                False,
                True,
            ), doctor
            assert engine["source"] == "env DOCKER_HOST" and engine["reachable"], doctor
            run = tfsops("--json", "deploy", "--timeout", "120")
            assert run.code == 0, run
            assert tfsops("health").code == 0
            for extra in ([], ["--grpc"]):
                run = tfsops("--json", "predict", "a", "--instances", "[1.0]", *extra)
                assert run.json["data"]["response"]["predictions"] == [2.5], run
        finally:
            assert tfsops("down", "--volumes").code == 0
