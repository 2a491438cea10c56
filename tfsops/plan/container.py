"""The desired container, as data: what ``docker run`` would be given.

Pure. The docker adapter turns a ``ContainerPlan`` into SDK calls; ``render
plan`` prints it as JSON. The config hash covers only what needs a new
container to change ("cold"): image, flags, ports, mounts, resources, GPU,
and the files read once at start-up. The model list is "hot" (admin RPC).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tfsops import __version__
from tfsops.plan import layout as L
from tfsops.plan.render import RenderedFiles
from tfsops.spec.model import DeploymentSpec

LABEL_PREFIX = "io.tfsops"
LABEL_DEPLOYMENT = f"{LABEL_PREFIX}.deployment"
LABEL_CONFIG_HASH = f"{LABEL_PREFIX}.config-hash"
LABEL_STATE_DIR = f"{LABEL_PREFIX}.state-dir"
LABEL_MANAGED = f"{LABEL_PREFIX}.managed-by"
LABEL_ROOTS = f"{LABEL_PREFIX}.model-roots"
# [[host, target], ...]: the model folders mounted. Not in the config hash: a container
# that mounts more than a spec needs (a model was removed) serves it without a restart.
LABEL_MOUNTS = f"{LABEL_PREFIX}.model-mounts"


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True
    type: str = "bind"


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    host_ip: str
    host_port: int
    protocol: str = "tcp"
    purpose: str = ""  # "rest" | "grpc"


@dataclass(frozen=True)
class DeviceRequest:
    """Docker's ``--gpus``: count -1 = all, or explicit device ids."""

    count: int | None
    device_ids: tuple[str, ...] | None
    capabilities: tuple[tuple[str, ...], ...] = (("gpu",),)
    driver: str = ""


@dataclass(frozen=True)
class ContainerPlan:
    name: str
    image: str
    command: tuple[str, ...]
    env: dict[str, str]
    ports: tuple[PortBinding, ...]
    mounts: tuple[Mount, ...]
    labels: dict[str, str]
    restart_policy: str
    nano_cpus: int | None
    mem_limit: int | None
    device_requests: tuple[DeviceRequest, ...] = field(default_factory=tuple)

    @property
    def config_hash(self) -> str:
        return self.labels[LABEL_CONFIG_HASH]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["config_hash"] = self.config_hash
        return data

    def port(self, purpose: str) -> PortBinding | None:
        for p in self.ports:
            if p.purpose == purpose:
                return p
        return None


# Flags tfsops sets unless server_args does: a model that cannot load ends in
# error after a bounded time. Upstream's default (5 retries a minute apart)
# keeps a failing load going for about 5 minutes, while the reload RPC that
# asked for it, and the restore after it, wait (reference §1.3, §3.4).
LOAD_RETRY_DEFAULTS: dict[str, int] = {
    "max_num_load_retries": 2,
    "load_retry_interval_micros": 5_000_000,
}


def load_retry_flags(spec: DeploymentSpec) -> dict[str, int]:
    """The load-retry flags the server runs with (server_args may set them)."""
    out = dict(LOAD_RETRY_DEFAULTS)
    for key in out:
        value = spec.server_args.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out[key] = value
    return out


def load_failure_bound(spec: DeploymentSpec) -> float:
    """Seconds after which the server has given up on a load that keeps failing (retries only;
    the attempts themselves take as long as the model needs to fail)."""
    flags = load_retry_flags(spec)
    return max(flags["max_num_load_retries"], 0) * max(flags["load_retry_interval_micros"], 0) / 1e6


def _flag(name: str, value: object) -> str:
    if isinstance(value, bool):
        return f"--{name}={'true' if value else 'false'}"
    return f"--{name}={value}"


def server_command(spec: DeploymentSpec, files: RenderedFiles) -> tuple[str, ...]:
    """Arguments appended to the image's entrypoint (the last repeated flag wins upstream)."""
    args = [
        f"--model_config_file={L.MODELS_CONFIG}",
        # Labels in models.config are checked before models load at start-up
        # (upstream #1608); without this a restart with labels fails.
        "--allow_version_labels_for_unavailable_models",
    ]
    args += [_flag(k, v) for k, v in LOAD_RETRY_DEFAULTS.items() if k not in spec.server_args]
    if files.batching_config is not None:
        args += ["--enable_batching", f"--batching_parameters_file={L.BATCHING_CONFIG}"]
    if files.monitoring_config is not None:
        args.append(f"--monitoring_config_file={L.MONITORING_CONFIG}")
    if files.ssl_config is not None or spec.tls is not None:
        args.append(f"--ssl_config_file={L.SSL_CONFIG}")
    if spec.gpu is not None and spec.gpu.memory_fraction is not None:
        args.append(_flag("per_process_gpu_memory_fraction", spec.gpu.memory_fraction))
    args += [_flag(k, v) for k, v in sorted(spec.server_args.items())]
    return tuple(args)


def _device_requests(spec: DeploymentSpec) -> tuple[DeviceRequest, ...]:
    if spec.gpu is None:
        return ()
    if spec.gpu.devices == "all":
        return (DeviceRequest(count=-1, device_ids=None),)
    return (DeviceRequest(count=None, device_ids=tuple(str(d) for d in spec.gpu.devices)),)


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def container_plan(spec: DeploymentSpec, files: RenderedFiles, config_dir: Path) -> ContainerPlan:
    layout = L.layout_for(spec)
    ports = []
    if spec.ports.rest is not None:
        ports.append(PortBinding(L.REST_PORT, spec.ports.bind, spec.ports.rest, purpose="rest"))
    if spec.ports.grpc is not None:
        ports.append(PortBinding(L.GRPC_PORT, spec.ports.bind, spec.ports.grpc, purpose="grpc"))
    mounts = [Mount(source=r.host, target=r.target, read_only=True) for r in layout.roots]
    mounts.append(Mount(source=str(config_dir), target=L.CONFIG_DIR, read_only=True))
    command = server_command(spec, files)
    devices = _device_requests(spec)
    cold = {
        "image": spec.image_ref,
        "command": command,
        "ports": [asdict(p) for p in ports],
        "mounts": [asdict(m) for m in mounts if m.target == L.CONFIG_DIR],
        "restart": spec.restart,
        "resources": spec.resources.model_dump(),
        "devices": [asdict(d) for d in devices],
        # Read once at start-up, so a change needs a new container.
        "startup_files": {
            name: hashlib.sha256(text.encode()).hexdigest()
            for name, text in files.files().items()
            if name != "models.config"
        },
    }
    labels = {
        LABEL_DEPLOYMENT: spec.name,
        LABEL_MANAGED: f"tfsops/{__version__}",
        LABEL_CONFIG_HASH: _hash(cold),
        LABEL_STATE_DIR: str(config_dir.parent),
        LABEL_ROOTS: json.dumps([r.host for r in layout.roots]),
        LABEL_MOUNTS: json.dumps([[r.host, r.target] for r in layout.roots]),
    }
    return ContainerPlan(
        name=spec.container_name,
        image=spec.image_ref,
        command=command,
        env={},
        ports=tuple(ports),
        mounts=tuple(mounts),
        labels=labels,
        restart_policy=spec.restart,
        nano_cpus=int(spec.resources.cpus * 1e9) if spec.resources.cpus else None,
        mem_limit=spec.resources.memory_bytes,
        device_requests=devices,
    )
