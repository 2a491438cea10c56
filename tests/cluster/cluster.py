"""A three-node Docker swarm made of Docker-in-Docker containers (one manager, two workers).

Each node is a container of ``tfsops-cluster-node`` (built here from the
project's Debian base: Debian's ``docker.io`` and ``docker-registry``), with
its own engine, image store (``/var/lib/docker``: a host folder of its own, not on
overlay) and
network stack; the nodes share a user-defined bridge network, on which the
swarm's overlay networks (VXLAN) run. Each node's engine listens on tcp and is
published on a loopback address of its own (127.0.0.3, .4, .5; the port is
picked by the host engine, so several clusters can coexist). A registry (the
same image, ``registry`` on the bridge network) serves the nodes as
``registry:5000``.

How the nodes get the serving image without a pull from outside: the manager
is started first (the *seed*), ``docker save`` of the host's image is streamed
into its ``docker load``, the image is pushed to the cluster registry (so the
registry holds its layers and the seed knows their digests), the seed is
stopped and its ``/var/lib/docker`` is copied into each worker's (layers hard-linked).

Everything made here carries the label ``io.tfsops.cluster=<id>`` (plus the
owning process id), and ``down`` removes it all; ``reap_stale`` removes what a
killed run left behind. The host engine's own swarm state is never touched.

Measured facts behind the node settings: ``shared/reference/dind-nodes.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE_CONTEXT = HERE / "node"
BASE_IMAGE = "tfsops-debian-base:bookworm"
NODE_REPOSITORY = "tfsops-cluster-node"
LABEL = "io.tfsops.cluster"  # value: the cluster id
LABEL_PID = "io.tfsops.cluster.pid"  # the process that made it (stale when gone)
LABEL_HOST = "io.tfsops.cluster.host"
REGISTRY = "registry:5000"  # how the nodes reach the registry (alias on the bridge network)
NODE_ADDRESSES = ("127.0.0.3", "127.0.0.4", "127.0.0.5")
NODE_ROLES = ("manager", "worker1", "worker2")
NODE_LABEL = "tfsops-test"  # swarm node label set on every node: tfsops-test=serve
ENGINE_PORT = 2375
# Every capability but SYS_RESOURCE: --privileged does not start where the engine's
# bounding set lacks it.
NODE_SECURITY: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(f"[cluster] {line}", flush=True)


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message names what was waited for and what was seen."""


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; ``WaitTimeout`` naming ``what``
    (and the last value or error seen) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
        except Exception as exc:  # the thing is not there yet
            value, last = None, f"{type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last})")
        time.sleep(interval)


@dataclass
class Node:
    role: str  # manager | worker1 | worker2
    name: str  # container name = hostname = swarm node hostname
    store: Path  # host folder mounted at the node's /var/lib/docker
    address: str  # loopback address the engine is published on
    container_id: str = ""
    port: int = 0
    ip: str = ""  # on the cluster's bridge network
    _client: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{self.port}"

    def client(self) -> Any:
        import docker

        if self._client is None:
            self._client = docker.DockerClient(base_url=self.url, timeout=300)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


@dataclass
class Cluster:
    id: str
    network: str
    nodes: list[Node]
    registry_container: str
    workdir: Path  # host folder: shared/ is mounted on every node, partial/ on two
    node_image: str
    serving_image: str  # on every node, and in the registry as REGISTRY/<repo>
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node(self, role: str) -> Node:
        return next(n for n in self.nodes if n.role == role)

    @property
    def shared(self) -> Path:
        """A host folder mounted at the same path on every node."""
        return self.workdir / "shared"

    @property
    def partial(self) -> Path:
        """A host folder mounted at the same path on the manager and worker1, not worker2."""
        return self.workdir / "partial"

    def env(self) -> dict[str, str]:
        """Environment for ``tfsops`` / ``docker`` driving the manager."""
        return {"DOCKER_HOST": self.manager.url}

    def close_clients(self) -> None:
        for n in self.nodes:
            n.close()


# ---- the node image -----------------------------------------------------------------


def node_image(host: Any, say: Say = _say) -> tuple[str, float]:
    """Build ``tfsops-cluster-node:<hash of its inputs>`` unless it exists; (tag, seconds)."""
    digest = hashlib.sha256()
    for path in sorted(NODE_CONTEXT.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(BASE_IMAGE.encode())
    tag = f"{NODE_REPOSITORY}:{digest.hexdigest()[:12]}"
    import docker

    try:
        host.images.get(tag)
        return tag, 0.0
    except docker.errors.ImageNotFound:
        pass
    started = time.monotonic()
    _ensure_base(host, say)
    say(f"building {tag} (apt: docker.io, docker-registry)")
    host.images.build(
        path=str(NODE_CONTEXT),
        tag=tag,
        buildargs={"BASE": BASE_IMAGE},
        rm=True,
        forcerm=True,
        pull=False,
    )
    return tag, time.monotonic() - started


def _ensure_base(host: Any, say: Say) -> None:
    import docker

    try:
        host.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        say(f"{BASE_IMAGE} missing: making it (debootstrap)")
        from tests.double.build_image import ensure_base

        ensure_base(host, BASE_IMAGE)


# ---- bring up -------------------------------------------------------------------------


KEEP = "keep"  # LABEL_PID of a cluster brought up by hand (`nox -s cluster -- up`): never reaped


def _labels(cluster_id: str, keep: bool = False) -> dict[str, str]:
    owner = KEEP if keep else str(os.getpid())
    return {LABEL: cluster_id, LABEL_PID: owner, LABEL_HOST: socket.gethostname()}


def _create_node_container(
    host: Any,
    labels: dict[str, str],
    image: str,
    node: Node,
    network: str,
    binds: dict[str, dict[str, str]],
    registry_ip: str,
) -> str:
    api = host.api
    host_config = api.create_host_config(
        port_bindings={ENGINE_PORT: (node.address, None)},
        # In /etc/hosts: the inner engine's overlay set-up can break the node's
        # path to the outer engine's DNS server (127.0.0.11).
        extra_hosts={"registry": registry_ip},
        binds=dict(binds, **{str(node.store): {"bind": "/var/lib/docker", "mode": "rw"}}),
        network_mode=network,
        **NODE_SECURITY,
    )
    # `--security-opt systempaths=unconfined`, as the Engine API spells it.
    host_config["MaskedPaths"] = []
    host_config["ReadonlyPaths"] = []
    created = api.create_container(
        image,
        command=[f"--insecure-registry={REGISTRY}"],
        name=node.name,
        hostname=node.name,
        labels=dict(labels, **{f"{LABEL}.role": node.role}),
        ports=[ENGINE_PORT],
        host_config=host_config,
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[node.role])}
        ),
    )
    return str(created["Id"])


def _start_node(host: Any, node: Node, timeout: float = 120.0) -> None:
    """Start the node container and wait until its engine answers on its loopback address."""
    host.api.start(node.container_id)
    attrs = host.api.inspect_container(node.container_id)
    node.port = int(attrs["NetworkSettings"]["Ports"][f"{ENGINE_PORT}/tcp"][0]["HostPort"])
    node.ip = next(iter(attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    node.close()

    def answers() -> bool:
        state = host.api.inspect_container(node.container_id)["State"]
        if not state["Running"]:
            logs = host.api.logs(node.container_id, tail=20).decode(errors="replace")
            raise WaitTimeout(f"node {node.name} exited ({state['ExitCode']}):\n{logs}")
        return bool(node.client().ping())

    try:
        wait_for(f"the engine of node {node.name} at {node.url}", answers, timeout)
    except WaitTimeout as exc:
        if "exited" in str(exc):
            raise
        logs = host.api.logs(node.container_id, tail=20).decode(errors="replace")
        raise WaitTimeout(f"{exc}\nlast node log lines:\n{logs}") from None


def _stream_image(host: Any, node: Node, image: str) -> None:
    """``docker save`` on the host streamed into ``docker load`` on the node."""
    node.client().api.load_image(host.api.get_image(image, chunk_size=4 << 20))
    node.client().images.get(image)  # raises when the load did not produce it


def push(client: Any, repository: str, tag: str) -> str:
    """``docker push``; the pushed manifest's digest. Raises on an error line."""
    digest = ""
    for line in client.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise RuntimeError(f"push of {repository}:{tag} failed: {line['error']}")
        aux = line.get("aux") or {}
        digest = aux.get("Digest", digest)
    if not digest:
        raise RuntimeError(f"push of {repository}:{tag} reported no digest")
    return str(digest)


def up(host: Any, serving_image: str, say: Say = _say, *, keep: bool = False) -> Cluster:
    """Build (when needed) and start a three-node swarm; ``down`` it afterwards.

    On any failure everything made so far is removed before the error propagates."""
    reap_stale(host, say)
    started = time.monotonic()
    image, build_s = node_image(host, say)
    cluster_id = uuid.uuid4().hex[:8]
    labels = _labels(cluster_id, keep)
    network = f"tfsops-cluster-{cluster_id}"
    workdir = Path(tempfile.mkdtemp(prefix=f"tfsops-cluster-{cluster_id}-"))
    workdir.chmod(0o755)
    nodes = [
        Node(role, f"tfsops-{cluster_id}-{role}", workdir / "stores" / role, address)
        for role, address in zip(NODE_ROLES, NODE_ADDRESSES, strict=True)
    ]
    cluster = Cluster(cluster_id, network, nodes, "", workdir, image, serving_image)
    cluster.figures["node image build s"] = round(build_s, 1)
    try:
        _up(host, cluster, labels, say)
    except BaseException:
        say(f"bring-up of cluster {cluster_id} failed: removing what was made")
        down(host, cluster, say)
        raise
    cluster.figures["cluster up s"] = round(time.monotonic() - started, 1)
    say(
        f"cluster {cluster_id} up in {cluster.figures['cluster up s']:g}s; manager {cluster.manager.url}"
    )
    return cluster


def _up(host: Any, cluster: Cluster, labels: dict[str, str], say: Say) -> None:
    api = host.api
    for sub in ("shared", "partial", "stores"):
        (cluster.workdir / sub).mkdir(mode=0o755)
    host.networks.create(cluster.network, driver="bridge", labels=labels)
    # The registry: the node image's other entrypoint.
    registry = api.create_container(
        cluster.node_image,
        command=["registry"],
        name=f"tfsops-{cluster.id}-registry",
        labels=dict(labels, **{f"{LABEL}.role": "registry"}),
        host_config=api.create_host_config(
            network_mode=cluster.network, restart_policy={"Name": "on-failure"}
        ),
        networking_config=api.create_networking_config(
            {cluster.network: api.create_endpoint_config(aliases=["registry"])}
        ),
    )
    cluster.registry_container = str(registry["Id"])
    api.start(cluster.registry_container)
    registry_ip = api.inspect_container(cluster.registry_container)["NetworkSettings"]["Networks"][
        cluster.network
    ]["IPAddress"]

    binds_all = {str(cluster.shared): {"bind": str(cluster.shared), "mode": "ro"}}
    binds_partial = dict(
        binds_all, **{str(cluster.partial): {"bind": str(cluster.partial), "mode": "ro"}}
    )
    for node in cluster.nodes:
        node.store.mkdir(mode=0o711)
        binds = binds_all if node.role == "worker2" else binds_partial
        node.container_id = _create_node_container(
            host, labels, cluster.node_image, node, cluster.network, binds, registry_ip
        )

    # Seed: the manager gets the serving image and pushes it to the registry.
    seed = cluster.manager
    t = time.monotonic()
    _start_node(host, seed)
    cluster.figures["seed engine start s"] = round(time.monotonic() - t, 1)
    say(f"seeding {seed.name} with {cluster.serving_image} (docker save | docker load)")
    t = time.monotonic()
    _stream_image(host, seed, cluster.serving_image)
    cluster.figures["serving image save|load into one node s"] = round(time.monotonic() - t, 1)
    repository, _, tag = registry_ref(cluster.serving_image).rpartition(":")
    seed.client().images.get(cluster.serving_image).tag(repository, tag)
    say(f"pushing {repository}:{tag} to the cluster registry")
    t = time.monotonic()
    wait_for(
        "the cluster registry to accept a push", lambda: push(seed.client(), repository, tag), 60, 2
    )
    cluster.figures["serving image push to the registry s"] = round(time.monotonic() - t, 1)
    api.stop(seed.container_id, timeout=30)

    # Copy the seed's image store into each worker's (engine identity left out).
    t = time.monotonic()
    for node in cluster.workers:
        copy_store(seed.store, node.store)
    cluster.figures["image store copy per node s"] = round(
        (time.monotonic() - t) / len(cluster.workers), 1
    )
    for node in cluster.nodes:
        _start_node(host, node)

    # The swarm, inside the nodes.
    t = time.monotonic()
    manager = seed.client()
    # Heartbeats every 2 s (default 5 s): a lost node is noticed sooner.
    manager.swarm.init(
        advertise_addr=seed.ip,
        listen_addr="0.0.0.0:2377",
        dispatcher_heartbeat_period=2_000_000_000,
    )
    token = manager.swarm.attrs["JoinTokens"]["Worker"]
    for node in cluster.workers:
        node.client().swarm.join(
            remote_addrs=[f"{seed.ip}:2377"],
            join_token=token,
            advertise_addr=node.ip,
            listen_addr="0.0.0.0:2377",
        )
    wait_for("3 swarm nodes ready", lambda: len(ready_nodes(manager)) == 3, 60)
    for n in manager.nodes.list():
        spec = dict(n.attrs["Spec"])
        spec["Labels"] = dict(spec.get("Labels") or {}, **{NODE_LABEL: "serve"})
        n.update(spec)
    cluster.figures["swarm init + 2 joins s"] = round(time.monotonic() - t, 1)


def copy_store(source: Path, dest: Path) -> None:
    """Copy a stopped node's ``/var/lib/docker`` into another node's (empty) one.

    Layer contents (``overlay2/``) are written once and only ever read (a container
    writes to an upper folder of its own), so they are hard-linked: seconds instead of
    copying 1.4 GB per node. Everything else (databases changed in place) is copied."""
    for entry in sorted(source.iterdir()):
        if entry.name in ("engine-id", "network", "swarm"):
            continue
        flags = "-al" if entry.name == "overlay2" else "-a"
        subprocess.run(["cp", flags, str(entry), str(dest / entry.name)], check=True)


def attach(host: Any, cluster_id: str, serving_image: str) -> Cluster:
    """A running cluster (``nox -s cluster -- up``) as a ``Cluster``, to run the tests on."""
    found = {
        c.labels.get(f"{LABEL}.role"): c
        for c in host.containers.list(filters={"label": f"{LABEL}={cluster_id}"})
    }
    nodes = []
    for role, address in zip(NODE_ROLES, NODE_ADDRESSES, strict=True):
        c = found[role]
        store = next(
            m["Source"] for m in c.attrs["Mounts"] if m["Destination"] == "/var/lib/docker"
        )
        node = Node(role, c.name, Path(store), address, c.id)
        node.port = int(c.attrs["NetworkSettings"]["Ports"][f"{ENGINE_PORT}/tcp"][0]["HostPort"])
        node.ip = next(iter(c.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        nodes.append(node)
    return Cluster(
        cluster_id,
        f"tfsops-cluster-{cluster_id}",
        nodes,
        found["registry"].id,
        nodes[0].store.parents[1],
        found["manager"].image.tags[0] if found["manager"].image.tags else "",
        serving_image,
    )


def registry_ref(image: str) -> str:
    """``repo:tag`` as it is named in the cluster registry."""
    repository, _, tag = (
        image.rpartition(":") if ":" in image.rsplit("/", maxsplit=1)[-1] else (image, "", "")
    )
    return f"{REGISTRY}/{repository}:{tag or 'latest'}"


def ready_nodes(manager: Any) -> list[str]:
    """Hostnames of the swarm nodes that are ready."""
    return [
        n.attrs["Description"]["Hostname"]
        for n in manager.nodes.list()
        if n.attrs["Status"]["State"] == "ready"
    ]


# ---- tear down --------------------------------------------------------------------------


def describe(host: Any, cluster: Cluster) -> str:
    """The state of the cluster's containers and the registry's last log lines."""
    lines = []
    for c in host.containers.list(all=True, filters={"label": f"{LABEL}={cluster.id}"}):
        state = c.attrs["State"]
        lines.append(
            f"{c.name}: {state['Status']} (exit {state['ExitCode']}, "
            f"restarts {c.attrs.get('RestartCount', 0)}, oom {state.get('OOMKilled')})"
        )
    if cluster.registry_container:
        with contextlib.suppress(Exception):
            logs = host.api.logs(cluster.registry_container, tail=15).decode(errors="replace")
            lines += ["registry log:", logs]
    return "\n".join(lines)


def down(host: Any, cluster: Cluster, say: Say = _say) -> list[str]:
    """Remove the cluster's containers, volumes, network and host folder; what was left."""
    cluster.close_clients()
    left = remove_by_label(host, cluster.id, say)
    shutil.rmtree(cluster.workdir, ignore_errors=True)
    if cluster.workdir.exists():
        left.append(str(cluster.workdir))
    return left


def remove_by_label(host: Any, cluster_id: str, say: Say = _say) -> list[str]:
    import docker

    flt = {"label": f"{LABEL}={cluster_id}"}
    left: list[str] = []
    found = [
        ("container", c, lambda c: c.remove(force=True, v=True))
        for c in host.containers.list(all=True, filters=flt)
    ]
    found += [("volume", v, lambda v: v.remove(force=True)) for v in host.volumes.list(filters=flt)]
    found += [("network", n, lambda n: n.remove()) for n in host.networks.list(filters=flt)]
    for kind, item, remove in found:
        try:
            remove(item)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            left.append(f"{kind} {item.name}: {exc}")
    for path in Path(tempfile.gettempdir()).glob(f"tfsops-cluster-{cluster_id}-*"):
        shutil.rmtree(path, ignore_errors=True)
    if left:
        say(f"cluster {cluster_id}: could not remove: {'; '.join(left)}")
    return left


def reap_stale(host: Any, say: Say = _say) -> list[str]:
    """Remove clusters whose making process (on this host) is gone: a killed run."""
    me = socket.gethostname()
    stale: set[str] = set()
    kinds = (
        host.containers.list(all=True, filters={"label": LABEL}),
        host.volumes.list(filters={"label": LABEL}),
        host.networks.list(filters={"label": LABEL}),
    )
    for kind in kinds:
        for item in kind:
            labels = (
                item.attrs.get("Labels") or (item.attrs.get("Config") or {}).get("Labels") or {}
            )
            if labels.get(LABEL_HOST) != me or not _gone(labels.get(LABEL_PID, "")):
                continue
            stale.add(labels[LABEL])
    for cluster_id in sorted(stale):
        say(f"removing cluster {cluster_id}, left behind by a run that is gone")
        remove_by_label(host, cluster_id, say)
    return sorted(stale)


def _gone(pid: str) -> bool:
    if pid == KEEP:
        return False
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False
