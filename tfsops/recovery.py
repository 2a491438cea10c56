"""What an interrupted run leaves behind, how it is reported, and how the next run resumes.

- Ctrl-C while a container is created, started or replaced leaves the
  containers as they are, with the files they mount; the message names the
  containers that exist (``interrupted``).
- An interrupted recreate can leave ``tfsops-<name>-next`` beside the old
  container: the next ``apply`` finishes the swap when the staged container
  runs what the spec asks for, and removes it otherwise (``resume_swap``).
- A container that crash-loops (restarted by its policy, its files gone) is
  restarted on freshly written files (``restart_if_crash_looping``).
- A ``kill -9`` between the reload RPC and the ``models.config`` write leaves
  the reload intent: ``plan``, ``status`` and ``health`` report the pending
  repair (``pending_reload_repair``) until a command makes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfsops.errors import TfsopsError
from tfsops.plan.container import LABEL_CONFIG_HASH, ContainerPlan
from tfsops.plan.diff import HOT_RELOAD, NOOP, START, DeployPlan
from tfsops.ports import ContainerInfo, ContainerRuntime
from tfsops.state import DeploymentState

REPAIR = "repair"  # plan action: nothing to change but what an interrupted run left


class DeployInterrupted(KeyboardInterrupt):
    """Ctrl-C during a deploy, with what was left (a KeyboardInterrupt: cleanup code sees one)."""

    def __init__(self, message: str, hint: str, details: dict[str, object]) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details


def staging_name(container_name: str) -> str:
    return f"{container_name}-next"


def _describe(info: ContainerInfo | None, name: str, role: str) -> tuple[str, dict[str, object]]:
    if info is None:
        return f"{name} ({role}) does not exist", {"name": name, "role": role, "exists": False}
    return (
        f"{info.name} ({role}, {info.id[:12]}) is {info.status}",
        {"name": info.name, "id": info.id, "role": role, "status": info.status, "exists": True},
    )


def interrupted(runtime: ContainerRuntime, container_name: str, doing: str) -> DeployInterrupted:
    """The Ctrl-C message: which of the deployment's containers exist, and in what state."""
    found: list[tuple[ContainerInfo | None, str, str]] = []
    for name, role in ((container_name, "current"), (staging_name(container_name), "new")):
        try:
            info = runtime.inspect(name)
        except TfsopsError:
            info = None
        if info is not None or role == "current":
            found.append((info, name, role))
    parts = [_describe(info, name, role) for info, name, role in found]
    swap = len(found) > 1
    message = (
        f"interrupted while {doing} {container_name}; left as it is: "
        + "; ".join(text for text, _ in parts)
        + ("; the files they mount were kept" if swap else "; the files it mounts were kept")
    )
    hint = (
        "`tfsops apply` finishes the swap (or undoes it when the spec changed); "
        "`tfsops down` removes both"
        if swap
        else "`tfsops apply` waits for it again (or repairs it); `tfsops down` removes it"
    )
    return DeployInterrupted(message, hint, {"containers": [d for _, d in parts]})


@dataclass(frozen=True)
class PendingSwap:
    """``tfsops-<name>-next`` left by an interrupted recreate, and what `apply` will do."""

    staging: ContainerInfo
    current: ContainerInfo | None
    finish: bool  # True: the staged container replaces the current one; False: it is removed

    @property
    def observed(self) -> ContainerInfo | None:
        """The container the plan is made against once the swap is resolved."""
        return self.staging if self.finish else self.current

    def describe(self) -> str:
        what = (
            f"{self.staging.name} runs the spec: it replaces "
            + (self.current.name if self.current else "the missing container")
            if self.finish
            else f"{self.staging.name} ({self.staging.status}) does not run the spec: it is removed"
        )
        return f"an interrupted recreate left {self.staging.name}; {what}"


def pending_swap(runtime: ContainerRuntime, desired: ContainerPlan) -> PendingSwap | None:
    staging = runtime.inspect(staging_name(desired.name))
    if staging is None:
        return None
    current = runtime.inspect(desired.name)
    finish = (
        staging.status == "running"
        and staging.restart_count == 0
        and staging.labels.get(LABEL_CONFIG_HASH) == desired.config_hash
    )
    return PendingSwap(staging, current, finish)


def resume_swap(
    runtime: ContainerRuntime, desired: ContainerPlan, progress: Callable[[str], None]
) -> PendingSwap | None:
    """Finish or undo an interrupted recreate (with the deployment lock held)."""
    swap = pending_swap(runtime, desired)
    if swap is None:
        return None
    progress(swap.describe())
    if swap.finish:
        if swap.current is not None:
            runtime.remove(swap.current.id)
        runtime.rename(swap.staging.id, desired.name)
    else:
        runtime.remove(swap.staging.id)
    return swap


def restart_if_crash_looping(plan: DeployPlan, state: DeploymentState) -> DeployPlan:
    """A container restarting by its policy without its files cannot recover by itself:
    write the files and start it afresh (the executor stops it first)."""
    observed = plan.observed
    if observed is None or plan.action not in (NOOP, START, HOT_RELOAD):
        return plan
    files_missing = state.applied_file("models.config") is None
    looping = observed.status == "restarting" or (observed.restart_count > 0 and files_missing)
    if not looping:
        return plan
    reason = (
        f"the container is crash-looping (restarted {observed.restart_count} times)"
        + (": its models.config was missing" if files_missing else "")
        + "; its files are written again and it is restarted"
    )
    return dataclasses.replace(plan, action=START, reasons=[reason])


def _intent_path(state: DeploymentState) -> Path:
    return state.root / "reload-intent.json"


def lock_held(path: Path) -> bool:
    """Whether a tfsops run holds the deployment lock now (without waiting for it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def pending_reload_repair(state: DeploymentState) -> str | None:
    """A reload intent that no running tfsops holds: the process died mid-reload, so the
    server may serve a list that models.config does not hold."""
    path = _intent_path(state)
    if not path.exists() or lock_held(state.lock_path):
        return None
    started = ""
    with contextlib.suppress(OSError, ValueError, TypeError):
        data = json.loads(path.read_text(encoding="utf-8"))
        started = f" (pid {data.get('pid')})"
    return (
        f"a reload of {state.name} was interrupted{started}: the server may serve a model list "
        "that models.config does not hold; the next apply, reload or model command re-applies "
        "models.config"
    )


def plan_with_repairs(
    plan: DeployPlan, state: DeploymentState, swap: PendingSwap | None
) -> DeployPlan:
    """The plan as `plan` shows it: the repairs `apply` will make come first."""
    repairs = []
    if swap is not None:
        repairs.append(swap.describe())
    reload_repair = pending_reload_repair(state)
    if reload_repair is not None and plan.observed is not None:
        repairs.append(reload_repair)
    plan = restart_if_crash_looping(plan, state)
    if not repairs:
        return plan
    action = REPAIR if plan.action == NOOP else plan.action
    reasons = repairs + ([] if plan.action == NOOP else plan.reasons)
    return dataclasses.replace(plan, action=action, reasons=reasons)
