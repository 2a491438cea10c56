"""What ``apply`` would change: compose-style convergence, plus a model-level diff.

Pure: it compares the desired container plan and models.config with what is
observed (the container's labels and state, the applied models.config).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from tfsops.plan.container import LABEL_CONFIG_HASH, LABEL_ROOTS, ContainerPlan
from tfsops.plan.mounts import unmounted_folders, unmounted_reason
from tfsops.ports import ContainerInfo

CREATE = "create"
RECREATE = "recreate"
START = "start"
HOT_RELOAD = "hot-reload"
NOOP = "noop"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: str
    policy: str
    labels: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_path": self.base_path,
            "policy": self.policy,
            "labels": self.labels,
        }


@dataclass(frozen=True)
class ModelDiff:
    added: list[ModelEntry] = field(default_factory=list)
    removed: list[ModelEntry] = field(default_factory=list)
    changed: list[tuple[ModelEntry, ModelEntry]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [m.to_dict() for m in self.added],
            "removed": [m.to_dict() for m in self.removed],
            "changed": [{"from": a.to_dict(), "to": b.to_dict()} for a, b in self.changed],
        }

    def lines(self) -> list[str]:
        out = [f"  + model {m.name} ({m.policy}{_labels(m)})" for m in self.added]
        out += [f"  - model {m.name}" for m in self.removed]
        for old, new in self.changed:
            what = []
            if old.base_path != new.base_path:
                what.append(f"path {old.base_path} -> {new.base_path}")
            if old.policy != new.policy:
                what.append(f"policy {old.policy} -> {new.policy}")
            if old.labels != new.labels:
                what.append(f"labels {old.labels} -> {new.labels}")
            out.append(f"  ~ model {new.name}: {'; '.join(what)}")
        return out


def _labels(m: ModelEntry) -> str:
    return "".join(f", {k}={v}" for k, v in sorted(m.labels.items()))


def parse_models_config(text: str | None) -> list[ModelEntry]:
    """The model list of a models.config text (empty when there is none)."""
    if not text:
        return []
    # One run reads the same texts several times (diff, label staging, repair checks).
    return [ModelEntry(e.name, e.base_path, e.policy, dict(e.labels)) for e in _parse_cached(text)]


@functools.lru_cache(maxsize=8)
def _parse_cached(text: str) -> tuple[ModelEntry, ...]:
    return tuple(_parse(text))


def _parse(text: str) -> list[ModelEntry]:
    from tfsops.adapters.protos import model_server_config_pb2, text_format

    config = text_format().Parse(text, model_server_config_pb2().ModelServerConfig())
    entries = []
    for c in config.model_config_list.config:
        choice = c.model_version_policy.WhichOneof("policy_choice")
        if choice == "all":
            policy = "all"
        elif choice == "specific":
            policy = "specific " + ",".join(
                str(v) for v in c.model_version_policy.specific.versions
            )
        else:
            n = c.model_version_policy.latest.num_versions if choice == "latest" else 1
            policy = f"latest {max(n, 1)}"
        entries.append(ModelEntry(c.name, c.base_path, policy, dict(c.version_labels)))
    return entries


def model_diff(applied_text: str | None, desired_text: str) -> ModelDiff:
    old = {m.name: m for m in parse_models_config(applied_text)}
    new = {m.name: m for m in parse_models_config(desired_text)}
    return ModelDiff(
        added=[new[n] for n in new if n not in old],
        removed=[old[n] for n in old if n not in new],
        changed=[(old[n], new[n]) for n in new if n in old and old[n] != new[n]],
    )


@dataclass(frozen=True)
class DeployPlan:
    action: str
    reasons: list[str]
    models: ModelDiff
    container: ContainerPlan
    observed: ContainerInfo | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": self.reasons,
            "models": self.models.to_dict(),
            "container": self.container.name,
            "image": self.container.image,
            "config_hash": self.container.config_hash,
            "observed": None
            if self.observed is None
            else {
                "id": self.observed.id,
                "status": self.observed.status,
                "config_hash": self.observed.labels.get(LABEL_CONFIG_HASH),
            },
        }

    def text(self) -> str:
        lines = [f"{self.container.name}: {self.action}"]
        lines += [f"  because {r}" for r in self.reasons]
        lines += self.models.lines()
        return "\n".join(lines)


def compute_plan(
    desired: ContainerPlan,
    desired_models_config: str,
    observed: ContainerInfo | None,
    applied_models_config: str | None,
) -> DeployPlan:
    diff = model_diff(applied_models_config, desired_models_config)
    if observed is None:
        return DeployPlan(CREATE, ["no container yet"], diff, desired, None)
    reasons = []
    if observed.labels.get(LABEL_CONFIG_HASH) != desired.config_hash:
        if observed.image != desired.image:
            reasons.append(f"image {observed.image} -> {desired.image}")
        if observed.labels.get(LABEL_ROOTS) != desired.labels.get(LABEL_ROOTS):
            reasons.append("the set of mounted model folders changed (Docker cannot add a mount)")
        if not reasons:
            reasons.append(
                "container settings changed (flags, ports, resources, GPU or start-up files)"
            )
        return DeployPlan(RECREATE, reasons, diff, desired, observed)
    unmounted = unmounted_folders(observed, desired)
    if unmounted:
        return DeployPlan(RECREATE, [unmounted_reason(unmounted)], diff, desired, observed)
    if observed.status != "running":
        why = f"the container is {observed.status}"
        return DeployPlan(
            START,
            [why] + (["the model list changed"] if not diff.empty else []),
            diff,
            desired,
            observed,
        )
    if not diff.empty:
        return DeployPlan(HOT_RELOAD, ["the model list changed"], diff, desired, observed)
    return DeployPlan(NOOP, ["up to date"], diff, desired, observed)
