"""Engines that do not answer as they should: exit 4 naming what failed.

Real servers on this machine stand in for the broken engines: a TLS server whose
certificate the client's CA did not sign, and an ssh server (paramiko's server
side) that refuses the client's key. No Docker engine is needed.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Run, Tfsops


@pytest.fixture
def cli(tmp_path: Path) -> Tfsops:
    tool = Tfsops(tmp_path / "state", tmp_path)
    for var in (
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "SSH_AUTH_SOCK",
        "TFSOPS_FORCE_RELAY",
    ):
        tool.env.pop(var, None)
    tool.env["HOME"] = str(tmp_path / "home")
    tool.env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    return tool


def _serve(listener: socket.socket, handle: Any) -> threading.Thread:
    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with contextlib.suppress(Exception):
                handle(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def listening(handle: Any) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    _serve(listener, handle)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_unreachable_engine_names_url_and_transport(cli: Tfsops) -> None:
    with listening(lambda c: c.close()) as port:
        pass  # closed again: nothing listens there now
    run = cli("--json", "--docker-host", f"tcp://127.0.0.1:{port}", "status")
    assert run.code == 4, run
    assert f"tcp://127.0.0.1:{port} over tcp" in run.json["error"]["message"], run


def _ca_and_cert(folder: Path, name: str) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert(f"{name} CA", ca_key, f"{name} CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(name, key, f"{name} CA", ca_key, False)
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


def test_tls_failure_names_the_certificates_and_the_reason(cli: Tfsops, tmp_path: Path) -> None:
    _, server_cert, server_key = _ca_and_cert(tmp_path / "server", "engine")
    _ca_and_cert(tmp_path / "client", "other")  # a CA that did not sign the engine's cert
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)

    def handshake(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    with listening(handshake) as port:
        cli.env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(tmp_path / "client"))
        run = cli("--json", "--docker-host", f"tcp://127.0.0.1:{port}", "status")
    assert run.code == 4, run
    message = run.json["error"]["message"]
    assert str(tmp_path / "client" / "ca.pem") in message, run
    assert "certificate verify failed" in message, run
    # no certificate files at all: the same exit code, naming where they were looked for
    cli.env["DOCKER_CERT_PATH"] = str(tmp_path / "missing")
    run = cli("--json", "--docker-host", "tcp://127.0.0.1:1", "status")
    assert run.code == 4 and str(tmp_path / "missing") in run.json["error"]["message"], run


def _ssh_server(host_key: Any) -> Any:
    import paramiko

    class RefuseEveryone(paramiko.ServerInterface):
        def get_allowed_auths(self, username: str) -> str:
            return "publickey"

        def check_auth_publickey(self, username: str, key: Any) -> int:
            return paramiko.AUTH_FAILED

    def handle(conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        transport.start_server(server=RefuseEveryone())
        transport.join(10)

    return handle


def _ssh_status(cli: Tfsops, port: int) -> Run:
    return cli("--json", "--docker-host", f"ssh://ci@127.0.0.1:{port}", "status", timeout=60)


def test_ssh_auth_failure_gives_ssh_reason(cli: Tfsops) -> None:
    import paramiko

    host_key = paramiko.RSAKey.generate(2048)
    ssh_dir = Path(cli.env["HOME"]) / ".ssh"
    ssh_dir.mkdir(parents=True)
    paramiko.RSAKey.generate(2048).write_private_key_file(str(ssh_dir / "id_rsa"))
    os.chmod(ssh_dir / "id_rsa", 0o600)
    with listening(_ssh_server(host_key)) as port:
        unknown = _ssh_status(cli, port)  # the host key is not in known_hosts yet
        (ssh_dir / "known_hosts").write_text(
            f"[127.0.0.1]:{port} ssh-rsa {host_key.get_base64()}\n"
        )
        refused = _ssh_status(cli, port)
    assert unknown.code == 4 and "known_hosts" in unknown.json["error"]["message"], unknown
    assert refused.code == 4, refused
    message = refused.json["error"]["message"]
    assert f"ssh://ci@127.0.0.1:{port}" in message and "Authentication failed" in message, refused


def test_context_flag_errors(cli: Tfsops) -> None:
    run = cli("--json", "--context", "nope", "status")
    assert run.code == 3 and "'nope'" in run.json["error"]["message"], run
    run = cli("status", "--context", "nope", "--docker-host", "tcp://h:1")
    assert run.code == 2 and "not both" in run.stderr, run
