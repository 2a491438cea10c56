"""``target: swarm`` on three nodes (tests/cluster/cluster.py): what users meet beyond one machine.

The scenarios run in order on one deployment (``cl``), as an operator would:
models baked into an image and distributed through the cluster's registry;
replicas spread over the nodes; a rolling model-set change under a steady
client load; an update whose new task fails; a folder missing on one node
(bind mode); a drained node; a lost worker. Each asserts the served state.

No ports are published (this kernel has no IPVS: no routing mesh); clients
run in containers on the deployment's overlay network and find the replicas
through Swarm's DNS (``endpoint_mode: dnsrr``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.cluster import NODE_LABEL, REGISTRY, Cluster, push, wait_for
from tests.cluster.conftest import record
from tests.integration.cli import Run, Tfsops

pytestmark = [
    pytest.mark.docker,
    pytest.mark.double,
    pytest.mark.slow,
    pytest.mark.cluster,
]

NAME = "cl"
SERVICE = f"tfsops-{NAME}"
REPO = f"{REGISTRY}/tfsops-cl-models"
TIMEOUT = 300  # generous: two cores run three engines, nine model servers at peak
LOAD_LABEL = "io.tfsops.cluster-test"

# Runs in a container on the overlay network: predicts on half_plus_two through the
# service's DNS name (one lookup per request: dnsrr) until SIGTERM or its bounds, then
# prints one JSON line with the counts.
LOAD_CLIENT = r"""
import json, signal, socket, sys, time, urllib.request
service, model, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
ok = failed = 0
errors, ips = [], {}
deadline = time.monotonic() + seconds
n = 0
while not stop and time.monotonic() < deadline and n < 100000:
    n += 1
    try:
        found = sorted({a[4][0] for a in socket.getaddrinfo(service, 8501, socket.AF_INET)})
        ip = found[n % len(found)]
        req = urllib.request.Request(
            f"http://{ip}:8501/v1/models/{model}:predict",
            data=json.dumps({"instances": [1.0]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        body = json.load(urllib.request.urlopen(req, timeout=10))
        if body.get("predictions") != [2.5]:
            raise ValueError(f"wrong answer {body}")
        ok += 1
        ips[ip] = ips.get(ip, 0) + 1
    except Exception as exc:
        failed += 1
        if len(errors) < 20:
            errors.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
    time.sleep(0.05)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors, "ips": ips}), flush=True)
"""


@dataclass
class Deployment:
    cluster: Cluster
    tfsops: Tfsops
    work: Path
    models: Path  # host folder with the generated models (same path on every node)

    def spec(self, image_tag: str, models: list[str], **swarm: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": NAME,
            "image": f"{REPO}:{image_tag}",
            "target": "swarm",
            "swarm": {
                "replicas": 3,
                "models": "image",
                "placement": [f"node.labels.{NODE_LABEL} == serve"],
                "max_replicas_per_node": 2,
                "update": {"parallelism": 1, "delay": 0.5, "monitor": 2},
                **swarm,
            },
            # A broken model must fail at once, not after retries.
            "server_args": {"max_num_load_retries": 0},
            "models": [{"name": m, "path": str(self.models / m)} for m in models],
        }
        return data

    def write(self, data: dict[str, Any], folder: str = "spec") -> Path:
        path = self.work / folder / "tfsops.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def run(self, *args: str, spec: Path | None = None, timeout: float = TIMEOUT + 60) -> Run:
        extra = ["-f", str(spec)] if spec is not None else []
        return self.tfsops(*args, *extra, timeout=timeout)

    def commit(self, tag: str, models: list[str]) -> Path:
        """``tfsops commit`` on the manager: the models baked into REPO:tag."""
        spec = self.write(self.spec(tag, models), f"commit-{tag}")
        result = self.run(
            "commit", "--tag", f"{REPO}:{tag}", "--image", self.cluster.serving_image, spec=spec
        )
        assert result.code == 0, str(result)
        return spec


@pytest.fixture(scope="module")
def dep(
    cluster: Cluster, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    models = cluster.shared / "models"
    partial = cluster.partial / "models"
    for old in (models, partial):  # a reused cluster keeps the last run's
        shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(models_dir, models)
    broken = models / "broken"
    shutil.copytree(models / "half_plus_three", broken)
    data = next((broken / "1" / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:3])  # validates, fails to load in the server
    shutil.copytree(models_dir / "times_two_plus_one", partial / "times_two_plus_one")
    for root in (models, partial):
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    work = tmp_path_factory.mktemp("cluster-work")
    tfsops = Tfsops(work / "state", work)
    tfsops.env.update(cluster.env())
    made = Deployment(cluster, tfsops, work, models)
    yield made
    made.run("down", "-d", NAME, "--volumes")  # the cluster goes too; this matters on reuse


def service(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.manager.client().api.inspect_service(SERVICE))


def running_tasks(cluster: Cluster, name: str = SERVICE) -> list[dict[str, Any]]:
    tasks = cluster.manager.client().api.tasks(filters={"service": name})
    return [
        t for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
    ]


def node_names(cluster: Cluster) -> dict[str, str]:
    return {n.id: n.attrs["Description"]["Hostname"] for n in cluster.manager.client().nodes.list()}


def worker_with_a_replica(cluster: Cluster) -> str:
    names = node_names(cluster)
    here = [names[t["NodeID"]] for t in running_tasks(cluster)]
    workers = sorted((here.count(n.name), n.name) for n in cluster.workers)
    count, name = workers[-1]
    assert count, f"no replica on a worker: {here}"
    return name


def json_of(result: Run) -> dict[str, Any]:
    """The ``data`` of a ``--json`` envelope."""
    try:
        return dict(result.json["data"] or {})
    except (json.JSONDecodeError, KeyError):
        raise AssertionError(f"no JSON envelope:\n{result}") from None


def swarm_status(dep: Deployment, name: str = NAME) -> dict[str, Any]:
    result = dep.run("status", "--json", "-d", name)
    assert result.code == 0, str(result)
    entry = next(d for d in json_of(result)["deployments"] if d["deployment"] == name)
    return dict(entry["swarm"])


# ---- the scenarios ------------------------------------------------------------------


def test_image_through_the_registry_pinned_and_spread_over_three_nodes(dep: Deployment) -> None:
    cluster = dep.cluster
    spec = dep.commit("v1", ["half_plus_two"])
    ref = f"{REPO}:v1"

    # Distribution figures: through the registry (push once; each node pulls only the
    # model layer, the serving layers came with the seeded image store) vs docker save |
    # docker load of the whole image into a node (measured at bring-up).
    t = time.monotonic()
    digest = push(cluster.manager.client(), REPO, "v1")
    record("model image: push to the registry s", time.monotonic() - t)
    pulls = []
    for node in cluster.workers:
        t = time.monotonic()
        node.client().images.pull(REPO, tag="v1")
        pulls.append(time.monotonic() - t)
    record("model image: pull per node s", sum(pulls) / len(pulls))

    t = time.monotonic()
    result = dep.run("apply", "--json", "--timeout", str(TIMEOUT), spec=spec)
    assert result.code == 0, str(result)
    record("create: 3 replicas on 3 nodes (tfsops apply) s", time.monotonic() - t)

    # Pinned to the registry's digest; every node runs the same image bytes.
    image = service(cluster)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image == f"{ref}@{digest}"
    assert cluster.manager.client().api.inspect_distribution(ref)["Descriptor"]["digest"] == digest
    image_ids = {}
    for node in cluster.nodes:
        found = node.client().containers.list(
            filters={"label": f"com.docker.swarm.service.name={SERVICE}"}
        )
        assert len(found) == 1, f"{node.name}: {[c.name for c in found]}"
        image_ids[node.name] = found[0].attrs["Image"]
    assert len(set(image_ids.values())) == 1, image_ids

    # Spread: one replica per node; status and health per replica and per node.
    tasks = running_tasks(cluster)
    assert len({t["NodeID"] for t in tasks}) == 3
    body = swarm_status(dep)
    assert body["service"]["image_digest"] == digest
    assert body["service"]["up_to_date"] is True
    nodes = {n["node"]: n for n in body["nodes"]}
    assert set(nodes) == {n.name for n in cluster.nodes}
    assert all(n["replicas"] == 1 and n["ready"] == 1 for n in nodes.values()), nodes
    assert {r["node"] for r in body["replicas"] if r["ok"]} == set(nodes)
    health = dep.run("health", "--json", spec=spec)
    assert health.code == 0, str(health)
    report = json_of(health)
    assert report["ready_replicas"] == 3
    assert {n["node"] for n in report["nodes"] if n["ready"] == 1} == set(nodes)
    planned = dep.run("plan", "--json", spec=spec)  # resolves the same digest: nothing to do
    assert planned.code == 0 and json_of(planned)["action"] == "noop", str(planned)
    text = dep.run("health", spec=spec)
    assert all(f"node {n}" in text.stdout for n in nodes), text.stdout

    # max_replicas_per_node: 1 leaves no room for a start-first task: refused up front.
    tight = dep.write(dep.spec("v1", ["half_plus_two"], max_replicas_per_node=1), "tight")
    refused = dep.run("apply", "--timeout", "30", spec=tight)
    assert refused.code == 3, str(refused)
    assert "max_replicas_per_node" in refused.stderr + refused.stdout
    assert service(cluster)["Spec"]["TaskTemplate"]["Placement"]["MaxReplicas"] == 2


def test_rolling_model_set_change_under_load_loses_no_request(dep: Deployment) -> None:
    cluster = dep.cluster
    spec = dep.commit("v2", ["half_plus_two", "half_plus_three"])
    before = {t["ID"] for t in running_tasks(cluster)}
    manager = cluster.manager.client()
    client = manager.containers.run(
        cluster.serving_image,
        entrypoint=["python3", "-c", LOAD_CLIENT, SERVICE, "half_plus_two", "600"],
        network=SERVICE,
        labels={LOAD_LABEL: "load"},
        detach=True,
    )
    try:
        wait_for(
            "the load client to start sending",
            lambda: client.reload() or client.status == "running",
            60,
        )
        time.sleep(3)
        t = time.monotonic()
        result = dep.run("apply", "--json", "--timeout", str(TIMEOUT), spec=spec)
        elapsed = time.monotonic() - t
        assert result.code == 0, str(result)
        time.sleep(3)
        client.kill(signal="SIGTERM")
        client.wait(timeout=60)
        lines = client.logs(stdout=True, stderr=False).decode().strip().splitlines()
        assert lines, client.logs().decode()[-2000:]
        load = json.loads(lines[-1])
    finally:
        client.remove(force=True)
    record("rolling change: 3 replicas on 3 nodes (tfsops apply) s", elapsed)
    record("rolling change: requests during the change", load["ok"] + load["failed"])
    record("rolling change: failed requests", load["failed"])
    assert load["failed"] == 0, load["errors"]
    assert load["ok"] >= 20, load
    assert len(load["ips"]) >= 4, f"old and new replicas both answered: {load['ips']}"

    # Every replica replaced and serving both models.
    after = running_tasks(cluster)
    assert len(after) == 3 and not before & {t["ID"] for t in after}
    # Start-first places each new task while the old ones run: the spread may end
    # uneven, within max_replicas_per_node.
    per_node = [t["NodeID"] for t in after]
    assert max(per_node.count(n) for n in per_node) <= 2
    report = json_of(dep.run("health", "--json", spec=spec))
    assert report["ok"] and report["ready_replicas"] == 3, report
    for replica in report["replicas"]:
        assert {m["name"] for m in replica["health"]["models"]} == {
            "half_plus_two",
            "half_plus_three",
        }

    # The same start-first update of 3 replicas by hand, for comparison.
    t = time.monotonic()
    by_hand = subprocess.run(
        ["docker", "service", "update", "--force", "--detach=false", "--quiet", SERVICE],
        env=dict(dep.tfsops.env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert by_hand.returncode == 0, by_hand.stderr
    record(
        "rolling change: same update by hand (docker service update --force) s",
        time.monotonic() - t,
    )
    health = dep.run("health", "--wait", "--timeout", str(TIMEOUT), spec=spec)
    assert health.code == 0, str(health)


def test_an_update_failing_on_a_node_is_rolled_back_everywhere_and_reported(
    dep: Deployment,
) -> None:
    cluster = dep.cluster
    good = service(cluster)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    spec = dep.commit("v3", ["half_plus_two", "broken"])
    result = dep.run("apply", "--json", "--timeout", str(TIMEOUT), spec=spec)
    assert result.code == 5, str(result)
    text = result.stdout + result.stderr
    assert "rolled it back" in text, text
    failed_on = [n.name for n in cluster.nodes if n.name in text]
    assert failed_on, f"the report names no node:\n{text}"
    assert "non-zero exit" in text or "Failed to start server" in text, text

    # Swarm rolled back on every node: the previous image on all three replicas.
    inspected = service(cluster)
    assert inspected["UpdateStatus"]["State"] == "rollback_completed"
    assert inspected["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == good
    wait_for(
        "3 replicas running the previous image after the rollback",
        lambda: (
            len([t for t in running_tasks(cluster) if t["Spec"]["ContainerSpec"]["Image"] == good])
            == 3
        ),
        TIMEOUT,
    )
    v2 = dep.write(dep.spec("v2", ["half_plus_two", "half_plus_three"]), "v2-again")
    health = dep.run("health", "--json", "--wait", "--timeout", str(TIMEOUT), spec=v2)
    assert health.code == 0, str(health)
    # The served spec again: nothing to do.
    again = dep.run("apply", "--json", "--timeout", str(TIMEOUT), spec=v2)
    assert again.code == 0, str(again)
    assert json_of(again)["action"] == "noop", json_of(again)


def test_bind_mode_checks_the_folders_on_every_node_before_an_update(dep: Deployment) -> None:
    cluster = dep.cluster
    name = "clbind"
    data = {
        "name": name,
        "image": cluster.serving_image,
        "target": "swarm",
        "swarm": {"replicas": 1, "update": {"parallelism": 1, "delay": 0.5, "monitor": 2}},
        "server_args": {"max_num_load_retries": 0},
        "models": [{"name": "half_plus_two", "path": str(dep.models / "half_plus_two")}],
    }
    spec = dep.write(data, "bind")
    try:
        created = dep.run("apply", "--timeout", str(TIMEOUT), spec=spec)
        assert created.code == 0, str(created)
        before = cluster.manager.client().api.inspect_service(f"tfsops-{name}")

        # A model whose folder is on the manager and worker1 only.
        data["models"].append(
            {
                "name": "times_two_plus_one",
                "path": str(cluster.partial / "models" / "times_two_plus_one"),
            }
        )
        spec = dep.write(data, "bind")
        refused = dep.run("apply", "--json", "--timeout", str(TIMEOUT), spec=spec)
        assert refused.code == 3, str(refused)
        text = refused.stdout + refused.stderr
        assert cluster.node("worker2").name in text, text
        assert cluster.node("worker1").name not in text and cluster.manager.name not in text
        assert "bind source path does not exist" in text, text

        # Nothing changed: same service version, no check service left, old model set.
        after = cluster.manager.client().api.inspect_service(f"tfsops-{name}")
        assert after["Version"] == before["Version"]
        assert not [s for s in cluster.manager.client().services.list() if "mount-check" in s.name]
        report = json_of(dep.run("health", "--json", spec=spec))
        models = {m["name"] for r in report["replicas"] for m in r["health"]["models"]}
        assert "times_two_plus_one" in models  # expected by the new spec...
        assert not report["ok"]  # ...and not served: the update never started
    finally:
        dep.run("down", name, "--volumes")


def test_a_drained_node_gives_its_replica_up_and_status_shows_it(dep: Deployment) -> None:
    cluster = dep.cluster
    spec = dep.write(dep.spec("v2", ["half_plus_two", "half_plus_three"]), "v2-again")
    manager = cluster.manager.client()
    names = node_names(cluster)
    drained = worker_with_a_replica(cluster)
    node = next(n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == drained)
    node.update(dict(node.attrs["Spec"], Availability="drain"))
    try:
        wait_for(
            f"3 running replicas, none on the drained {drained}",
            lambda: (
                [names[t["NodeID"]] for t in running_tasks(cluster)].count(drained) == 0
                and len(running_tasks(cluster)) == 3
            ),
            TIMEOUT,
            1.0,
        )
        health = dep.run("health", "--wait", "--timeout", str(TIMEOUT), spec=spec)
        assert health.code == 0, str(health)
        body = swarm_status(dep)
        nodes = {n["node"]: n for n in body["nodes"]}
        assert nodes[drained]["availability"] == "drain"
        assert nodes[drained]["replicas"] == 0
        assert sum(n["ready"] for n in nodes.values()) == 3
        text = dep.run("status", "-d", NAME).stdout
        assert f"node {drained} (worker, ready, drain): 0 replica(s)" in text, text
    finally:
        node.reload()
        node.update(dict(node.attrs["Spec"], Availability="active"))


def test_a_lost_worker_is_reported_then_rescheduled(dep: Deployment, docker_client: Any) -> None:
    cluster = dep.cluster
    spec = dep.write(dep.spec("v2", ["half_plus_two", "half_plus_three"]), "v2-again")
    lost = next(n for n in cluster.workers if n.name == worker_with_a_replica(cluster))
    docker_client.containers.get(lost.container_id).kill()
    t = time.monotonic()

    health = dep.run("health", "--json", spec=spec)
    assert health.code == 6, str(health)
    report = json_of(health)
    assert report["ready_replicas"] < 3
    assert lost.name in json.dumps(report), report

    waited = dep.run("health", "--wait", "--timeout", str(TIMEOUT), spec=spec)
    assert waited.code == 0, str(waited)
    record("lost worker: health --wait back to 0 after the kill s", time.monotonic() - t)
    body = swarm_status(dep)
    nodes = {n["node"]: n for n in body["nodes"]}
    assert nodes[lost.name]["state"] == "down"
    assert nodes[lost.name]["replicas"] == 0
    assert sum(n["ready"] for n in nodes.values() if n["node"] != lost.name) == 3
