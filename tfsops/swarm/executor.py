"""Converge a ``target: swarm`` deployment: one replicated service, rolled out start-first.

Never prints: progress goes through ``services.progress``; results are data.
Failures leave things as they were: a new service that fails is removed
(unless ``keep_failed``); a failed update is rolled back (by Swarm itself
when a new task dies or never gets healthy, by tfsops when the replicas run
but do not serve every expected model) and reported as ``OperationFailed``
(exit 5) with the task's error and log lines. Config objects no longer used by
the service are removed after every apply.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsops.errors import InvalidInput, NotReady, OperationFailed, TfsopsError
from tfsops.health import HealthReport, check_health
from tfsops.lock import deployment_lock
from tfsops.plan.expected import check_models, expected_models
from tfsops.ports import ExpectedModel
from tfsops.revisions import record_revision
from tfsops.services import Services
from tfsops.spec.model import DeploymentSpec
from tfsops.state import DeploymentState
from tfsops.swarm.plan import (
    CREATE,
    NOOP,
    ServicePlan,
    SwarmPlan,
    SwarmSettings,
    TaskInfo,
    capacity_problem,
    compute_swarm_plan,
    host_ports_problem,
    object_name,
    registry_host,
    service_plan,
)

if TYPE_CHECKING:
    from tfsops.adapters.docker_swarm import SwarmEngine
    from tfsops.executor import ApplyOptions

LOG_TAIL = 30
POLL = 1.0
ROLLBACK_STATES = ("rollback_started", "rollback_paused", "rollback_completed")
FAILED_TASK_STATES = ("failed", "rejected")


@dataclass(frozen=True)
class ReplicaHealth:
    """One running replica and what it serves."""

    task: TaskInfo
    report: HealthReport | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    def describe(self) -> str:
        t = self.task
        where = f"replica {t.slot} ({t.id[:12]} on {t.node or '?'}, {t.ip})"
        if self.report is None:
            return f"{where}: {self.problem}"
        if self.report.ok:
            return f"{where}: ok\n    " + "\n    ".join(m.describe() for m in self.report.models)
        return f"{where}: not ready\n    " + "\n    ".join(self.report.problems())

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.id,
            "slot": self.task.slot,
            "node": self.task.node or None,
            "ip": self.task.ip,
            "ok": self.ok,
            "problem": self.problem,
            "health": self.report.to_dict() if self.report else None,
        }


@dataclass(frozen=True)
class SwarmHealth:
    """Every desired replica running the current spec, and each serving every expected model."""

    deployment: str
    desired: int
    replicas: tuple[ReplicaHealth, ...]
    problems: tuple[str, ...] = ()
    nodes: tuple[dict[str, Any], ...] = ()  # per node: role, state, replicas, ready

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and len(self.replicas) == self.desired
            and all(r.ok for r in self.replicas)
        )

    @property
    def failed(self) -> bool:
        return any(r.report is not None and r.report.failed for r in self.replicas)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "target": "swarm",
            "ok": self.ok,
            "failed": self.failed,
            "desired_replicas": self.desired,
            "ready_replicas": sum(1 for r in self.replicas if r.ok),
            "problems": list(self.problems),
            "replicas": [r.to_dict() for r in self.replicas],
            "nodes": list(self.nodes),
        }

    def text(self) -> str:
        ready = sum(1 for r in self.replicas if r.ok)
        head = f"{self.deployment}: {ready}/{self.desired} replicas ready"
        lines = [head] + [f"  {p}" for p in self.problems]
        lines += ["  " + r.describe() for r in self.replicas]
        lines += ["  " + node_line(n) for n in self.nodes]
        return "\n".join(lines)

    def error(self, *, timeout: float | None = None) -> TfsopsError | None:
        """``OperationFailed`` (5) when a model failed to load, ``NotReady`` (6) otherwise."""
        if self.ok:
            return None
        details = {"health": self.to_dict()}
        bad = [r.describe() for r in self.replicas if not r.ok] + list(self.problems)
        if self.failed:
            return OperationFailed(
                "a model failed to load on a replica:\n  " + "\n  ".join(bad),
                hint="see the task logs (docker service logs); fix the model and apply again",
                details=details,
            )
        within = f" within {timeout:g}s" if timeout is not None else ""
        return NotReady(
            f"not every replica serves every model{within}:\n  " + "\n  ".join(bad), details=details
        )


@dataclass
class SwarmApplyResult:
    plan: SwarmPlan
    service_id: str | None
    health: SwarmHealth | None
    revision: int | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.plan.service.deployment,
            "target": "swarm",
            "action": self.plan.action,
            "plan": self.plan.to_dict(),
            "service_id": self.service_id,
            "revision": self.revision,
            "health": self.health.to_dict() if self.health else None,
            "warnings": self.warnings,
        }

    def text(self) -> str:
        lines = [self.plan.text()]
        if self.health is not None:
            lines.append(self.health.text())
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class SwarmExecutor:
    """``apply`` / ``plan`` / ``status`` / ``health`` / ``down`` for ``target: swarm``."""

    def __init__(
        self,
        services: Services,
        settings: SwarmSettings | None = None,
        engine: SwarmEngine | None = None,
    ) -> None:
        self.s = services
        self.settings = settings
        self._engine = engine

    @property
    def engine(self) -> SwarmEngine:
        if self._engine is None:
            from tfsops.adapters.docker_swarm import SwarmEngine

            self._engine = SwarmEngine(self.s.runtime)
        return self._engine

    # ---- planning -----------------------------------------------------------------
    def desired(self, spec: DeploymentSpec) -> ServicePlan:
        return service_plan(spec, self.settings)

    def plan(self, spec: DeploymentSpec) -> SwarmPlan:
        desired = self.desired(spec)
        state = self.engine.state()
        if state.local_node_state != "active" or not state.manager:
            plan = compute_swarm_plan(desired, None)
            plan.reasons.append(
                f"note: the engine at {self.engine.url} is not a swarm manager; apply will refuse "
                "until `docker swarm init`"
            )
            return plan
        observed = self.engine.find_service(spec.name)
        if desired.settings.models == "image" and registry_host(desired.image):
            # What apply would pin: the registry's digest (else the one the tasks run).
            try:
                digest = self.engine.registry_digest(desired.image)
            except TfsopsError:
                digest = None
            digest = digest or (observed.image_digest if observed else None)
            desired = service_plan(spec, self.settings, image_digest=digest)
        return compute_swarm_plan(desired, observed)

    # ---- apply --------------------------------------------------------------------
    def apply(self, spec: DeploymentSpec, spec_path: Path, opts: ApplyOptions) -> SwarmApplyResult:
        from tfsops.plan.exposure import check_exposure

        check_exposure(spec, spec_path)  # mount only what serves
        check_models(spec)  # exit 3 before Docker is touched
        desired = self.desired(spec)  # InvalidInput for what Swarm cannot do
        engine = self.engine
        engine.require_manager(f"apply {spec.name}")  # exit 3 with the `docker swarm init` hint
        if desired.publish_mode == "host":
            eligible = sum(1 for _, ok in engine.nodes().values() if ok)
            problem = host_ports_problem(desired, eligible)
            if problem:
                raise InvalidInput(
                    problem,
                    hint="set swarm.update.order: stop-first, add nodes, or publish through the "
                    "routing mesh (ports.bind: 0.0.0.0, publish: ingress)",
                )
        self._check_capacity(desired)
        if desired.settings.models == "image":
            desired = self._distribute(spec, desired)
        state = DeploymentState.for_name(spec.name)
        new_state = not state.exists()
        state.ensure()
        try:
            with deployment_lock(
                state.lock_path, timeout=opts.lock_timeout, purpose=f"apply {spec.name}"
            ):
                plan = compute_swarm_plan(desired, engine.find_service(spec.name))
                return self._run(plan, spec, spec_path, state, opts)
        except BaseException:
            if new_state and not self._service_exists(spec.name):
                shutil.rmtree(state.root, ignore_errors=True)
            raise

    def _service_exists(self, name: str) -> bool:
        try:
            return self.engine.find_service(name) is not None
        except TfsopsError:
            return False

    def _run(
        self,
        plan: SwarmPlan,
        spec: DeploymentSpec,
        spec_path: Path,
        state: DeploymentState,
        opts: ApplyOptions,
    ) -> SwarmApplyResult:
        desired = plan.service
        engine = self.engine
        self.s.progress(f"{desired.service_name}: {plan.action} ({'; '.join(plan.reasons)})")
        warnings = list(desired.warnings)
        spec_text = _read(spec_path)
        state.write_meta(
            spec_file=str(spec_path.resolve()), target="swarm", service=desired.service_name
        )
        if plan.action == NOOP:
            assert plan.observed is not None
            health = self.health(spec, timeout=0) if opts.wait else None
            self._collect_garbage(spec.name)
            return SwarmApplyResult(plan, plan.observed.id, health, None, warnings)

        if opts.pull:
            self._ensure_image(desired.image)
        self._check_mounts(desired)
        engine.ensure_network(desired.network_name, spec.name)
        ids = engine.ensure_objects(desired.configs, spec.name)
        if plan.action == CREATE:
            service_id = engine.create_service(desired, ids)
            try:
                health = self._converge(
                    spec, desired, service_id, opts, before=None, is_update=False
                )
            except BaseException as exc:
                if not isinstance(exc, KeyboardInterrupt):
                    if opts.keep_failed:
                        self.s.progress(
                            f"keeping the failed service {desired.service_name} (--keep-failed)"
                        )
                    else:
                        self.s.progress(f"removing the failed service {desired.service_name}")
                        self._remove_everything(spec.name)
                raise
        else:
            observed = plan.observed
            assert observed is not None
            before = engine.update_status(observed.id)[2]
            engine.update_service(observed, desired, ids)
            service_id = observed.id
            try:
                health = self._converge(
                    spec, desired, service_id, opts, before=before, is_update=True
                )
            except OperationFailed:
                self._collect_garbage(spec.name)
                raise
            except NotReady as exc:
                # Leave things as they were: go back to the previous spec.
                self._roll_back(spec, desired, service_id, opts)
                self._collect_garbage(spec.name)
                raise NotReady(
                    exc.message + "\nthe update was rolled back", hint=exc.hint, details=exc.details
                ) from exc
        state.write_config_files({c.file: c.data for c in desired.configs if not c.secret})
        revision = record_revision(
            state, spec_text, desired.models_config, f"swarm {plan.action}"
        ).number
        self._collect_garbage(spec.name)
        return SwarmApplyResult(plan, service_id, health, revision, warnings)

    def _check_capacity(self, desired: ServicePlan) -> None:
        if desired.spec["TaskTemplate"]["Placement"].get("MaxReplicas"):
            eligible = sum(1 for _, ok in self.engine.nodes().values() if ok)
            problem = capacity_problem(desired, eligible)
            if problem:
                raise InvalidInput(
                    problem,
                    hint="raise swarm.max_replicas_per_node, add nodes, or set "
                    "swarm.update.order: stop-first",
                )

    def _distribute(self, spec: DeploymentSpec, desired: ServicePlan) -> ServicePlan:
        """``swarm.models: image``: every node pulls the image from its registry, and the
        service is pinned to the digest, so every replica runs the same bytes.

        An image on this manager (``tfsops commit``) is pushed first; one that is only in
        the registry is used as it is there."""
        ref = desired.image
        if registry_host(ref) is None:
            note = (
                f"image {ref} names no registry: it is not pushed or pinned, and every node "
                "must already have it (name it REGISTRY/REPO:TAG to distribute it)"
            )
            return dataclasses.replace(desired, warnings=(*desired.warnings, note))
        if self.s.runtime.image_labels(ref) is not None:
            self.s.progress(f"pushing {ref} to {registry_host(ref)} (every node pulls it there)")
            digest: str | None = self.engine.push_image(ref)
        else:
            digest = self.engine.registry_digest(ref)
            if digest is None:
                raise InvalidInput(
                    f"swarm.models is image, and {ref} is neither on the manager nor in its "
                    "registry",
                    hint="bake the models in on the manager (tfsops commit --tag "
                    f"{ref}), then apply again",
                )
        self.s.progress(f"the service runs {ref}@{digest} on every node")
        return service_plan(spec, self.settings, image_digest=digest)

    def _check_mounts(self, desired: ServicePlan) -> None:
        """Bind-mounted model folders must exist on every node the service may use: a
        node without them would reject the task only once the update runs there."""
        if desired.settings.models != "bind" or len(self.engine.nodes()) < 2:
            return
        self.s.progress("checking the model folders on every node")
        problems = self.engine.check_mounts(desired)
        if problems:
            raise InvalidInput(
                "model folders missing on "
                + ", ".join(sorted(problems))
                + " (Swarm mounts the same path on every node):\n  "
                + "\n  ".join(f"{node}: {why}" for node, why in sorted(problems.items())),
                hint="make the folders available at the same path on those nodes (or keep the "
                "service off them with swarm.placement), or bake the models in "
                "(swarm.models: image)",
                details={"nodes": problems},
            )

    def _ensure_image(self, ref: str) -> None:
        runtime = self.s.runtime
        if runtime.image_labels(ref) is None:
            # Each node pulls for itself; pulling here surfaces a missing image early.
            self.s.progress(f"image {ref} not present on this node: pulling")
            runtime.pull(ref, self.s.progress)

    # ---- convergence --------------------------------------------------------------
    def _converge(
        self,
        spec: DeploymentSpec,
        desired: ServicePlan,
        service_id: str,
        opts: ApplyOptions,
        *,
        before: str | None,
        is_update: bool,
    ) -> SwarmHealth | None:
        """Wait for Swarm to run ``desired`` on every replica, then for every replica to serve.

        ``before`` is the StartedAt of the update status seen before this update (an
        update status that old is about an earlier update and means nothing here).
        """
        clock = self.s.clock
        deadline = clock.monotonic() + opts.timeout
        if not opts.wait:
            return None  # Swarm still rolls a failing update back by itself
        self._wait_tasks(desired, service_id, deadline, opts, before=before, is_update=is_update)
        expected = expected_models(spec)  # with smoke requests, sent by the replica probe
        last = ""
        while True:
            health = self._health_once(spec, desired, service_id, expected, desired.image)
            if health.ok:
                return health
            if health.failed:
                error = health.error()
                assert error is not None
                if is_update:
                    self._roll_back(spec, desired, service_id, opts)
                    error.message += (
                        "\ntfsops rolled the update back: the previous spec is served again"
                    )
                raise error
            line = "; ".join(
                r.describe().replace("\n    ", " ") for r in health.replicas if not r.ok
            )
            line = "waiting: " + (line or "; ".join(health.problems) or "replicas starting")
            if line != last:
                self.s.progress(line)
                last = line
            if clock.monotonic() >= deadline:
                error = health.error(timeout=opts.timeout)
                assert error is not None
                raise error
            clock.sleep(POLL)

    def _wait_tasks(
        self,
        desired: ServicePlan,
        service_id: str,
        deadline: float,
        opts: ApplyOptions,
        *,
        before: str | None,
        is_update: bool,
    ) -> None:
        engine, clock = self.engine, self.s.clock
        last = ""
        self.s.progress(
            f"waiting for {desired.replicas} replica(s) to run the new spec"
            + (" (start-first rolling update)" if is_update else "")
            + f" (timeout {opts.timeout:g}s)"
        )
        while True:
            state, message, started = engine.update_status(service_id)
            if before is not None and started == before:
                state, message = None, None  # still the previous update's status
            tasks = engine.tasks(service_id, desired.network_name)
            if state in ROLLBACK_STATES:
                raise self._rolled_back(desired, service_id, tasks, message, deadline)
            if state == "paused":
                raise OperationFailed(
                    f"the rolling update of {desired.service_name} paused: {message}",
                    hint="fix the cause, then apply again (or `docker service rollback`)",
                    details={"tasks": [t.to_dict() for t in tasks]},
                )
            new = [t for t in tasks if t.template_hash == desired.template_hash]
            if not is_update:
                failed = [t for t in new if t.state in FAILED_TASK_STATES]
                if failed:
                    raise self._task_failed(
                        desired, failed[-1], "a replica of the new service failed"
                    )
            active = [t for t in tasks if t.active]
            running_new = [
                t
                for t in active
                if t.template_hash == desired.template_hash and t.state == "running"
            ]
            old = [t for t in active if t.template_hash != desired.template_hash]
            if state in (None, "completed") and len(running_new) == desired.replicas and not old:
                return
            pending = sorted({t.error for t in active if t.state != "running" and t.error})
            line = (
                f"swarm: {len(running_new)}/{desired.replicas} replica(s) running the new spec"
                + (f"; {len(old)} old" if old else "")
            )
            if pending:
                line += "; " + "; ".join(pending)
            if line != last:
                self.s.progress(line)
                last = line
            if clock.monotonic() >= deadline:
                raise NotReady(
                    f"Swarm did not run {desired.replicas} replica(s) of the new spec within "
                    f"{opts.timeout:g}s ({line})",
                    hint="see `docker service ps " + desired.service_name + " --no-trunc`",
                    details={"tasks": [t.to_dict() for t in tasks]},
                )
            clock.sleep(POLL)

    def _rolled_back(
        self,
        desired: ServicePlan,
        service_id: str,
        tasks: list[TaskInfo],
        message: str | None,
        deadline: float,
    ) -> OperationFailed:
        """Swarm is rolling the update back: wait until it is done, then describe why."""
        engine, clock = self.engine, self.s.clock
        self.s.progress(f"the update failed; Swarm is rolling back ({message})")
        state: str | None = None
        while clock.monotonic() < deadline:
            state, _, _ = engine.update_status(service_id)
            if state in ("rollback_completed", "rollback_paused"):
                break
            clock.sleep(POLL)
        tasks = engine.tasks(service_id, desired.network_name)
        culprits = [
            t
            for t in tasks
            if t.template_hash == desired.template_hash and (t.error or t.exit_code)
        ]
        culprit = culprits[-1] if culprits else None
        error = self._task_failed(
            desired,
            culprit,
            f"the rolling update of {desired.service_name} failed and Swarm rolled it back "
            f"({state or 'rolling back'}): {message}",
        )
        error.hint = (
            "the previous spec is served again; fix the cause (tfsops validate, the log "
            "lines above) and apply again"
        )
        error.details["update_state"] = state
        return error

    def _task_failed(
        self, desired: ServicePlan, task: TaskInfo | None, head: str
    ) -> OperationFailed:
        lines = self.engine.task_logs(task, LOG_TAIL) if task else []
        server_error = next((ln for ln in reversed(lines) if "Failed to start server" in ln), None)
        message = head
        if task is not None:
            message += f"\ntask {task.id[:12]} on {task.node or '?'}: {task.state}"
            if task.error:
                message += f" ({task.error})"
        if server_error:
            message += f"\n{server_error.strip()}"
        if lines:
            message += "\nlast log lines:\n  " + "\n  ".join(lines[-LOG_TAIL:])
        return OperationFailed(
            message,
            hint="fix the cause, then apply again (--keep-failed keeps a failed new service)",
            details={"task": task.to_dict() if task else None, "logs": lines},
        )

    def _roll_back(
        self, spec: DeploymentSpec, desired: ServicePlan, service_id: str, opts: ApplyOptions
    ) -> None:
        self.s.progress(f"rolling {desired.service_name} back to its previous spec")
        try:
            if not self.engine.rollback_service(service_id):
                return
            clock = self.s.clock
            deadline = clock.monotonic() + max(opts.timeout, 60.0)
            while clock.monotonic() < deadline:
                observed = self.engine.find_service(spec.name)
                if observed is None or observed.template_hash is None:
                    return
                tasks = self.engine.tasks(service_id, desired.network_name)
                active = [t for t in tasks if t.active]
                if (
                    observed.update_state in (None, "completed")
                    and active
                    and all(
                        t.template_hash == observed.template_hash and t.state == "running"
                        for t in active
                    )
                ):
                    return
                clock.sleep(POLL)
            self.s.progress("the rollback did not finish in time; see `docker service ps`")
        except TfsopsError as exc:
            self.s.progress(f"could not roll back: {exc.message}")

    # ---- health and status --------------------------------------------------------
    def _health_once(
        self,
        spec: DeploymentSpec,
        desired: ServicePlan,
        service_id: str,
        expected: list[ExpectedModel],
        image: str,
        template_hash: str | None = None,
    ) -> SwarmHealth:
        tasks = self.engine.tasks(service_id, desired.network_name)
        running = [t for t in tasks if t.active and t.state == "running"]
        problems = []
        if template_hash is not None:
            stale = [t for t in running if t.template_hash != template_hash]
            if stale:
                problems.append(f"{len(stale)} replica(s) still run an older spec")
        if len(running) != desired.replicas:
            problems.append(f"{len(running)}/{desired.replicas} replica(s) running")
        reachable = [t for t in running if t.ip]
        replicas: list[ReplicaHealth] = [
            ReplicaHealth(t, None, f"no address on network {desired.network_name}")
            for t in running
            if not t.ip
        ]
        try:
            clients = self.engine.probe(
                spec.name,
                desired.network_name,
                desired.settings.probe_image or image,
                [t.ip for t in reachable if t.ip],
                expected,
            )
        except TfsopsError as exc:
            replicas += [ReplicaHealth(t, None, f"probe failed: {exc.message}") for t in reachable]
        else:
            for t in reachable:
                assert t.ip is not None
                replicas.append(ReplicaHealth(t, check_health(clients[t.ip], expected)))
        replicas.sort(key=lambda r: (r.task.slot or 0, r.task.id))
        nodes = node_summary(self.engine.node_details(), tasks, replicas)
        problems += [
            f"node {n['node']} is {n['state']}: {n['replicas']} replica(s) there cannot be reached"
            for n in nodes
            if n["state"] != "ready" and n["replicas"]
        ]
        return SwarmHealth(
            spec.name, desired.replicas, tuple(replicas), tuple(problems), tuple(nodes)
        )

    def health(
        self, spec: DeploymentSpec, timeout: float = 0.0, smoke: bool = False
    ) -> SwarmHealth:
        """Every replica serves every expected version (and labels, and with ``smoke`` answers
        the smoke requests); waits up to ``timeout``."""
        engine, clock = self.engine, self.s.clock
        engine.require_manager(f"health {spec.name}")
        desired = self.desired(spec)
        expected = expected_models(spec, smoke=smoke)
        deadline = clock.monotonic() + max(timeout, 0.0)
        while True:
            observed = engine.find_service(spec.name)
            if observed is None:
                health = SwarmHealth(
                    spec.name, desired.replicas, (), (f"no service for deployment {spec.name!r}",)
                )
            else:
                health = self._health_once(
                    spec, desired, observed.id, expected, observed.image, observed.template_hash
                )
                health = dataclasses.replace(health, desired=observed.replicas)
            if health.ok or health.failed or clock.monotonic() >= deadline:
                return health
            clock.sleep(POLL)

    def status(self, spec: DeploymentSpec) -> dict[str, Any]:
        """The service, every task (replica) with node / state / error, and each running
        replica's model states."""
        engine = self.engine
        engine.require_manager(f"status {spec.name}")
        desired = self.desired(spec)
        observed = engine.find_service(spec.name)
        out: dict[str, Any] = {
            "deployment": spec.name,
            "target": "swarm",
            "service": None,
            "network": desired.network_name,
            "publish": {"mode": desired.publish_mode, "ports": [p.__dict__ for p in desired.ports]},
            "tasks": [],
            "replicas": [],
            "ok": False,
        }
        if observed is None:
            return out
        tasks = engine.tasks(observed.id, desired.network_name)
        health = self._health_once(
            spec,
            desired,
            observed.id,
            expected_models(spec, smoke=False),
            observed.image,
            observed.template_hash,
        )
        health = dataclasses.replace(health, desired=observed.replicas)
        if observed.image_digest and desired.settings.models == "image":
            desired = service_plan(spec, self.settings, image_digest=observed.image_digest)
        out["service"] = observed.to_dict() | {
            "running": sum(1 for t in tasks if t.active and t.state == "running"),
            "up_to_date": observed.spec_hash == desired.spec_hash,
        }
        # Current tasks first, then the recent history Swarm keeps (failed, shut down).
        out["tasks"] = [
            t.to_dict() for t in sorted(tasks, key=lambda t: (not t.active, t.slot or 0))
        ]
        out["replicas"] = [r.to_dict() for r in health.replicas]
        out["problems"] = list(health.problems)
        out["nodes"] = list(health.nodes)
        out["ok"] = health.ok
        return out

    # ---- down ---------------------------------------------------------------------
    def down(
        self, name: str, volumes: bool = False, *, lock_timeout: float = 120.0
    ) -> dict[str, Any]:
        """Remove the service, its config objects, its network and helper leftovers."""
        engine = self.engine
        state = DeploymentState.for_name(name)
        engine.require_manager(f"down {name}")
        observed = engine.find_service(name)
        objects = engine.list_objects(name)
        network = object_name(name)
        if observed is None and not objects and not state.exists():
            raise InvalidInput(
                f"no deployment named {name!r}", hint="`tfsops status` lists deployments"
            )
        removed: dict[str, Any] = {
            "deployment": name,
            "target": "swarm",
            "service": None,
            "network": None,
            "configs": [],
            "state_removed": False,
        }
        state.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with deployment_lock(state.lock_path, timeout=lock_timeout, purpose=f"down {name}"):
            if observed is not None:
                self.s.progress(f"removing service {observed.name}")
                engine.remove_service(observed.id)
                removed["service"] = observed.id
                engine.wait_tasks_gone(observed.id, name)
            engine.remove_probes(name)
            if engine.remove_network(network):
                removed["network"] = network
            removed["configs"] = self._remove_objects(name, keep=set(), wait=30.0)
        if volumes:
            shutil.rmtree(state.root, ignore_errors=True)
            removed["state_removed"] = True
        elif not state.exists():
            shutil.rmtree(state.root, ignore_errors=True)
        return removed

    def _remove_everything(self, name: str) -> None:
        try:
            observed = self.engine.find_service(name)
            if observed is not None:
                self.engine.remove_service(observed.id)
                self.engine.wait_tasks_gone(observed.id, name)
            self.engine.remove_network(object_name(name))
            self._remove_objects(name, keep=set(), wait=30.0)
        except TfsopsError as exc:
            self.s.progress(f"could not remove everything: {exc.message}")

    def _collect_garbage(self, name: str) -> None:
        """Remove the config objects the service no longer uses."""
        try:
            observed = self.engine.find_service(name)
            keep = set(observed.config_names) if observed else set()
            removed = self._remove_objects(name, keep=keep, wait=0.0)
            if removed:
                self.s.progress(f"removed unused config objects: {', '.join(removed)}")
        except TfsopsError as exc:
            self.s.progress(f"could not remove old config objects: {exc.message}")

    def _remove_objects(self, name: str, *, keep: set[str], wait: float) -> list[str]:
        clock = self.s.clock
        deadline = clock.monotonic() + wait
        removed: list[str] = []
        while True:
            left = [(k, i, n) for k, i, n in self.engine.list_objects(name) if n not in keep]
            for kind, object_id, object_name_ in left:
                if self.engine.remove_object(kind, object_id):
                    removed.append(object_name_)
            remaining = [o for o in self.engine.list_objects(name) if o[2] not in keep]
            if not remaining or clock.monotonic() >= deadline:
                return removed
            clock.sleep(0.5)  # still referenced by tasks that are shutting down


def _read(path: Path) -> str:
    from tfsops.inputs import text_file

    return text_file(path, "spec file")


def status_text(status: dict[str, Any]) -> str:
    """``SwarmExecutor.status`` for people: the service, its tasks, each replica's models."""
    name = status["deployment"]
    service = status.get("service")
    if service is None:
        return f"{name}: no swarm service (network {status['network']})"
    ports = status["publish"]["ports"]
    published = ", ".join(
        f"{p['purpose']} {p['published']}->{p['target']} ({p['mode']})" for p in ports
    )
    lines = [
        f"{service['name']}: {service['running']}/{service['replicas']} running, image "
        f"{service['image']}, ports {published or 'not published'}"
        + ("" if service["up_to_date"] else " (differs from the spec: tfsops plan)"),
    ]
    if service.get("update_state"):
        message = service.get("update_message") or ""
        lines.append(f"  last update: {service['update_state']} {message}".rstrip())
    for t in status["tasks"]:
        error = f" error: {t['error']}" if t["error"] else ""
        lines.append(
            f"  task {t['id'][:12]} slot {t['slot']} on {t['node'] or '?'}: "
            f"{t['state']} (desired {t['desired_state']}){error}"
        )
    for r in status["replicas"]:
        head = f"  replica {r['slot']} ({r['ip']}): {'ok' if r['ok'] else 'not ready'}"
        lines.append(head + (f": {r['problem']}" if r["problem"] else ""))
        for m in (r["health"] or {}).get("models", []):
            states = ", ".join(
                f"v{v['version']} {v['state']}" for v in m["versions"] if v["expected"]
            )
            lines.append(
                f"    {m['name']}: {m['status']} ({states or m['problem'] or 'no versions'})"
            )
    lines += ["  " + node_line(n) for n in status.get("nodes", [])]
    lines += [f"  problem: {p}" for p in status.get("problems", [])]
    return "\n".join(lines)


def node_summary(
    nodes: list[dict[str, Any]], tasks: list[TaskInfo], replicas: list[ReplicaHealth]
) -> list[dict[str, Any]]:
    """Per swarm node: its role, availability and state, the replicas meant to run there
    (slots) and how many of them serve every expected model."""
    out = []
    for n in nodes:
        here = [t for t in tasks if t.active and t.node_id == n["id"]]
        ready = [r for r in replicas if r.ok and r.task.node_id == n["id"]]
        out.append(
            {
                "node": n["node"],
                "role": n["role"],
                "availability": n["availability"],
                "state": n["state"],
                "replicas": len(here),
                "slots": sorted(t.slot for t in here if t.slot is not None),
                "ready": len(ready),
            }
        )
    return out


def node_line(n: dict[str, Any]) -> str:
    return (
        f"node {n['node']} ({n['role']}, {n['state']}, {n['availability']}): "
        f"{n['replicas']} replica(s), {n['ready']} ready"
    )
