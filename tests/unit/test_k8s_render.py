"""Kubernetes manifests: valid against the Kubernetes schemas, and saying what the spec says.

Validation uses ``kubernetes-validate`` (PyPI), which bundles the Kubernetes
JSON schemas: nothing is downloaded at test time. ``strict`` also rejects
unknown fields, so a typo in a manifest key fails here, not in a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tfsops.k8s.render import k8s_name, manifests, quantity_cpu, quantity_memory, render_k8s
from tfsops.plan.container import server_command
from tfsops.plan.render import render_all
from tfsops.spec.load import spec_from_data
from tfsops.spec.model import DeploymentSpec

K8S_VERSIONS = ["1.27.0", "1.33.0"]  # an older and a recent API


def make_spec(**overrides: Any) -> DeploymentSpec:
    data: dict[str, Any] = {
        "name": "vision",
        "models": [
            {
                "name": "hp2",
                "path": "/data/models/hp2",
                "policy": {"specific": [1, 2]},
                "labels": {"stable": 1},
            },
            {"name": "resnet", "path": "/srv/other/resnet"},
        ],
        "batching": {"max_batch_size": 16, "batch_timeout_micros": 500},
        "monitoring": {"prometheus": True},
        "resources": {"cpus": 1.5, "memory": "2g"},
    }
    data.update(overrides)
    return spec_from_data(data, base_dir=Path("/"), source="test")


def load(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load(text) for name, text in files.items()}


def validate_all(docs: dict[str, dict[str, Any]]) -> None:
    for version in K8S_VERSIONS:
        for name, doc in docs.items():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(
                    f"{name} is not a valid Kubernetes {version} {doc['kind']}: {exc.message}"
                )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"target": "swarm", "swarm": {"replicas": 3}},
        {"gpu": {"devices": "all", "memory_fraction": 0.4}},
        {"gpu": {"devices": [0, 1]}, "ports": {"rest": 9501, "grpc": None}},
        {"name": "My.Model_v2", "resources": {}},
    ],
    ids=["cpu", "replicas", "gpu-all", "gpu-two-rest-only", "odd-name"],
)
def test_manifests_validate_against_the_kubernetes_schemas(overrides: dict[str, Any]) -> None:
    docs = load(render_k8s(make_spec(**overrides)))
    assert set(docs) == {"configmap.yaml", "deployment.yaml", "service.yaml"}
    validate_all(docs)


def test_validator_catches_a_broken_manifest() -> None:
    """The validator really checks: a wrong type and an unknown field fail."""
    doc = load(render_k8s(make_spec()))["deployment.yaml"]
    doc["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
    doc = load(render_k8s(make_spec()))["service.yaml"]
    doc["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


def test_written_yaml_is_the_manifest_data() -> None:
    spec = make_spec()
    assert load(render_k8s(spec)) == manifests(spec)


def test_deployment_runs_the_same_server_and_mounts() -> None:
    spec = make_spec(target="swarm", swarm={"replicas": 4})
    docs = load(render_k8s(spec))
    deployment, configmap = docs["deployment.yaml"], docs["configmap.yaml"]
    assert deployment["spec"]["replicas"] == 4
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "tensorflow/serving:2.19.0"
    assert container["args"] == list(server_command(spec, render_all(spec, with_secrets=False)))
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 8500,
        "http": 8501,
    }
    assert container["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2Gi"},
        "limits": {"cpu": "1500m", "memory": "2Gi"},
    }
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/etc/tfsops", "/models/hp2", "/models/resnet"}
    assert all(m["readOnly"] for m in mounts.values())
    volumes = {v["name"]: v for v in pod["volumes"]}
    host_paths = sorted(v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v)
    assert host_paths == ["/data/models/hp2", "/srv/other/resnet"]
    # The ConfigMap carries every rendered file, is immutable and named by its content.
    assert configmap["data"] == render_all(spec, with_secrets=False).files()
    assert configmap["immutable"] is True
    assert volumes["config"]["projected"]["sources"] == [
        {"configMap": {"name": configmap["metadata"]["name"]}}
    ]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "tfsops"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_a_new_model_set_is_a_new_configmap_and_a_rollout() -> None:
    before = load(render_k8s(make_spec()))
    after = load(render_k8s(make_spec(models=[{"name": "hp2", "path": "/data/models/hp2"}])))
    assert (
        before["configmap.yaml"]["metadata"]["name"] != after["configmap.yaml"]["metadata"]["name"]
    )
    template = ("spec", "template", "metadata", "annotations")

    def annotations(doc: dict[str, Any]) -> Any:
        for key in template:
            doc = doc[key]
        return doc

    assert annotations(before["deployment.yaml"]) != annotations(after["deployment.yaml"])


def test_readiness_means_every_model_available() -> None:
    spec = make_spec()
    files = render_k8s(spec)
    container = load(files)["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    command = container["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["bash", "-c"]
    assert command[3:] == ["tfsops-ready", "hp2", "resnet"]
    assert '"AVAILABLE"' in command[2] and "/dev/tcp/127.0.0.1/8501" in command[2]
    assert "httpGet" not in container["readinessProbe"]
    assert container["startupProbe"]["tcpSocket"]["port"] == "grpc"
    # Said in the manifest, for whoever reads it.
    assert "200" in files["deployment.yaml"] and "# Ready = every model" in files["deployment.yaml"]
    annotations = load(files)["deployment.yaml"]["metadata"]["annotations"]
    assert "AVAILABLE" in annotations["tfsops.io/readiness"]
    assert "# PLACEHOLDER" in files["deployment.yaml"]


def test_gpu_limits() -> None:
    files = render_k8s(make_spec(gpu={"devices": "all"}))
    container = load(files)["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "tensorflow/serving:2.19.0-gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert '# gpu.devices "all"' in files["deployment.yaml"]
    two = load(render_k8s(make_spec(gpu={"devices": [0, 1], "memory_fraction": 0.5})))
    container = two["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "--per_process_gpu_memory_fraction=0.5" in container["args"]


def test_service_ports() -> None:
    service = load(render_k8s(make_spec(ports={"rest": 9501, "grpc": 9500})))["service.yaml"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 9500, "grpc"),
        ("http", 9501, "http"),
    ]
    rest_only = load(render_k8s(make_spec(ports={"rest": 8501, "grpc": None})))["service.yaml"]
    assert [p["name"] for p in rest_only["spec"]["ports"]] == ["http"]


def test_tls_key_is_never_rendered() -> None:
    docs = manifests(make_spec())
    assert "ssl.config" not in docs["configmap.yaml"]["data"]


def test_names_and_quantities() -> None:
    assert k8s_name("vision") == "tfsops-vision"
    odd = k8s_name("My.Model_v2")
    assert odd.startswith("tfsops-my-model-v2-") and odd == odd.lower()
    assert len(k8s_name("x" * 63, "abcdef12")) <= 63
    assert quantity_cpu(2) == "2" and quantity_cpu(0.25) == "250m"
    assert quantity_memory(4 * 1024**3) == "4Gi" and quantity_memory(512 * 1024**2) == "512Mi"
