"""Renderers: every config parses with the official protos and says what the spec says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format

from tfsops.adapters import extra_protos, protos
from tfsops.plan.container import LABEL_CONFIG_HASH, container_plan
from tfsops.plan.diff import CREATE, HOT_RELOAD, NOOP, RECREATE, START, compute_plan, model_diff
from tfsops.plan.layout import layout_for
from tfsops.plan.render import proto_string, render_all
from tfsops.ports import ContainerInfo
from tfsops.spec.load import spec_from_data

FULL = {
    "name": "vision",
    "models": [
        {
            "name": "hp2",
            "path": "/data/models/hp2",
            "policy": {"specific": [123, 124]},
            "labels": {"stable": 123, "canary": 124},
        },
        {"name": "hp3", "path": "/data/models/hp3", "policy": {"latest": 2}},
        {"name": "all_versions", "path": "/other/place/av", "policy": {"all": {}}},
    ],
    "batching": {
        "max_batch_size": 32,
        "batch_timeout_micros": 1000,
        "num_batch_threads": 4,
        "allowed_batch_sizes": [8, 32],
        "pad_variable_length_inputs": True,
    },
    "monitoring": {"prometheus": True},
    "server_args": {"tensorflow_intra_op_parallelism": 4, "enable_model_warmup": False},
    "resources": {"cpus": 2, "memory": "4g"},
    "gpu": {"devices": [0, 1], "memory_fraction": 0.5},
}


def spec(data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return spec_from_data(data or FULL, base_dir=Path("/"), source="t")


def parse_models(text: str):  # type: ignore[no-untyped-def]
    return text_format.Parse(text, protos.model_server_config_pb2().ModelServerConfig())


def test_models_config_has_every_model_policy_and_label() -> None:
    config = parse_models(render_all(spec()).models_config)
    by_name = {c.name: c for c in config.model_config_list.config}
    assert set(by_name) == {"hp2", "hp3", "all_versions"}
    hp2 = by_name["hp2"]
    assert hp2.model_platform == "tensorflow"
    assert hp2.base_path == "/models/hp2"
    assert list(hp2.model_version_policy.specific.versions) == [123, 124]
    assert dict(hp2.version_labels) == {"stable": 123, "canary": 124}
    assert by_name["hp3"].model_version_policy.latest.num_versions == 2
    assert by_name["all_versions"].model_version_policy.WhichOneof("policy_choice") == "all"
    assert by_name["all_versions"].base_path == "/models/av"
    assert all(c.base_path.startswith("/") for c in by_name.values())


def test_batching_and_monitoring_parse_with_the_server_protos() -> None:
    files = render_all(spec())
    assert files.batching_config is not None and files.monitoring_config is not None
    b = text_format.Parse(files.batching_config, extra_protos.BatchingParameters())
    assert (b.max_batch_size.value, b.batch_timeout_micros.value, b.num_batch_threads.value) == (
        32,
        1000,
        4,
    )
    assert list(b.allowed_batch_sizes) == [8, 32] and b.pad_variable_length_inputs
    m = text_format.Parse(files.monitoring_config, extra_protos.MonitoringConfig())
    assert (
        m.prometheus_config.enable and m.prometheus_config.path == "/monitoring/prometheus/metrics"
    )


@pytest.mark.parametrize(
    "text", ['a"b', "back\\slash", "new\nline", "brace}{", "ünï", "tab\there", "\x01"]
)
def test_proto_string_round_trips(text: str) -> None:
    config = parse_models(f"model_config_list {{ config {{ name: {proto_string(text)} }} }}")
    assert config.model_config_list.config[0].name == text


def test_hostile_host_paths_still_render_to_a_valid_config() -> None:
    # Under a declared root the folder's own name reaches base_path (a model's own folder
    # is mounted under a safe slug of its name).
    data = {
        "name": "x",
        "model_roots": ["/data"],
        "models": [{"name": "m", "path": '/data/we"ird}{\npath'}],
    }
    config = parse_models(render_all(spec(data)).models_config)
    assert config.model_config_list.config[0].base_path.endswith('we"ird}{\npath')


def test_layout_mounts_model_folders_once() -> None:
    # Each model's own folder, never its parent (which may hold secrets, the spec, or be /).
    layout = layout_for(spec())
    assert [(r.host, r.target) for r in layout.roots] == [
        ("/data/models/hp2", "/models/hp2"),
        ("/data/models/hp3", "/models/hp3"),
        ("/other/place/av", "/models/av"),
    ]
    declared = spec(
        {"name": "x", "model_roots": ["/data"], "models": [{"name": "m", "path": "/data/a/b"}]}
    )
    assert layout_for(declared).base_paths == {"m": "/models/data/a/b"}


def test_container_plan() -> None:
    s = spec()
    files = render_all(s)
    plan = container_plan(s, files, Path("/state/vision/config"))
    assert plan.image == "tensorflow/serving:2.19.0-gpu"
    assert "--model_config_file=/etc/tfsops/models.config" in plan.command
    assert "--enable_batching" in plan.command
    assert "--monitoring_config_file=/etc/tfsops/monitoring.config" in plan.command
    assert "--per_process_gpu_memory_fraction=0.5" in plan.command
    assert "--enable_model_warmup=false" in plan.command
    assert not any("poll_wait" in a for a in plan.command)  # never two reload paths
    assert {(p.host_ip, p.host_port, p.container_port) for p in plan.ports} == {
        ("127.0.0.1", 8501, 8501),
        ("127.0.0.1", 8500, 8500),
    }
    assert all(m.read_only for m in plan.mounts)
    assert plan.device_requests[0].device_ids == ("0", "1")
    assert plan.device_requests[0].capabilities == (("gpu",),)
    assert plan.nano_cpus == 2_000_000_000 and plan.mem_limit == 4 * 1024**3
    json.dumps(plan.to_dict())


def test_config_hash_ignores_the_model_list_but_not_cold_settings() -> None:
    s = spec()
    base_hash = container_plan(s, render_all(s), Path("/c")).config_hash
    more = dict(FULL, models=[*FULL["models"], {"name": "new", "path": "/data/models/new"}])  # type: ignore[list-item]
    s2 = spec(more)
    assert container_plan(s2, render_all(s2), Path("/c")).config_hash == base_hash
    s3 = spec(dict(FULL, resources={"cpus": 1}))
    assert container_plan(s3, render_all(s3), Path("/c")).config_hash != base_hash


def _observed(plan, status: str = "running", config_hash: str | None = None) -> ContainerInfo:  # type: ignore[no-untyped-def]
    labels = dict(plan.labels)
    if config_hash:
        labels[LABEL_CONFIG_HASH] = config_hash
    return ContainerInfo(
        id="c1", name=plan.name, status=status, image=plan.image, labels=labels, ports=[]
    )


def test_convergence_actions() -> None:
    s = spec()
    files = render_all(s)
    plan = container_plan(s, files, Path("/c"))
    text = files.models_config
    assert compute_plan(plan, text, None, None).action == CREATE
    assert compute_plan(plan, text, _observed(plan), text).action == NOOP
    assert compute_plan(plan, text, _observed(plan, "exited"), text).action == START
    assert compute_plan(plan, text, _observed(plan, config_hash="old"), text).action == RECREATE
    fewer = dict(FULL, models=FULL["models"][:2])  # type: ignore[index]
    old_text = render_all(spec(fewer)).models_config
    hot = compute_plan(plan, text, _observed(plan), old_text)
    assert hot.action == HOT_RELOAD
    assert [m.name for m in hot.models.added] == ["all_versions"]


def test_model_diff_reports_changes() -> None:
    a = render_all(spec()).models_config
    changed = dict(FULL)
    changed["models"] = [dict(FULL["models"][0], labels={"stable": 124}), FULL["models"][1]]  # type: ignore[index]
    diff = model_diff(a, render_all(spec(changed)).models_config)
    assert [m.name for m in diff.removed] == ["all_versions"]
    assert [new.labels for _, new in diff.changed] == [{"stable": 124}]
