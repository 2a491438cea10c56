"""Import the Docker SDK without its ssh transport when the engine is not ssh://.

docker-py imports paramiko (and with it cryptography) at import time whenever it
is installed, only to offer ssh:// engines: about 0.1 s and several MB of every
run that talks to a local or tcp:// engine, the watcher included.
"""

from __future__ import annotations

import os
import sys


def import_docker(docker_host: str | None) -> None:
    """Import ``docker``; skip its paramiko import unless the engine URL is ssh://.

    ``docker_host`` is the selected engine's URL (flag, DOCKER_HOST or a context).
    """
    if "docker" in sys.modules or "paramiko" in sys.modules:
        return
    url = docker_host or os.environ.get("DOCKER_HOST", "")
    if url.startswith("ssh://"):
        import docker

        return
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # docker's optional import fails
    try:
        import docker  # noqa: F401
    finally:
        del sys.modules["paramiko"]
