"""The desired Swarm service, as data: what ``docker service create`` would be given.

Pure: no engine access. ``service_plan`` turns a spec into a ``ServicePlan``
(an Engine-API ``ServiceSpec`` plus the config objects it mounts);
``compute_swarm_plan`` compares it with what the engine shows.

Design decisions (see the README's Swarm section):

- The rendered files become Swarm **config objects** named by content hash
  (``tfsops-<name>-models.config-<hash8>``): configs are immutable, so a new
  model set is a new config object, and changing the service to use it is a
  **start-first rolling update** (the admin RPC cannot reach every replica
  through the routing mesh). ``ssl.config`` holds a private key and becomes a
  Swarm *secret* the same way.
- Readiness: a Docker healthcheck runs **inside** each task and passes only
  when every configured model has an AVAILABLE version (the status endpoint
  answers 200 while loading). It is plain bash with ``/dev/tcp``: the real
  ``tensorflow/serving`` image has bash but neither curl nor python. With it,
  Swarm keeps a new task in ``starting`` until it serves, so a start-first
  update never shifts traffic to a replica that is still loading. tfsops then
  checks every replica exactly (every expected version AVAILABLE, labels)
  from a short-lived helper container on the deployment's attachable overlay
  network.
- Ports: Swarm cannot publish on one address, so ``ports.bind: 127.0.0.1``
  (the default) publishes nothing (replicas are reached on the overlay
  network); ``bind: 0.0.0.0`` publishes through the routing mesh (``ingress``).
  ``host`` mode must be asked for: one task per node per port, so start-first
  needs a free node.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from tfsops import __version__
from tfsops.errors import InvalidInput
from tfsops.plan import layout as L
from tfsops.plan.container import (
    LABEL_CONFIG_HASH,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED,
    LABEL_PREFIX,
    server_command,
)
from tfsops.plan.diff import ModelDiff, model_diff
from tfsops.plan.render import RenderedFiles, render_all, render_models_config
from tfsops.spec.model import DeploymentSpec

# Task containers carry this instead of io.tfsops.deployment: the container
# target finds "its" container by io.tfsops.deployment, and a swarm task is not it.
LABEL_SWARM_DEPLOYMENT = f"{LABEL_PREFIX}.swarm.deployment"
LABEL_TEMPLATE_HASH = f"{LABEL_PREFIX}.template-hash"  # which revision a task runs
LABEL_FILE = f"{LABEL_PREFIX}.file"  # on config objects: which rendered file
LABEL_PROBE = f"{LABEL_PREFIX}.probe"  # on helper containers

GPU_RESOURCE = (
    "NVIDIA-GPU"  # the conventional generic-resource kind (daemon.json node-generic-resources)
)
NANO = 1_000_000_000

CREATE = "create"
UPDATE = "update"
NOOP = "noop"

PublishMode = Literal["auto", "ingress", "host", "none"]
ModelsSource = Literal["bind", "image"]

# Runs inside every task as its healthcheck: `bash -c SCRIPT tfsops-health MODEL...`.
# Healthy = every configured model has a version AVAILABLE (not a particular
# version: a `latest` policy moves on by itself, and an unhealthy verdict makes
# Swarm replace the task).
HEALTHCHECK_SCRIPT = r"""re='"state"[[:space:]]*:[[:space:]]*"AVAILABLE"'
for m in "$@"; do
  exec 3<>"/dev/tcp/127.0.0.1/$TFSOPS_REST_PORT" || { echo "REST port not open yet"; exit 1; }
  printf 'GET /v1/models/%s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$m" >&3
  body=$(cat <&3)
  exec 3<&-
  [[ $body =~ $re ]] || { echo "model $m: no version AVAILABLE"; exit 1; }
done
echo "every model has a version AVAILABLE"
""".replace("$TFSOPS_REST_PORT", str(L.REST_PORT))

# Runs in a short-lived helper container on the deployment's overlay network:
# `bash -c SCRIPT probe PORT TIMEOUT IP... -- PATH...`. One line per (ip, path):
# `@@tfsops IP RC PATH BASE64(raw HTTP answer)`; RC 0 answered, 7 no
# connection (refused: still loading), 124 timed out. Plain bash again, so the
# serving image itself can be the helper on any node.
PROBE_SCRIPT = r"""port=$1; limit=$2; shift 2
ips=(); while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do ips+=("$1"); shift; done; shift
dir=$(mktemp -d)
for ip in "${ips[@]}"; do
  (
    for path in "$@"; do
      # "PATH#KEY#BASE64" is a POST of that body (a smoke request), answered as PATH#KEY
      body=""; case "$path" in *'#'*) body="${path#*#*#}"; path="${path%#*}";; esac
      out=$(timeout "$limit" bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 7
if [ -n "$3" ]; then
  n=$(printf %s "$3" | base64 -d | wc -c)
  printf "POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\n" "${2%%#*}" "$0" >&3
  printf "Content-Length: %s\r\n\r\n" "$n" >&3
  printf %s "$3" | base64 -d >&3
else
  printf "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: application/json\r\n\r\n" "$2" "$0" >&3
fi
cat <&3' "$ip" "$port" "$path" "$body" 2>/dev/null | base64 -w0; exit "${PIPESTATUS[0]}")
      printf '@@tfsops %s %s %s %s\n' "$ip" "$?" "$path" "$out"
    done
  ) > "$dir/$ip" &
done
wait
cat "$dir"/* 2>/dev/null
"""


@dataclass(frozen=True)
class SwarmSettings:
    """Swarm choices that the spec does not (yet) carry; ``settings_for`` reads the spec's
    ``swarm.publish`` / ``swarm.healthcheck`` / ``swarm.models`` / ``swarm.update.monitor``
    when present."""

    publish: PublishMode = "auto"
    healthcheck: bool = True
    health_interval: float = 5.0
    health_timeout: float = 4.0
    health_retries: int = 3
    # TF Serving opens its ports only after the initial load: failures in this window
    # do not count, the first success ends it.
    health_start_period: float = 600.0
    # After a task starts (healthy, with the healthcheck), Swarm watches it this long
    # before the update moves on; an exit in the window rolls the update back.
    monitor: float = 10.0
    models: ModelsSource = "bind"
    probe_image: str | None = None  # default: the service's own image (bash is all it needs)
    restart_delay: float = 5.0


def settings_for(spec: DeploymentSpec, base: SwarmSettings | None = None) -> SwarmSettings:
    """``base`` (defaults) overridden by whatever of these the spec declares."""
    settings = base or SwarmSettings()
    swarm = spec.swarm
    if swarm is None:
        return settings
    updates: dict[str, Any] = {}
    for name in ("publish", "healthcheck", "models", "probe_image"):
        value = getattr(swarm, name, None)
        if value is not None:
            updates[name] = value
    monitor = getattr(swarm.update, "monitor", None)
    if monitor is not None:
        updates["monitor"] = float(monitor)
    return dataclasses.replace(settings, **updates) if updates else settings


@dataclass(frozen=True)
class ConfigObject:
    """A rendered file as a Swarm config (or secret) object, mounted at ``target``."""

    file: str
    name: str
    target: str
    data: str
    secret: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "name": self.name,
            "target": self.target,
            "kind": "secret" if self.secret else "config",
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class PublishedPort:
    purpose: str  # rest | grpc
    published: int
    target: int
    mode: str  # ingress | host

    def to_api(self) -> dict[str, Any]:
        return {
            "Protocol": "tcp",
            "PublishedPort": self.published,
            "TargetPort": self.target,
            "PublishMode": self.mode,
        }


@dataclass(frozen=True)
class ServicePlan:
    """Everything the adapter needs to create or update the service."""

    deployment: str
    service_name: str
    network_name: str
    image: str
    replicas: int
    publish_mode: str  # ingress | host | none (resolved)
    ports: tuple[PublishedPort, ...]
    configs: tuple[ConfigObject, ...]
    spec: dict[str, Any]  # Engine API ServiceSpec; config/secret references by name only
    template_hash: str
    spec_hash: str
    gpus: int
    settings: SwarmSettings
    warnings: tuple[str, ...] = ()
    models_config: str = ""
    image_digest: str | None = None  # the tasks run image@digest when set

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.spec["Labels"])

    @property
    def config_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.configs)

    def config(self, file: str) -> ConfigObject | None:
        return next((c for c in self.configs if c.file == file), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "service": self.service_name,
            "network": self.network_name,
            "image": self.image,
            "image_digest": self.image_digest,
            "replicas": self.replicas,
            "publish": {
                "mode": self.publish_mode,
                "ports": [dataclasses.asdict(p) for p in self.ports],
            },
            "configs": [c.to_dict() for c in self.configs],
            "gpus": self.gpus,
            "healthcheck": self.settings.healthcheck,
            "models_source": self.settings.models,
            "template_hash": self.template_hash,
            "spec_hash": self.spec_hash,
            "warnings": list(self.warnings),
            "service_spec": self.spec,
        }


# ---- names ------------------------------------------------------------------------


def _sha(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def object_name(deployment: str, limit: int = 63) -> str:
    """``tfsops-<name>`` when it is a valid service/network name, else a shortened,
    hashed form: Swarm names are DNS labels (no dots, at most 63 characters)."""
    base = f"tfsops-{deployment}"
    if "." not in base and len(base) <= limit:
        return base
    stem = base.replace(".", "-")[: limit - 9].rstrip("-_")
    return f"{stem}-{_sha(deployment)}"


def config_name(deployment: str, file: str, data: str) -> str:
    """``tfsops-<name>-<file>-<hash8>``: a new content is a new object (configs are
    immutable); at most 64 characters, as Swarm requires."""
    suffix = f"-{file}-{_sha(data)}"
    return object_name(deployment, 64 - len(suffix)) + suffix


# ---- the plan ---------------------------------------------------------------------


def _resolve_publish(spec: DeploymentSpec, mode: PublishMode) -> tuple[str, list[str]]:
    bind = ipaddress.ip_address(spec.ports.bind)
    wildcard = bind.is_unspecified
    if mode == "auto":
        if wildcard:
            return "ingress", []
        return "none", [
            f"ports not published: ports.bind is {spec.ports.bind} and Swarm can only publish on "
            "every interface of every node; set ports.bind: 0.0.0.0 to publish, or reach the "
            f"replicas from containers on the network {object_name(spec.name)}"
        ]
    if mode != "none" and not wildcard:
        raise InvalidInput(
            f"swarm.publish: {mode} publishes on every interface of every node, but ports.bind "
            f"is {spec.ports.bind}",
            hint="set ports.bind: 0.0.0.0 to accept that, or publish: none",
        )
    return mode, []


def _ports(spec: DeploymentSpec, mode: str) -> tuple[PublishedPort, ...]:
    if mode == "none":
        return ()
    out = []
    if spec.ports.rest is not None:
        out.append(PublishedPort("rest", spec.ports.rest, L.REST_PORT, mode))
    if spec.ports.grpc is not None:
        out.append(PublishedPort("grpc", spec.ports.grpc, L.GRPC_PORT, mode))
    return tuple(out)


def gpu_count(spec: DeploymentSpec) -> tuple[int, list[str]]:
    """How many ``NVIDIA-GPU`` generic resources each task reserves, and why."""
    if spec.gpu is None:
        return 0, []
    if spec.gpu.devices == "all":
        return 1, [
            'gpu.devices "all": Swarm reserves a number of GPUs, not "all"; each replica '
            f"reserves 1 {GPU_RESOURCE} (list devices to reserve more)"
        ]
    n = len(spec.gpu.devices)
    return n, [
        f"gpu.devices {list(spec.gpu.devices)}: Swarm picks which of a node's advertised GPUs a "
        f"task gets; each replica reserves {n} {GPU_RESOURCE}"
    ]


def _restart(spec: DeploymentSpec, settings: SwarmSettings) -> dict[str, Any]:
    condition = {"no": "none", "on-failure": "on-failure"}.get(spec.restart, "any")
    return {"Condition": condition, "Delay": int(settings.restart_delay * NANO), "MaxAttempts": 0}


def _healthcheck(spec: DeploymentSpec, settings: SwarmSettings) -> dict[str, Any]:
    if not settings.healthcheck:
        # Also switches off a HEALTHCHECK the image may declare.
        return {"Test": ["NONE"]}
    return {
        "Test": [
            "CMD",
            "bash",
            "-c",
            HEALTHCHECK_SCRIPT,
            "tfsops-health",
            *(m.name for m in spec.models),
        ],
        "Interval": int(settings.health_interval * NANO),
        "Timeout": int(settings.health_timeout * NANO),
        "Retries": settings.health_retries,
        "StartPeriod": int(settings.health_start_period * NANO),
    }


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def _files(
    spec: DeploymentSpec, settings: SwarmSettings, files: RenderedFiles | None
) -> RenderedFiles:
    files = files or render_all(spec)
    if settings.models == "image":
        # `tfsops commit` bakes every model at /models/<name>.
        baked = L.Layout(
            roots=(), base_paths={m.name: f"{L.MODELS_DIR}/{m.name}" for m in spec.models}
        )
        files = dataclasses.replace(files, models_config=render_models_config(spec, baked))
    return files


def _placement(spec: DeploymentSpec) -> dict[str, Any]:
    swarm = spec.swarm
    placement: dict[str, Any] = {"Constraints": list(swarm.placement) if swarm else []}
    if swarm is not None and swarm.max_replicas_per_node is not None:
        placement["MaxReplicas"] = swarm.max_replicas_per_node
    return placement


def service_plan(
    spec: DeploymentSpec,
    settings: SwarmSettings | None = None,
    files: RenderedFiles | None = None,
    image_digest: str | None = None,
) -> ServicePlan:
    """The service for ``spec``. Raises ``InvalidInput`` for what Swarm cannot do.

    ``image_digest`` (``sha256:...``, resolved through the image's registry) pins the
    tasks to those bytes: every node runs the same image, whatever the tag says later."""
    settings = settings_for(spec, settings)
    files = _files(spec, settings, files)
    service_name = object_name(spec.name)
    network_name = object_name(spec.name)
    warnings: list[str] = []
    publish_mode, notes = _resolve_publish(spec, settings.publish)
    warnings += notes
    ports = _ports(spec, publish_mode)
    swarm = spec.swarm
    replicas = swarm.replicas if swarm else 1
    update = swarm.update if swarm else None
    order = update.order if update else "start-first"
    if publish_mode == "host" and order == "start-first":
        warnings.append(
            "host-mode ports: Swarm runs one task per node per published port, so a start-first "
            "update needs a node without a replica; on a single node use update.order: stop-first"
        )

    configs = tuple(
        ConfigObject(
            file=name,
            name=config_name(spec.name, name, text),
            target=f"{L.CONFIG_DIR}/{name}",
            data=text,
            secret=name == "ssl.config",  # holds the private key
        )
        for name, text in files.files().items()
    )
    layout = L.layout_for(spec)
    mounts = (
        []
        if settings.models == "image"
        else [
            {"Type": "bind", "Source": r.host, "Target": r.target, "ReadOnly": True}
            for r in layout.roots
        ]
    )
    gpus, gpu_notes = gpu_count(spec)
    warnings += gpu_notes
    limits: dict[str, int] = {}
    if spec.resources.cpus:
        limits["NanoCPUs"] = int(spec.resources.cpus * NANO)
    if spec.resources.memory_bytes:
        limits["MemoryBytes"] = spec.resources.memory_bytes
    resources: dict[str, Any] = {}
    if limits:
        resources["Limits"] = limits
    if gpus:
        resources["Reservations"] = {
            "GenericResources": [{"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": gpus}}]
        }

    container: dict[str, Any] = {
        "Image": f"{spec.image_ref}@{image_digest}" if image_digest else spec.image_ref,
        "Args": list(server_command(spec, files)),
        "Labels": {LABEL_SWARM_DEPLOYMENT: spec.name},
        "Mounts": mounts,
        "Configs": [
            {
                "File": {"Name": c.target, "UID": "0", "GID": "0", "Mode": 0o444},
                "ConfigName": c.name,
            }
            for c in configs
            if not c.secret
        ],
        "Secrets": [
            {
                "File": {"Name": c.target, "UID": "0", "GID": "0", "Mode": 0o400},
                "SecretName": c.name,
            }
            for c in configs
            if c.secret
        ],
        "Healthcheck": _healthcheck(spec, settings),
    }
    task_template: dict[str, Any] = {
        "ContainerSpec": container,
        "Resources": resources,
        "RestartPolicy": _restart(spec, settings),
        "Placement": _placement(spec),
        "Networks": [{"Target": network_name}],
    }
    template_hash = _hash(task_template)
    container["Labels"][LABEL_TEMPLATE_HASH] = template_hash

    policy = {
        "Parallelism": update.parallelism if update else 1,
        "Delay": int((update.delay if update else 5.0) * NANO),
        "FailureAction": update.failure_action if update else "rollback",
        "Monitor": int(settings.monitor * NANO),
        "MaxFailureRatio": 0,
        "Order": order,
    }
    service: dict[str, Any] = {
        "Name": service_name,
        "Labels": {},
        "TaskTemplate": task_template,
        "Mode": {"Replicated": {"Replicas": replicas}},
        "UpdateConfig": policy,
        # Rolling back must not stop on a failure: it is the way back.
        "RollbackConfig": dict(policy, FailureAction="pause", Delay=0),
        "EndpointSpec": {
            # VIP load balancing needs IPVS; DNS round robin does not, and host-mode
            # or no published ports do not need the VIP.
            "Mode": "vip" if publish_mode == "ingress" else "dnsrr",
            "Ports": [p.to_api() for p in ports],
        },
    }
    spec_hash = _hash(service)
    service["Labels"] = {
        LABEL_DEPLOYMENT: spec.name,
        LABEL_MANAGED: f"tfsops/{__version__}",
        LABEL_CONFIG_HASH: spec_hash,
        LABEL_TEMPLATE_HASH: template_hash,
    }
    return ServicePlan(
        deployment=spec.name,
        service_name=service_name,
        network_name=network_name,
        image=spec.image_ref,
        image_digest=image_digest,
        replicas=replicas,
        publish_mode=publish_mode,
        ports=ports,
        configs=configs,
        spec=service,
        template_hash=template_hash,
        spec_hash=spec_hash,
        gpus=gpus,
        settings=settings,
        warnings=tuple(warnings),
        models_config=files.models_config,
    )


def registry_host(ref: str) -> str | None:
    """The registry an image reference names (``host[:port]/repo``), or None for Docker
    Hub's implicit one (``repo``, ``org/repo``)."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def capacity_problem(plan: ServicePlan, eligible_nodes: int) -> str | None:
    """Why ``swarm.max_replicas_per_node`` would leave tasks pending forever, or None.

    A start-first update runs one more task than ``replicas`` while it rolls."""
    limit = plan.spec["TaskTemplate"]["Placement"].get("MaxReplicas")
    if not limit:
        return None
    order = plan.spec["UpdateConfig"]["Order"]
    needed = plan.replicas + (1 if order == "start-first" else 0)
    if eligible_nodes * limit >= needed:
        return None
    why = f"{plan.replicas} replica(s)" + (
        " plus one start-first update task" if order == "start-first" else ""
    )
    return (
        f"swarm.max_replicas_per_node is {limit}, and {why} need {needed} task slot(s); "
        f"{eligible_nodes} ready node(s) have {eligible_nodes * limit}"
    )


def host_ports_problem(plan: ServicePlan, eligible_nodes: int) -> str | None:
    """Why host-mode ports would leave tasks pending forever on this swarm, or None."""
    if plan.publish_mode != "host":
        return None
    order = plan.spec["UpdateConfig"]["Order"]
    needed = plan.replicas + (1 if order == "start-first" else 0)
    if eligible_nodes >= needed:
        return None
    why = f"{plan.replicas} replica(s)" + (
        " plus one start-first update task" if order == "start-first" else ""
    )
    return (
        f"host-mode ports allow one task per node, and {why} need {needed} node(s); "
        f"the swarm has {eligible_nodes} ready node(s)"
    )


# ---- observed state and the diff --------------------------------------------------


@dataclass(frozen=True)
class ObservedService:
    """What tfsops reads back about its service."""

    id: str
    name: str
    version: int
    labels: dict[str, str]
    image: str
    replicas: int
    config_names: tuple[str, ...]
    models_config: str | None = None  # content of the mounted models.config object
    image_digest: str | None = None  # the digest the tasks are pinned to (image@digest)
    update_state: str | None = None
    update_message: str | None = None
    previous_spec: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def spec_hash(self) -> str | None:
        return self.labels.get(LABEL_CONFIG_HASH)

    @property
    def template_hash(self) -> str | None:
        return self.labels.get(LABEL_TEMPLATE_HASH)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "image_digest": self.image_digest,
            "replicas": self.replicas,
            "configs": list(self.config_names),
            "spec_hash": self.spec_hash,
            "update_state": self.update_state,
            "update_message": self.update_message,
        }


@dataclass(frozen=True)
class TaskInfo:
    """One task (replica) of the service."""

    id: str
    slot: int | None
    node_id: str
    node: str
    state: str  # new ... running | complete | failed | shutdown | rejected | orphaned | remove
    desired_state: str
    error: str | None
    message: str
    template_hash: str | None
    ip: str | None  # on the deployment's network
    container_id: str | None
    updated_at: str = ""
    exit_code: int | None = None

    @property
    def active(self) -> bool:
        """Meant to run (desired running), whatever its state now."""
        return self.desired_state == "running"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slot": self.slot,
            "node": self.node or self.node_id or None,
            "state": self.state,
            "desired_state": self.desired_state,
            "error": self.error,
            "message": self.message,
            "template_hash": self.template_hash,
            "ip": self.ip,
            "container_id": self.container_id,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class SwarmPlan:
    action: str  # create | update | noop
    reasons: list[str]
    models: ModelDiff
    service: ServicePlan
    observed: ObservedService | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": "swarm",
            "action": self.action,
            "reasons": self.reasons,
            "models": self.models.to_dict(),
            "service": self.service.service_name,
            "network": self.service.network_name,
            "image": self.service.image,
            "replicas": self.service.replicas,
            "publish": {
                "mode": self.service.publish_mode,
                "ports": [dataclasses.asdict(p) for p in self.service.ports],
            },
            "configs": [c.name for c in self.service.configs],
            "config_hash": self.service.spec_hash,
            "warnings": list(self.service.warnings),
            "observed": None if self.observed is None else self.observed.to_dict(),
        }

    def text(self) -> str:
        lines = [f"{self.service.service_name} (swarm service): {self.action}"]
        lines += [f"  because {r}" for r in self.reasons]
        lines += self.models.lines()
        ports = ", ".join(
            f"{p.purpose} {p.published}->{p.target} ({p.mode})" for p in self.service.ports
        )
        lines.append(f"  replicas: {self.service.replicas}; ports: {ports or 'not published'}")
        lines += [f"  note: {w}" for w in self.service.warnings]
        return "\n".join(lines)


def compute_swarm_plan(desired: ServicePlan, observed: ObservedService | None) -> SwarmPlan:
    diff = model_diff(observed.models_config if observed else None, desired.models_config)
    if observed is None:
        return SwarmPlan(CREATE, ["no service yet"], diff, desired, None)
    if observed.spec_hash == desired.spec_hash:
        reasons = ["up to date"]
        if observed.update_state in ("rollback_started", "rollback_completed", "rollback_paused"):
            why = observed.update_message or observed.update_state
            reasons.append(f"the last update was rolled back ({why})")
        return SwarmPlan(NOOP, reasons, diff, desired, observed)
    reasons = []
    if observed.image != desired.image:
        reasons.append(f"image {observed.image} -> {desired.image}")
    elif desired.image_digest and observed.image_digest != desired.image_digest:
        reasons.append(
            f"image {desired.image} now has digest {desired.image_digest} "
            f"(the tasks run {observed.image_digest or 'an unpinned image'})"
        )
    if not diff.empty:
        reasons.append("the model list changed (new models.config object, rolling update)")
    elif set(observed.config_names) != set(desired.config_names):
        reasons.append("rendered files changed (new config objects, rolling update)")
    if observed.replicas != desired.replicas:
        reasons.append(f"replicas {observed.replicas} -> {desired.replicas}")
    if observed.template_hash == desired.template_hash and not reasons:
        reasons.append("service settings changed (update policy, ports); no task is replaced")
    if not reasons:
        reasons.append("task settings changed (flags, mounts, resources, GPU, healthcheck)")
    return SwarmPlan(UPDATE, reasons, diff, desired, observed)


def render_swarm(spec: DeploymentSpec, settings: SwarmSettings | None = None) -> dict[str, str]:
    """``tfsops render swarm``: the service spec (JSON, Engine API) and the config objects."""
    plan = service_plan(spec, settings)
    out = {"swarm-service.json": json.dumps(plan.to_dict(), indent=2, sort_keys=False) + "\n"}
    for c in plan.configs:
        if not c.secret:  # never write the key where a render lands
            out[f"configs/{c.name}"] = c.data
    return out
