"""Kubernetes manifests from a spec: ConfigMap, Deployment, Service (``tfsops render k8s``).

Pure: spec in, YAML text out; nothing talks to a cluster. The manifests are
built as dicts (so the tests validate exactly what is written against the
Kubernetes schemas) and dumped with a few explanatory comments.

Readiness means "every model has a version AVAILABLE": TF Serving's status
endpoint answers 200 while a model is still loading, so an ``httpGet`` probe
would pass too early. The readiness probe is an ``exec`` of the same bash
check the Swarm healthcheck uses (``/dev/tcp`` to the REST port, look for
``"state": "AVAILABLE"`` for every model): the ``tensorflow/serving`` image has
bash, though neither curl nor python, so no sidecar is needed. A ``startupProbe``
on the gRPC port covers the initial load (TF Serving opens its ports only
after it).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tfsops import __version__
from tfsops.plan import layout as L
from tfsops.plan.container import server_command
from tfsops.plan.render import render_all
from tfsops.spec.model import DeploymentSpec
from tfsops.swarm.plan import HEALTHCHECK_SCRIPT

GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER = "tensorflow-serving"
ANNOTATION_PREFIX = "tfsops.io"
READINESS_NOTE = (
    "Ready = every model has a version AVAILABLE. TF Serving answers 200 on /v1/models/<m> while "
    "a model loads, so an httpGet probe is not enough: this exec probe runs a bash check "
    "(bash's /dev/tcp; the tensorflow/serving image has bash but no curl or python) that "
    'reads each model\'s status and looks for "state": "AVAILABLE". '
    "The startupProbe waits for the gRPC port, which opens only after the initial load."
)
MODELS_NOTE = (
    "PLACEHOLDER: the model folders as hostPath volumes, which must exist on every node. "
    "Replace them with a PersistentVolumeClaim (ReadOnlyMany) holding the same folders, "
    "or bake the models into the image (tfsops commit) and drop these volumes."
)


def k8s_name(deployment: str, suffix: str = "", limit: int = 63) -> str:
    """A DNS-1035 label: ``tfsops-<name>[-suffix]``, lower case, at most ``limit`` characters
    (a hash of the original name keeps shortened or rewritten names distinct)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", deployment.lower()).strip("-") or "x"
    name = f"tfsops-{slug}"
    tail = f"-{suffix}" if suffix else ""
    if slug != deployment or len(name) + len(tail) > limit:
        digest = hashlib.sha256(deployment.encode()).hexdigest()[:6]
        name = name[: limit - len(tail) - 7].rstrip("-") + f"-{digest}"
    return name + tail


def _label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value) or "x"


def quantity_cpu(cpus: float) -> str:
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def quantity_memory(size: int) -> str:
    for unit, factor in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def gpu_limit(spec: DeploymentSpec) -> tuple[int, str | None]:
    """``nvidia.com/gpu`` per pod, and a note when the spec's devices cannot be said exactly."""
    if spec.gpu is None:
        return 0, None
    if spec.gpu.devices == "all":
        return 1, (
            'gpu.devices "all": Kubernetes needs a count; 1 GPU per pod '
            "(list device ids in the spec to ask for more)"
        )
    n = len(spec.gpu.devices)
    return n, f"gpu.devices {list(spec.gpu.devices)}: the device plugin picks which {n} GPU(s)"


def manifests(spec: DeploymentSpec) -> dict[str, dict[str, Any]]:
    """file name -> manifest (as data)."""
    files = render_all(spec, with_secrets=False)
    data = files.files()
    content_hash = hashlib.sha256(
        "\0".join(f"{k}\0{v}" for k, v in sorted(data.items())).encode()
    ).hexdigest()[:8]
    name = k8s_name(spec.name)
    config_name = k8s_name(spec.name, content_hash)
    selector = {
        "app.kubernetes.io/name": "tensorflow-serving",
        "app.kubernetes.io/instance": _label_value(spec.name),
    }
    tag = spec.image_ref.rsplit("/", 1)[-1].partition(":")[2]
    labels = {
        **selector,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/version": _label_value(tag or "unknown"),
        "app.kubernetes.io/managed-by": "tfsops",
    }
    annotations = {
        f"{ANNOTATION_PREFIX}/deployment": spec.name,
        f"{ANNOTATION_PREFIX}/rendered-by": f"tfsops {__version__}",
    }

    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        # Content-hashed and immutable, as on Swarm: a new model set is a new
        # ConfigMap, so the Deployment's pod template changes and rolls out.
        "metadata": {"name": config_name, "labels": labels, "annotations": annotations},
        "immutable": True,
        "data": data,
    }

    layout = L.layout_for(spec)
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    config_sources: list[dict[str, Any]] = [{"configMap": {"name": config_name}}]
    if spec.tls is not None:
        # The private key never goes into a rendered file: the user creates this Secret.
        config_sources.append({"secret": {"name": k8s_name(spec.name, "tls")}})
    volumes.append({"name": "config", "projected": {"sources": config_sources}})
    mounts.append({"name": "config", "mountPath": L.CONFIG_DIR, "readOnly": True})
    for i, root in enumerate(layout.roots):
        volume = f"models-{i}"
        volumes.append({"name": volume, "hostPath": {"path": root.host, "type": "Directory"}})
        mounts.append({"name": volume, "mountPath": root.target, "readOnly": True})

    resources: dict[str, dict[str, Any]] = {}
    if spec.resources.cpus:
        cpu = quantity_cpu(spec.resources.cpus)
        resources.setdefault("requests", {})["cpu"] = cpu
        resources.setdefault("limits", {})["cpu"] = cpu
    if spec.resources.memory_bytes:
        memory = quantity_memory(spec.resources.memory_bytes)
        resources.setdefault("requests", {})["memory"] = memory
        resources.setdefault("limits", {})["memory"] = memory
    gpus, _ = gpu_limit(spec)
    if gpus:
        resources.setdefault("limits", {})[GPU_RESOURCE] = gpus

    models = [m.name for m in spec.models]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image_ref,
        "args": list(server_command(spec, files)),
        "ports": [
            {"name": "grpc", "containerPort": L.GRPC_PORT, "protocol": "TCP"},
            {"name": "http", "containerPort": L.REST_PORT, "protocol": "TCP"},
        ],
        "startupProbe": {
            "tcpSocket": {"port": "grpc"},
            "periodSeconds": 5,
            "failureThreshold": 120,  # 10 minutes for the initial load
        },
        "readinessProbe": {
            "exec": {"command": ["bash", "-c", HEALTHCHECK_SCRIPT, "tfsops-ready", *models]},
            "periodSeconds": 5,
            "timeoutSeconds": 4,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "tcpSocket": {"port": "grpc"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "volumeMounts": mounts,
    }
    if resources:
        container["resources"] = resources
    replicas = spec.swarm.replicas if spec.swarm else 1
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {**annotations, f"{ANNOTATION_PREFIX}/readiness": READINESS_NOTE},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # Start-first, like the Swarm target: a new pod must be ready before an old one goes.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "minReadySeconds": 5,
            "progressDeadlineSeconds": 900,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {f"{ANNOTATION_PREFIX}/config-hash": content_hash},
                },
                "spec": {"containers": [container], "volumes": volumes},
            },
        },
    }

    ports = []
    if spec.ports.grpc is not None:
        ports.append(
            {
                "name": "grpc",
                "port": spec.ports.grpc,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "grpc",
            }
        )
    if spec.ports.rest is not None:
        ports.append(
            {"name": "http", "port": spec.ports.rest, "targetPort": "http", "protocol": "TCP"}
        )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }
    return {"configmap.yaml": configmap, "deployment.yaml": deployment, "service.yaml": service}


# ---- YAML with comments ----------------------------------------------------------------


def _dump(doc: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # shared dicts (labels) are written out, not as &anchors

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        # Multi-line strings (the probe script, config files) as readable blocks.
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return str(yaml.dump(doc, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=4096))


def _comment_before(text: str, key: str, note: str) -> str:
    """Put ``# note`` (wrapped) above the first line that starts with ``key`` (after indent)."""
    import textwrap

    lines = text.split("\n")
    for i, line in enumerate(lines):
        stripped = line.lstrip(" -")
        if stripped.startswith(key):
            indent = " " * (len(line) - len(line.lstrip(" ")))
            wrapped = textwrap.wrap(note, width=96 - len(indent))
            lines[i:i] = [f"{indent}# {w}" for w in wrapped]
            break
    return "\n".join(lines)


def render_k8s(spec: DeploymentSpec) -> dict[str, str]:
    """file name -> YAML text: ``configmap.yaml``, ``deployment.yaml``, ``service.yaml``.

    Apply with ``kubectl apply -f DIR``. The models are ``hostPath`` placeholders
    (see the comment in ``deployment.yaml``).
    """
    docs = manifests(spec)
    header = (
        f"# Rendered by tfsops {__version__} from deployment {spec.name!r}; "
        "re-render instead of editing.\n"
    )
    out = {}
    for file, doc in docs.items():
        text = _dump(doc)
        if doc["kind"] == "Deployment":
            text = _comment_before(text, "readinessProbe:", READINESS_NOTE)
            text = _comment_before(
                text,
                "startupProbe:",
                "TF Serving opens its ports only after the initial load: "
                "the gRPC port accepting connections means start-up is over (up to 10 minutes).",
            )
            text = _comment_before(text, "volumes:", MODELS_NOTE)
            _, gpu_note = gpu_limit(spec)
            if gpu_note:
                text = _comment_before(text, f"{GPU_RESOURCE}:", gpu_note)
            if spec.tls is not None:
                text = _comment_before(
                    text,
                    "- secret:",
                    f"Create it from the rendered ssl.config: kubectl create "
                    f"secret generic {k8s_name(spec.name, 'tls')} --from-file=ssl.config",
                )
        if doc["kind"] == "ConfigMap":
            header_extra = (
                "# Immutable, named by content: a new model set is a new ConfigMap and a rollout.\n"
            )
            text = header_extra + text
        out[file] = header + text
    return out
