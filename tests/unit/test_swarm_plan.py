"""The Swarm service plan: pure, no engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tfsops.adapters.docker_swarm import parse_http, parse_probe_output, snapshot_client
from tfsops.errors import InvalidInput
from tfsops.health import check_health
from tfsops.plan.container import LABEL_CONFIG_HASH, LABEL_DEPLOYMENT, server_command
from tfsops.plan.render import render_all
from tfsops.ports import ExpectedModel
from tfsops.spec.load import spec_from_data
from tfsops.spec.model import DeploymentSpec
from tfsops.swarm.plan import (
    CREATE,
    GPU_RESOURCE,
    HEALTHCHECK_SCRIPT,
    LABEL_SWARM_DEPLOYMENT,
    LABEL_TEMPLATE_HASH,
    NOOP,
    UPDATE,
    ObservedService,
    ServicePlan,
    SwarmSettings,
    compute_swarm_plan,
    config_name,
    host_ports_problem,
    object_name,
    render_swarm,
    service_plan,
)

NANO = 1_000_000_000


def make_spec(**overrides: Any) -> DeploymentSpec:
    data: dict[str, Any] = {
        "name": "vision",
        "image": "tfsops-double:latest",
        "target": "swarm",
        "swarm": {
            "replicas": 3,
            "placement": ["node.labels.serving==true"],
            "update": {"parallelism": 2, "delay": 1.5, "order": "start-first"},
        },
        "models": [
            {
                "name": "hp2",
                "path": "/data/models/hp2",
                "labels": {"stable": 1},
                "policy": {"specific": [1]},
            },
            {"name": "hp3", "path": "/data/models/hp3"},
        ],
        "server_args": {"tensorflow_intra_op_parallelism": 4},
        "resources": {"cpus": 2, "memory": "4g"},
    }
    data.update(overrides)
    return spec_from_data(data, base_dir=Path("/"), source="test")


def plan_for(spec: DeploymentSpec, **settings: Any) -> ServicePlan:
    return service_plan(spec, SwarmSettings(**settings))


def observed_from(plan: ServicePlan, **overrides: Any) -> ObservedService:
    data: dict[str, Any] = {
        "id": "svc1",
        "name": plan.service_name,
        "version": 10,
        "labels": plan.labels,
        "image": plan.image,
        "replicas": plan.replicas,
        "config_names": plan.config_names,
        "models_config": plan.models_config,
    }
    data.update(overrides)
    return ObservedService(**data)


# ---- the service spec ---------------------------------------------------------------


def test_service_spec_runs_the_same_server_as_the_container_target() -> None:
    spec = make_spec()
    plan = plan_for(spec)
    task = plan.spec["TaskTemplate"]
    container = task["ContainerSpec"]
    assert plan.service_name == "tfsops-vision" == plan.network_name
    assert container["Image"] == "tfsops-double:latest"
    assert container["Args"] == list(server_command(spec, render_all(spec)))
    assert container["Args"][0] == "--model_config_file=/etc/tfsops/models.config"
    # Model folders: bind mounts of each model's own folder, read-only, at the layout's targets.
    assert container["Mounts"] == [
        {"Type": "bind", "Source": "/data/models/hp2", "Target": "/models/hp2", "ReadOnly": True},
        {"Type": "bind", "Source": "/data/models/hp3", "Target": "/models/hp3", "ReadOnly": True},
    ]
    assert plan.spec["Mode"] == {"Replicated": {"Replicas": 3}}
    assert task["Placement"] == {"Constraints": ["node.labels.serving==true"]}
    assert task["Resources"]["Limits"] == {"NanoCPUs": 2 * NANO, "MemoryBytes": 4 * 1024**3}
    assert task["RestartPolicy"]["Condition"] == "any"  # unless-stopped
    assert task["Networks"] == [{"Target": "tfsops-vision"}]
    # Task containers must not look like the container target's container.
    assert LABEL_DEPLOYMENT not in container["Labels"]
    assert container["Labels"][LABEL_SWARM_DEPLOYMENT] == "vision"
    assert container["Labels"][LABEL_TEMPLATE_HASH] == plan.template_hash
    labels = plan.spec["Labels"]
    assert labels[LABEL_DEPLOYMENT] == "vision"
    assert labels[LABEL_CONFIG_HASH] == plan.spec_hash


def test_rendered_files_become_content_hashed_config_objects() -> None:
    spec = make_spec(batching={"max_batch_size": 8}, monitoring={"prometheus": True})
    plan = plan_for(spec)
    files = render_all(spec).files()
    assert [c.file for c in plan.configs] == list(files)
    for c in plan.configs:
        assert c.data == files[c.file]
        assert c.name == f"tfsops-vision-{c.file}-{c.sha256[:8]}"
        assert c.target == f"/etc/tfsops/{c.file}"
        assert not c.secret
    refs = plan.spec["TaskTemplate"]["ContainerSpec"]["Configs"]
    assert [(r["ConfigName"], r["File"]["Name"]) for r in refs] == [
        (c.name, c.target) for c in plan.configs
    ]
    assert all(r["File"]["Mode"] == 0o444 for r in refs)
    args = plan.spec["TaskTemplate"]["ContainerSpec"]["Args"]
    assert "--batching_parameters_file=/etc/tfsops/batching.config" in args
    assert "--monitoring_config_file=/etc/tfsops/monitoring.config" in args


def test_a_new_model_set_is_a_new_config_object_and_task_template() -> None:
    before = plan_for(make_spec())
    models = [
        {"name": "hp2", "path": "/data/models/hp2"},
        {"name": "hp4", "path": "/data/models/hp4"},
    ]
    after = plan_for(make_spec(models=models))
    assert before.config("models.config") != after.config("models.config")
    assert before.template_hash != after.template_hash
    assert before.spec_hash != after.spec_hash
    # Same spec, same names and hashes: applying twice changes nothing.
    again = plan_for(make_spec(models=models))
    assert again.config_names == after.config_names
    assert (again.template_hash, again.spec_hash) == (after.template_hash, after.spec_hash)


def test_update_config_from_the_spec_with_rollback_and_monitor_window() -> None:
    plan = plan_for(make_spec(), monitor=7.0)
    assert plan.spec["UpdateConfig"] == {
        "Parallelism": 2,
        "Delay": int(1.5 * NANO),
        "FailureAction": "rollback",
        "Monitor": 7 * NANO,
        "MaxFailureRatio": 0,
        "Order": "start-first",
    }
    rollback = plan.spec["RollbackConfig"]
    assert rollback["Order"] == "start-first" and rollback["FailureAction"] == "pause"
    assert rollback["Monitor"] == 7 * NANO


def test_healthcheck_runs_inside_the_task_and_checks_every_model() -> None:
    plan = plan_for(make_spec(), health_interval=2.0, health_start_period=300.0)
    check = plan.spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    assert check["Test"][:3] == ["CMD", "bash", "-c"]
    assert check["Test"][3] == HEALTHCHECK_SCRIPT
    assert check["Test"][4:] == ["tfsops-health", "hp2", "hp3"]
    assert check["Interval"] == 2 * NANO and check["StartPeriod"] == 300 * NANO
    # Plain bash: nothing the real tensorflow/serving image lacks.
    assert "curl" not in HEALTHCHECK_SCRIPT and "python" not in HEALTHCHECK_SCRIPT
    assert "/dev/tcp/127.0.0.1/8501" in HEALTHCHECK_SCRIPT
    off = plan_for(make_spec(), healthcheck=False)
    assert off.spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"] == {"Test": ["NONE"]}


def test_gpu_reserves_generic_resources() -> None:
    plan = plan_for(
        make_spec(image="tensorflow/serving", gpu={"devices": [0, 1], "memory_fraction": 0.5})
    )
    resources = plan.spec["TaskTemplate"]["Resources"]
    assert resources["Reservations"] == {
        "GenericResources": [{"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": 2}}]
    }
    assert plan.image == "tensorflow/serving:2.19.0-gpu"
    assert plan.gpus == 2
    assert (
        "--per_process_gpu_memory_fraction=0.5"
        in plan.spec["TaskTemplate"]["ContainerSpec"]["Args"]
    )
    all_gpus = plan_for(make_spec(gpu={"devices": "all"}))
    assert all_gpus.gpus == 1
    assert any('"all"' in w for w in all_gpus.warnings)
    assert "Reservations" not in plan_for(make_spec()).spec["TaskTemplate"]["Resources"]


# ---- ports --------------------------------------------------------------------------


def test_loopback_bind_publishes_nothing_and_says_why() -> None:
    plan = plan_for(make_spec())  # ports.bind defaults to 127.0.0.1
    assert plan.publish_mode == "none"
    assert plan.spec["EndpointSpec"] == {"Mode": "dnsrr", "Ports": []}
    assert any("not published" in w for w in plan.warnings)


def test_wildcard_bind_publishes_through_the_routing_mesh() -> None:
    plan = plan_for(make_spec(ports={"rest": 9501, "grpc": 9500, "bind": "0.0.0.0"}))
    assert plan.publish_mode == "ingress"
    assert plan.spec["EndpointSpec"]["Mode"] == "vip"
    assert plan.spec["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "PublishedPort": 9501, "TargetPort": 8501, "PublishMode": "ingress"},
        {"Protocol": "tcp", "PublishedPort": 9500, "TargetPort": 8500, "PublishMode": "ingress"},
    ]


def test_host_mode_ports() -> None:
    spec = make_spec(ports={"rest": 9501, "grpc": None, "bind": "0.0.0.0"})
    plan = plan_for(spec, publish="host")
    assert plan.spec["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "PublishedPort": 9501, "TargetPort": 8501, "PublishMode": "host"}
        ],
    }
    assert any("start-first" in w for w in plan.warnings)
    # One task per node per port: 3 replicas + a start-first task need 4 nodes.
    assert host_ports_problem(plan, eligible_nodes=4) is None
    assert host_ports_problem(plan, eligible_nodes=1) is not None
    assert host_ports_problem(plan_for(spec), eligible_nodes=1) is None  # ingress


def test_publishing_with_a_specific_bind_address_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"ports.bind"):
        plan_for(make_spec(), publish="host")


# ---- names --------------------------------------------------------------------------


def test_names_fit_swarm_limits() -> None:
    assert object_name("vision") == "tfsops-vision"
    dotted = object_name("my.model")
    assert "." not in dotted and dotted.startswith("tfsops-my-model-")
    long = "x" * 63
    assert len(object_name(long)) <= 63
    assert object_name(long) != object_name("x" * 62)
    name = config_name(long, "monitoring.config", "data")
    assert len(name) <= 64 and name.endswith("-monitoring.config-" + name[-8:])


# ---- the diff -----------------------------------------------------------------------


def test_plan_create_update_noop() -> None:
    spec = make_spec()
    desired = plan_for(spec)
    assert compute_swarm_plan(desired, None).action == CREATE
    same = compute_swarm_plan(desired, observed_from(desired))
    assert same.action == NOOP
    models = [*spec.model_dump()["models"], {"name": "hp4", "path": "/data/models/hp4"}]
    bigger = plan_for(make_spec(models=models))
    update = compute_swarm_plan(bigger, observed_from(desired))
    assert update.action == UPDATE
    assert [m.name for m in update.models.added] == ["hp4"]
    assert any("rolling update" in r for r in update.reasons)
    text = update.text()
    assert "update" in text and "+ model hp4" in text
    assert json.loads(json.dumps(update.to_dict()))["action"] == "update"


def test_render_swarm_shows_ports_and_configs() -> None:
    out = render_swarm(make_spec(ports={"rest": 9501, "grpc": 9500, "bind": "0.0.0.0"}))
    service = json.loads(out["swarm-service.json"])
    assert service["publish"]["mode"] == "ingress"
    assert [p["published"] for p in service["publish"]["ports"]] == [9501, 9500]
    names = [c["name"] for c in service["configs"]]
    assert [f"configs/{n}" for n in names] == [k for k in out if k.startswith("configs/")]


def test_baked_models_mount_nothing() -> None:
    plan = plan_for(make_spec(), models="image")
    assert plan.spec["TaskTemplate"]["ContainerSpec"]["Mounts"] == []
    assert 'base_path: "/models/hp2"' in plan.models_config


# ---- the helper probe's output ------------------------------------------------------


def _line(ip: str, rc: int, path: str, raw: bytes) -> str:
    import base64

    return f"@@tfsops {ip} {rc} {path} {base64.b64encode(raw).decode()}"


def test_probe_answers_feed_the_real_health_logic() -> None:
    status = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + json.dumps(status).encode()
    meta = {"model_spec": {"name": "hp2", "version": "1"}, "metadata": {}}
    label = b"HTTP/1.0 200 OK\r\n\r\n" + json.dumps(meta).encode()
    output = "\n".join(
        [
            "noise from the entrypoint",
            _line("10.0.1.5", 0, "/v1/models/hp2", ok),
            _line("10.0.1.5", 0, "/v1/models/hp2/labels/stable/metadata", label),
            _line("10.0.1.6", 7, "/v1/models/hp2", b""),
            _line("10.0.1.6", 7, "/v1/models/hp2/labels/stable/metadata", b""),
        ]
    )
    answers = parse_probe_output(output)
    expected = [ExpectedModel("hp2", frozenset({1}), {"stable": 1})]
    ready = check_health(snapshot_client("10.0.1.5", answers["10.0.1.5"]), expected)
    assert ready.ok, ready.describe()
    starting = check_health(snapshot_client("10.0.1.6", answers["10.0.1.6"]), expected)
    assert not starting.ok and starting.server_starting


def test_parse_http_handles_chunked_bodies() -> None:
    raw = (
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    answer = parse_http(raw)
    assert answer.status == 404 and answer.body == b"hello world"


# ---- the executor refuses without a swarm -------------------------------------------


class _Client:
    def __init__(self, swarm: dict[str, Any]) -> None:
        self._swarm = swarm

    def info(self) -> dict[str, Any]:
        return {"Swarm": self._swarm}


class _Runtime:
    url = "unix:///fake.sock"

    def __init__(self, swarm: dict[str, Any]) -> None:
        self.client = _Client(swarm)


@pytest.mark.parametrize(
    ("swarm", "why"),
    [
        ({"LocalNodeState": "inactive"}, "not part of a swarm"),
        ({"LocalNodeState": "active", "ControlAvailable": False}, "worker"),
    ],
)
def test_apply_refuses_without_a_swarm_manager(
    swarm: dict[str, Any], why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsops.adapters.docker_swarm import SwarmEngine
    from tfsops.errors import ExitCode
    from tfsops.executor import ApplyOptions
    from tfsops.services import Services
    from tfsops.swarm import executor as swarm_executor

    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(swarm_executor, "check_models", lambda spec: {})
    runtime: Any = _Runtime(swarm)
    services = Services(runtime_factory=lambda: runtime, serving_factory=None, admin_factory=None)  # type: ignore[arg-type]
    executor = swarm_executor.SwarmExecutor(services, engine=SwarmEngine(runtime))
    spec_path = tmp_path / "tfsops.yaml"
    spec_path.write_text("name: vision\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        executor.apply(make_spec(), spec_path, ApplyOptions())
    assert caught.value.exit_code == ExitCode.INVALID
    assert why in caught.value.message
    assert "docker swarm init" in (caught.value.hint or "")
    assert not (tmp_path / "state").exists()  # nothing written
    # plan still answers, and says apply would refuse
    assert any("swarm init" in r for r in executor.plan(make_spec()).reasons)
