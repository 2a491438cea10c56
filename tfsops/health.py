"""Readiness that means it: every expected version AVAILABLE, every label resolvable.

Pure logic over a ``ServingClient`` (no requests/grpc here). TF Serving's
status endpoint answers 200 while a model loads and for versions that failed
(END), and it ignores labels; so this module reads ``state`` per version and
resolves each label through ``label_version``. Connection refused means the
server is still starting (ports open only after the initial load), not dead.

``check_health`` asks about all models at once (a thread pool), so a slow or
hung model costs one ``timeout_per_call``, not one per model.
``wait_until_healthy`` polls until healthy, until a version has failed to load
(END with an error: waiting longer cannot help), or until the deadline, and
returns the last report; callers map it to exit codes (``HealthReport.error``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from tfsops.errors import (
    ModelNotFound,
    NotReady,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.ports import AVAILABLE, END, ExpectedModel, ServingClient, VersionStatus

# ModelReport.status values
OK = "ok"
LOADING = "loading"  # some expected version is not AVAILABLE yet (or not tracked yet)
FAILED = "failed"  # some expected version ended with a load error: waiting will not help
MISSING = "missing"  # the server does not know the model at all
LABELS = "labels"  # versions fine, a label missing or pointing elsewhere
STARTING = "starting"  # connection refused: the server has not opened its ports yet
UNREACHABLE = "unreachable"  # timeout or an answer tfsops could not use
SMOKE = "smoke"  # every expected version AVAILABLE, but a smoke request failed

MAX_WORKERS = 16


class Clock(Protocol):
    """Time, injectable so tests of polling loops never sleep."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class VersionReport:
    """One version as the server reports it; ``state`` is None when the server does not track it."""

    version: int
    state: str | None
    error_code: str = "OK"
    error_message: str = ""
    expected: bool = True

    @property
    def available(self) -> bool:
        return self.state == AVAILABLE

    @property
    def failed(self) -> bool:
        """END with a non-OK status: the version failed to load (END+OK is a clean unload)."""
        return self.state == END and self.error_code != "OK"

    def describe(self) -> str:
        if self.state is None:
            return f"version {self.version} not tracked by the server"
        text = f"version {self.version} {self.state}"
        if self.failed:
            text += (
                f" ({self.error_code}: {self.error_message})"
                if self.error_message
                else f" ({self.error_code})"
            )
        elif self.state == END:
            text += " (unloaded)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "state": self.state,
            "error": (
                f"{self.error_code}: {self.error_message}" if self.error_code != "OK" else None
            ),
            "expected": self.expected,
        }


@dataclass(frozen=True)
class LabelReport:
    label: str
    expected_version: int
    resolved_version: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.resolved_version == self.expected_version

    def describe(self) -> str:
        if self.ok:
            return f"label {self.label} -> {self.resolved_version}"
        if self.resolved_version is None:
            return (
                f"label {self.label} (want {self.expected_version}) does not resolve: {self.error}"
            )
        return (
            f"label {self.label} resolves to {self.resolved_version}, want {self.expected_version}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "expected_version": self.expected_version,
            "resolved_version": self.resolved_version,
            "ok": self.ok,
            "error": self.error,
        }


@dataclass(frozen=True)
class ModelReport:
    """Health of one expected model. ``versions`` lists expected versions first, then the
    others the server tracks (``expected=False``; they do not affect health)."""

    name: str
    status: str
    versions: tuple[VersionReport, ...] = ()
    labels: tuple[LabelReport, ...] = ()
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, SMOKE)

    def describe(self) -> str:
        """One line for people: ``resnet: ok (version 1 AVAILABLE; label stable -> 1)``."""
        if self.ok:
            parts = [v.describe() for v in self.versions if v.expected] or [
                v.describe() for v in self.versions if v.available
            ]
            parts += [lab.describe() for lab in self.labels]
            return f"{self.name}: ok ({'; '.join(parts)})"
        return f"{self.name}: {self.status}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "status": self.status,
            "versions": [v.to_dict() for v in self.versions],
            "labels": [lab.to_dict() for lab in self.labels],
            "problem": self.problem,
        }


@dataclass(frozen=True)
class HealthReport:
    models: tuple[ModelReport, ...] = field(default_factory=tuple)
    elapsed_s: float | None = None  # set by wait_until_healthy
    polls: int = 1

    @property
    def ok(self) -> bool:
        """Healthy: every expected version AVAILABLE and every label resolves as it should."""
        return all(m.ok for m in self.models)

    @property
    def failed(self) -> bool:
        """Some expected version failed to load (END with an error); waiting will not fix it."""
        return any(m.failed for m in self.models)

    @property
    def server_starting(self) -> bool:
        return any(m.status == STARTING for m in self.models)

    def model(self, name: str) -> ModelReport:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def problems(self) -> list[str]:
        return [m.describe() for m in self.models if not m.ok]

    def describe(self) -> str:
        return "\n".join(m.describe() for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ok": self.ok,
            "failed": self.failed,
            "server_starting": self.server_starting,
            "models": [m.to_dict() for m in self.models],
        }
        if self.elapsed_s is not None:
            result["elapsed_s"] = round(self.elapsed_s, 3)
            result["polls"] = self.polls
        return result

    def error(self, *, timeout: float | None = None) -> TfsopsError | None:
        """The error a command should raise for this report (None when healthy).

        A failed load is ``OperationFailed`` (exit 5, the server's message shown);
        anything else not healthy is ``NotReady`` (exit 6).
        """
        if self.ok:
            return None
        details = {"health": self.to_dict()}
        problems = self.problems()
        if self.failed:
            failed = [m.describe() for m in self.models if m.failed]
            if all(m.status == SMOKE for m in self.models if m.failed):
                return _smoke_error(failed, details)
            if len(failed) == 1:
                message = f"model failed to load: {failed[0]}"
            else:
                message = f"{len(failed)} models failed to load:\n  " + "\n  ".join(failed)
            return OperationFailed(
                message,
                hint="see the container logs (tfsops logs); fix the model and reload",
                details=details,
            )
        within = f" within {timeout:g}s" if timeout is not None else ""
        if self.server_starting and all(m.status == STARTING for m in self.models):
            return NotReady(
                f"the server did not open its ports{within}: "
                "it is still loading its models, or not running",
                hint="TF Serving opens its ports only after the initial load; see tfsops logs",
                details=details,
            )
        head = f"not every model is AVAILABLE{within}"
        return NotReady(head + ":\n  " + "\n  ".join(problems), details=details)


# ---------------------------------------------------------------------------


def _check_model(client: ServingClient, expected: ExpectedModel, timeout: float) -> ModelReport:
    try:
        statuses = client.model_status(expected.name, timeout=timeout)
    except ServerStarting as exc:
        return ModelReport(expected.name, STARTING, problem=exc.message)
    except ModelNotFound as exc:
        return ModelReport(expected.name, MISSING, problem=exc.message)
    except (NotReady, OperationFailed) as exc:
        return ModelReport(expected.name, UNREACHABLE, problem=exc.message)
    versions = _version_reports(expected, statuses)
    labels: list[LabelReport] = []
    for label, want in sorted(expected.labels.items()):
        try:
            got: int | None = client.label_version(expected.name, label, timeout=timeout)
            error = None
        except ServerStarting as exc:  # the server went away between two calls
            return ModelReport(expected.name, STARTING, versions, problem=exc.message)
        except TfsopsError as exc:
            got, error = None, exc.message
        labels.append(LabelReport(label, want, got, error))

    wanted = [v for v in versions if v.expected]
    failed = [v for v in wanted if v.failed]
    if failed:
        return ModelReport(
            expected.name, FAILED, versions, tuple(labels), "; ".join(v.describe() for v in failed)
        )
    if expected.versions:
        not_ready = [v for v in wanted if not v.available]
        if not_ready:
            problem = "; ".join(v.describe() for v in not_ready)
            return ModelReport(expected.name, LOADING, versions, tuple(labels), problem)
    elif not any(v.available for v in versions):
        # No particular version expected (e.g. "latest" before the versions are known):
        # any AVAILABLE version will do.
        problem = "no version AVAILABLE" + (
            ": " + "; ".join(v.describe() for v in versions) if versions else ""
        )
        return ModelReport(expected.name, LOADING, versions, tuple(labels), problem)
    bad_labels = [lab for lab in labels if not lab.ok]
    if bad_labels:
        problem = "; ".join(lab.describe() for lab in bad_labels)
        return ModelReport(expected.name, LABELS, versions, tuple(labels), problem)
    if expected.smoke is not None:
        targets = [v.version for v in wanted] or [v.version for v in versions if v.available][-1:]
        smoke_problem = expected.smoke.check(client, expected.name, targets, timeout=timeout)
        if smoke_problem:
            return ModelReport(expected.name, SMOKE, versions, tuple(labels), smoke_problem)
    return ModelReport(expected.name, OK, versions, tuple(labels))


def _smoke_error(failed: list[str], details: dict[str, Any]) -> OperationFailed:
    head = "a smoke request failed" if len(failed) == 1 else f"{len(failed)} models failed smoke"
    return OperationFailed(
        f"{head}: the server loaded the model but it does not answer:\n  " + "\n  ".join(failed),
        hint="run `tfsops validate` and `tfsops predict`; fix the model or its smoke: requests",
        details=details,
    )


def _version_reports(
    expected: ExpectedModel, statuses: Iterable[VersionStatus]
) -> tuple[VersionReport, ...]:
    by_version = {s.version: s for s in statuses}
    reports = []
    for v in sorted(expected.versions):
        s = by_version.get(v)
        if s is None:
            reports.append(VersionReport(v, None, expected=True))
        else:
            reports.append(VersionReport(v, s.state, s.error_code, s.error_message, expected=True))
    for v in sorted(set(by_version) - set(expected.versions)):
        s = by_version[v]
        reports.append(VersionReport(v, s.state, s.error_code, s.error_message, expected=False))
    return tuple(reports)


def check_health(
    client: ServingClient,
    expected: Iterable[ExpectedModel],
    *,
    timeout_per_call: float = 5.0,
    max_workers: int = MAX_WORKERS,
) -> HealthReport:
    """One look at every expected model, all models at once; never raises for server state.

    Each model gets one status call plus one call per label, each bounded by
    ``timeout_per_call``. Reports come back in the order of ``expected``.
    """
    models = list(expected)
    if not models:
        return HealthReport(())
    if len(models) == 1:
        return HealthReport((_check_model(client, models[0], timeout_per_call),))
    if max_workers == MAX_WORKERS:
        # One pool for every poll of the run: starting 16 threads per poll cost more than
        # the status calls themselves on a small, busy machine.
        pool = _shared_pool()
        futures = [pool.submit(_check_model, client, m, timeout_per_call) for m in models]
        return HealthReport(tuple(f.result() for f in futures))
    with ThreadPoolExecutor(
        max_workers=min(max_workers, len(models)), thread_name_prefix="tfsops-health"
    ) as own:
        futures = [own.submit(_check_model, client, m, timeout_per_call) for m in models]
        return HealthReport(tuple(f.result() for f in futures))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """The process's health-check pool, made on first use (its threads idle between polls)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="tfsops-health")
        return _POOL


def _still_starting(
    client: ServingClient, models: list[ExpectedModel], timeout_per_call: float
) -> HealthReport | None:
    """While the server has not opened its ports, one call tells: the report for every model
    (all STARTING) when the first is still refused, else None (then ask them all)."""
    if len(models) < 2:
        return None
    first = _check_model(client, models[0], timeout_per_call)
    if first.status != STARTING:
        return None
    return HealthReport(
        (first, *(ModelReport(m.name, STARTING, problem=first.problem) for m in models[1:]))
    )


def wait_until_healthy(
    client: ServingClient,
    expected: Iterable[ExpectedModel],
    *,
    timeout: float,
    interval: float = 1.0,
    clock: Clock | None = None,
    on_progress: Callable[[HealthReport], None] | None = None,
    timeout_per_call: float = 5.0,
    fail_fast: bool = True,
) -> HealthReport:
    """Poll ``check_health`` until healthy, failed (when ``fail_fast``) or ``timeout`` seconds.

    Returns the last report, with ``elapsed_s`` and ``polls`` set; it never
    raises for server state (use ``report.error(timeout=...)``).
    ``on_progress`` sees every report (e.g. to print "resnet: loading ..."); an
    exception it raises (say, "the container died") ends the wait and propagates.
    With ``timeout=0`` this is one check, each call bounded by ``timeout_per_call``.
    """
    clock = clock or SystemClock()
    models = list(expected)
    start = clock.monotonic()
    deadline = start + max(timeout, 0.0)
    polls = 0
    starting = False
    while True:
        remaining = deadline - clock.monotonic()
        # A call must not run far past the deadline, but give it a moment to answer.
        per_call = min(timeout_per_call, max(remaining, 0.5)) if timeout > 0 else timeout_per_call
        probe = _still_starting(client, models, per_call) if starting else None
        report = probe or check_health(client, models, timeout_per_call=per_call)
        starting = report.server_starting
        polls += 1
        now = clock.monotonic()
        report = HealthReport(report.models, elapsed_s=now - start, polls=polls)
        if on_progress is not None:
            on_progress(report)
        if report.ok or (fail_fast and report.failed):
            return report
        remaining = deadline - now
        if remaining <= 0:
            return report
        clock.sleep(min(interval, remaining))


def expected_from_mapping(data: Mapping[str, Mapping[str, Any]]) -> list[ExpectedModel]:
    """``{"resnet": {"versions": [1, 2], "labels": {"stable": 1}}}`` -> ExpectedModels."""
    return [
        ExpectedModel(
            name=name,
            versions=frozenset(int(v) for v in spec.get("versions", ())),
            labels={str(k): int(v) for k, v in dict(spec.get("labels", {})).items()},
        )
        for name, spec in data.items()
    ]
