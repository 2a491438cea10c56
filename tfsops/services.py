"""The outside world as one injectable bundle (real adapters, or fakes in unit tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from tfsops.errors import EngineUnreachable, TfsopsError
from tfsops.health import Clock, SystemClock
from tfsops.ports import Endpoint, ModelAdmin, ServingClient
from tfsops.spec.model import DeploymentSpec

if TYPE_CHECKING:
    from tfsops.adapters.docker_relay import RelayPool
    from tfsops.adapters.docker_runtime import DockerRuntime
    from tfsops.build.hostcompat import HostFacts
    from tfsops.engine import EngineSelection


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
    # Relays to the server through the engine, when the engine is not this machine's.
    relays: RelayPool | None = None

    @property
    def runtime(self) -> DockerRuntime:
        if self._runtime is None:
            self._runtime = self.runtime_factory()
        return self._runtime  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.relays is not None:
            self.relays.close()
        if self._runtime is not None:
            self._runtime.close()


def real_services(
    docker_host: str | None,
    progress: Callable[[str], None] = _quiet,
    *,
    context: str | None = None,
) -> Services:
    """Adapters for the real engine and server, imported only when a command needs them."""
    selected: list[EngineSelection] = []

    def engine() -> EngineSelection:
        if not selected:
            from tfsops.engine import select_engine

            selected.append(select_engine(docker_host, context))
        return selected[0]

    def runtime() -> DockerRuntime:
        from tfsops.adapters.docker_import import import_docker

        import_docker(engine().url)  # the selected engine: a context may name an ssh:// one
        from tfsops.adapters.docker_runtime import DockerRuntime

        return DockerRuntime(engine())

    def reach(endpoint: Endpoint) -> Endpoint:
        """The one place a deployment's endpoint becomes the address clients connect to."""
        if not engine().relay:
            return endpoint
        if services.relays is None:
            from tfsops.adapters.docker_relay import RelayPool

            services.relays = RelayPool(services.runtime)
        return services.relays.endpoint(endpoint)  # type: ignore[no-any-return]

    def serving(endpoint: Endpoint) -> ServingClient:
        relayed = reach(endpoint)
        if relayed is not endpoint:
            return cast(ServingClient, _relay_faults(_direct_serving(relayed), services))
        return _direct_serving(endpoint)

    def admin(endpoint: Endpoint) -> ModelAdmin:
        relayed = reach(endpoint)
        from tfsops.adapters.serving_grpc import GrpcServingClient

        if relayed is not endpoint:
            return cast(ModelAdmin, _relay_faults(GrpcServingClient(relayed), services))
        return GrpcServingClient(endpoint)

    services = Services(
        runtime_factory=runtime, serving_factory=serving, admin_factory=admin, progress=progress
    )
    return services


def _direct_serving(endpoint: Endpoint) -> ServingClient:
    if endpoint.rest_port is None:
        from tfsops.adapters.serving_grpc import GrpcServingClient

        return GrpcServingClient(endpoint)
    from tfsops.adapters.serving_rest import RestServingClient

    return RestServingClient(endpoint)


class _RelayFaults:
    """A serving client whose failures name the relay when the relay, not the server, broke.

    Through the relay a lost engine or a refused exec looks to the client like a
    reset connection ("still starting"); this turns it into exit 4 with the reason.
    """

    def __init__(self, client: Any, services: Services) -> None:
        self._client = client
        self._services = services

    def __enter__(self) -> _RelayFaults:
        self._client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            relays = self._services.relays
            seen = len(relays.faults) if relays is not None else 0
            try:
                return attr(*args, **kwargs)
            except TfsopsError as exc:
                if relays is None or len(relays.faults) == seen:
                    raise
                fault = relays.faults[-1]
                message = fault.message if isinstance(fault, TfsopsError) else str(fault)
                raise EngineUnreachable(
                    f"the relay to the server through the Docker engine dropped: {message}",
                    hint="check the engine and the container (`tfsops doctor`, `tfsops status`), "
                    "then run the command again",
                    details={"server_error": exc.message},
                ) from exc

        return call


def _relay_faults(client: Any, services: Services) -> Any:
    return _RelayFaults(client, services)


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
