"""Converge a deployment: run a ``DeployPlan`` through the ports.

Never prints: progress goes through ``services.progress``; the result is data.
Every failure leaves things as they were: a new container that fails is
removed (unless ``keep_failed``), a replaced container is restored, files
written for a new deployment are removed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsops.errors import InvalidInput, OperationFailed, TfsopsError
from tfsops.health import HealthReport, wait_until_healthy
from tfsops.lock import deployment_lock
from tfsops.plan.container import LABEL_DEPLOYMENT, ContainerPlan, container_plan
from tfsops.plan.diff import CREATE, HOT_RELOAD, NOOP, RECREATE, START, DeployPlan, compute_plan
from tfsops.plan.expected import check_models, expected_models
from tfsops.plan.exposure import check_exposure
from tfsops.plan.mounts import restart_refused, unmounted_folders
from tfsops.plan.render import RenderedFiles, render_all
from tfsops.ports import ContainerInfo, ContainerRuntime
from tfsops.recovery import interrupted, restart_if_crash_looping, resume_swap
from tfsops.reload import repair_interrupted_reload, transactional_reload
from tfsops.revisions import record_revision
from tfsops.services import Services, endpoint_for
from tfsops.spec.model import DeploymentSpec
from tfsops.state import DeploymentState

if TYPE_CHECKING:
    from tfsops.build.hostcompat import HostFacts

LOG_TAIL = 30


@dataclass
class ApplyOptions:
    wait: bool = True
    timeout: float = 300.0
    keep_failed: bool = False
    force: bool = False  # deploy an image whose build labels do not fit this host
    lock_timeout: float = 120.0
    pull: bool = True
    prune: bool = False  # allow unloading any model the running server serves
    remove: tuple[str, ...] = ()  # models the user asked to remove (remove-model)
    reason: str = "apply"  # recorded with the revision
    force_reload: bool = (
        False  # send the model list even when it looks unchanged (reload, rollback)
    )
    # The command, when it is documented as hot: a change that needs a new container
    # (a restart) is refused with exit 3 instead of done. None: apply, deploy, --recreate.
    hot_only: str | None = None


@dataclass
class ApplyResult:
    plan: DeployPlan
    container_id: str | None
    health: HealthReport | None
    revision: int | None
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.plan.container.labels.get("io.tfsops.deployment"),
            "action": self.plan.action,
            "plan": self.plan.to_dict(),
            "container_id": self.container_id,
            "revision": self.revision,
            "health": self.health.to_dict() if self.health else None,
        }


class ContainerDied(OperationFailed):
    pass


class Executor:
    def __init__(self, services: Services) -> None:
        self.s = services

    @property
    def runtime(self) -> ContainerRuntime:
        """The engine, through the narrow port the docker target needs (a fake in unit tests)."""
        return self.s.runtime

    # ---- planning -------------------------------------------------------------
    def desired(self, spec: DeploymentSpec) -> tuple[RenderedFiles, ContainerPlan, DeploymentState]:
        state = DeploymentState.for_name(spec.name)
        files = render_all(spec)
        return files, container_plan(spec, files, state.config_dir), state

    def plan(self, spec: DeploymentSpec) -> DeployPlan:
        """What `apply` would do, including the repairs an interrupted run left pending."""
        from tfsops.recovery import pending_swap, plan_with_repairs

        files, desired, state = self.desired(spec)
        swap = pending_swap(self.runtime, desired)
        observed = swap.observed if swap is not None else self._observed(spec)
        plan = compute_plan(
            desired, files.models_config, observed, state.applied_file("models.config")
        )
        return plan_with_repairs(plan, state, swap)

    def _observed(self, spec: DeploymentSpec) -> ContainerInfo | None:
        """The deployment's container: the one with its name, else the newest with its label."""
        named = self.runtime.inspect(spec.container_name)
        if named is not None and named.labels.get(LABEL_DEPLOYMENT) == spec.name:
            return named
        return self.runtime.find(spec.name)

    # ---- apply ----------------------------------------------------------------
    def apply(
        self,
        spec: DeploymentSpec,
        spec_path: Path,
        opts: ApplyOptions,
        refresh: Callable[[], DeploymentSpec] | None = None,
    ) -> ApplyResult:
        """Lock the deployment and converge it to ``spec`` (read from ``spec_path``).

        ``refresh`` reads the spec again once the lock is held: a run that held the lock
        before (add-model, ...) may have changed the file since ``spec`` was read.
        """
        state = DeploymentState.for_name(spec.name)
        with self.locked(state, opts, f"apply {spec.name}"):
            text = _read(spec_path)
            if refresh is not None:
                spec = refresh()
                if spec.name != state.name:
                    raise InvalidInput("the deployment name in the spec changed during apply")
            return self.converge(spec, text, spec_path, opts)

    @contextlib.contextmanager
    def locked(self, state: DeploymentState, opts: ApplyOptions, purpose: str) -> Iterator[None]:
        """Hold the deployment's lock; a brand-new deployment that fails leaves no state behind."""
        _ = self.runtime  # engine unreachable -> exit 4 before any file is written
        new_state = not state.exists()
        state.ensure()
        try:
            with deployment_lock(state.lock_path, timeout=opts.lock_timeout, purpose=purpose):
                yield
        except BaseException:
            if new_state and not self._container_exists(state.name):
                shutil.rmtree(state.root, ignore_errors=True)
            raise

    def converge(
        self, spec: DeploymentSpec, spec_text: str, spec_path: Path, opts: ApplyOptions
    ) -> ApplyResult:
        """Converge with the lock held. ``spec_text`` is recorded in the revision."""
        check_exposure(spec, spec_path)  # mount only what serves
        files, desired, state = self.desired(spec)
        # Exit 3 before Docker is touched, for the models this change touches: a bad new
        # version in another model is the server's business and holds no one hostage.
        touched = touched_models(files.models_config, state.applied_file("models.config"))
        check_models(spec, touched)
        resume_swap(self.runtime, desired, self.s.progress)
        observed = self._observed(spec)
        if observed is not None and observed.status == "running":
            repair_interrupted_reload(spec, self.s, state)
        plan = restart_if_crash_looping(
            compute_plan(
                desired, files.models_config, observed, state.applied_file("models.config")
            ),
            state,
        )
        if plan.action == RECREATE and opts.hot_only is not None and observed is not None:
            raise restart_refused(
                opts.hot_only, unmounted_folders(observed, desired), plan.reasons, desired.name
            )
        unasked = [m for m in plan.models.removed if m.name not in opts.remove]
        if observed is not None and unasked and not opts.prune:
            names = ", ".join(m.name for m in unasked)
            raise InvalidInput(
                f"this would unload {names}, which {spec.name} serves now",
                hint="if that is meant, use `tfsops remove-model NAME --yes`, or apply with --prune",
                details={"would_unload": [m.name for m in unasked]},
            )
        if touched is not None and plan.action in (CREATE, RECREATE, START):
            check_models(spec)  # a (re)started server loads every model
        return self._run(plan, spec, spec_text, spec_path, files, state, opts)

    def _container_exists(self, name: str) -> bool:
        try:
            return self.runtime.find(name) is not None
        except TfsopsError:
            return False

    def _run(
        self,
        plan: DeployPlan,
        spec: DeploymentSpec,
        spec_text: str,
        spec_path: Path,
        files: RenderedFiles,
        state: DeploymentState,
        opts: ApplyOptions,
    ) -> ApplyResult:
        self.s.progress(f"{plan.container.name}: {plan.action} ({'; '.join(plan.reasons)})")
        warnings: list[str] = []
        state.write_meta(spec_file=str(spec_path.resolve()))
        if plan.action == NOOP and opts.force_reload and plan.observed is not None:
            plan = dataclasses.replace(plan, action=HOT_RELOAD, reasons=["reload requested"])
        if plan.action == NOOP:
            health = self._check(spec, opts) if opts.wait else None
            return ApplyResult(
                plan, plan.observed.id if plan.observed else None, health, None, warnings
            )
        if plan.action == HOT_RELOAD:
            outcome = transactional_reload(
                spec,
                spec_text,
                self.s,
                state,
                timeout=opts.timeout,
                reason=opts.reason,
                allow_remove=[m.name for m in plan.models.removed],
                force=opts.force_reload,
                models_checked=True,
            )
            return ApplyResult(
                plan,
                plan.observed.id if plan.observed else None,
                outcome.health,
                outcome.revision,
                warnings,
            )
        warnings += self._preflight(spec, plan, opts)
        if plan.action == START:
            assert plan.observed is not None
            previous = _snapshot(state)
            state.write_config_files(files.files())
            try:
                if plan.observed.status in ("running", "restarting"):
                    # Crash-looping: a start would be a no-op; stop it, then start it afresh.
                    self.runtime.stop(plan.observed.id)
                self.runtime.start(plan.observed.id)
                health = self._wait(spec, plan.observed.id, opts, self._restarts(plan.observed.id))
            except KeyboardInterrupt:
                # The container may be running on the files just written: keep them.
                raise interrupted(self.runtime, spec.container_name, "starting") from None
            except BaseException:
                _restore_snapshot(state, previous)
                raise
            revision = record_revision(state, spec_text, files.models_config, "start").number
            return ApplyResult(plan, plan.observed.id, health, revision, warnings)
        if plan.action == CREATE:
            return self._create(plan, spec, spec_text, files, state, opts, warnings)
        assert plan.action == RECREATE
        return self._recreate(plan, spec, spec_text, files, state, opts, warnings)

    def _create(
        self,
        plan: DeployPlan,
        spec: DeploymentSpec,
        spec_text: str,
        files: RenderedFiles,
        state: DeploymentState,
        opts: ApplyOptions,
        warnings: list[str],
    ) -> ApplyResult:
        runtime = self.runtime
        other = runtime.inspect(plan.container.name)
        if other is not None:
            raise InvalidInput(
                f"a container named {plan.container.name} exists and is not managed by tfsops",
                hint="remove or rename it, or choose another deployment name",
            )
        previous = _snapshot(state)
        state.write_config_files(files.files())
        container_id = None
        try:
            container_id = runtime.create(plan.container)
            self._start(container_id, spec)
            health = self._wait(spec, container_id, opts)
        except KeyboardInterrupt:
            if container_id is None and runtime.inspect(plan.container.name) is None:
                _restore_snapshot(state, previous)
                raise
            # Ctrl-C (also one that cut the create call short after the engine made the
            # container): the container is left as it is, so it keeps the files it mounts
            # (a restart without models.config would crash-loop); `apply` resumes.
            raise interrupted(runtime, plan.container.name, "creating") from None
        except BaseException as exc:
            self._discard(container_id, opts, exc)
            _restore_snapshot(state, previous)
            raise
        revision = record_revision(state, spec_text, files.models_config, "create").number
        return ApplyResult(plan, container_id, health, revision, warnings)

    def _recreate(
        self,
        plan: DeployPlan,
        spec: DeploymentSpec,
        spec_text: str,
        files: RenderedFiles,
        state: DeploymentState,
        opts: ApplyOptions,
        warnings: list[str],
    ) -> ApplyResult:
        """Replace the container; if the new one fails, the old one is started again."""
        runtime = self.runtime
        old = plan.observed
        assert old is not None
        staging = dataclasses.replace(plan.container, name=f"{plan.container.name}-next")
        leftover = runtime.inspect(staging.name)
        if leftover is not None:
            runtime.remove(leftover.id)
        previous = _snapshot(state)
        new_id = runtime.create(staging)  # fails early (image, mounts) with the old one untouched
        was_running = old.status == "running"
        try:
            if was_running:
                self.s.progress(f"stopping the old container {old.name}")
                runtime.stop(old.id)
            state.write_config_files(files.files())
            self._start(new_id, spec)
            health = self._wait(spec, new_id, opts)
        except KeyboardInterrupt:
            # Leave both as they are (the new one may be serving on the new files);
            # say which exist: the next `apply` finishes or undoes the swap, `down` removes both.
            raise interrupted(runtime, plan.container.name, "replacing") from None
        except BaseException as exc:
            self._discard(new_id, opts, exc)
            _restore_snapshot(state, previous)
            if was_running:
                self.s.progress(f"restarting the previous container {old.name}")
                try:
                    runtime.start(old.id)
                except TfsopsError as restart_exc:
                    self.s.progress(f"could not restart {old.name}: {restart_exc.message}")
            raise
        try:
            runtime.remove(old.id)
            runtime.rename(new_id, plan.container.name)
        except KeyboardInterrupt:
            raise interrupted(runtime, plan.container.name, "replacing") from None
        revision = record_revision(state, spec_text, files.models_config, "recreate").number
        return ApplyResult(plan, new_id, health, revision, warnings)

    def _discard(self, container_id: str | None, opts: ApplyOptions, exc: BaseException) -> None:
        if container_id is None:
            return
        if isinstance(exc, KeyboardInterrupt):
            return  # Ctrl-C: leave the container as it is; the CLI says so
        if opts.keep_failed:
            self.s.progress(f"keeping the failed container {container_id[:12]} (--keep-failed)")
            return
        self.runtime.remove(container_id)

    def _start(self, container_id: str, spec: DeploymentSpec) -> None:
        try:
            self.runtime.start(container_id)
        except OperationFailed as exc:
            if spec.gpu is not None and (
                "device driver" in exc.message or "gpu" in exc.message.lower()
            ):
                raise OperationFailed(
                    f"the container could not get a GPU: {exc.message}",
                    hint="install the NVIDIA driver and the NVIDIA Container Toolkit "
                    "(nvidia-container-toolkit) on the Docker host, then restart dockerd; "
                    "or deploy without --gpu",
                ) from exc
            raise

    def _preflight(self, spec: DeploymentSpec, plan: DeployPlan, opts: ApplyOptions) -> list[str]:
        """Image present (pull if not), built for this host, ports free: before anything is created."""
        runtime = self.runtime
        warnings: list[str] = []
        ref = plan.container.image
        labels = runtime.image_labels(ref)
        if labels is None:
            if not opts.pull:
                raise OperationFailed(f"image {ref} is not present locally (and --no-pull)")
            self.s.progress(f"image {ref} not present: pulling")
            runtime.pull(ref, self.s.progress)
            labels = runtime.image_labels(ref) or {}
        warnings += _host_compat(labels, spec, ref, opts.force, self.s.host_facts)
        mine = plan.observed.name if plan.observed else None
        holders = runtime.port_holders()
        for port in plan.container.ports:
            holder = holders.get(port.host_port)
            if holder == mine:
                continue
            if holder is not None:
                raise InvalidInput(
                    f"port {port.host_port} ({port.purpose}) is taken by container {holder}",
                    hint=f"stop it (tfsops down -d {holder.removeprefix('tfsops-')})"
                    if holder.startswith("tfsops-")
                    else "choose other ports in the spec (ports.rest / ports.grpc)",
                )
            if not runtime.host_port_free(port.host_ip, port.host_port):
                raise InvalidInput(
                    f"port {port.host_ip}:{port.host_port} ({port.purpose}) is taken by another program",
                    hint="choose other ports in the spec (ports.rest / ports.grpc)",
                )
        return warnings

    # ---- readiness --------------------------------------------------------------
    def _check(self, spec: DeploymentSpec, opts: ApplyOptions) -> HealthReport:
        """Nothing to change: still, `apply` promises every model AVAILABLE (a CI gate)."""
        client = self.s.serving_factory(endpoint_for(spec))
        report = wait_until_healthy(
            client, expected_models(spec), timeout=opts.timeout, interval=0.5, clock=self.s.clock
        )
        error = report.error(timeout=opts.timeout)
        if error is not None:
            raise error
        return report

    def _restarts(self, container_id: str) -> int:
        info = self.runtime.inspect(container_id)
        return info.restart_count if info is not None else 0

    def _wait(
        self, spec: DeploymentSpec, container_id: str, opts: ApplyOptions, restarts: int = 0
    ) -> HealthReport | None:
        """Wait until healthy; the container dying (or restarting more than the ``restarts``
        it had when started) ends the wait with its log lines."""
        if not opts.wait:
            return None
        client = self.s.serving_factory(endpoint_for(spec))
        runtime = self.runtime
        last_line = ""

        def watch(report: HealthReport) -> None:
            nonlocal last_line
            info = runtime.inspect(container_id)
            if (
                info is None
                or info.status in ("exited", "dead", "restarting")
                or info.restart_count > restarts
            ):
                raise self._died(container_id, info)
            line = "waiting: " + (
                "server starting (ports open after the initial load)"
                if report.server_starting
                else "; ".join(m.describe() for m in report.models)
            )
            if line != last_line:
                self.s.progress(line)
                last_line = line

        self.s.progress(f"waiting until every model is AVAILABLE (timeout {opts.timeout:g}s)")
        report = wait_until_healthy(
            client,
            expected_models(spec),
            timeout=opts.timeout,
            interval=0.1,  # connection refused answers at once: polling is cheap
            clock=self.s.clock,
            on_progress=watch,
        )
        error = report.error(timeout=opts.timeout)
        if error is not None:
            if report.failed:
                error.details["logs"] = self._tail(container_id)
            raise error
        return report

    def _tail(self, container_id: str) -> list[str]:
        try:
            return self.runtime.logs(container_id, tail=LOG_TAIL).splitlines()
        except TfsopsError:
            return []

    def _died(self, container_id: str, info: ContainerInfo | None) -> ContainerDied:
        lines = self._tail(container_id)
        server_error = next((ln for ln in reversed(lines) if "Failed to start server" in ln), None)
        code = info.exit_code if info else None
        message = f"the container exited (code {code}) before every model was AVAILABLE"
        if server_error:
            message += f": {server_error.strip()}"
        return ContainerDied(
            message + ("\nlast log lines:\n  " + "\n  ".join(lines[-LOG_TAIL:]) if lines else ""),
            hint="fix the cause, then deploy again (--keep-failed keeps the container to inspect it)",
            details={"exit_code": code, "logs": lines},
        )

    # ---- down -------------------------------------------------------------------
    def down(self, name: str, *, volumes: bool, lock_timeout: float = 120.0) -> dict[str, Any]:
        state = DeploymentState.for_name(name)
        runtime = self.runtime
        container = runtime.find(name)
        if container is None and not state.exists():
            raise InvalidInput(
                f"no deployment named {name!r}", hint="`tfsops status` lists deployments"
            )
        removed: dict[str, Any] = {"deployment": name, "container": None, "state_removed": False}
        with deployment_lock(state.lock_path, timeout=lock_timeout, purpose=f"down {name}"):
            # Every container labelled as this deployment's (an interrupted recreate leaves two).
            others: list[str] = []
            while container is not None and len(others) < 20:
                self.s.progress(f"stopping and removing {container.name}")
                runtime.remove(container.id)
                if removed["container"] is None:
                    removed["container"] = container.id
                else:
                    others.append(container.id)
                container = runtime.find(name)
            staging = runtime.inspect(f"tfsops-{name}-next")
            if staging is not None:
                runtime.remove(staging.id)
                others.append(staging.id)
            if others:
                removed["also_removed"] = others
        if volumes:
            shutil.rmtree(state.root, ignore_errors=True)
            removed["state_removed"] = True
        return removed


def _read(path: Path) -> str:
    from tfsops.inputs import text_file

    return text_file(path, "spec file")


def _snapshot(state: DeploymentState) -> dict[str, str]:
    if not state.config_dir.is_dir():
        return {}
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in state.config_dir.iterdir()
        if p.is_file() and not p.name.startswith(".")
    }


def _restore_snapshot(state: DeploymentState, files: dict[str, str]) -> None:
    if state.config_dir.is_dir():
        state.write_config_files(files)


def _host_compat(
    labels: dict[str, str],
    spec: DeploymentSpec,
    image: str,
    force: bool,
    host_facts: Callable[[], HostFacts] | None = None,
) -> list[str]:
    """Refuse an image built for CPU flags / CUDA this host lacks (instead of 'Illegal instruction')."""
    from tfsops.build.hostcompat import ensure_image_compatible
    from tfsops.build.hostfacts import read_host_facts

    read = host_facts or read_host_facts

    devices = None
    if spec.gpu is not None and isinstance(spec.gpu.devices, list):
        ids = spec.gpu.devices
        devices = (
            [d for d in ids if isinstance(d, int)] if all(isinstance(d, int) for d in ids) else None
        )
    return list(ensure_image_compatible(labels, read(), force, image=image, devices=devices))


def touched_models(desired: str, applied: str | None) -> list[str] | None:
    """Models a hot change adds or changes (None: every model, when nothing was applied yet)."""
    if applied is None:
        return None
    from tfsops.plan.diff import model_diff

    diff = model_diff(applied, desired)
    return [m.name for m in diff.added] + [new.name for _old, new in diff.changed]
