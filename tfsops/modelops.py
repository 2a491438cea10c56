"""Model-level operations on a live deployment: add, remove, promote, publish, reload, rollback.

Each runs under the deployment's lock, re-reads the spec file inside it (so
two runs started together serialize and both changes survive), converges
the server through the transactional path, and only then writes the spec
file. A failure leaves the spec file, models.config and the server as they
were.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tfsops import inputs
from tfsops.errors import InvalidInput, OperationFailed, TfsopsError
from tfsops.executor import ApplyOptions, ApplyResult, Executor
from tfsops.health import wait_until_healthy
from tfsops.plan.expected import expected_models
from tfsops.plan.mounts import check_publish_target
from tfsops.ports import END
from tfsops.revisions import get_revision
from tfsops.services import Services, endpoint_for
from tfsops.spec.edit import (
    SpecChanged,
    check_spec_writable,
    edit_spec_text,
    find_model,
    flow_map,
    model_entries,
    new_model_entry,
    spec_relative,
    write_spec_text,
)
from tfsops.spec.load import load_spec, parse_text, spec_from_data
from tfsops.spec.model import DeploymentSpec
from tfsops.state import DeploymentState


class ModelOps:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.executor = Executor(services)

    def _change(
        self, spec_path: Path, mutate: Callable[[Any], None], opts: ApplyOptions, purpose: str
    ) -> tuple[ApplyResult, DeploymentSpec]:
        name = _docker_target(load_spec(spec_path), purpose).name
        state = DeploymentState.for_name(name)
        with self.executor.locked(state, opts, purpose):
            check_spec_writable(spec_path)  # exit 3 before the server changes
            before = inputs.text_file(spec_path, "spec file")  # re-read under the lock
            text, spec = edit_spec_text(spec_path, before, mutate)
            if spec.name != name:
                raise InvalidInput("the deployment name must not change in the same edit")
            result = self.executor.converge(
                spec, text, spec_path, dataclasses.replace(opts, reason=purpose)
            )
            _save_edit(spec_path, before, text, mutate, purpose, result.revision)
        return result, spec

    # ---- spec edits ---------------------------------------------------------------
    def add_model(
        self,
        spec_path: Path,
        name: str,
        path: Path,
        *,
        policy: Mapping[str, Any] | None,
        labels: Mapping[str, int],
        opts: ApplyOptions,
    ) -> ApplyResult:
        def mutate(data: Any) -> None:
            if any(isinstance(m, Mapping) and m.get("name") == name for m in model_entries(data)):
                raise InvalidInput(
                    f"the spec already has a model {name!r}", hint="pick another name"
                )
            model_entries(data).append(
                new_model_entry(name, spec_relative(path, spec_path), policy, labels)
            )

        return self._change(spec_path, mutate, opts, f"add-model {name}")[0]

    def remove_model(self, spec_path: Path, name: str, opts: ApplyOptions) -> ApplyResult:
        def mutate(data: Any) -> None:
            entries = model_entries(data)
            entry = find_model(data, name)
            if len(entries) == 1:
                raise InvalidInput(
                    f"{name} is the only model; a deployment needs at least one",
                    hint="use `tfsops down` to remove the deployment",
                )
            entries.remove(entry)

        opts = dataclasses.replace(opts, remove=(*opts.remove, name))
        return self._change(spec_path, mutate, opts, f"remove-model {name}")[0]

    def promote(
        self, spec_path: Path, model: str, label: str, version: int, opts: ApplyOptions
    ) -> ApplyResult:
        """Move a label safely: load the version, wait AVAILABLE, move the label, verify it resolves."""

        def mutate(data: Any) -> None:
            entry = find_model(data, model)
            policy = entry.get("policy")
            if (
                isinstance(policy, Mapping)
                and "specific" in policy
                and version not in policy["specific"]
            ):
                policy["specific"].append(version)
            labels = entry.get("labels")
            if labels is None:
                entry["labels"] = flow_map({label: version})
            else:
                labels[label] = version

        result, spec = self._change(spec_path, mutate, opts, f"promote {model} {label}={version}")
        if result.health is not None and opts.wait:
            client = self.s.serving_factory(endpoint_for(spec))
            resolved = client.label_version(model, label)
            if resolved != version:
                raise OperationFailed(
                    f"label {label} of {model} resolves to {resolved}, not {version}"
                )
        return result

    def reload(self, spec_path: Path, opts: ApplyOptions, *, force: bool = True) -> ApplyResult:
        spec = _docker_target(load_spec(spec_path), "reload")
        state = DeploymentState.for_name(spec.name)
        with self.executor.locked(state, opts, "reload"):
            spec = load_spec(spec_path)
            text = inputs.text_file(spec_path, "spec file")
            return self.executor.converge(
                spec,
                text,
                spec_path,
                dataclasses.replace(opts, reason="reload", force_reload=force),
            )

    def rollback(
        self, spec_path: Path, to: int | None, opts: ApplyOptions, *, force: bool = False
    ) -> tuple[ApplyResult, int]:
        current = _docker_target(load_spec(spec_path), "rollback")
        state = DeploymentState.for_name(current.name)
        with self.executor.locked(state, opts, "rollback"):
            check_spec_writable(spec_path)
            before = inputs.text_file(spec_path, "spec file")
            if not force:
                _refuse_unrecorded_edits(spec_path, before, state)
            revision = get_revision(state, to)
            text = revision.spec_text
            spec = spec_from_data(
                parse_text(text, f"revision {revision.number}", "yaml"),
                base_dir=spec_path.resolve().parent,
                source=f"revision {revision.number}",
            )
            result = self.executor.converge(
                spec,
                text,
                spec_path,
                dataclasses.replace(
                    opts, prune=True, reason=f"rollback to {revision.number}", force_reload=True
                ),
            )
            write_spec_text(spec_path, text, expected=before)
        return result, revision.number

    # ---- versions -------------------------------------------------------------------
    def publish(
        self, spec_path: Path, model: str, source: Path, version: int | None, opts: ApplyOptions
    ) -> dict[str, Any]:
        """Copy a SavedModel in as a new version without the server ever seeing it half-written."""
        from tfsops.savedmodel.inspect import inspect_version
        from tfsops.savedmodel.versions import scan_versions, select_versions

        spec = load_spec(spec_path)
        try:
            target_model = spec.model(model)
        except KeyError:
            raise InvalidInput(
                f"deployment {spec.name} has no model {model!r}",
                hint=f"models: {', '.join(m.name for m in spec.models)}",
            ) from None
        info = inspect_version(source)  # a SavedModel at all? (exit 3 otherwise)
        from tfsops.savedmodel.validate import validate_version_dir

        validate_version_dir(source)  # and can it answer? (variables restored, tensors exist)
        if not any("serve" in mg.tags for mg in info.meta_graphs):
            raise InvalidInput(
                f"{source} has no MetaGraph tagged 'serve'; TF Serving cannot load it"
            )
        if version is not None:
            inputs.version_number(version)
        state = DeploymentState.for_name(spec.name)
        with self.executor.locked(state, opts, f"publish {model}"):
            for m in spec.models:
                self._remove_stale_staging(m.path)
            check_publish_target(self.s.runtime.find(spec.name), model, target_model.path)
            scan = scan_versions(target_model.path)
            failed = self._failed_versions(spec, model, target_model.path)
            number = (
                version if version is not None else max([*scan.numbers, *failed], default=0) + 1
            )
            if number in scan.numbers:
                raise InvalidInput(
                    f"version {number} of {model} exists already in {target_model.path}"
                )
            if number in failed:
                raise InvalidInput(
                    f"version {number} of {model} failed to load before, and TF Serving keeps "
                    "reporting a number it saw fail: a new folder under that number would not load",
                    hint=f"publish under another number (the next free one is "
                    f"{max([*scan.numbers, *failed]) + 1}), or leave out --version",
                )
            _refuse_dropped_labels(target_model, scan.numbers, number)
            final = target_model.path / str(number)
            # A non-numeric name is invisible to TF Serving's version scan; rename is atomic.
            # The pid in the name lets a later run remove what a killed run left behind.
            staging = (
                target_model.path / f"{STAGING_PREFIX}{number}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            )
            try:
                shutil.copytree(source, staging)
                for p in [staging, *staging.rglob("*")]:
                    p.chmod(0o755 if p.is_dir() else 0o644)
                os.rename(staging, final)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise OperationFailed(f"could not copy {source} to {final}: {exc}") from exc
            served = select_versions([*scan.numbers, number], target_model.policy_kind).served
            result: dict[str, Any] = {
                "model": model,
                "version": number,
                "path": str(final),
                "served": number in served,
            }
            if number not in served or not opts.wait or self.s.runtime.find(spec.name) is None:
                return result
            client = self.s.serving_factory(endpoint_for(spec))
            expected = expected_models(spec, [model])
            report = wait_until_healthy(
                client, expected, timeout=opts.timeout, interval=0.5, clock=self.s.clock
            )
            error = report.error(timeout=opts.timeout)
            if error is not None:
                # Take the version away again: the server stops aspiring it, the old one keeps serving.
                aside = target_model.path / f"{FAILED_PREFIX}{number}-{int(time.time())}"
                os.rename(final, aside)
                # A version that loaded but failed its smoke requests may have replaced the
                # previous one: wait until the server has it back.
                wait_until_healthy(
                    client,
                    expected_models(spec, [model], smoke=False),
                    timeout=opts.timeout,
                    interval=0.5,
                    clock=self.s.clock,
                )
                raise OperationFailed(
                    f"version {number} of {model} did not become AVAILABLE: {error.message}",
                    hint=f"it was moved aside to {aside}; the previous version keeps serving",
                    details=error.details,
                ) from None
            result["health"] = report.to_dict()
        return result

    def _remove_stale_staging(self, folder: Path) -> None:
        """Remove copies that a killed publish left (their process is gone)."""
        if not folder.is_dir():
            return
        for child in folder.iterdir():
            if not child.name.startswith(STAGING_PREFIX) or _pid_alive(child.name):
                continue
            self.s.progress(f"removing {child}, left by an interrupted publish")
            shutil.rmtree(child, ignore_errors=True)

    def _failed_versions(self, spec: DeploymentSpec, model: str, folder: Path) -> set[int]:
        """Numbers the server has seen fail: moved aside by publish, or reported in error now."""
        failed = set()
        if folder.is_dir():
            for child in folder.iterdir():
                number = child.name.removeprefix(FAILED_PREFIX).split("-", 1)[0]
                if child.name.startswith(FAILED_PREFIX) and number.isdigit():
                    failed.add(int(number))
        try:
            if self.s.runtime.find(spec.name) is not None:
                client = self.s.serving_factory(endpoint_for(spec))
                failed |= {
                    s.version
                    for s in client.model_status(model)
                    if s.state == END and s.error_code not in ("", "OK")
                }
        except TfsopsError:
            pass  # not running, or not answering: the folders are what we know
        return failed


STAGING_PREFIX = ".tfsops-publish-"
FAILED_PREFIX = ".tfsops-failed-"


def _pid_alive(staging_name: str) -> bool:
    """``.tfsops-publish-<number>-<pid>-<hex>``: is that process still running?"""
    parts = staging_name.removeprefix(STAGING_PREFIX).split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # an older name without a pid: its run is long over
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _refuse_dropped_labels(model: Any, numbers: tuple[int, ...], number: int) -> None:
    """Publishing must not make the policy unload a version a label points at."""
    from tfsops.savedmodel.versions import select_versions

    before = set(select_versions(numbers, model.policy_kind).served)
    after = set(select_versions([*numbers, number], model.policy_kind).served)
    dropped = {label: v for label, v in model.labels.items() if v in before and v not in after}
    if dropped:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(dropped.items()))
        raise InvalidInput(
            f"publishing version {number} of {model.name} would unload the labelled "
            f"version(s) {labels} (policy {model.policy_kind[0]}): requests through the "
            "label would fail",
            hint="widen the policy (e.g. `latest: 2` or `specific`) or move the label "
            "first with `tfsops promote`; nothing was copied",
            details={"labels": dropped},
        )


def _docker_target(spec: DeploymentSpec, purpose: str) -> DeploymentSpec:
    """Hot changes drive one server's admin RPC; a swarm service changes by rolling update."""
    if spec.target == "swarm":
        raise InvalidInput(
            f"{purpose.split(maxsplit=1)[0]} works on target: docker; {spec.name} is a swarm service",
            hint="edit the spec and run `tfsops apply`: the change rolls out as a start-first update",
        )
    return spec


def _save_edit(
    spec_path: Path,
    before: str,
    text: str,
    mutate: Callable[[Any], None],
    purpose: str,
    revision: int | None,
) -> None:
    """Write the edited spec, unless someone changed the file meanwhile: then keep their edit.

    Their edit is kept in any case. When this command's change still applies to
    the new text, it is merged in; the exit is 3 either way, so a script notices
    that the file now holds an edit the server does not serve yet.
    """
    try:
        write_spec_text(spec_path, text, expected=before)
        return
    except SpecChanged:
        pass
    live = f"the {purpose} change is live" + (f" (revision {revision})" if revision else "")
    now = inputs.text_file(spec_path, "spec file")
    try:
        merged, _ = edit_spec_text(spec_path, now, mutate)
        write_spec_text(spec_path, merged, expected=now)
    except TfsopsError as exc:
        raise SpecChanged(
            f"{spec_path} changed while {purpose} ran; that edit was kept as it is, and "
            f"{live} but not written to the file ({exc.message.splitlines()[0]})",
            hint="run the same command again to record it in the file (the server has it "
            "already), then `tfsops apply` for the other edit",
            details={"merged": False, "revision": revision},
        ) from None
    raise SpecChanged(
        f"{spec_path} changed while {purpose} ran; that edit was kept and {live} and merged "
        "into the file, but the other edit is not live yet",
        hint="review the file, then run `tfsops apply`",
        details={"merged": True, "revision": revision},
    )


def _refuse_unrecorded_edits(spec_path: Path, text: str, state: DeploymentState) -> None:
    """Rollback replaces the spec file: refuse when it holds edits no revision has."""
    from tfsops.revisions import list_revisions

    revisions = list_revisions(state)
    if revisions and revisions[-1].spec_text != text:
        raise InvalidInput(
            f"{spec_path} has edits made since revision {revisions[-1].number} (the live one); "
            "rollback would overwrite them",
            hint="apply or undo them first, or pass --force to overwrite the file",
            details={"revision": revisions[-1].number},
        )
