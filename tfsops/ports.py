"""Narrow, domain-level interfaces between the core and the outside world.

The executor and the health/reload logic talk to these Protocols; adapters in
``tfsops/adapters/`` implement them with docker, requests and grpc, and unit
tests use in-memory fakes that behave like state machines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tfsops.plan.container import ContainerPlan

# Model version states as TF Serving names them (apis/get_model_status.proto).
START = "START"
LOADING = "LOADING"
AVAILABLE = "AVAILABLE"
UNLOADING = "UNLOADING"
END = "END"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class VersionStatus:
    """One entry of TF Serving's model status answer."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


@dataclass(frozen=True)
class ExpectedModel:
    """What a healthy server must show for one model."""

    name: str
    versions: frozenset[int]
    labels: Mapping[str, int] = field(default_factory=dict)
    # Requests every expected version must answer (``tfsops.smoke.SmokePlan``); None: none.
    smoke: SmokeProbe | None = field(default=None, compare=False)


class SmokeProbe(Protocol):
    """Sends a model's smoke requests; returns the first failure as text, or None."""

    def check(
        self, client: ServingClient, model: str, versions: Sequence[int], *, timeout: float
    ) -> str | None: ...

    def bodies(self, version: int) -> list[Mapping[str, Any]]:
        """The request bodies for ``version`` (for a probe that sends them elsewhere)."""
        ...


@dataclass(frozen=True)
class Endpoint:
    """Where a deployment's server answers, from this host's point of view."""

    host: str
    rest_port: int | None
    grpc_port: int | None
    tls_ca: str | None = None  # PEM text of the CA for gRPC TLS, when the server uses TLS
    tls_server_name: str | None = None

    @property
    def rest_url(self) -> str:
        if self.rest_port is None:
            raise ValueError("this deployment has no REST port")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        if self.grpc_port is None:
            raise ValueError("this deployment has no gRPC port")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.grpc_port}"


class ServingClient(Protocol):
    """The parts of TF Serving tfsops uses. Errors are ``tfsops.errors`` classes:
    ``ServerStarting`` (connection refused: still loading), ``ModelNotFound``,
    ``OperationFailed`` (the server's message), ``NotReady`` (deadline)."""

    def model_status(self, model: str, *, timeout: float = 5.0) -> list[VersionStatus]: ...

    def label_version(self, model: str, label: str, *, timeout: float = 5.0) -> int: ...

    def metadata(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]: ...

    def predict(
        self,
        model: str,
        body: Mapping[str, Any],
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]: ...


class ModelAdmin(Protocol):
    """The admin RPC (gRPC only): replace the server's whole model list."""

    def reload_config(self, models_config_text: str, *, timeout: float) -> None: ...


@dataclass(frozen=True)
class ContainerInfo:
    """What tfsops reads back about a container it owns."""

    id: str
    name: str
    status: str  # created | running | exited | restarting | paused | dead
    image: str
    labels: Mapping[str, str]
    ports: Sequence[tuple[str, int, int]]  # (host_ip, host_port, container_port)
    started_at: str | None = None
    exit_code: int | None = None
    restart_count: int = 0  # a crash-looping server (restart policy) never shows "exited"


class ContainerRuntime(Protocol):
    """The container engine as the docker target's executor uses it (``Executor``).

    Names and ids are interchangeable where a container is addressed, as in the
    engine's API. Errors are ``tfsops.errors`` classes: ``EngineUnreachable``,
    ``OperationFailed`` (the engine's message). ``DockerRuntime`` implements it
    with the Docker SDK; unit tests use an in-memory state machine.
    """

    def find(self, deployment: str) -> ContainerInfo | None:
        """The newest container labelled as ``deployment``'s, in any state."""
        ...

    def inspect(self, container_id: str) -> ContainerInfo | None:
        """A container by id or name, or None when there is none."""
        ...

    def image_labels(self, ref: str) -> dict[str, str] | None:
        """The image's labels, or None when the image is not present locally."""
        ...

    def pull(self, ref: str, progress: Callable[[str], None]) -> None: ...

    def port_holders(self) -> dict[int, str]:
        """Host port -> the name of the running container publishing it."""
        ...

    def host_port_free(self, host_ip: str, port: int) -> bool:
        """Whether ``host_ip:port`` can be bound on the engine's host (a program may hold it)."""
        ...

    def create(self, plan: ContainerPlan) -> str:
        """Create (not start) the container ``plan`` describes; its id."""
        ...

    def start(self, container_id: str) -> None: ...

    def stop(self, container_id: str, timeout: int = 10) -> None: ...

    def remove(self, container_id: str) -> None:
        """Stop and remove; a container that is gone already is no error."""
        ...

    def rename(self, container_id: str, new_name: str) -> None: ...

    def logs(self, container_id: str, tail: int | str = "all") -> str: ...

    def close(self) -> None: ...
