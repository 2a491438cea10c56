"""What ``tfsops build`` does, without the CLI: plan, write, build.

The CLI module only parses flags and presents the result; everything that
touches the host (``/proc/cpuinfo``, ``nvidia-smi``), the file system or the
engine happens through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from tfsops.build.executor import BuildOutcome, ImageBuilder, execute_plan
from tfsops.build.plan import BuildHost, BuildPlan, BuildRequest, plan_build
from tfsops.errors import InvalidInput

PLAN_FILE = "build-plan.json"


def engine_is_remote(docker_host: str | None) -> bool:
    """True when the engine (and so the machine that compiles) is not this machine."""
    url = docker_host or os.environ.get("DOCKER_HOST") or ""
    if not url:
        return False
    parsed = urlparse(url)
    if parsed.scheme in ("unix", "npipe", ""):
        return False
    return parsed.hostname not in ("localhost", "127.0.0.1", "::1")


def build_host(request: BuildRequest, docker_host: str | None) -> BuildHost:
    """Probe only what the request needs: CPU flags for native, GPUs for --gpu without caps."""
    from tfsops.build.hostfacts import read_host_facts

    needs_cpu = request.arch.strip().lower() == "native"
    needs_gpu = request.gpu and not request.cuda_capabilities
    if not (needs_cpu or needs_gpu):
        return BuildHost(remote_engine=engine_is_remote(docker_host))
    facts = read_host_facts()
    caps = tuple(g.compute_capability for g in facts.gpus if g.compute_capability)
    return BuildHost(
        cpu_flags=facts.cpu_flags,
        cpu_model=facts.cpu_model,
        gpu_capabilities=caps if needs_gpu else (),
        remote_engine=engine_is_remote(docker_host),
    )


def make_plan(request: BuildRequest, docker_host: str | None = None) -> BuildPlan:
    return plan_build(request, build_host(request, docker_host))


def write_plan(plan: BuildPlan, out_dir: Path) -> list[Path]:
    """Write ``Dockerfile.devel``, ``Dockerfile`` and ``build-plan.json`` into ``out_dir``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"-o {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, text in {**plan.dockerfiles, PLAN_FILE: plan.to_json()}.items():
        path = out_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # never leave a half-written Dockerfile behind
        written.append(path)
    return written


def run_plan(
    plan: BuildPlan,
    progress: Callable[[str], None],
    *,
    docker_host: str | None = None,
    out_dir: Path | None = None,
    builder: ImageBuilder | None = None,
) -> BuildOutcome:
    """Build the plan's images. The Dockerfiles go to ``out_dir`` (kept) or a temp folder."""
    if builder is None:
        from tfsops.adapters.docker_build import DockerImageBuilder

        builder = DockerImageBuilder(docker_host)
    try:
        if out_dir is not None:
            write_plan(plan, out_dir)
            return execute_plan(plan, builder, out_dir, progress)
        with tempfile.TemporaryDirectory(prefix="tfsops-build-") as tmp:
            write_plan(plan, Path(tmp))
            return execute_plan(plan, builder, Path(tmp), progress)
    finally:
        close = getattr(builder, "close", None)
        if callable(close):
            close()
