"""The Docker engine, through the Docker SDK for Python (no docker CLI).

Every ``docker.errors`` / ``requests`` exception is translated here, once, into
a ``tfsops.errors`` class with an actionable hint.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import ssl
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from tfsops.engine import EngineSelection, TlsFiles, select_engine, transport_of
from tfsops.errors import EngineUnreachable, OperationFailed, TfsopsError
from tfsops.plan.container import LABEL_DEPLOYMENT, ContainerPlan
from tfsops.ports import ContainerInfo
from tfsops.spec.model import split_image_ref


def _unreachable(url: str, exc: BaseException) -> EngineUnreachable:
    transport = transport_of(url)
    return EngineUnreachable(
        f"cannot reach the Docker engine at {url} over {transport} ({type(exc).__name__}: {exc})",
        hint="is dockerd running? Start it (e.g. `sudo systemctl start docker`), or point "
        "--docker-host / DOCKER_HOST / --context at a reachable engine",
        details={"docker_host": url, "transport": transport},
    )


@contextlib.contextmanager
def translated(url: str, what: str) -> Iterator[None]:
    """Translate SDK and transport errors into tfsops errors."""
    try:
        yield
    except TfsopsError:
        raise
    except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as exc:
        raise _unreachable(url, exc) from exc
    except docker.errors.ImageNotFound as exc:
        raise OperationFailed(f"{what}: image not found: {exc.explanation}") from exc
    except docker.errors.NotFound as exc:
        raise OperationFailed(f"{what}: not found: {exc.explanation}") from exc
    except docker.errors.APIError as exc:
        raise OperationFailed(f"{what}: {exc.explanation or exc}") from exc
    except docker.errors.DockerException as exc:
        if "Connection" in str(exc) or "No such file" in str(exc):
            raise _unreachable(url, exc) from exc
        raise OperationFailed(f"{what}: {exc}") from exc
    except requests.exceptions.ReadTimeout as exc:
        raise OperationFailed(f"{what}: the Docker engine did not answer in time") from exc


def _info(container: Any) -> ContainerInfo:
    attrs = container.attrs
    state = attrs.get("State", {})
    ports: list[tuple[str, int, int]] = []
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    for cport, binds in bindings.items():
        for b in binds or []:
            if b.get("HostPort"):
                ports.append(
                    (b.get("HostIp") or "0.0.0.0", int(b["HostPort"]), int(cport.split("/")[0]))
                )
    image = (attrs.get("Config") or {}).get("Image") or ""
    return ContainerInfo(
        id=container.id,
        name=container.name,
        status=state.get("Status", container.status),
        image=image,
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        ports=ports,
        started_at=state.get("StartedAt"),
        exit_code=state.get("ExitCode"),
        restart_count=int(attrs.get("RestartCount") or 0),
    )


def _check_ssh_transport(url: str) -> None:
    """docker-py reaches ssh:// engines through paramiko (the docker[ssh] extra)."""
    if not url.startswith("ssh://"):
        return
    import importlib.util

    if importlib.util.find_spec("paramiko") is None:
        raise EngineUnreachable(
            f"cannot reach the Docker engine at {url}: ssh:// engines need paramiko, "
            "which is not installed",
            hint="pip install 'docker[ssh]' (or paramiko) into tfsops's environment",
            details={"docker_host": url},
        )


class DockerRuntime:
    """What tfsops needs from the engine, in its own words."""

    def __init__(
        self, docker_host: str | EngineSelection | None = None, timeout: int = 120
    ) -> None:
        self.engine = (
            docker_host if isinstance(docker_host, EngineSelection) else select_engine(docker_host)
        )
        self.url = self.engine.url
        self._timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            _check_ssh_transport(self.url)
            with (
                translated(self.url, "connecting to the Docker engine"),
                _connect_errors(self.engine),
            ):
                client = docker.DockerClient(
                    base_url=self.url, timeout=self._timeout, tls=_tls_config(self.engine.tls)
                )
                client.ping()
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- engine -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        with translated(self.url, "reading engine info"):
            info = self.client.info()
            version = self.client.version()
        return {
            "url": self.url,
            "server_version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "os": info.get("OperatingSystem"),
            "runtimes": sorted((info.get("Runtimes") or {}).keys()),
            "default_runtime": info.get("DefaultRuntime"),
            "swarm": (info.get("Swarm") or {}).get("LocalNodeState"),
            "cpus": info.get("NCPU"),
            "memory": info.get("MemTotal"),
            "cdi_devices": [d.get("ID") for d in info.get("DiscoveredDevices") or []],
        }

    def gpu_support_problem(self) -> str | None:
        """Why GPU containers cannot start on this engine, or None when they can."""
        info = self.info()
        if "nvidia" in info["runtimes"] or any(
            "nvidia.com/gpu" in str(d) for d in info["cdi_devices"]
        ):
            return None
        return (
            f"the Docker engine at {self.url} has no NVIDIA runtime (runtimes: "
            f"{', '.join(info['runtimes']) or 'none'}), so a container asking for GPUs cannot start"
        )

    # ---- images -------------------------------------------------------------------
    def image_labels(self, ref: str) -> dict[str, str] | None:
        """The image's labels, or None when the image is not present locally."""
        with translated(self.url, f"inspecting image {ref}"):
            try:
                image = self.client.images.get(ref)
            except docker.errors.ImageNotFound:
                return None
            return dict((image.attrs.get("Config") or {}).get("Labels") or {})

    def local_images(self, limit: int = 20) -> list[str]:
        with translated(self.url, "listing images"):
            tags = [t for img in self.client.images.list() for t in img.tags]
        return sorted(tags)[:limit]

    def pull(self, ref: str, progress: Callable[[str], None]) -> None:
        repo, tag = split_image_ref(ref)
        layers: dict[str, tuple[int, int]] = {}
        last = ""
        try:
            with translated(self.url, f"pulling {ref}"):
                for event in self.client.api.pull(repo, tag=tag, stream=True, decode=True):
                    if "error" in event:
                        raise docker.errors.APIError(event["error"])
                    detail = event.get("progressDetail") or {}
                    if event.get("id") and detail.get("total"):
                        layers[event["id"]] = (detail.get("current", 0), detail["total"])
                    done = sum(c for c, _ in layers.values())
                    total = sum(t for _, t in layers.values())
                    line = f"pulling {ref}: {event.get('status', '')}"
                    if total:
                        pct = 100 * done // total
                        bar = "#" * (pct // 5)
                        line = f"pulling {ref}: [{bar:<20}] {pct:3d}% of {total / 1e6:.0f} MB"
                    if line != last:
                        progress(line)
                        last = line
        except OperationFailed as exc:
            local = self.local_images()
            raise OperationFailed(
                f"cannot pull {ref}: {exc.message}",
                hint="no registry reachable? Use a local image with --image (local images: "
                + (", ".join(local) if local else "none")
                + ")",
            ) from exc

    # ---- containers ---------------------------------------------------------------
    def find(self, deployment: str) -> ContainerInfo | None:
        with translated(self.url, "listing containers"):
            found = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"}
            )
        return _info(found[0]) if found else None

    def list_deployments(self) -> list[ContainerInfo]:
        with translated(self.url, "listing containers"):
            found = self.client.containers.list(all=True, filters={"label": LABEL_DEPLOYMENT})
        return sorted((_info(c) for c in found), key=lambda c: c.name)

    def inspect(self, container_id: str) -> ContainerInfo | None:
        with translated(self.url, "inspecting container"):
            try:
                return _info(self.client.containers.get(container_id))
            except docker.errors.NotFound:
                return None

    def host_port_free(self, host_ip: str, port: int) -> bool:
        return host_port_free(host_ip, port)

    def port_holders(self) -> dict[int, str]:
        """Host port -> the running container publishing it."""
        holders: dict[int, str] = {}
        with translated(self.url, "listing containers"):
            running = self.client.containers.list()
        for c in running:
            for _ip, port, _cport in _info(c).ports:
                holders[port] = c.name
        return holders

    def create(self, plan: ContainerPlan) -> str:
        ports: dict[str, Any] = {}
        for p in plan.ports:
            ports[f"{p.container_port}/{p.protocol}"] = (p.host_ip, p.host_port)
        mounts = [
            docker.types.Mount(target=m.target, source=m.source, type=m.type, read_only=m.read_only)
            for m in plan.mounts
        ]
        devices = [
            docker.types.DeviceRequest(
                driver=d.driver,
                count=d.count if d.count is not None else 0,
                device_ids=list(d.device_ids) if d.device_ids else None,
                capabilities=[list(c) for c in d.capabilities],
            )
            for d in plan.device_requests
        ]
        restart: dict[str, Any] = {
            "Name": "" if plan.restart_policy == "no" else plan.restart_policy
        }
        kwargs: dict[str, Any] = {
            "image": plan.image,
            "command": list(plan.command),
            "name": plan.name,
            "labels": plan.labels,
            "environment": plan.env,
            "ports": ports,
            "mounts": mounts,
            "restart_policy": restart,
            "detach": True,
        }
        if plan.nano_cpus:
            kwargs["nano_cpus"] = plan.nano_cpus
        if plan.mem_limit:
            kwargs["mem_limit"] = plan.mem_limit
        if devices:
            kwargs["device_requests"] = devices
        with translated(self.url, f"creating container {plan.name}"):
            container = self.client.containers.create(**kwargs)
        return str(container.id)

    def start(self, container_id: str) -> None:
        with translated(self.url, "starting the container"):
            self.client.containers.get(container_id).start()

    def stop(self, container_id: str, timeout: int = 10) -> None:
        with translated(self.url, "stopping the container"):
            self.client.containers.get(container_id).stop(timeout=timeout)

    def remove(self, container_id: str) -> None:
        with (
            translated(self.url, "removing the container"),
            contextlib.suppress(docker.errors.NotFound),
        ):
            self.client.containers.get(container_id).remove(force=True)

    def rename(self, container_id: str, new_name: str) -> None:
        with translated(self.url, "renaming the container"):
            self.client.containers.get(container_id).rename(new_name)

    def logs(self, container_id: str, tail: int | str = "all") -> str:
        with translated(self.url, "reading logs"):
            data = self.client.containers.get(container_id).logs(tail=tail)
        return bytes(data).decode("utf-8", "replace")

    def follow_logs(self, container_id: str, tail: int | str = 100) -> Iterator[str]:
        with translated(self.url, "following logs"):
            stream = self.client.containers.get(container_id).logs(
                stream=True, follow=True, tail=tail
            )
            for chunk in stream:
                yield bytes(chunk).decode("utf-8", "replace")

    # ---- images from containers (commit) -----------------------------------------------
    def put_directory(
        self, container_id: str, host_dir: Path, target_parent: str, arcname: str
    ) -> None:
        """Copy ``host_dir`` into the container as ``target_parent/arcname`` (a tar stream)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(host_dir), arcname=arcname)
        buf.seek(0)
        with translated(self.url, f"copying {host_dir} into the container"):
            self.client.containers.get(container_id).put_archive(target_parent, buf.getvalue())

    def put_files(self, container_id: str, parent: str, folder: str, files: dict[str, str]) -> None:
        """Create ``parent/folder`` holding ``files`` (name -> text) in the container."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        with translated(self.url, "copying files into the container"):
            self.client.containers.get(container_id).put_archive(parent, buf.getvalue())

    def exec_socket(self, container_id: str, cmd: list[str]) -> Any:
        """Start ``cmd`` in the container with stdin attached; its raw (multiplexed) socket."""
        with translated(self.url, "starting a relay in the container"):
            api = self.client.api
            exec_id = api.exec_create(
                container_id, cmd, stdin=True, stdout=True, stderr=True, tty=False
            )["Id"]
            return api.exec_start(exec_id, socket=True)

    def create_plain(self, image: str, name: str, labels: dict[str, str]) -> str:
        with translated(self.url, f"creating a container from {image}"):
            container = self.client.containers.create(image=image, name=name, labels=labels)
        return str(container.id)

    def commit(self, container_id: str, repository: str, tag: str, changes: list[str]) -> str:
        with translated(self.url, "committing the image"):
            image = self.client.containers.get(container_id).commit(
                repository=repository, tag=tag, changes=changes
            )
        return str(image.id)


def _tls_config(tls: TlsFiles | None) -> Any:
    if tls is None:
        return False
    import docker.tls

    cert = (str(tls.cert), str(tls.key)) if tls.cert and tls.key else None
    return docker.tls.TLSConfig(
        client_cert=cert, ca_cert=str(tls.ca) if tls.verify and tls.ca else None, verify=tls.verify
    )


@contextlib.contextmanager
def _connect_errors(engine: EngineSelection) -> Iterator[None]:
    """TLS and ssh failures while connecting: exit 4 with the files or ssh's reason."""
    try:
        yield
    except (requests.exceptions.SSLError, docker.errors.DockerException) as exc:
        if not isinstance(exc, docker.errors.TLSParameterError) and not _is_ssl(exc):
            raise
        tls = engine.tls
        files = (
            f"the certificates in {tls.folder} (ca {tls.ca}, cert {tls.cert}, key {tls.key})"
            if tls
            else "no client certificates (DOCKER_TLS_VERIFY is not set)"
        )
        raise EngineUnreachable(
            f"TLS with the Docker engine at {engine.url} failed using {files}: {_reason(exc)}",
            hint="check DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) or the context's TLS files, "
            "and that the engine's certificate is signed by that CA for this host name",
            details={
                "docker_host": engine.url,
                "transport": engine.transport,
                "tls": tls.to_dict() if tls else None,
                "reason": _reason(exc),
            },
        ) from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "paramiko":
            raise
        raise EngineUnreachable(
            f"ssh to the Docker engine at {engine.url} failed: {exc or type(exc).__name__}",
            hint="check the user, host and port, and that your key is accepted "
            "(ssh-agent or ~/.ssh; try `ssh -p PORT user@host docker version`)",
            details={"docker_host": engine.url, "transport": "ssh", "reason": str(exc)},
        ) from exc


def _is_ssl(exc: BaseException | None) -> bool:
    """Whether an SDK error was caused by TLS (the SDK wraps it while probing the API version)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (requests.exceptions.SSLError, ssl.SSLError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _reason(exc: BaseException) -> str:
    """The TLS library's own words (e.g. "certificate verify failed: ..."), else the error."""
    found = re.search(r"\[SSL[^\]]*\]\s*([^'\"]*)", str(exc))
    if found:
        return found.group(0).strip()
    return str(exc) or type(exc).__name__


def host_port_free(host_ip: str, port: int) -> bool:
    """Whether this host can bind ``host_ip:port`` (a process outside Docker may hold it)."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip, port))
        except OSError:
            return False
    return True
