"""The ``tfsops.yaml`` spec as pydantic v2 models.

Validated once, at the edge; everything after works on a frozen
``DeploymentSpec``. Unknown keys are errors (``extra="forbid"``); cross-field
rules live in ``model_validator``s. Relative model paths are resolved against
the spec file's folder through the validation context (``{"base_dir": ...}``).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Usable as a container name part, a URL path segment and a text-proto string:
# TF Serving's REST routes accept [^/:]+, tfsops keeps to a safe subset.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# g3doc/serving_config.md restricts labels to [a-zA-Z0-9_]+.
LABEL_PATTERN = r"^[A-Za-z0-9_]{1,63}$"
FLAG_PATTERN = r"^[a-z][a-z0-9_]*$"

# Flags tfsops sets itself: giving them in server_args would fight the rendered plan.
MANAGED_FLAGS = {
    "port": "ports.grpc",
    "rest_api_port": "ports.rest",
    "model_name": "models",
    "model_base_path": "models",
    "model_config_file": "models (tfsops renders models.config)",
    "model_config_file_poll_wait_seconds": (
        "nothing: tfsops reloads through the admin RPC, and a file poller would revert those reloads"
    ),
    "enable_batching": "batching",
    "batching_parameters_file": "batching",
    "monitoring_config_file": "monitoring",
    "per_process_gpu_memory_fraction": "gpu.memory_fraction",
    "ssl_config_file": "tls",
}

# Every other tensorflow_model_server flag (reference §1.2), with its type.
SERVER_FLAGS: dict[str, type] = {
    "grpc_socket_path": str,
    "rest_api_num_threads": int,
    "rest_api_timeout_in_ms": int,
    "rest_api_enable_cors_support": bool,
    "allow_version_labels_for_unavailable_models": bool,
    "enable_per_model_batching_parameters": bool,
    "num_load_threads": int,
    "num_unload_threads": int,
    "max_num_load_retries": int,
    "load_retry_interval_micros": int,
    "file_system_poll_wait_seconds": int,
    "flush_filesystem_caches": bool,
    "tensorflow_session_parallelism": int,
    "tensorflow_session_config_file": str,
    "tensorflow_intra_op_parallelism": int,
    "tensorflow_inter_op_parallelism": int,
    "use_alts_credentials": bool,
    "platform_config_file": str,
    "saved_model_tags": str,
    "grpc_channel_arguments": str,
    "grpc_max_threads": int,
    "enable_model_warmup": bool,
    "num_request_iterations_for_warmup": int,
    "remove_unused_fields_from_bundle_metagraph": bool,
    "prefer_tflite_model": bool,
    "num_tflite_pools": int,
    "num_tflite_interpreters_per_pool": int,
    "enable_signature_method_name_check": bool,
    "xla_cpu_compilation_enabled": bool,
    "xla_gpu_compilation_enabled": bool,
    "enable_profiler": bool,
    "thread_pool_factory_config_file": str,
    "mixed_precision": str,
    "skip_initialize_tpu": bool,
    "enable_grpc_healthcheck_service": bool,
    "enable_serialization_as_tensor_content": bool,
}


# Integer flags declared int32 in main.cc (the others are int64).
INT32_FLAGS = {
    "rest_api_num_threads",
    "rest_api_timeout_in_ms",
    "num_load_threads",
    "num_unload_threads",
    "max_num_load_retries",
    "file_system_poll_wait_seconds",
    "grpc_max_threads",
    "num_request_iterations_for_warmup",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
}
INT32_MAX = 2**31 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=1, le=65535)]


class Ports(_Strict):
    """Host ports. The container always listens on 8500 (gRPC) and 8501 (REST)."""

    rest: Port | None = Field(8501, description="Host port for REST; null disables publishing it.")
    grpc: Port | None = Field(8500, description="Host port for gRPC; null disables publishing it.")
    bind: str = Field(
        "127.0.0.1",
        description="Host address the ports are published on. Loopback by default; "
        "0.0.0.0 makes the server reachable from other hosts.",
    )

    @field_validator("bind")
    @classmethod
    def _bind_is_ip(cls, value: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"not an IP address: {value!r} (e.g. 127.0.0.1 or 0.0.0.0)") from None
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if self.rest is not None and self.rest == self.grpc:
            raise ValueError(f"rest and grpc must differ (both {self.rest})")
        return self


class Gpu(_Strict):
    devices: Literal["all"] | list[Annotated[int, Field(ge=0)] | str] = Field(
        "all", description='"all" or a list of GPU indexes / UUIDs.'
    )
    memory_fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = Field(
        None, description="--per_process_gpu_memory_fraction (0 < f <= 1)."
    )

    @field_validator("devices")
    @classmethod
    def _devices_not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError('empty device list; use "all" or give indexes')
        return value


class LatestPolicy(_Strict):
    latest: Annotated[int, Field(ge=1, le=1000)] = 1


class AllPolicy(_Strict):
    all: dict[str, Any] = Field(default_factory=dict)

    @field_validator("all")
    @classmethod
    def _empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            raise ValueError("takes no options: write `all: {}`")
        return value


INT64_MAX = 2**63 - 1  # batching fields and versions are int64 in TF Serving's protos
Version = Annotated[int, Field(ge=0, le=INT64_MAX)]


class SpecificPolicy(_Strict):
    specific: list[Version] = Field(min_length=1)

    @field_validator("specific")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("versions listed twice")
        return sorted(value)


def _policy_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in ("latest", "all", "specific") if k in value]
        return keys[0] if len(keys) == 1 else None
    for cls, tag in ((LatestPolicy, "latest"), (AllPolicy, "all"), (SpecificPolicy, "specific")):
        if isinstance(value, cls):
            return tag
    return None


Policy = Annotated[
    Annotated[LatestPolicy, Tag("latest")]
    | Annotated[AllPolicy, Tag("all")]
    | Annotated[SpecificPolicy, Tag("specific")],
    Discriminator(
        _policy_tag,
        custom_error_type="policy",
        custom_error_message="must be one of {latest: N}, {all: {}}, {specific: [versions]}",
    ),
]


def _coerce_policy(value: Any) -> Any:
    # Shorthands: "latest", "all", {"latest": 2}, [3, 4] (specific).
    if value == "latest":
        return {"latest": 1}
    if value == "all":
        return {"all": {}}
    if isinstance(value, list):
        return {"specific": value}
    return value


class SmokeRequestSpec(_Strict):
    """One smoke request: a REST predict body (or ``@file``) and, optionally, its answer."""

    request: dict[str, Any] | str = Field(
        description='REST predict body ({"instances": ...} or {"inputs": ...}), or "@file.json".'
    )
    expect: Any = Field(
        default=None,
        description='Expected answer ({"predictions": ...}, {"outputs": ...}, a value, or '
        '"@file.json"); omitted: any answer that is not an error.',
    )
    tolerance: float = Field(
        default=1e-6, ge=0, description="Relative and absolute tolerance for numbers in expect."
    )

    @field_validator("request", "expect", mode="before")
    @classmethod
    def _resolve_file(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            if len(value) == 1:
                raise ValueError("'@' must be followed by a file name")
            return "@" + str(_resolve_host_path(value[1:], info))
        if info.field_name == "request" and isinstance(value, str):
            raise ValueError('a request is a JSON object or "@file"')
        return value


class ModelSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Model name (URL-safe).")
    path: Path = Field(description="Host folder holding numeric version subfolders.")
    policy: Policy = Field(default_factory=LatestPolicy, description="Which versions to serve.")
    labels: dict[Annotated[str, Field(pattern=LABEL_PATTERN)], Version] = Field(
        default_factory=dict, description="Version labels, e.g. {stable: 3, canary: 4}."
    )
    smoke: list[SmokeRequestSpec] | Literal[False] | None = Field(
        default=None,
        description="Predict requests every expected version must answer before a deploy or "
        "reload succeeds; omitted: one request generated from the signature; false: none.",
    )
    warmup: Path | None = Field(
        default=None,
        description="A JSON list of predict bodies that `tfsops warmup` writes into each "
        "version's assets.extra/tf_serving_warmup_requests (replayed by the server at load).",
    )

    @field_validator("warmup", mode="before")
    @classmethod
    def _resolve_warmup(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            value = value[1:]
        return _resolve_host_path(value, info)

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_shorthand(cls, value: Any) -> Any:
        return _coerce_policy(value)

    @field_validator("path", mode="before")
    @classmethod
    def _resolve_path(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str | Path) and str(value).strip() == "":
            raise ValueError("empty path")
        return _resolve_host_path(value, info)

    @model_validator(mode="after")
    def _labels_served(self) -> ModelSpec:
        if isinstance(self.policy, SpecificPolicy):
            served = set(self.policy.specific)
            for label, version in self.labels.items():
                if version not in served:
                    raise ValueError(
                        f"label {label!r} points at version {version}, which the policy "
                        f"specific: {sorted(served)} does not serve"
                    )
        return self

    @property
    def policy_kind(self) -> tuple[str, Any]:
        """The policy as plain data: ("latest", n) | ("all", None) | ("specific", [v...])."""
        if isinstance(self.policy, LatestPolicy):
            return ("latest", self.policy.latest)
        if isinstance(self.policy, AllPolicy):
            return ("all", None)
        return ("specific", list(self.policy.specific))


def _normpath(path: Path) -> str:
    import os

    return os.path.normpath(str(path))


def _resolve_host_path(value: Any, info: ValidationInfo) -> Any:
    """A host path from the spec: ``~`` expanded, relative to the spec's folder
    (validation context ``base_dir``), normalised. Other types pass on to pydantic."""
    if not isinstance(value, str | Path):
        return value
    path = _expand(value)
    base = (info.context or {}).get("base_dir") if info.context else None
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    return Path(_normpath(path))


def image_has_tag(image: str) -> bool:
    """``repo:tag`` (a registry's ``host:port/`` prefix is not a tag)."""
    return ":" in image.rsplit("/", 1)[-1]


def split_image_ref(ref: str) -> tuple[str, str]:
    """``repo:tag`` -> (repo, tag); Docker's ``latest`` when no tag is given."""
    if image_has_tag(ref):
        repo, _, tag = ref.rpartition(":")
        return repo, tag
    return ref, "latest"


def _expand(value: str | Path) -> Path:
    """``~`` expanded (an unknown ``~user`` is kept as written); a NUL byte is refused."""
    import os

    if "\x00" in str(value):  # never in a host path; os calls would raise ValueError later
        raise ValueError("a path cannot contain a NUL character")
    return Path(os.path.expanduser(str(value)))


class Batching(_Strict):
    """Server-side batching (--enable_batching + --batching_parameters_file)."""

    enabled: bool = True
    max_batch_size: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    batch_timeout_micros: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None
    max_enqueued_batches: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    num_batch_threads: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    max_execution_batch_size: Annotated[int, Field(ge=1, le=INT64_MAX)] | None = None
    enable_large_batch_splitting: bool | None = None
    allowed_batch_sizes: list[Annotated[int, Field(ge=1, le=INT64_MAX)]] = Field(
        default_factory=list
    )
    pad_variable_length_inputs: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Batching:
        params = self.model_dump(exclude={"enabled"}, exclude_defaults=True)
        if not self.enabled and params:
            raise ValueError(
                f"batching parameters given ({', '.join(sorted(params))}) but enabled is false"
            )
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in itertools.pairwise(sizes)):
                raise ValueError("allowed_batch_sizes must be strictly increasing")
            if self.max_batch_size is not None and sizes[-1] != self.max_batch_size:
                raise ValueError(
                    f"the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
                    f"max_batch_size ({self.max_batch_size})"
                )
        return self


class Monitoring(_Strict):
    prometheus: bool = False
    path: str = Field("/monitoring/prometheus/metrics", pattern=r"^/[A-Za-z0-9_./-]*$")


class Resources(_Strict):
    cpus: Annotated[float, Field(gt=0, le=1024)] | None = None
    memory: str | None = Field(None, description="e.g. 512m, 4g")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory(value)
        return value

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory(self.memory)


_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    match = _MEMORY_RE.match(text)
    if not match:
        raise ValueError(f"not a memory size: {text!r} (e.g. 512m, 4g)")
    number, unit = float(match.group(1)), match.group(2).lower()
    scaled = number * 1024 ** " kmgt".index(unit or " ")
    if not scaled < 2**63:  # also catches inf from a huge digit string
        raise ValueError(f"{text!r} is too large")
    value = int(scaled)
    if value < 6 * 1024 * 1024:
        raise ValueError(f"{text!r} is below Docker's minimum of 6m")
    return value


class Tls(_Strict):
    """gRPC TLS (--ssl_config_file). Files are read at render time, never printed."""

    cert: Path
    key: Path
    ca: Path | None = None
    client_verify: bool = False
    server_name: str | None = Field(None, description="Name to verify in the certificate.")

    @field_validator("cert", "key", "ca", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve_host_path(value, info)


class SwarmUpdate(_Strict):
    parallelism: Annotated[int, Field(ge=0)] = 1
    delay: Annotated[float, Field(ge=0)] = 5.0
    order: Literal["start-first", "stop-first"] = "start-first"
    failure_action: Literal["rollback", "pause", "continue"] = "rollback"
    monitor: Annotated[float, Field(ge=0)] | None = Field(
        None, description="Seconds a new task is watched for failure before the update goes on."
    )


class Swarm(_Strict):
    replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    placement: list[str] = Field(default_factory=list, description="Placement constraints.")
    update: SwarmUpdate = Field(default_factory=SwarmUpdate)
    publish: Literal["auto", "ingress", "host", "none"] | None = Field(
        None,
        description="How ports are published: auto (default: none for a loopback bind, "
        "ingress otherwise), ingress (routing mesh), host (one task per node), none.",
    )
    healthcheck: bool | None = Field(
        None,
        description="A task healthcheck that passes only when every model is AVAILABLE (default on).",
    )
    models: Literal["bind", "image"] | None = Field(
        None,
        description="bind: mount the model folders (same path on every node); image: baked in.",
    )
    max_replicas_per_node: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="At most this many replicas on one node (Swarm's placement MaxReplicas).",
    )


DEFAULT_VERSION = "2.19.0"

RestartPolicy = Literal["no", "always", "unless-stopped", "on-failure"]


class DeploymentSpec(_Strict):
    """A TF Serving deployment: one container (or one swarm service)."""

    name: str = Field(pattern=NAME_PATTERN, description="Deployment name; container tfsops-<name>.")
    image: str = Field(
        "tensorflow/serving",
        pattern=r"^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
        r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$",
        description="Image repository; the tag comes from version. An image given with its "
        "own tag (repo:tag) is used as is.",
    )
    version: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description=f'Image tag, pinned (default {DEFAULT_VERSION}; never an implicit "latest"); '
        '"-gpu" is added for GPU.',
    )
    ports: Ports = Field(default_factory=Ports)
    gpu: Gpu | None = None
    models: list[ModelSpec] = Field(min_length=1)
    model_roots: list[Path] = Field(
        default_factory=list,
        description="Extra host folders to mount now, so models added under them later "
        "are hot-loaded (and auto-discovered by `watch --discover`).",
    )
    batching: Batching | None = None
    monitoring: Monitoring | None = None
    server_args: dict[Annotated[str, Field(pattern=FLAG_PATTERN)], str | int | float | bool] = (
        Field(default_factory=dict)
    )
    resources: Resources = Field(default_factory=Resources)
    restart: RestartPolicy = "unless-stopped"
    tls: Tls | None = None
    target: Literal["docker", "swarm"] = "docker"
    swarm: Swarm | None = None

    @field_validator("model_roots", mode="before")
    @classmethod
    def _resolve_roots(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, list):
            return [_resolve_host_path(item, info) for item in value]
        return value

    @field_validator("server_args")
    @classmethod
    def _known_flags(cls, value: dict[str, Any]) -> dict[str, Any]:
        for flag, arg in value.items():
            if flag in MANAGED_FLAGS:
                raise ValueError(f"{flag!r} is set by tfsops; use {MANAGED_FLAGS[flag]}")
            expected = SERVER_FLAGS.get(flag)
            if expected is None:
                raise ValueError(f"unknown tensorflow_model_server flag {flag!r}")
            if expected is bool and not isinstance(arg, bool):
                raise ValueError(f"{flag!r} takes true or false, got {arg!r}")
            if expected is int:
                limit = INT32_MAX if flag in INT32_FLAGS else INT64_MAX
                if isinstance(arg, bool) or not isinstance(arg, int) or not -limit <= arg <= limit:
                    bits = 32 if flag in INT32_FLAGS else 64
                    raise ValueError(f"{flag!r} takes a {bits}-bit integer, got {arg!r}")
            if expected is str:
                if not isinstance(arg, str):
                    raise ValueError(f"{flag!r} takes a string, got {arg!r}")
                if any(c in arg for c in "\n\r\x00"):
                    raise ValueError(f"{flag!r}: control characters are not allowed")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> DeploymentSpec:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; listed twice: {', '.join(dupes)}")
        if self.target == "docker" and self.swarm is not None:
            raise ValueError("a swarm section needs target: swarm")
        if self.image_has_tag and self.version is not None:
            raise ValueError(
                f"image {self.image!r} has a tag and version is {self.version!r}: give the tag once"
            )
        if self.ports.rest is None and self.ports.grpc is None:
            raise ValueError("ports: at least one of rest and grpc must be published")
        return self

    # ---- derived values -------------------------------------------------------------
    @property
    def container_name(self) -> str:
        return f"tfsops-{self.name}"

    @property
    def image_has_tag(self) -> bool:
        return image_has_tag(self.image)

    @property
    def image_ref(self) -> str:
        if self.image_has_tag:
            return self.image
        tag = self.version or DEFAULT_VERSION
        if self.gpu is not None and not tag.endswith("-gpu"):
            tag = f"{tag}-gpu"
        return f"{self.image}:{tag}"

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)
