"""Which Docker engine a command talks to, decided as the docker CLI decides it.

Precedence (docker/cli ``ResolveContextName`` and the default context):

1. ``--docker-host`` (like ``docker -H``); with ``--context`` as well it is a usage error;
2. ``--context NAME``;
3. ``DOCKER_HOST`` (the default context's host);
4. ``DOCKER_CONTEXT``;
5. ``currentContext`` in the docker config (``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``);
6. the local socket.

A host given by flag or environment uses TLS when ``DOCKER_TLS_VERIFY`` is set,
with ``ca.pem``/``cert.pem``/``key.pem`` from ``DOCKER_CERT_PATH`` (else
``~/.docker``). A context keeps its host in
``contexts/meta/<sha256(name)>/meta.json`` and its TLS files in
``contexts/tls/<sha256(name)>/docker/`` beside the config file: the on-disk format
of ``docker context create``.

This module is pure (no docker import): ``--help``, ``doctor`` and the unit tests
read it without the SDK. :func:`is_local` is the one place that decides whether the
engine's published ports are this machine's ports.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tfsops.errors import InvalidInput, UsageError

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Tests (and users who know better) can route every server connection through the relay.
FORCE_RELAY_ENV = "TFSOPS_FORCE_RELAY"


@dataclass(frozen=True)
class TlsFiles:
    """Client TLS material for a tcp engine."""

    verify: bool
    ca: Path | None
    cert: Path | None
    key: Path | None
    folder: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "verify": self.verify,
            "folder": str(self.folder),
            "ca": str(self.ca) if self.ca else None,
            "cert": str(self.cert) if self.cert else None,
            "key": str(self.key) if self.key else None,
        }


@dataclass(frozen=True)
class EngineSelection:
    """The engine a command uses, and why that one."""

    url: str
    source: str  # "flag --docker-host", "env DOCKER_HOST", "context NAME (…)", "default"
    context: str | None = None
    tls: TlsFiles | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def transport(self) -> str:
        return transport_of(self.url, tls=self.tls is not None)

    @property
    def local(self) -> bool:
        return is_local(self.url)

    @property
    def relay(self) -> bool:
        """Whether the server is reached through the engine instead of its published ports."""
        return not self.local or relay_forced(self.env)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "transport": self.transport,
            "source": self.source,
            "context": self.context,
            "local": self.local,
            "relay": self.relay,
            "tls": self.tls.to_dict() if self.tls else None,
        }

    def describe(self) -> str:
        where = "local" if self.local else "remote"
        return f"{self.url} ({self.transport}, {where}, from {self.source})"


def transport_of(url: str, *, tls: bool = False) -> str:
    """unix, npipe, tcp, tcp+tls or ssh."""
    scheme = urlparse(url).scheme.lower()
    if scheme in ("unix", "http+unix", ""):
        return "unix"
    if scheme == "npipe":
        return "npipe"
    if scheme == "ssh":
        return "ssh"
    if scheme == "https" or tls:
        return "tcp+tls"
    return "tcp"


def is_local(url: str) -> bool:
    """True when the engine is this machine's, so its published ports are ours.

    Only a socket (unix, npipe) is known to be local. A tcp engine on 127.0.0.1
    may be a forwarded port of a remote engine, and an ssh engine is another
    login: both are reached through the relay.
    """
    return transport_of(url) in ("unix", "npipe")


def relay_forced(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(FORCE_RELAY_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def docker_config_dir(env: Mapping[str, str]) -> Path:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".docker"


def context_id(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def _current_context(config_dir: Path) -> str | None:
    path = config_dir / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"cannot read the docker config {path}: {exc}",
            hint="fix or remove the file, or pass --docker-host",
        ) from exc
    name = data.get("currentContext") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def _env_tls(env: Mapping[str, str]) -> TlsFiles | None:
    if not env.get("DOCKER_TLS_VERIFY"):
        return None
    folder = Path(env.get("DOCKER_CERT_PATH") or docker_config_dir(env)).expanduser()
    return TlsFiles(
        verify=True,
        ca=folder / "ca.pem",
        cert=folder / "cert.pem",
        key=folder / "key.pem",
        folder=folder,
    )


def _from_context(name: str, source: str, env: Mapping[str, str]) -> EngineSelection:
    config_dir = docker_config_dir(env)
    meta = config_dir / "contexts" / "meta" / context_id(name) / "meta.json"
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"docker context {name!r} ({source}) does not exist: no {meta}",
            hint="`docker context ls` lists the contexts; `docker context use default` "
            "or --docker-host picks another engine",
            details={"context": name, "meta": str(meta)},
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"cannot read docker context {name!r} from {meta}: {exc}",
            details={"context": name, "meta": str(meta)},
        ) from exc
    found = ((data.get("Endpoints") or {}) if isinstance(data, dict) else {}).get("docker")
    endpoint: dict[str, Any] = found if isinstance(found, dict) else {}
    host = endpoint.get("Host")
    if not isinstance(host, str) or not host:
        raise InvalidInput(
            f"docker context {name!r} has no docker endpoint host in {meta}",
            details={"context": name, "meta": str(meta)},
        )
    tls = None
    tls_dir = config_dir / "contexts" / "tls" / context_id(name) / "docker"
    if transport_of(host) == "tcp" and tls_dir.is_dir():

        def present(file: str) -> Path | None:
            path = tls_dir / file
            return path if path.is_file() else None

        tls = TlsFiles(
            verify=not bool(endpoint.get("SkipTLSVerify")),
            ca=present("ca.pem"),
            cert=present("cert.pem"),
            key=present("key.pem"),
            folder=tls_dir,
        )
    return EngineSelection(
        url=_checked(host, f"the host of docker context {name}"),
        source=f"context {name} ({source})",
        context=name,
        tls=tls,
        env=env,
    )


def _checked(url: str, what: str) -> str:
    """Every engine URL, whichever way it was given, passes the one validation layer."""
    from tfsops.inputs import engine_url

    return engine_url(url, what)


def select_engine(
    docker_host: str | None = None,
    context: str | None = None,
    env: Mapping[str, str] | None = None,
) -> EngineSelection:
    """The engine for these global options and this environment (see the module doc)."""
    env = dict(os.environ if env is None else env)
    if docker_host and context:
        raise UsageError("conflicting options: either specify --docker-host or --context, not both")
    if docker_host:
        return EngineSelection(
            url=_checked(docker_host, "--docker-host"),
            source="flag --docker-host",
            tls=_env_tls(env),
            env=env,
        )
    if context:
        return _context_or_default(context, "flag --context", env)
    if env.get("DOCKER_HOST"):
        return EngineSelection(
            url=_checked(env["DOCKER_HOST"], "DOCKER_HOST"),
            source="env DOCKER_HOST",
            tls=_env_tls(env),
            env=env,
        )
    if env.get("DOCKER_CONTEXT"):
        return _context_or_default(env["DOCKER_CONTEXT"], "env DOCKER_CONTEXT", env)
    current = _current_context(docker_config_dir(env))
    if current:
        return _context_or_default(current, "current context in the docker config", env)
    return EngineSelection(url=DEFAULT_HOST, source="default", tls=_env_tls(env), env=env)


def _context_or_default(name: str, source: str, env: Mapping[str, str]) -> EngineSelection:
    if name == "default":  # the built-in context: DOCKER_HOST or the local socket
        url = _checked(env["DOCKER_HOST"], "DOCKER_HOST") if env.get("DOCKER_HOST") else DEFAULT_HOST
        return EngineSelection(
            url=url,
            source=f"context default ({source})",
            context="default",
            tls=_env_tls(env),
            env=env,
        )
    return _from_context(name, source, env)
