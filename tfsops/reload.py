"""The one transactional hot-reload path (``HandleReloadConfigRequest``).

TF Serving's reload replaces the whole model list, cannot be read back, can
hang, and half-applies some errors (reference §3.4). So, with the deployment
lock held by the caller:

1. render the full models.config from the spec (never a partial list);
2. validate every model folder; refuse to unload models nobody removed;
3. reload in two phases when labels move: first the models (labels kept where
   they can already be assigned), then, once every version is AVAILABLE, the
   final labels (upstream's recommended label flow, g3doc/serving_config.md);
4. each RPC has a deadline; after it, wait until every expected version is
   AVAILABLE;
5. on any failure re-apply the last good config and report the server's reason;
6. only after success write models.config (atomically) and record a revision.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tfsops.errors import (
    EngineUnreachable,
    InvalidInput,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.health import HealthReport, wait_until_healthy
from tfsops.plan.diff import ModelDiff, model_diff, parse_models_config
from tfsops.plan.expected import check_models, expected_models
from tfsops.plan.render import render_models_config
from tfsops.ports import AVAILABLE, ExpectedModel, ServingClient
from tfsops.revisions import record_revision
from tfsops.services import Services, endpoint_for
from tfsops.spec.model import DeploymentSpec
from tfsops.state import DeploymentState, StateWriteError, atomic_write

DEFAULT_RPC_TIMEOUT = 60.0


@dataclass
class ReloadOutcome:
    changed: bool
    diff: ModelDiff
    revision: int | None = None
    health: HealthReport | None = None
    phases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "models": self.diff.to_dict(),
            "revision": self.revision,
            "phases": self.phases,
            "health": self.health.to_dict() if self.health else None,
        }


def _available(client: ServingClient, model: str) -> set[int]:
    try:
        return {s.version for s in client.model_status(model) if s.state == AVAILABLE}
    except TfsopsError:
        return set()


def staged_labels_config(
    spec: DeploymentSpec, applied: str | None, client: ServingClient
) -> DeploymentSpec:
    """The spec with labels limited to what TF Serving will accept right now.

    A label may be assigned to an AVAILABLE version, or (with
    --allow_version_labels_for_unavailable_models, which tfsops always sets) a
    *new* label to any version; an existing label cannot move to a version that
    is not AVAILABLE yet — it keeps its old version until phase two.
    """
    old = {m.name: m.labels for m in parse_models_config(applied)}
    models = []
    for model in spec.models:
        previous = old.get(model.name, {})
        moves = any(
            previous.get(label, version) != version for label, version in model.labels.items()
        )
        # Only a label that moves needs the server's view (a new label, or one that keeps
        # its version, is accepted on any version): no status reads when no label moves.
        available = _available(client, model.name) if moves else set()
        staged: dict[str, int] = {}
        for label, version in model.labels.items():
            if previous.get(label, version) == version or version in available:
                staged[label] = version
            elif previous[label] in available:
                staged[label] = previous[label]
        models.append(model.model_copy(update={"labels": staged}))
    return spec.model_copy(update={"models": models})


def _without_labels(expected: list[ExpectedModel]) -> list[ExpectedModel]:
    return [ExpectedModel(e.name, e.versions, {}) for e in expected]


def transactional_reload(
    spec: DeploymentSpec,
    spec_text: str,
    services: Services,
    state: DeploymentState,
    *,
    allow_remove: Collection[str] = (),
    timeout: float = 300.0,
    rpc_timeout: float | None = None,
    reason: str = "reload",
    force: bool = False,
    models_checked: bool = False,
) -> ReloadOutcome:
    """Bring the running server to ``spec``'s model list; see the module docstring.

    Each reload RPC's deadline is ``rpc_timeout``, by default the caller's
    ``timeout`` (``--timeout``). Putting the previous list back waits at least
    as long as the server may still be busy with a failing load (its retries
    are bounded by flags tfsops sets).
    """
    from tfsops.plan.container import load_failure_bound

    rpc_timeout = timeout if rpc_timeout is None else rpc_timeout
    # The server finishes a failing load (its retries) before it takes the next reload.
    restore_timeout = max(rpc_timeout, load_failure_bound(spec))
    desired = render_models_config(spec)
    applied = state.applied_file("models.config")
    diff = model_diff(applied, desired)
    unexpected = sorted(m.name for m in diff.removed if m.name not in allow_remove)
    if unexpected:
        raise InvalidInput(
            f"this change would unload {', '.join(unexpected)}, which nobody asked to remove",
            hint="remove models explicitly with `tfsops remove-model NAME --yes`",
            details={"would_unload": unexpected},
        )
    if not models_checked:  # converge() has just validated every folder
        check_models(spec)
    repair_interrupted_reload(spec, services, state)
    if diff.empty and not force:
        return ReloadOutcome(changed=False, diff=diff)

    endpoint = endpoint_for(spec)
    client = services.serving_factory(endpoint)
    admin = services.admin_factory(endpoint)
    # Smoke requests go to the models this change adds or changes: the others answered
    # before, and one model's bad new version on disk holds no one else's change hostage.
    touched = {m.name for m in diff.added} | {new.name for _old, new in diff.changed}
    expected = [
        e if e.name in touched else replace(e, smoke=None) for e in expected_models(spec)
    ]
    outcome = ReloadOutcome(changed=True, diff=diff)
    # Write-ahead: if this process dies between the RPC and the file write, the
    # next run finds the intent and puts the server back on the file's list.
    _write_intent(state, desired)
    try:
        staged = render_models_config(staged_labels_config(spec, applied, client))
        services.progress(f"reloading {spec.name}: {len(spec.models)} model(s)")
        admin.reload_config(staged, timeout=rpc_timeout)
        outcome.phases.append("models")
        report = wait_until_healthy(
            client,
            _without_labels(expected) if staged != desired else expected,
            timeout=timeout,
            interval=0.5,
            clock=services.clock,
        )
        error = report.error(timeout=timeout)
        if error is not None:
            raise error
        if staged != desired:
            admin.reload_config(desired, timeout=rpc_timeout)
            outcome.phases.append("labels")
            report = wait_until_healthy(
                client, expected, timeout=timeout, interval=0.5, clock=services.clock
            )
            error = report.error(timeout=timeout)
            if error is not None:
                raise error
        outcome.health = report
    except TfsopsError as exc:
        restored = _restore(admin, applied, restore_timeout, services)
        if restored:
            _clear_intent(state)
        raise OperationFailed(
            f"reload of {spec.name} failed: {exc.message}"
            + (
                "; the previous model list was restored"
                if restored
                else "; the previous model list could not be put back yet: the next tfsops "
                "command on this deployment does it"
                if applied
                else ""
            ),
            hint=exc.hint or "models.config on disk was not changed",
            details={"restored": restored, **exc.details},
        ) from exc
    # Only now is the new list live: make a restart reproduce it.
    try:
        state.write_config_files({"models.config": desired}, remove_others=False)
    except StateWriteError as exc:
        # The file keeps the old list; keep the server on it too, so a restart changes nothing.
        restored = _restore(admin, applied, restore_timeout, services)
        if restored:
            _clear_intent(state)
        raise OperationFailed(
            exc.message
            + ("; the server was put back on the previous model list" if restored else ""),
            hint=exc.hint,
            details={"restored": restored},
        ) from exc
    _clear_intent(state)
    try:
        outcome.revision = record_revision(state, spec_text, desired, reason).number
    except OSError as exc:
        services.progress(f"warning: the change is live but its revision was not recorded: {exc}")
    return outcome


def _intent_path(state: DeploymentState) -> Path:
    return state.root / "reload-intent.json"


def _write_intent(state: DeploymentState, desired: str) -> None:
    try:
        atomic_write(
            _intent_path(state),
            json.dumps({"pid": os.getpid(), "started": time.time(), "config": desired}),
            mode=0o600,
        )
    except OSError as exc:
        raise OperationFailed(
            f"cannot write to the state folder {state.root}: {exc.strerror or exc}",
            hint="free disk space or fix the state folder's permissions; nothing was changed",
        ) from exc


def _clear_intent(state: DeploymentState) -> None:
    with contextlib.suppress(FileNotFoundError):
        _intent_path(state).unlink()


def repair_interrupted_reload(
    spec: DeploymentSpec, services: Services, state: DeploymentState
) -> bool:
    """After a crash between the reload RPC and the file write, the server may serve a list
    that models.config does not hold. Put it back on the file's list (what a restart would
    load). Returns True when a repair was needed."""
    if not _intent_path(state).exists():
        return False
    applied = state.applied_file("models.config")
    if applied:
        admin = services.admin_factory(endpoint_for(spec))
        try:
            admin.reload_config(applied, timeout=DEFAULT_RPC_TIMEOUT)
        except (ServerStarting, EngineUnreachable):
            pass  # not running: it will read models.config when it starts
        except TfsopsError as exc:
            raise OperationFailed(
                f"an interrupted reload left {spec.name} out of step with models.config, "
                f"and re-applying models.config failed: {exc.message}",
                hint="restart the server (`tfsops apply` after `tfsops down`) to load models.config",
            ) from exc
    services.progress(f"repaired an interrupted reload: {spec.name} is back on models.config")
    _clear_intent(state)
    return True


def _restore(admin: Any, applied: str | None, rpc_timeout: float, services: Services) -> bool:
    if not applied:
        return False
    try:
        admin.reload_config(applied, timeout=rpc_timeout)
    except TfsopsError as exc:
        services.progress(f"could not restore the previous model list: {exc.message}")
        return False
    return True
