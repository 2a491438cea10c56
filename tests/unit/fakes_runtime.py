"""An in-memory container engine for unit tests: ``FakeRuntime``.

It implements the ``ContainerRuntime`` port (``tfsops/ports.py``) as a state
machine that follows the Docker engine where tfsops depends on it:

- containers go ``created -> running -> exited``; ``remove`` forces; a name is
  unique (create and rename refuse a taken one, like the engine's 409
  Conflict); ``find`` returns the newest container carrying the deployment
  label, as the engine lists newest first;
- bind mounts: a missing source refuses ``create``; the server in a started
  container reads ``models.config`` (and the other start-up files) through its
  mounts, so a file removed on the host is what the server sees on its next
  start;
- ports: ``start`` refuses a host port another running container publishes
  ("port is already allocated") or a program holds (``host_ports_taken``), and
  the container stays ``created``/``exited``;
- the server: a container whose ``models.config`` is missing or does not load
  exits with code 1 and its log says why; with a restart policy it restarts by
  itself (``restart_count`` grows, ``status`` is ``restarting`` while it keeps
  failing), which ``tick()`` advances. A running container drives a
  ``MountedServing`` (a ``FakeServing`` that reads version folders through the
  container's mounts): ports closed while it boots (``boot_ticks``), then the
  config is loaded; stopping the container closes the ports again;
- ``fail_next(method, error)`` injects a one-shot error (a ``KeyboardInterrupt``
  is a Ctrl-C at that call); ``after_next(method, error)`` raises once the
  call has taken effect; ``interrupt_at_poll = n`` is a Ctrl-C at the n-th
  sleep of ``clock()`` (a poll of a wait); ``calls`` records every call.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.unit.fakes import FakeClock, FakeServing
from tfsops.errors import OperationFailed
from tfsops.plan import layout as L
from tfsops.plan.container import LABEL_DEPLOYMENT, ContainerPlan
from tfsops.ports import ContainerInfo

_ids = itertools.count(1)


class MountedServing(FakeServing):
    """A ``FakeServing`` whose ``base_path``s are container paths, read through the mounts
    of the container that runs it (set by ``FakeRuntime`` when the container starts)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.mounts: list[tuple[str, str]] = []  # (container target, host source)
        self.broken: dict[str, set[int]] = {}  # model -> versions that fail to load

    def tick(self, n: int = 1) -> None:
        """One step of the server: its file-system poll, then every version's state machine."""
        with self._lock:
            for _ in range(n):
                if not self.starting:
                    self.poll_filesystem()
                self._mark_broken()
                super().tick()

    def _mark_broken(self) -> None:
        for name, model in self.models.items():
            model.failures = dict.fromkeys(
                self.broken.get(name, ()), ("UNKNOWN", "Failed to load: truncated variables")
            )

    def _apply(self, entries: list[Any]) -> list[str]:
        names = super()._apply(entries)
        self._mark_broken()
        return names

    def host_path(self, container_path: str) -> Path | None:
        for target, source in sorted(self.mounts, key=lambda m: -len(m[0])):
            if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
                return Path(source + container_path[len(target) :])
        return None

    def _disk_versions(self, base_path: str) -> list[int]:
        if base_path in self.disk:
            return sorted(self.disk[base_path])
        host = self.host_path(base_path)
        if host is None or not host.is_dir():
            return []
        versions = set()
        for child in host.iterdir():
            if child.is_dir() and child.name.strip().isdigit():
                versions.add(int(child.name.strip()))
        return sorted(versions)

    def reboot(self, config_text: str) -> None:
        """A fresh server process loading ``config_text`` (raises like the reload RPC)."""
        with self._lock:
            self.models.clear()
            self.config_text = None
            self.starting = False
            sent = len(self.reloads)
            try:
                self.reload_config(config_text, timeout=60.0)
            finally:
                del self.reloads[sent:]  # a start-up load is no admin RPC

    def served_list(self) -> dict[str, frozenset[int]]:
        """Model -> the versions it serves now (what the server would answer for)."""
        with self._lock:
            return {
                name: frozenset(m.served) for name, m in self.models.items() if m.configured
            }


@dataclass
class FakeContainer:
    id: str
    name: str
    plan: ContainerPlan
    status: str = "created"  # created | running | exited | restarting | dead
    exit_code: int | None = None
    restart_count: int = 0
    start_count: int = 0
    started_at: str | None = None
    booting: int = 0  # ticks until the server has loaded its config and opened its ports
    log: list[str] = field(default_factory=list)
    manually_stopped: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return self.plan.labels

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id,
            name=self.name,
            status=self.status,
            image=self.plan.image,
            labels=dict(self.plan.labels),
            ports=[(p.host_ip, p.host_port, p.container_port) for p in self.plan.ports],
            started_at=self.started_at,
            exit_code=self.exit_code,
            restart_count=self.restart_count,
        )

    def host_file(self, container_path: str) -> Path | None:
        for m in sorted(self.plan.mounts, key=lambda m: -len(m.target)):
            if container_path.startswith(m.target.rstrip("/") + "/"):
                return Path(m.source + container_path[len(m.target) :])
        return None


class FakeRuntime:
    """In-memory ``ContainerRuntime`` (see the module docstring)."""

    def __init__(
        self,
        serving: MountedServing | None = None,
        *,
        images: dict[str, dict[str, str]] | None = None,
        registry: dict[str, dict[str, str]] | None = None,
        boot_ticks: int = 1,
    ) -> None:
        self.serving = serving
        self.images: dict[str, dict[str, str]] = dict(images or {})
        self.registry: dict[str, dict[str, str]] = dict(registry or {})
        self.boot_ticks = boot_ticks
        self.containers: dict[str, FakeContainer] = {}  # by id, in creation order
        self.host_ports_taken: set[int] = set()  # held by programs outside the engine
        self.calls: list[tuple[str, str]] = []
        self.created_ids: list[str] = []
        self.removed_ids: list[str] = []
        self._before: dict[str, deque[BaseException]] = defaultdict(deque)
        self._after: dict[str, deque[BaseException]] = defaultdict(deque)
        self.closed = False
        self.interrupt_at_poll: int | None = None  # Ctrl-C at the n-th clock sleep from now

    # -- faults ------------------------------------------------------------

    def fail_next(self, method: str, error: BaseException) -> None:
        """The next call of ``method`` raises ``error`` before it does anything."""
        self._before[method].append(error)

    def after_next(self, method: str, error: BaseException) -> None:
        """The next call of ``method`` takes effect, then raises ``error``."""
        self._after[method].append(error)

    def _enter(self, method: str, arg: str) -> None:
        self.calls.append((method, arg))
        if self._before.get(method):
            raise self._before[method].popleft()

    def _leave(self, method: str) -> None:
        if self._after.get(method):
            raise self._after[method].popleft()

    # -- time and the server process -----------------------------------------

    def tick(self) -> None:
        """One step: booting servers come up, crash-looping containers retry."""
        for c in list(self.containers.values()):
            if c.status == "running" and c.booting > 0:
                c.booting -= 1
                if c.booting == 0:
                    self._load(c)
            elif c.status == "restarting":
                c.restart_count += 1
                self._boot(c)

    def clock(self) -> FakeClock:
        """A clock whose every sleep advances the server and the engine one step (and raises
        ``KeyboardInterrupt`` at the ``interrupt_at_poll``-th sleep, when set)."""

        def step(_seconds: float) -> None:
            if self.interrupt_at_poll is not None:
                self.interrupt_at_poll -= 1
                if self.interrupt_at_poll <= 0:
                    self.interrupt_at_poll = None
                    raise KeyboardInterrupt
            if self.serving is not None:
                self.serving.tick()
            self.tick()

        return FakeClock(on_sleep=step)

    def crash(self, ref: str, code: int = 137) -> None:
        """The server process dies (OOM, kill): the restart policy decides what follows."""
        c = self._get(ref)
        self._close_ports(c)
        c.log.append(f"server killed (exit {code})")
        if c.plan.restart_policy in ("no", "") or c.manually_stopped:
            c.status, c.exit_code = "exited", code
            return
        c.restart_count += 1
        self._boot(c)

    def engine_restart(self) -> None:
        """dockerd restarts: containers with a restart policy (other than manual stops) come back."""
        for c in self.containers.values():
            if c.status in ("running", "restarting"):
                self._close_ports(c)
                c.status, c.exit_code = "exited", 255
        for c in self.containers.values():
            restarts = c.plan.restart_policy not in ("no", "", "on-failure")
            if c.status == "exited" and restarts and not c.manually_stopped:
                self._boot(c)

    def _boot(self, c: FakeContainer) -> None:
        config = c.host_file(L.MODELS_CONFIG)
        problem = None
        if self._port_conflict(c) is not None:
            problem = "port is already allocated"
        elif config is None or not config.is_file():
            problem = (
                f"Failed to start server. Error: NOT_FOUND: {L.MODELS_CONFIG}; "
                "No such file or directory"
            )
        if problem is not None:
            c.log.append(problem)
            c.exit_code = 255  # upstream's main() returns -1
            c.status = (
                "exited"
                if c.plan.restart_policy in ("no", "") or c.restart_count >= 50
                else "restarting"
            )
            return
        c.status, c.exit_code = "running", None
        c.start_count += 1
        c.started_at = f"2026-01-01T00:00:{c.start_count:02d}Z"
        c.booting = self.boot_ticks
        if self.serving is not None:
            self.serving.starting = True
            self.serving.mounts = [(m.target, m.source) for m in c.plan.mounts]
        if c.booting == 0:
            self._load(c)

    def _load(self, c: FakeContainer) -> None:
        if self.serving is None:
            return
        config = c.host_file(L.MODELS_CONFIG)
        try:
            text = config.read_text(encoding="utf-8") if config is not None else ""
            self.serving.reboot(text)
        except (OSError, Exception) as exc:
            message = getattr(exc, "message", str(exc))
            c.log.append(f"Failed to start server. Error: {message}")
            self._close_ports(c)
            c.exit_code = 255
            c.status = "exited" if c.plan.restart_policy in ("no", "") else "restarting"
            return
        c.log.append("Running gRPC ModelServer at 0.0.0.0:8500 ...")

    def _close_ports(self, c: FakeContainer) -> None:
        if self.serving is not None and c.status == "running":
            self.serving.starting = True
        c.booting = 0

    def _port_conflict(self, c: FakeContainer) -> str | None:
        for p in c.plan.ports:
            if p.host_port in self.host_ports_taken:
                return f"{p.host_ip}:{p.host_port}: address already in use"
            for other in self.containers.values():
                if other is c or other.status not in ("running", "restarting"):
                    continue
                if any(q.host_port == p.host_port for q in other.plan.ports):
                    return (
                        f"Bind for {p.host_ip}:{p.host_port} failed: port is already allocated"
                    )
        return None

    def _get(self, ref: str) -> FakeContainer:
        found = self._lookup(ref)
        if found is None:
            raise OperationFailed(f"not found: No such container: {ref}")
        return found

    def _lookup(self, ref: str) -> FakeContainer | None:
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c.name == ref or (len(ref) >= 12 and c.id.startswith(ref)):
                return c
        return None

    # -- ContainerRuntime ----------------------------------------------------

    def find(self, deployment: str) -> ContainerInfo | None:
        self._enter("find", deployment)
        mine = [c for c in self.containers.values() if c.labels.get(LABEL_DEPLOYMENT) == deployment]
        return mine[-1].info() if mine else None

    def inspect(self, container_id: str) -> ContainerInfo | None:
        self._enter("inspect", container_id)
        c = self._lookup(container_id)
        return c.info() if c is not None else None

    def image_labels(self, ref: str) -> dict[str, str] | None:
        self._enter("image_labels", ref)
        labels = self.images.get(ref)
        return dict(labels) if labels is not None else None

    def pull(self, ref: str, progress: Callable[[str], None]) -> None:
        self._enter("pull", ref)
        if ref not in self.registry:
            raise OperationFailed(f"cannot pull {ref}: pull access denied for {ref}")
        progress(f"pulling {ref}: done")
        self.images[ref] = dict(self.registry[ref])
        self._leave("pull")

    def port_holders(self) -> dict[int, str]:
        self._enter("port_holders", "")
        return {
            p.host_port: c.name
            for c in self.containers.values()
            if c.status in ("running", "restarting")
            for p in c.plan.ports
        }

    def host_port_free(self, host_ip: str, port: int) -> bool:
        self._enter("host_port_free", str(port))
        return port not in self.host_ports_taken and port not in self.port_holders()

    def create(self, plan: ContainerPlan) -> str:
        self._enter("create", plan.name)
        if plan.image not in self.images:
            raise OperationFailed(
                f"creating container {plan.name}: image not found: No such image: {plan.image}"
            )
        if self._lookup(plan.name) is not None:
            raise OperationFailed(
                f'creating container {plan.name}: Conflict. The container name "/{plan.name}" '
                "is already in use"
            )
        for m in plan.mounts:
            if m.type == "bind" and not os.path.exists(m.source):
                raise OperationFailed(
                    f"creating container {plan.name}: invalid mount config for type "
                    f'"bind": bind source path does not exist: {m.source}'
                )
        cid = f"{next(_ids):012x}" + "f" * 52
        self.containers[cid] = FakeContainer(cid, plan.name, plan)
        self.created_ids.append(cid)
        self._leave("create")
        return cid

    def start(self, container_id: str) -> None:
        self._enter("start", container_id)
        c = self._get(container_id)
        if c.status in ("running", "restarting"):
            return  # the engine answers 304: already started (a restarting one counts as running)
        conflict = self._port_conflict(c)
        if conflict is not None:
            raise OperationFailed(f"starting the container: driver failed programming: {conflict}")
        c.manually_stopped = False
        self._boot(c)
        self._leave("start")

    def stop(self, container_id: str, timeout: int = 10) -> None:
        self._enter("stop", container_id)
        c = self._get(container_id)
        if c.status in ("running", "restarting"):
            self._close_ports(c)
            c.status, c.exit_code = "exited", 0
        c.manually_stopped = True
        self._leave("stop")

    def remove(self, container_id: str) -> None:
        self._enter("remove", container_id)
        c = self._lookup(container_id)
        if c is None:
            return
        self._close_ports(c)
        del self.containers[c.id]
        self.removed_ids.append(c.id)
        self._leave("remove")

    def rename(self, container_id: str, new_name: str) -> None:
        self._enter("rename", container_id)
        c = self._get(container_id)
        other = self._lookup(new_name)
        if other is not None and other is not c:
            raise OperationFailed(
                f'renaming the container: Conflict. The container name "/{new_name}" is '
                "already in use"
            )
        c.name = new_name
        self._leave("rename")

    def logs(self, container_id: str, tail: int | str = "all") -> str:
        self._enter("logs", container_id)
        lines = self._get(container_id).log
        if tail != "all":
            lines = lines[-int(tail) :]
        return "".join(line + "\n" for line in lines)

    def close(self) -> None:
        self.closed = True

    # -- for assertions --------------------------------------------------------

    def by_name(self, name: str) -> FakeContainer | None:
        return next((c for c in self.containers.values() if c.name == name), None)

    def of(self, deployment: str) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.labels.get(LABEL_DEPLOYMENT) == deployment]

    def running(self) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.status == "running"]


# ---------------------------------------------------------------------------
# contract: the same assertions against the fake and the real DockerRuntime

PlanFactory = Callable[[str, tuple[int, int], str, bool], ContainerPlan]


def run_runtime_contract(
    rt: Any,
    make_plan: PlanFactory,
    *,
    image: str,
    ports: tuple[int, int],
    crash: Callable[[str], None],
    wait: Callable[[str, Callable[[], bool]], None],
) -> None:
    """Assertions every ``ContainerRuntime`` must pass.

    ``make_plan(suffix, (rest, grpc), restart_policy, with_config)`` builds the
    plan of a deployment whose config folder holds ``models.config`` or not;
    ``crash(id)`` kills the server process (not a manual stop); ``wait(what,
    predicate)`` waits until ``predicate()`` holds (real time, or fake ticks).
    """
    import pytest

    from tfsops.plan.container import Mount

    def info(ref: str) -> ContainerInfo:
        found = rt.inspect(ref)
        assert found is not None, ref
        return found  # type: ignore[no-any-return]

    assert rt.image_labels("tfsops-contract/absent:0") is None
    assert isinstance(rt.image_labels(image), dict)

    plan = make_plan("a", ports, "unless-stopped", True)
    deployment = plan.labels[LABEL_DEPLOYMENT]
    broken = replace(
        plan,
        name=plan.name + "-bad",
        mounts=(*plan.mounts, Mount(source="/nonexistent/tfsops-contract", target="/x")),
    )
    with pytest.raises(OperationFailed, match="bind source path does not exist"):
        rt.create(broken)
    assert rt.inspect(broken.name) is None

    cid = rt.create(plan)
    created = info(cid)
    assert (created.name, created.status, created.restart_count) == (plan.name, "created", 0)
    assert created.labels[LABEL_DEPLOYMENT] == deployment
    assert ("127.0.0.1", ports[0], L.REST_PORT) in list(created.ports)
    assert info(plan.name).id == cid
    assert rt.find(deployment).id == cid
    with pytest.raises(OperationFailed, match="already in use"):
        rt.create(plan)

    rt.start(cid)
    assert info(cid).status == "running"
    rt.start(cid)  # already started: no error
    assert rt.port_holders().get(ports[0]) == plan.name

    twin = replace(plan, name=plan.name + "-twin")  # same ports, same deployment label
    twin_id = rt.create(twin)
    assert rt.find(deployment).id == twin_id  # newest first
    with pytest.raises(OperationFailed, match="port is already allocated"):
        rt.start(twin_id)
    assert info(twin_id).status in ("created", "exited")
    rt.remove(twin_id)
    rt.remove(twin_id)  # gone already: no error
    assert rt.inspect(twin_id) is None
    assert rt.find(deployment).id == cid

    # A crash is no manual stop: the restart policy brings the server back.
    crash(cid)
    wait("restarted", lambda: info(cid).restart_count >= 1 and info(cid).status == "running")

    rt.stop(cid)
    assert info(cid).status == "exited"
    rt.rename(cid, plan.name + "-renamed")
    assert rt.inspect(plan.name) is None
    assert info(plan.name + "-renamed").id == cid
    rt.remove(cid)
    assert rt.inspect(cid) is None
    assert rt.find(deployment) is None

    # No models.config in the mounted folder: the server exits, and its log says why.
    bare = make_plan("b", ports, "no", False)
    bare_id = rt.create(bare)
    rt.start(bare_id)
    wait("exited", lambda: info(bare_id).status == "exited")
    assert info(bare_id).exit_code not in (0, None)
    assert "models.config" in rt.logs(bare_id, tail=20)
    rt.remove(bare_id)


__all__ = ["FakeContainer", "FakeRuntime", "MountedServing", "run_runtime_contract"]
