"""Engine selection as the docker CLI does it, against real context files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfsops.engine import context_id, is_local, select_engine, transport_of
from tfsops.errors import ExitCode, InvalidInput, UsageError


def make_context(
    config: Path, name: str, host: str, *, tls: bool = False, skip: bool = False
) -> None:
    """What `docker context create NAME --docker host=HOST[,ca=...]` writes."""
    meta = config / "contexts" / "meta" / context_id(name)
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps(
            {
                "Name": name,
                "Metadata": {"Description": ""},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}},
            }
        )
    )
    if tls:
        folder = config / "contexts" / "tls" / context_id(name) / "docker"
        folder.mkdir(parents=True)
        for file in ("ca.pem", "cert.pem", "key.pem"):
            (folder / file).write_text("PEM")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "docker-config"
    folder.mkdir()
    make_context(folder, "gpu-box", "ssh://ci@gpu-box:2222")
    make_context(folder, "tls-box", "tcp://10.0.0.5:2376", tls=True)
    make_context(folder, "insecure", "tcp://10.0.0.6:2376", tls=True, skip=True)
    return folder


def env(config: Path, **extra: str) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(config), "HOME": str(config.parent), **extra}


def test_default_is_the_local_socket(config: Path) -> None:
    sel = select_engine(env=env(config))
    assert (sel.url, sel.source, sel.transport, sel.local, sel.relay) == (
        "unix:///var/run/docker.sock",
        "default",
        "unix",
        True,
        False,
    )


def test_precedence_flag_context_env_host_env_context_current(config: Path) -> None:
    (config / "config.json").write_text(json.dumps({"currentContext": "tls-box"}))
    e = env(config, DOCKER_HOST="tcp://1.2.3.4:2375", DOCKER_CONTEXT="gpu-box")
    assert select_engine("ssh://me@flag", None, e).source == "flag --docker-host"
    by_flag = select_engine(None, "insecure", e)
    assert (by_flag.url, by_flag.context) == ("tcp://10.0.0.6:2376", "insecure")
    assert select_engine(None, None, e).source == "env DOCKER_HOST"
    del e["DOCKER_HOST"]
    assert select_engine(None, None, e).url == "ssh://ci@gpu-box:2222"
    del e["DOCKER_CONTEXT"]
    current = select_engine(None, None, e)
    assert current.context == "tls-box"
    assert current.source == "context tls-box (current context in the docker config)"


def test_context_tls_files_and_transport(config: Path) -> None:
    sel = select_engine(None, "tls-box", env(config))
    assert sel.transport == "tcp+tls" and sel.tls is not None and sel.tls.verify
    assert sel.tls.ca == config / "contexts" / "tls" / context_id("tls-box") / "docker" / "ca.pem"
    assert not select_engine(None, "insecure", env(config)).tls.verify  # type: ignore[union-attr]
    ssh = select_engine(None, "gpu-box", env(config))
    assert (ssh.transport, ssh.local, ssh.relay, ssh.tls) == ("ssh", False, True, None)


def test_docker_tls_verify_uses_docker_cert_path(config: Path, tmp_path: Path) -> None:
    e = env(
        config,
        DOCKER_HOST="tcp://10.1.1.1:2376",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=str(tmp_path / "certs"),
    )
    sel = select_engine(env=e)
    assert sel.transport == "tcp+tls" and sel.tls is not None
    assert (sel.tls.ca, sel.tls.cert, sel.tls.key) == tuple(
        tmp_path / "certs" / f for f in ("ca.pem", "cert.pem", "key.pem")
    )
    del e["DOCKER_CERT_PATH"]
    assert select_engine(env=e).tls.folder == config  # type: ignore[union-attr]


def test_default_context_by_name_is_docker_host_or_socket(config: Path) -> None:
    assert select_engine(None, "default", env(config)).url == "unix:///var/run/docker.sock"
    e = env(config, DOCKER_HOST="tcp://h:2375")
    assert select_engine(None, "default", e).url == "tcp://h:2375"


def test_unknown_context_and_conflicting_options_are_refused(config: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        select_engine(None, "nope", env(config))
    assert "nope" in info.value.message and info.value.exit_code == ExitCode.INVALID
    (config / "config.json").write_text(json.dumps({"currentContext": "gone"}))
    with pytest.raises(InvalidInput, match="'gone'"):
        select_engine(env=env(config))
    with pytest.raises(UsageError) as usage:
        select_engine("tcp://x:1", "gpu-box", env(config))
    assert usage.value.exit_code == ExitCode.USAGE


def test_forced_relay_and_locality() -> None:
    assert select_engine(env={"TFSOPS_FORCE_RELAY": "1", "HOME": "/nonexistent"}).relay
    assert is_local("unix:///run/docker.sock") and is_local("npipe:////./pipe/docker_engine")
    # a tcp engine on loopback may be a forwarded remote engine: not assumed local
    assert not is_local("tcp://127.0.0.1:2375") and not is_local("ssh://u@h")
    assert transport_of("tcp://h:2376", tls=True) == "tcp+tls"
