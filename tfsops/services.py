"""The outside world as one injectable bundle (real adapters, or fakes in unit tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfsops.health import Clock, SystemClock
from tfsops.ports import Endpoint, ModelAdmin, ServingClient
from tfsops.spec.model import DeploymentSpec

if TYPE_CHECKING:
    from tfsops.adapters.docker_runtime import DockerRuntime
    from tfsops.build.hostcompat import HostFacts


def _quiet(_: str) -> None:
    pass


@dataclass
class Services:
    runtime_factory: Callable[[], DockerRuntime]
    serving_factory: Callable[[Endpoint], ServingClient]
    admin_factory: Callable[[Endpoint], ModelAdmin]
    clock: Clock = field(default_factory=SystemClock)
    progress: Callable[[str], None] = _quiet
    # This host's CPU/GPU facts for deploy's pre-flight (None: read /proc/cpuinfo, nvidia-smi).
    host_facts: Callable[[], HostFacts] | None = None
    _runtime: Any = None

    @property
    def runtime(self) -> DockerRuntime:
        if self._runtime is None:
            self._runtime = self.runtime_factory()
        return self._runtime  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def real_services(docker_host: str | None, progress: Callable[[str], None] = _quiet) -> Services:
    """Adapters for the real engine and server, imported only when a command needs them."""

    def runtime() -> DockerRuntime:
        from tfsops.adapters.docker_import import import_docker

        import_docker(docker_host)
        from tfsops.adapters.docker_runtime import DockerRuntime

        return DockerRuntime(docker_host)

    def serving(endpoint: Endpoint) -> ServingClient:
        if endpoint.rest_port is None:
            from tfsops.adapters.serving_grpc import GrpcServingClient

            return GrpcServingClient(endpoint)
        from tfsops.adapters.serving_rest import RestServingClient

        return RestServingClient(endpoint)

    def admin(endpoint: Endpoint) -> ModelAdmin:
        from tfsops.adapters.serving_grpc import GrpcServingClient

        return GrpcServingClient(endpoint)

    return Services(
        runtime_factory=runtime, serving_factory=serving, admin_factory=admin, progress=progress
    )


def endpoint_for(spec: DeploymentSpec) -> Endpoint:
    """Where this host reaches the deployment (a wildcard bind is reached over loopback)."""
    host = spec.ports.bind
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    ca = None
    if spec.tls is not None:
        ca_path = spec.tls.ca or spec.tls.cert
        try:
            ca = ca_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            ca = None
    return Endpoint(
        host=host,
        rest_port=spec.ports.rest,
        grpc_port=spec.ports.grpc,
        tls_ca=ca,
        tls_server_name=spec.tls.server_name if spec.tls else None,
    )
