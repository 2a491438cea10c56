"""``FakeRuntime`` passes the same contract as the real ``DockerRuntime``
(tests/integration/test_runtime_contract.py runs it against the engine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.unit.fakes_runtime import FakeRuntime, MountedServing, run_runtime_contract
from tfsops.plan.container import ContainerPlan, container_plan
from tfsops.plan.render import render_all
from tfsops.spec.load import spec_from_data

IMAGE = "tfsops-double:latest"


def contract_plans(tmp_path: Path, models_dir: Path, image: str, deployment: str):  # type: ignore[no-untyped-def]
    """``make_plan`` for ``run_runtime_contract``: a one-model deployment per suffix."""

    def make_plan(
        suffix: str, ports: tuple[int, int], restart: str, with_config: bool
    ) -> ContainerPlan:
        spec = spec_from_data(
            {
                "name": f"{deployment}{suffix}",
                "image": image,
                "ports": {"rest": ports[0], "grpc": ports[1]},
                "restart": restart,
                "models": [{"name": "a", "path": str(models_dir / "half_plus_two")}],
            },
            base_dir=models_dir,
            source="contract",
        )
        files = render_all(spec)
        config_dir = tmp_path / f"config-{suffix}"
        config_dir.mkdir(mode=0o755)
        if with_config:
            for name, text in files.files().items():
                (config_dir / name).write_text(text)
                (config_dir / name).chmod(0o644)
        return container_plan(spec, files, config_dir)

    return make_plan


def test_fake_runtime_passes_the_runtime_contract(tmp_path: Path, models_dir: Path) -> None:
    serving = MountedServing(allow_labels_for_unavailable=True)
    rt = FakeRuntime(serving, images={IMAGE: {}})

    def wait(what: str, ready: Callable[[], bool]) -> None:
        for _ in range(100):
            if ready():
                return
            rt.tick()
        raise AssertionError(f"never {what}")

    run_runtime_contract(
        rt,
        contract_plans(tmp_path, models_dir, IMAGE, "contract"),
        image=IMAGE,
        ports=(18501, 18500),
        crash=rt.crash,
        wait=wait,
    )
