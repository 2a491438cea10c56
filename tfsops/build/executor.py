"""Run a build plan's steps through an ``ImageBuilder`` port, reporting progress.

The executor never prints: progress lines go to a callback (the CLI sends
them to stderr). Each line carries the step name, the elapsed time and the
Dockerfile step ("Step 4/12") the engine is on, so a two-hour bazel build
shows where it is. Failures keep the last log lines; Ctrl-C drops the
connection (the classic builder then stops) and says what was left.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tfsops.build.plan import LABEL_DEVEL_IMAGE, LABEL_PREFIX, BuildPlan, BuildStep
from tfsops.errors import Interrupted, OperationFailed

_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_BUILT_RE = re.compile(r"^Successfully built ([0-9a-f]{12,64})$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# The classic builder's bookkeeping: layer ids and intermediate containers.
_NOISE_RE = re.compile(r"^\s*(---> (?!Using cache)|Removing intermediate container )")
LAST_LINES = 25
STEP_TEXT_MAX = 160


class ImageBuilder(Protocol):
    """What the executor needs from an engine (``DockerImageBuilder``; fakes in tests)."""

    def build(
        self,
        *,
        context_dir: Path,
        dockerfile: str,
        tags: Sequence[str],
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterable[Mapping[str, Any]]: ...

    def image_labels(self, ref: str) -> Mapping[str, str] | None: ...

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class StepResult:
    name: str
    tags: tuple[str, ...]
    image_id: str
    duration_s: float
    labels: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tags": list(self.tags),
            "image_id": self.image_id,
            "duration_s": round(self.duration_s, 2),
            "labels": dict(self.labels),
        }


@dataclass
class BuildOutcome:
    steps: list[StepResult] = field(default_factory=list)
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": [s.to_dict() for s in self.steps],
            "duration_s": round(self.duration_s, 2),
        }


def format_elapsed(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class _StepRun:
    """Turns one step's message stream into progress lines and a result."""

    def __init__(
        self, step: BuildStep, progress: Callable[[str], None], elapsed: Callable[[], float]
    ):
        self.step = step
        self.progress = progress
        self.elapsed = elapsed
        self.current: str | None = None  # "Step 4/12 : RUN ..."
        self.position = ""  # "4/12"
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self.image_id: str | None = None
        self._partial = ""

    def _emit(self, text: str) -> None:
        where = f" step {self.position}" if self.position else ""
        self.progress(f"[{self.step.name} {format_elapsed(self.elapsed())}{where}] {text}")

    def _line(self, line: str) -> None:
        line = _ANSI_RE.sub("", line).rstrip()
        if not line.strip():
            return
        self.last_lines.append(line)
        m = _STEP_RE.match(line)
        if m:
            self.position = f"{m.group(1)}/{m.group(2)}"
            instruction = " ".join(m.group(3).split())  # RUN lines keep their continuation gaps
            if len(instruction) > STEP_TEXT_MAX:
                instruction = instruction[: STEP_TEXT_MAX - 3] + "..."
            self.current = f"Step {self.position} : {instruction}"
            self._emit(instruction)
            return
        built = _BUILT_RE.match(line)
        if built and self.image_id is None:
            self.image_id = built.group(1)
        if _NOISE_RE.match(line):
            return
        self._emit("  " + line.strip())

    def feed(self, message: Mapping[str, Any]) -> None:
        if "error" in message or "errorDetail" in message:
            detail = message.get("errorDetail") or {}
            text = str(detail.get("message") if isinstance(detail, Mapping) else "") or str(
                message.get("error", "unknown error")
            )
            self.flush()
            self.fail(text)
        stream = message.get("stream")
        if isinstance(stream, str):
            # Messages may split or join lines; only complete lines are shown.
            text = self._partial + stream
            *lines, self._partial = re.split(r"\r\n|\r|\n", text)
            for line in lines:
                self._line(line)
        status = message.get("status")
        if isinstance(status, str):  # pulling a missing base image
            progress = message.get("progress")
            self._line(f"{status} {message.get('id', '')} {progress or ''}".strip())
        aux = message.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
            self.image_id = str(aux["ID"])

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def fail(self, reason: str) -> None:
        where = f" at {self.current}" if self.current else ""
        tail = "\n".join(f"  | {line}" for line in self.last_lines)
        hint = "fix the cause and run the same command again; finished layers are cached"
        if self.current and " : FROM " in self.current:
            # The engine pulls a base it does not have; without a registry that fails.
            hint = (
                "a base image is missing and could not be pulled: check the image names "
                "(docker images) or pass local ones with --devel-image / --runtime-base"
            )
        raise OperationFailed(
            f"the {self.step.name} image build failed{where}: {reason.strip()}"
            + (f"\nlast build output:\n{tail}" if tail else ""),
            hint=hint,
            details={
                "step": self.step.name,
                "dockerfile_step": self.current,
                "reason": reason.strip(),
                "last_lines": list(self.last_lines),
            },
        )


def _devel_labels_warning(
    plan: BuildPlan, devel_labels: Mapping[str, str] | None
) -> tuple[dict[str, str] | None, list[str]]:
    """Labels for a serving image built from an existing devel image.

    The devel image compiled the binary, so its own ``io.tfsops.build.*``
    labels are the truth; without them, the requested options are recorded,
    with a warning, because tfsops cannot verify them.
    """
    if devel_labels is None:
        return None, [
            f"devel image {plan.devel_tag} is not in the local engine; "
            "the engine will try to pull it"
        ]
    own = {
        k: v
        for k, v in devel_labels.items()
        if k.startswith(LABEL_PREFIX) and k != LABEL_DEVEL_IMAGE
    }
    if not own:
        return None, [
            f"devel image {plan.devel_tag} has no io.tfsops.build labels: "
            "the serving image's labels record the requested options (--arch/--gpu/--version); "
            "make sure the devel image was built with them"
        ]
    requested = {k: v for k, v in plan.labels.items() if k != LABEL_DEVEL_IMAGE}
    if own != requested:
        differ = sorted(
            k.removeprefix(LABEL_PREFIX)
            for k in set(own) | set(requested)
            if own.get(k) != requested.get(k)
        )
        return own, [
            f"devel image {plan.devel_tag} was built with other options "
            f"({', '.join(differ)} differ): "
            "the serving image is labelled with the devel image's, not the requested ones"
        ]
    return own, []


def execute_plan(
    plan: BuildPlan,
    builder: ImageBuilder,
    context_dir: Path,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> BuildOutcome:
    """Build every step of ``plan`` in order; the Dockerfiles must already be in ``context_dir``."""
    start = clock()
    outcome = BuildOutcome()
    label_override: dict[str, str] | None = None
    if not plan.builds_devel:
        label_override, notes = _devel_labels_warning(plan, builder.image_labels(plan.devel_tag))
        outcome.warnings.extend(notes)
        for note in notes:
            progress(f"warning: {note}")

    def elapsed() -> float:
        return clock() - start

    for index, step in enumerate(plan.steps):
        labels = dict(step.labels)
        if step.name == "serving" and label_override is not None:
            labels = {**label_override, LABEL_DEVEL_IMAGE: plan.devel_tag}
        run = _StepRun(step, progress, elapsed)
        step_start = clock()
        progress(
            f"[{step.name} {format_elapsed(elapsed())}] building {', '.join(step.tags)} "
            f"from {step.dockerfile}"
        )
        try:
            for message in builder.build(
                context_dir=context_dir,
                dockerfile=step.dockerfile,
                tags=step.tags,
                buildargs=step.buildargs,
                labels=labels,
            ):
                run.feed(message)
            run.flush()
        except KeyboardInterrupt:
            builder.cancel()
            done = [f"{s.name} ({', '.join(s.tags)})" for s in outcome.steps]
            left = [f"{s.name} ({', '.join(s.tags)})" for s in plan.steps[index:]]
            where = f" at {run.current}" if run.current else ""
            raise Interrupted(
                f"interrupted during the {step.name} build{where} "
                f"after {format_elapsed(elapsed())}; "
                f"built: {', '.join(done) or 'nothing'}; not built: {', '.join(left)}",
                hint="the engine stops a build when its client leaves; run the same command "
                "again to continue from the cached layers",
                details={
                    "built": [s.to_dict() for s in outcome.steps],
                    "not_built": [s.name for s in plan.steps[index:]],
                },
            ) from None
        if run.image_id is None:
            run.fail("the engine finished without reporting an image id")
        duration = clock() - step_start
        image_id = str(run.image_id)
        progress(
            f"[{step.name} {format_elapsed(elapsed())}] built {', '.join(step.tags)} "
            f"({image_id[:19]}) in {format_elapsed(duration)}"
        )
        outcome.steps.append(StepResult(step.name, tuple(step.tags), image_id, duration, labels))
    outcome.duration_s = clock() - start
    return outcome
