"""Docker Swarm through the Docker SDK: services, tasks, config objects, networks,
and the helper-container probe that reaches every replica on the overlay network.

Every ``docker.errors`` / ``requests`` exception is translated here, once
(``translated`` from ``docker_runtime``, plus "not a swarm manager" as invalid
input with the ``docker swarm init`` hint).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import docker.errors
import requests
import requests.adapters
import requests.exceptions
from requests.structures import CaseInsensitiveDict

from tfsops.adapters.docker_runtime import DockerRuntime, translated
from tfsops.errors import InvalidInput, OperationFailed, TfsopsError
from tfsops.plan import layout as L
from tfsops.plan.container import LABEL_DEPLOYMENT, LABEL_MANAGED
from tfsops.ports import Endpoint, ExpectedModel, ServingClient, SmokeProbe
from tfsops.swarm.plan import (
    LABEL_FILE,
    LABEL_PROBE,
    LABEL_SWARM_DEPLOYMENT,
    LABEL_TEMPLATE_HASH,
    PROBE_SCRIPT,
    ConfigObject,
    ObservedService,
    ServicePlan,
    TaskInfo,
)

SWARM_INIT_HINT = (
    "run `docker swarm init` on this host (or point --docker-host at a swarm manager); "
    "tfsops never creates a swarm by itself"
)
PROBE_TIMEOUT = 3  # seconds per HTTP request inside the helper


@contextlib.contextmanager
def swarm_translated(url: str, what: str) -> Iterator[None]:
    """``translated``, plus "not a swarm manager" as invalid input (exit 3) with a hint."""
    with translated(url, what):
        try:
            yield
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "not a swarm manager" in text or "not part of a swarm" in text:
                raise InvalidInput(
                    f"{what}: the Docker engine at {url} is not a swarm manager",
                    hint=SWARM_INIT_HINT,
                ) from exc
            raise


@dataclass(frozen=True)
class SwarmState:
    local_node_state: str  # inactive | pending | active | error | locked
    manager: bool
    node_id: str
    nodes: int


@dataclass(frozen=True)
class RawAnswer:
    """One HTTP exchange done by the helper container."""

    rc: int  # 0 answered, 7 no connection, 124 timed out
    status: int | None = None
    reason: str = ""
    headers: Mapping[str, str] | None = None
    body: bytes = b""


def _strip_digest(image: str) -> str:
    return image.split("@", 1)[0]


# Run by the mount check on every node: each argument must be a folder it can list.
MOUNT_CHECK_SCRIPT = (
    'for p; do ls "$p" >/dev/null 2>&1 || { echo "$p: not a readable folder on this node"; '
    "exit 3; }; done"
)


def _bare_task(task: Mapping[str, Any]) -> TaskInfo:
    status = task.get("Status") or {}
    return TaskInfo(
        id=task["ID"],
        slot=None,
        node_id=task.get("NodeID", ""),
        node="",
        state=status.get("State", ""),
        desired_state=task.get("DesiredState", ""),
        error=status.get("Err"),
        message=status.get("Message", ""),
        template_hash=None,
        ip=None,
        container_id=(status.get("ContainerStatus") or {}).get("ContainerID") or None,
    )


def _digest_of(image: str) -> str | None:
    return image.split("@", 1)[1] if "@" in image else None


class SwarmEngine:
    """What the swarm target needs from the engine, in its own words."""

    def __init__(self, runtime: DockerRuntime) -> None:
        self.runtime = runtime
        self.url = runtime.url

    @property
    def client(self) -> Any:
        return self.runtime.client

    # ---- the swarm ----------------------------------------------------------------
    def state(self) -> SwarmState:
        with swarm_translated(self.url, "reading the swarm state"):
            info = self.client.info()
        swarm = info.get("Swarm") or {}
        return SwarmState(
            local_node_state=str(swarm.get("LocalNodeState") or "inactive"),
            manager=bool(swarm.get("ControlAvailable")),
            node_id=str(swarm.get("NodeID") or ""),
            nodes=int(swarm.get("Nodes") or 0),
        )

    def require_manager(self, what: str) -> SwarmState:
        state = self.state()
        if state.local_node_state != "active" or not state.manager:
            detail = (
                "is not part of a swarm"
                if state.local_node_state != "active"
                else "is a swarm worker, not a manager"
            )
            raise InvalidInput(
                f"{what}: target is swarm, and the Docker engine at {self.url} {detail}",
                hint=SWARM_INIT_HINT,
                details={"swarm": state.local_node_state},
            )
        return state

    def nodes(self) -> dict[str, tuple[str, bool]]:
        """node id -> (hostname, ready and active: can take tasks)."""
        with swarm_translated(self.url, "listing swarm nodes"):
            found = self.client.nodes.list()
        out = {}
        for node in found:
            attrs = node.attrs
            hostname = ((attrs.get("Description") or {}).get("Hostname")) or node.id[:12]
            ready = (attrs.get("Status") or {}).get("State") == "ready"
            active = (attrs.get("Spec") or {}).get("Availability") == "active"
            out[node.id] = (hostname, ready and active)
        return out

    # ---- services -----------------------------------------------------------------
    def find_service(self, deployment: str) -> ObservedService | None:
        with swarm_translated(self.url, "listing services"):
            found = self.client.services.list(filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"})
            if not found:
                return None
            attrs = found[0].attrs
            spec = attrs.get("Spec") or {}
            container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
            refs = list(container.get("Configs") or [])
            names = [r.get("ConfigName", "") for r in refs]
            names += [r.get("SecretName", "") for r in container.get("Secrets") or []]
            models_config = None
            for ref in refs:
                if (ref.get("File") or {}).get("Name") == L.MODELS_CONFIG:
                    models_config = self._config_text(ref.get("ConfigID", ""))
        update = attrs.get("UpdateStatus") or {}
        replicated = (spec.get("Mode") or {}).get("Replicated") or {}
        return ObservedService(
            id=attrs["ID"],
            name=spec.get("Name", ""),
            version=int((attrs.get("Version") or {}).get("Index", 0)),
            labels=dict(spec.get("Labels") or {}),
            image=_strip_digest(container.get("Image", "")),
            image_digest=_digest_of(container.get("Image", "")),
            replicas=int(replicated.get("Replicas", 0)),
            config_names=tuple(n for n in names if n),
            models_config=models_config,
            update_state=update.get("State"),
            update_message=update.get("Message"),
            previous_spec=attrs.get("PreviousSpec"),
        )

    def _config_text(self, config_id: str) -> str | None:
        try:
            data = self.client.configs.get(config_id).attrs["Spec"].get("Data", "")
        except docker.errors.NotFound:
            return None
        return base64.b64decode(data).decode("utf-8", errors="replace")

    def update_status(self, service_id: str) -> tuple[str | None, str | None, str | None]:
        """(state, message, started_at) of the service's last update; Nones when none."""
        with swarm_translated(self.url, "inspecting the service"):
            attrs = self.client.api.inspect_service(service_id)
        update = attrs.get("UpdateStatus") or {}
        return update.get("State"), update.get("Message"), update.get("StartedAt")

    def _task_template(self, plan: ServicePlan, ids: Mapping[str, str]) -> dict[str, Any]:
        template: dict[str, Any] = copy.deepcopy(plan.spec["TaskTemplate"])
        container = template["ContainerSpec"]
        for ref in container.get("Configs", []):
            ref["ConfigID"] = ids[ref["ConfigName"]]
        for ref in container.get("Secrets", []):
            ref["SecretID"] = ids[ref["SecretName"]]
        return template

    def create_service(self, plan: ServicePlan, ids: Mapping[str, str]) -> str:
        spec = plan.spec
        with swarm_translated(self.url, f"creating service {plan.service_name}"):
            result = self.client.api.create_service(
                self._task_template(plan, ids),
                name=spec["Name"],
                labels=spec["Labels"],
                mode=spec["Mode"],
                update_config=spec["UpdateConfig"],
                rollback_config=spec["RollbackConfig"],
                endpoint_spec=spec["EndpointSpec"],
            )
        return str(result["ID"])

    def update_service(
        self, observed: ObservedService, plan: ServicePlan, ids: Mapping[str, str]
    ) -> None:
        spec = plan.spec
        with swarm_translated(self.url, f"updating service {plan.service_name}"):
            self.client.api.update_service(
                observed.id,
                observed.version,
                task_template=self._task_template(plan, ids),
                name=spec["Name"],
                labels=spec["Labels"],
                mode=spec["Mode"],
                update_config=spec["UpdateConfig"],
                rollback_config=spec["RollbackConfig"],
                endpoint_spec=spec["EndpointSpec"],
            )

    def rollback_service(self, service_id: str) -> bool:
        """Go back to the service's previous spec (``docker service rollback``); False if none."""
        with swarm_translated(self.url, "rolling the service back"):
            attrs = self.client.api.inspect_service(service_id)
            previous = attrs.get("PreviousSpec")
            if not previous:
                return False
            self.client.api.update_service(
                service_id,
                int(attrs["Version"]["Index"]),
                task_template=previous.get("TaskTemplate"),
                name=previous.get("Name"),
                labels=previous.get("Labels"),
                mode=previous.get("Mode"),
                update_config=previous.get("UpdateConfig"),
                rollback_config=previous.get("RollbackConfig"),
                endpoint_spec=previous.get("EndpointSpec"),
            )
        return True

    def remove_service(self, service_id: str) -> None:
        with (
            swarm_translated(self.url, "removing the service"),
            contextlib.suppress(docker.errors.NotFound),
        ):
            self.client.api.remove_service(service_id)

    def tasks(self, service_id: str, network: str) -> list[TaskInfo]:
        with swarm_translated(self.url, "listing tasks"):
            found = self.client.api.tasks(filters={"service": service_id})
            names = {nid: host for nid, (host, _) in self.nodes().items()}
        out = []
        for t in found:
            status = t.get("Status") or {}
            cstatus = status.get("ContainerStatus") or {}
            labels = ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}
            ip = None
            for att in t.get("NetworksAttachments") or []:
                if ((att.get("Network") or {}).get("Spec") or {}).get("Name") == network:
                    addresses = att.get("Addresses") or []
                    ip = addresses[0].split("/")[0] if addresses else None
            out.append(
                TaskInfo(
                    id=t["ID"],
                    slot=t.get("Slot"),
                    node_id=t.get("NodeID", ""),
                    node=names.get(t.get("NodeID", ""), ""),
                    state=status.get("State", "unknown"),
                    desired_state=t.get("DesiredState", "unknown"),
                    error=status.get("Err") or None,
                    message=status.get("Message", ""),
                    template_hash=labels.get(LABEL_TEMPLATE_HASH),
                    ip=ip,
                    container_id=cstatus.get("ContainerID") or None,
                    updated_at=t.get("UpdatedAt", ""),
                    exit_code=cstatus.get("ExitCode"),
                )
            )
        return sorted(out, key=lambda x: (x.slot or 0, x.updated_at), reverse=False)

    def task_logs(self, task: TaskInfo, tail: int = 30) -> list[str]:
        """The task's container logs: from the container when it is on this node, else
        through the manager (``docker service logs`` of that one task, any node)."""
        if not task.container_id:
            return []
        try:
            with translated(self.url, "reading task logs"):
                try:
                    container = self.client.containers.get(task.container_id)
                except docker.errors.NotFound:
                    return self._remote_task_logs(task.id, tail)
                text = str(container.logs(tail=tail).decode("utf-8", errors="replace"))
        except TfsopsError:
            return []
        return text.splitlines()

    def _remote_task_logs(self, task_id: str, tail: int) -> list[str]:
        api = self.client.api
        params = {"stdout": 1, "stderr": 1, "tail": str(tail)}
        response = api._get(api._url("/tasks/{0}/logs", task_id), params=params, stream=False)
        api._raise_for_status(response)
        return _demux(response.content).decode("utf-8", errors="replace").splitlines()

    # ---- networks and config objects ----------------------------------------------
    def _labels(self, deployment: str) -> dict[str, str]:
        from tfsops import __version__

        return {LABEL_DEPLOYMENT: deployment, LABEL_MANAGED: f"tfsops/{__version__}"}

    def ensure_network(self, name: str, deployment: str) -> None:
        with swarm_translated(self.url, f"creating network {name}"):
            existing = [n for n in self.client.networks.list(names=[name]) if n.name == name]
            if existing:
                return
            # Attachable: the helper probe (a plain container) joins it to reach every replica.
            self.client.networks.create(
                name,
                driver="overlay",
                attachable=True,
                labels=self._labels(deployment),
                scope="swarm",
            )

    def wait_tasks_gone(
        self, service_id: str, deployment: str | None = None, timeout: float = 60.0
    ) -> bool:
        """Wait until the removed service's task containers are gone from this node.

        A task whose container was still being created when the service was removed
        appears after a first empty listing, so the node must list none twice, a
        second apart. Task containers left at the deadline are removed here: their
        service is gone, and `down` promises to leave nothing behind.
        """
        deadline = time.monotonic() + timeout
        filters = [{"label": f"com.docker.swarm.service.id={service_id}"}]
        if deployment is not None:
            filters.append({"label": f"{LABEL_SWARM_DEPLOYMENT}={deployment}"})
        empty_since: float | None = None
        while True:
            with translated(self.url, "listing task containers"):
                left = {
                    c.id: c
                    for flt in filters
                    for c in self.client.containers.list(all=True, filters=flt)
                }
            now = time.monotonic()
            if not left:
                empty_since = empty_since if empty_since is not None else now
                if now - empty_since >= 1.0:
                    return True
            else:
                empty_since = None
                if now > deadline:
                    with translated(self.url, "removing task containers"):
                        for c in left.values():
                            with contextlib.suppress(docker.errors.NotFound):
                                c.remove(force=True)
                    return False
            time.sleep(0.25)

    def remove_network(self, name: str, timeout: float = 60.0) -> bool:
        """Remove the network once no container uses it, and wait until it is gone:
        the node's local copy of an overlay network outlives the cluster object briefly."""
        deadline = time.monotonic() + timeout
        removed = False
        while True:
            with swarm_translated(self.url, f"removing network {name}"):
                found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
                if not found:
                    return removed
                try:
                    found[0].remove()
                    removed = True
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    gone = "not found" in str(exc)
                    busy = "active endpoints" in str(exc)
                    if not (gone or busy) or time.monotonic() > deadline:
                        raise
            if time.monotonic() > deadline:
                return removed
            time.sleep(0.5)

    def ensure_objects(self, configs: Sequence[ConfigObject], deployment: str) -> dict[str, str]:
        """Create the config/secret objects that do not exist yet; name -> id."""
        ids: dict[str, str] = {}
        with swarm_translated(self.url, "creating config objects"):
            for c in configs:
                store = self.client.secrets if c.secret else self.client.configs
                existing = [o for o in store.list(filters={"name": c.name}) if o.name == c.name]
                if existing:
                    ids[c.name] = existing[0].id
                    continue
                labels = dict(self._labels(deployment), **{LABEL_FILE: c.file})
                created = store.create(name=c.name, data=c.data.encode(), labels=labels)
                ids[c.name] = created.id
        return ids

    def list_objects(self, deployment: str) -> list[tuple[str, str, str]]:
        """(kind, id, name) of every config and secret of the deployment."""
        out = []
        with swarm_translated(self.url, "listing config objects"):
            flt = {"label": f"{LABEL_DEPLOYMENT}={deployment}"}
            out += [("config", o.id, o.name) for o in self.client.configs.list(filters=flt)]
            out += [("secret", o.id, o.name) for o in self.client.secrets.list(filters=flt)]
        return out

    def remove_object(self, kind: str, object_id: str) -> bool:
        """False when the object is still in use (a task not yet gone)."""
        with swarm_translated(self.url, f"removing {kind} {object_id[:12]}"):
            store = self.client.secrets if kind == "secret" else self.client.configs
            try:
                store.get(object_id).remove()
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as exc:
                if "in use" in str(exc):
                    return False
                raise
        return True

    def remove_probes(self, deployment: str) -> int:
        with translated(self.url, "removing helper containers"):
            found = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_PROBE}={deployment}"}
            )
            for c in found:
                with contextlib.suppress(docker.errors.NotFound):
                    c.remove(force=True)
            # A mount check left by an interrupted apply.
            jobs = self.client.services.list(filters={"label": f"{LABEL_PROBE}={deployment}"})
            for job in jobs:
                with contextlib.suppress(docker.errors.NotFound):
                    job.remove()
        return len(found) + len(jobs)

    # ---- nodes, the registry, the mount check --------------------------------------
    def node_details(self) -> list[dict[str, Any]]:
        """Every swarm node: hostname, role, availability (active/pause/drain), state."""
        with swarm_translated(self.url, "listing swarm nodes"):
            found = self.client.nodes.list()
        out = []
        for node in found:
            attrs = node.attrs
            spec = attrs.get("Spec") or {}
            out.append(
                {
                    "id": node.id,
                    "node": ((attrs.get("Description") or {}).get("Hostname")) or node.id[:12],
                    "role": spec.get("Role", ""),
                    "availability": spec.get("Availability", ""),
                    "state": (attrs.get("Status") or {}).get("State", ""),
                }
            )
        return sorted(out, key=lambda n: (n["role"] != "manager", n["node"]))

    def registry_digest(self, ref: str) -> str | None:
        """The manifest digest of ``ref`` in its registry (asked by the manager's engine),
        or None when the registry does not have it."""
        with swarm_translated(self.url, f"looking up {ref} in its registry"):
            try:
                data = self.client.api.inspect_distribution(ref)
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                text = str(exc.explanation or exc).lower()
                if "manifest unknown" in text or "not found" in text:
                    return None
                raise
        return str((data.get("Descriptor") or {}).get("digest") or "") or None

    def push_image(self, ref: str, progress: Any = None) -> str:
        """``docker push ref`` from the manager's engine; the pushed manifest's digest."""
        repository, _, tag = ref.rpartition(":")
        digest = ""
        with swarm_translated(self.url, f"pushing {ref}"):
            for line in self.client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise OperationFailed(f"pushing {ref}: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest", digest)
        if not digest:
            raise OperationFailed(f"pushing {ref}: the registry reported no digest")
        return str(digest)

    def check_mounts(self, plan: ServicePlan, timeout: float = 120.0) -> dict[str, str]:
        """Whether every node the service may run on has its bind-mount folders.

        Runs a one-shot task on each of those nodes (a global job with the service's
        image, bind mounts and placement constraints) that lists each folder; the job is
        removed afterwards. Returns node hostname -> what failed there (empty: all good).
        """
        template = plan.spec["TaskTemplate"]
        container = template["ContainerSpec"]
        mounts = [m for m in container.get("Mounts") or [] if m.get("Type") == "bind"]
        if not mounts:
            return {}
        placement = {
            k: v for k, v in (template.get("Placement") or {}).items() if k != "MaxReplicas"
        }
        task_template = {
            "ContainerSpec": {
                "Image": container["Image"],
                "Command": ["sh", "-c", MOUNT_CHECK_SCRIPT, "mount-check"]
                + [m["Target"] for m in mounts],
                "Mounts": mounts,
                "Labels": {LABEL_PROBE: plan.deployment},
            },
            "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
            "Placement": placement,
        }
        name = f"{plan.service_name[:40]}-mount-check-{uuid.uuid4().hex[:6]}"
        with swarm_translated(self.url, "checking the model folders on every node"):
            created = self.client.api.create_service(
                task_template,
                name=name,
                mode={"GlobalJob": {}},
                # Not io.tfsops.deployment: this is not the deployment's service.
                labels={
                    LABEL_PROBE: plan.deployment,
                    LABEL_MANAGED: self._labels("")[LABEL_MANAGED],
                },
            )
        service_id = str(created["ID"])
        try:
            return self._mount_check_result(service_id, timeout)
        finally:
            with (
                swarm_translated(self.url, "removing the mount check"),
                contextlib.suppress(docker.errors.NotFound),
            ):
                self.client.api.remove_service(service_id)

    def _mount_check_result(self, service_id: str, timeout: float) -> dict[str, str]:
        """Wait until each node has a finished check task (Swarm may retry a rejected
        one), then: node hostname -> why its check failed, for nodes with no success."""
        finished = ("complete", "failed", "rejected", "shutdown")
        deadline = time.monotonic() + timeout
        while True:
            with swarm_translated(self.url, "waiting for the mount check"):
                found = self.client.api.services(filters={"id": service_id}, status=True)
                tasks = self.client.api.tasks(filters={"service": service_id})
                usable = sum(1 for _, ok in self.nodes().values() if ok)
            desired = int(
                ((found[0] if found else {}).get("ServiceStatus") or {}).get("DesiredTasks") or 0
            )
            by_node: dict[str, list[dict[str, Any]]] = {}
            for t in tasks:
                by_node.setdefault(t.get("NodeID", ""), []).append(t)
            settled = [
                n
                for n, ts in by_node.items()
                if any((t.get("Status") or {}).get("State") in finished for t in ts)
            ]
            expected = min(desired, usable) if desired else usable
            everywhere = len(settled) == len(by_node) and len(settled) >= expected
            if (expected and everywhere) or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        names = {nid: host for nid, (host, _) in self.nodes().items()}
        problems: dict[str, str] = {}
        for node_id, ts in by_node.items():
            states = [(t.get("Status") or {}).get("State", "") for t in ts]
            if "complete" in states:
                continue
            node = names.get(node_id, node_id or "?")
            failed = [t for t, st in zip(ts, states, strict=True) if st in finished]
            task = failed[0] if failed else ts[-1]
            status = task.get("Status") or {}
            why = str(status.get("Err") or status.get("Message") or status.get("State"))
            if not failed:
                why = f"no answer within {timeout:g}s ({status.get('State')}: {why})"
            else:
                with contextlib.suppress(TfsopsError):
                    logs = self.task_logs(_bare_task(task), 5)
                    if logs:
                        why += ": " + "; ".join(logs)
            problems[node] = why
        if not tasks:
            problems["(every node)"] = f"no node ran the check within {timeout:g}s"
        return problems

    # ---- the helper-container probe -----------------------------------------------
    def probe(
        self,
        deployment: str,
        network: str,
        image: str,
        ips: Sequence[str],
        expected: Sequence[ExpectedModel],
        timeout: float = 30.0,
    ) -> dict[str, ServingClient]:
        """One ``ServingClient`` per replica IP, answering from what a helper container on
        ``network`` fetched just now (model status and label metadata of every expected model)."""
        from tfsops.adapters.serving_rest import model_path

        if not ips:
            return {}
        paths = []
        for m in expected:
            paths.append(model_path(m.name))
            paths += [model_path(m.name, label=lab) + "/metadata" for lab in sorted(m.labels)]
            if m.smoke is not None:
                paths += smoke_probe_paths(m.name, m.versions, m.smoke)
        command = [
            "-c",
            PROBE_SCRIPT,
            "probe",
            str(L.REST_PORT),
            str(PROBE_TIMEOUT),
            *ips,
            "--",
            *paths,
        ]
        container = None
        try:
            with translated(self.url, "running the replica probe"):
                try:
                    container = self.client.containers.create(
                        image,
                        command=command,
                        entrypoint=["bash"],
                        network=network,
                        labels={LABEL_PROBE: deployment},
                    )
                except docker.errors.ImageNotFound as exc:
                    raise OperationFailed(
                        f"cannot probe the replicas: image {image} is not on this node",
                        hint="the helper runs the serving image on this manager: pull it here",
                    ) from exc
                container.start()
                try:
                    result = container.wait(timeout=timeout)
                except requests.exceptions.ReadTimeout as exc:
                    raise OperationFailed(
                        f"the replica probe did not finish in {timeout:g}s"
                    ) from exc
                output = container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace")
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
        if result.get("StatusCode") not in (0, None):
            raise OperationFailed(
                f"the replica probe failed (exit {result.get('StatusCode')}): {output[-300:]}"
            )
        answers = parse_probe_output(output)
        return {ip: snapshot_client(ip, answers.get(ip, {})) for ip in ips}


def _demux(data: bytes) -> bytes:
    """The payload of Docker's multiplexed log stream (8-byte frame headers)."""
    out = bytearray()
    while len(data) >= 8 and data[0] in (0, 1, 2) and data[1:4] == b"\0\0\0":
        size = int.from_bytes(data[4:8], "big")
        out += data[8 : 8 + size]
        data = data[8 + size :]
    return bytes(out) + data


# ---- parsing what the helper printed ------------------------------------------------


def parse_http(raw: bytes) -> RawAnswer:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    if not lines or not lines[0].startswith("HTTP/"):
        return RawAnswer(rc=0, status=None, body=raw)
    parts = lines[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return RawAnswer(rc=0, status=None, body=raw)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip()] = value.strip()
    if CaseInsensitiveDict(headers).get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return RawAnswer(
        rc=0, status=status, reason=parts[2] if len(parts) > 2 else "", headers=headers, body=body
    )


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def parse_probe_output(text: str) -> dict[str, dict[str, RawAnswer]]:
    """``@@tfsops IP RC PATH B64`` lines -> ip -> path -> answer."""
    out: dict[str, dict[str, RawAnswer]] = {}
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 4 or fields[0] != "@@tfsops":
            continue
        ip, rc_text, path = fields[1], fields[2], fields[3]
        payload = fields[4] if len(fields) > 4 else ""
        try:
            rc = int(rc_text)
        except ValueError:
            continue
        raw = base64.b64decode(payload) if payload else b""
        # Connected but nothing came back: like a refused connection (still starting).
        answer = parse_http(raw) if rc == 0 and raw else RawAnswer(rc=rc if rc else 7)
        out.setdefault(ip, {})[path] = answer
    return out


def body_key(body: Any) -> str:
    """A short key for a request body (bytes or text), naming a probed POST."""
    import hashlib

    data = body.encode() if isinstance(body, str) else bytes(body or b"")
    return hashlib.sha256(data).hexdigest()[:16]


def smoke_probe_paths(model: str, versions: Iterable[int], smoke: SmokeProbe) -> list[str]:
    """``PATH#KEY#BASE64`` entries: each smoke request to each version, POSTed by the probe."""
    import base64
    import json

    from tfsops.adapters.serving_rest import model_path

    out = []
    for version in sorted(versions):
        for body in smoke.bodies(version):
            data = json.dumps(dict(body), allow_nan=True).encode()
            path = model_path(model, version=version) + ":predict"
            out.append(f"{path}#{body_key(data)}#{base64.b64encode(data).decode()}")
    return out


class _SnapshotAdapter(requests.adapters.BaseAdapter):
    """A requests transport that answers from what the probe fetched, so the real
    ``RestServingClient`` parses and translates errors exactly as for a direct call."""

    def __init__(self, answers: Mapping[str, RawAnswer]) -> None:
        super().__init__()
        self.answers = answers

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        path = urlsplit(request.url or "").path
        if request.method == "POST":
            path += "#" + body_key(request.body)
        answer = self.answers.get(path)
        if answer is None:
            raise requests.exceptions.RequestException(f"the probe did not fetch {path}")
        if answer.rc == 124:
            raise requests.exceptions.ConnectTimeout(
                f"no answer from {request.url} in {PROBE_TIMEOUT}s"
            )
        if answer.rc != 0:
            raise requests.exceptions.ConnectionError(f"connection refused: {request.url}")
        response = requests.Response()
        response.status_code = answer.status if answer.status is not None else 200
        response.reason = answer.reason
        response.headers = CaseInsensitiveDict(dict(answer.headers or {}))
        response._content = answer.body
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


def snapshot_client(ip: str, answers: Mapping[str, RawAnswer]) -> ServingClient:
    from tfsops.adapters.serving_rest import RestServingClient

    session = requests.Session()
    session.trust_env = False
    session.mount("http://", _SnapshotAdapter(answers))
    return RestServingClient(
        Endpoint(host=ip, rest_port=L.REST_PORT, grpc_port=None), session=session
    )
