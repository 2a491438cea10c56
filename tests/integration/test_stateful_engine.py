"""Model-based testing on the engine: a few random command sequences, bounded in time.

The smaller sibling of tests/unit/test_stateful.py: the real ``tfsops``
executable, the real engine and the TF Serving test double. Rules: add,
remove, publish, reload, a spec edit by hand, a cold change applied (a
recreate) or interrupted with Ctrl-C, a server crash. After every step:
the server serves what models.config holds (unless ``plan`` reports a
pending repair), the user's spec edits are kept, a container tfsops did not
create is never removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import STATEFUL_RUNS, TEST_LABEL, remember_deployment
from tests.integration.cli import Tfsops, free_ports

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]

RUN = "engine"
BUDGET_S = float(os.environ.get("TFSOPS_STATEFUL_ENGINE_BUDGET", "75"))
POOL = {"a": "half_plus_two", "b": "half_plus_three", "c": "times_two_plus_one"}


def _available(port: int, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=5) as r:
            body = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(v.get("state") == "AVAILABLE" for v in body.get("model_version_status", []))


class EngineMachine(RuleBasedStateMachine):
    ctx: dict[str, Any]  # set by the test: models_dir, tmp root, image, docker client, run id

    def __init__(self) -> None:
        super().__init__()
        # One deployment for every sequence (a deploy costs most of the budget): each
        # sequence starts from the same spec, made live again by `apply --prune`.
        ctx = self.ctx
        self.started = ctx["started"]
        self.root: Path = ctx["root"]
        self.tfsops: Tfsops = ctx["tfsops"]
        self.name: str = ctx["name"]
        self.rest, self.grpc = ctx["ports"]
        self.spec = self.root / "work" / "tfsops.yaml"
        self.notes: list[str] = []
        self.models = ["a"]
        self.cold = False
        self.last = ""
        STATEFUL_RUNS[f"{RUN}:sequences"] += 1

    def in_budget(self) -> bool:
        return time.monotonic() - self.started < BUDGET_S

    def step(self, what: str, *args: str, expect: tuple[int, ...] = (0,)) -> Any:
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        self.last = what
        run = self.tfsops("--json", *args, timeout=180)
        assert run.code in expect, f"{what}: {run}"
        return run

    def write_spec(self) -> None:
        lines = [
            f"name: {self.name}",
            f"image: {self.ctx['image']}",
            f"ports: {{rest: {self.rest}, grpc: {self.grpc}}}",
            "restart: unless-stopped",
            "server_args: {max_num_load_retries: 0"
            + (", tensorflow_intra_op_parallelism: 2}" if self.cold else "}"),
            "model_roots: [models]  # models added later under it hot-load",
            "models:",
        ]
        for m in self.models:
            lines += [f"  - name: {m}", f"    path: models/{m}"]
        self.spec.write_text("\n".join(lines + self.notes) + "\n")

    # -- rules -------------------------------------------------------------------

    @initialize()
    def deploy(self) -> None:
        self.write_spec()
        self.step("deploy", "apply", "--prune", "--timeout", "120")

    @rule(model=st.sampled_from(sorted(POOL)))
    def add_or_remove(self, model: str) -> None:
        if not self.in_budget():
            return
        self.models = self.spec_models()
        if model in self.models:
            run = self.step("remove", "remove-model", model, "--yes", expect=(0, 3))
        else:
            path = str(self.spec.parent / "models" / model)
            run = self.step("add", "add-model", model, "--path", path, "--timeout", "120")
        if run.code == 0:
            self.models = self.spec_models()

    @rule()
    def publish(self) -> None:
        if not self.in_budget():
            return
        model = self.spec_models()[0]
        source = str(self.spec.parent / "models" / "a" / "1")
        self.step("publish", "publish", model, source, "--timeout", "120")

    @rule()
    def reload(self) -> None:
        if not self.in_budget():
            return
        self.step("reload", "reload", "--timeout", "120")

    @rule()
    def edit_note(self) -> None:
        if not self.in_budget():
            return
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        note = f"# note {len(self.notes) + 1}"
        self.notes.append(note)
        self.spec.write_text(self.spec.read_text() + note + "\n")
        self.last = "edit"

    @rule(interrupt=st.booleans())
    def cold_change(self, interrupt: bool) -> None:
        """A server flag changes: a recreate, applied or interrupted with Ctrl-C."""
        if not self.in_budget():
            return
        self.models = self.spec_models()
        self.cold = not self.cold
        self.write_spec()
        if not interrupt:
            self.step("recreate", "apply", "--timeout", "120")
            return
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        self.last = "interrupted recreate"
        proc = self.tfsops.popen("--json", "apply", "--timeout", "120")
        deadline = time.monotonic() + 60
        client = self.ctx["docker"]
        staging = f"tfsops-{self.name}-next"
        while time.monotonic() < deadline and proc.poll() is None:
            if client.containers.list(all=True, filters={"name": staging}):
                time.sleep(0.5)
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 130), err
        if proc.returncode == 130:
            assert f"tfsops-{self.name}" in err, err

    @rule()
    def crash_server(self) -> None:
        """The server process dies (not `docker kill`): its restart policy brings it back."""
        if not self.in_budget():
            return
        STATEFUL_RUNS[f"{RUN}:steps"] += 1
        self.last = "crash"
        client = self.ctx["docker"]
        for c in client.containers.list(filters={"label": f"io.tfsops.deployment={self.name}"}):
            pid = c.attrs["State"]["Pid"]
            if pid:
                os.kill(pid, signal.SIGKILL)
        time.sleep(1)

    def spec_models(self) -> list[str]:
        return [
            line.split(":", 1)[1].strip()
            for line in self.spec.read_text().splitlines()
            if line.startswith("  - name:")
        ]

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def served_matches_config(self) -> None:
        config_file = self.root / "state" / self.name / "config" / "models.config"
        if not config_file.exists():
            return
        listed = {m for m in POOL if f'name: "{m}"' in config_file.read_text()}
        deadline = time.monotonic() + 60
        while True:
            served = {m for m in POOL if _available(self.rest, m)}
            if served == listed or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if served == listed:
            return
        plan = self.tfsops("--json", "plan", timeout=60)
        pending = plan.code == 0 and (
            plan.json["data"]["action"] == "repair"
            or any("interrupted" in r for r in plan.json["data"]["reasons"])
        )
        assert pending, f"after {self.last}: served {served}, models.config {listed}, {plan}"

    @invariant()
    def edits_kept(self) -> None:
        text = self.spec.read_text()
        assert all(n in text for n in self.notes), f"after {self.last}: spec edits lost"

    @invariant()
    def foreign_container_kept(self) -> None:
        self.ctx["docker"].containers.get(self.ctx["foreign"])


def test_random_sequences_on_the_engine(
    docker_client: Any, serving_image: str, models_dir: Path, tmp_path: Path, run_id: str
) -> None:
    foreign = docker_client.containers.create(
        serving_image, name=f"not-tfsops-{run_id}-{uuid.uuid4().hex[:6]}", labels={TEST_LABEL: run_id}
    )
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    for model, src in POOL.items():
        shutil.copytree(models_dir / src, work / "models" / model)
    tfsops = Tfsops(tmp_path / "state", work)
    EngineMachine.ctx = {
        "root": tmp_path,
        "tfsops": tfsops,
        "name": remember_deployment(f"sm{uuid.uuid4().hex[:8]}"),
        "ports": tuple(free_ports(2)),
        "image": serving_image,
        "docker": docker_client,
        "foreign": foreign.id,
        "started": time.monotonic(),
    }
    try:
        run_state_machine_as_test(
            EngineMachine,
            settings=settings(
                max_examples=3,
                stateful_step_count=4,
                deadline=None,
                database=None,
                phases=[Phase.generate],  # no shrinking: each step is a real process
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        foreign.remove(force=True)
        tfsops("down", "--volumes", "-d", EngineMachine.ctx["name"], timeout=120)
    assert STATEFUL_RUNS[f"{RUN}:sequences"] >= 1
