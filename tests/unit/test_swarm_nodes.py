"""Swarm beyond one node, the pure parts: replicas per node, the image pinned to its digest,
per-node summaries. (The cluster scenarios in tests/cluster run them on three nodes.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_swarm_plan import make_spec, observed_from, plan_for
from tfsops.adapters.docker_swarm import _demux, _digest_of
from tfsops.errors import InvalidInput
from tfsops.swarm.executor import ReplicaHealth, node_line, node_summary
from tfsops.swarm.plan import (
    NOOP,
    UPDATE,
    SwarmSettings,
    TaskInfo,
    capacity_problem,
    compute_swarm_plan,
    registry_host,
    service_plan,
)

DIGEST = "sha256:" + "a" * 64


def swarm(**extra: Any) -> dict[str, Any]:
    return {"replicas": 3, "update": {"order": "start-first"}, **extra}


def test_max_replicas_per_node_becomes_placement_max_replicas() -> None:
    plan = plan_for(make_spec(swarm=swarm(max_replicas_per_node=2)))
    assert plan.spec["TaskTemplate"]["Placement"]["MaxReplicas"] == 2
    assert "MaxReplicas" not in plan_for(make_spec()).spec["TaskTemplate"]["Placement"]


def test_max_replicas_per_node_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        make_spec(swarm=swarm(max_replicas_per_node=0))


@pytest.mark.parametrize(
    ("limit", "nodes", "order", "problem"),
    [
        (1, 3, "start-first", True),  # 3 replicas + 1 start-first task > 3 slots
        (1, 3, "stop-first", False),
        (2, 3, "start-first", False),
        (2, 2, "start-first", False),  # 4 slots for 3 + 1
        (1, 4, "start-first", False),
    ],
)
def test_capacity_for_a_start_first_update(
    limit: int, nodes: int, order: str, problem: bool
) -> None:
    spec = make_spec(swarm=swarm(max_replicas_per_node=limit, update={"order": order}))
    found = capacity_problem(plan_for(spec), nodes)
    assert (found is not None) == problem
    if found:
        assert "max_replicas_per_node is 1" in found and "4 task slot(s)" in found


def test_no_capacity_problem_without_a_limit() -> None:
    assert capacity_problem(plan_for(make_spec()), 1) is None


@pytest.mark.parametrize(
    ("ref", "host"),
    [
        ("registry:5000/models:v1", "registry:5000"),
        ("ghcr.io/org/serving:1", "ghcr.io"),
        ("localhost/serving:1", "localhost"),
        ("127.0.0.1:5000/serving", "127.0.0.1:5000"),
        ("tensorflow/serving:2.19.0", None),
        ("tfsops-double:latest", None),
    ],
)
def test_registry_host(ref: str, host: str | None) -> None:
    assert registry_host(ref) == host


def test_a_digest_pins_the_tasks_and_a_new_digest_is_an_update() -> None:
    spec = make_spec(image="registry:5000/models:v1", swarm=swarm(models="image"))
    pinned = service_plan(spec, SwarmSettings(), image_digest=DIGEST)
    assert (
        pinned.spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"registry:5000/models:v1@{DIGEST}"
    )
    assert pinned.to_dict()["image_digest"] == DIGEST
    observed = observed_from(pinned, image_digest=DIGEST)
    assert compute_swarm_plan(pinned, observed).action == NOOP

    moved = service_plan(spec, SwarmSettings(), image_digest="sha256:" + "b" * 64)
    assert moved.template_hash != pinned.template_hash
    plan = compute_swarm_plan(moved, observed)
    assert plan.action == UPDATE
    assert any("now has digest sha256:bbbb" in r for r in plan.reasons), plan.reasons


def test_digest_of_a_service_image() -> None:
    assert _digest_of(f"registry:5000/models:v1@{DIGEST}") == DIGEST
    assert _digest_of("registry:5000/models:v1") is None


def test_demux_reads_dockers_log_frames() -> None:
    frames = b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n" + b"\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    assert _demux(frames) == b"hello\nerr\n"
    assert _demux(b"plain text") == b"plain text"


def _task(task_id: str, node_id: str, slot: int, desired: str = "running") -> TaskInfo:
    return TaskInfo(
        id=task_id,
        slot=slot,
        node_id=node_id,
        node=node_id,
        state="running",
        desired_state=desired,
        error=None,
        message="",
        template_hash="t",
        ip=f"10.0.0.{slot}",
        container_id=None,
    )


def test_node_summary_counts_replicas_and_ready_ones_per_node() -> None:
    nodes = [
        {
            "id": "m",
            "node": "manager",
            "role": "manager",
            "availability": "active",
            "state": "ready",
        },
        {
            "id": "w1",
            "node": "worker1",
            "role": "worker",
            "availability": "drain",
            "state": "ready",
        },
        {
            "id": "w2",
            "node": "worker2",
            "role": "worker",
            "availability": "active",
            "state": "down",
        },
    ]
    tasks = [
        _task("a", "m", 1),
        _task("b", "m", 2),
        _task("c", "w2", 3),
        _task("old", "w1", 3, "shutdown"),
    ]
    replicas = [ReplicaHealth(tasks[0], None, "x"), ReplicaHealth(tasks[1], None, "y")]
    summary = {n["node"]: n for n in node_summary(nodes, tasks, replicas)}
    assert summary["manager"]["replicas"] == 2 and summary["manager"]["slots"] == [1, 2]
    assert summary["manager"]["ready"] == 0  # no health report: not ready
    assert summary["worker1"]["replicas"] == 0  # the shut-down task does not count
    assert summary["worker2"]["replicas"] == 1 and summary["worker2"]["state"] == "down"
    assert (
        node_line(summary["worker1"])
        == "node worker1 (worker, ready, drain): 0 replica(s), 0 ready"
    )
