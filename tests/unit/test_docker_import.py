"""The Docker SDK is imported without paramiko unless the engine is ssh://."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

PROBE = (
    "import sys; from tfsops.adapters.docker_import import import_docker; "
    "import_docker(sys.argv[1] or None); import docker; "
    "print('paramiko' in sys.modules, hasattr(docker.transport, 'UnixHTTPAdapter'))"
)


def probe(host: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, host], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_local_engine_does_not_import_paramiko() -> None:
    assert probe("") == "False True"
    assert probe("tcp://127.0.0.1:2375") == "False True"


@pytest.mark.skipif(importlib.util.find_spec("paramiko") is None, reason="paramiko not installed")
def test_an_ssh_engine_keeps_the_ssh_transport() -> None:
    assert probe("ssh://user@host") == "True True"
