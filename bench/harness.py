"""Shared pieces of the benchmarks: free ports, a run-unique name prefix, timed CLI runs,
a clean-up registry and the one results table.

Every deployment and container a benchmark makes is named with `PREFIX` (unique per run)
and labelled `io.tfsops.bench=PREFIX`, so runs never collide with other deployments on the
same engine, and `cleanup()` removes whatever a benchmark left behind.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = f"b{uuid.uuid4().hex[:6]}"
LABEL = f"io.tfsops.bench={PREFIX}"
PY = sys.executable


def name(part: str) -> str:
    """A deployment or container name unique to this run."""
    return f"{PREFIX}-{part}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(cmd: Sequence[str], env: dict[str, str] | None = None, check: bool = True) -> float:
    """Wall seconds of one child process (output discarded; its stderr shown when it fails)."""
    start = time.perf_counter()
    done = subprocess.run(list(cmd), check=False, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def child_env(**extra: str) -> dict[str, str]:
    """The environment of measured commands: bytecode caches on, as for an installed package
    (with PYTHONDONTWRITEBYTECODE every run would compile the package from source again)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra)
    return env


def compile_package() -> None:
    """Write the package's bytecode once, as `pip install` does, before anything is timed."""
    import tfsops

    subprocess.run(
        [PY, "-m", "compileall", "-q", str(Path(tfsops.__file__).parent)],
        check=False,
        env=child_env(),
        capture_output=True,
    )


def tfsops_cmd(*args: str) -> list[str]:
    return [PY, "-m", "tfsops", *args]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def repeat(fn: Callable[[], float], runs: int) -> float:
    return median([fn() for _ in range(runs)])


def versions_available(port: int, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=2) as r:
            states = [v["state"] for v in json.loads(r.read())["model_version_status"]]
    except (OSError, ValueError, KeyError):
        return False
    return bool(states) and all(s == "AVAILABLE" for s in states)


def poll_until(
    check: Callable[[], bool], start: float, limit: float = 300, step: float = 0.1
) -> float:
    """Seconds from `start` until `check()` holds (nan after `limit`)."""
    while not check():
        if time.perf_counter() - start > limit:
            return float("nan")
        time.sleep(step)
    return time.perf_counter() - start


def docker_run(args: Sequence[str]) -> str:
    """`docker run -d` with the run's label; returns the container id."""
    return subprocess.run(
        ["docker", "run", "-d", "--label", LABEL, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def docker_rm(cid: str) -> None:
    subprocess.run(["docker", "rm", "-f", cid], check=False, capture_output=True)


_DOWNS: list[tuple[dict[str, str], list[str]]] = []


def remember_down(env: dict[str, str], *target: str) -> None:
    """Register `tfsops down TARGET --volumes` for cleanup()."""
    _DOWNS.append((env, list(target)))


def cleanup() -> None:
    """Take down every deployment registered and remove containers carrying this run's label."""
    for env, target in _DOWNS:
        subprocess.run(
            tfsops_cmd("down", *target, "--volumes"), env=env, check=False, capture_output=True
        )
    _DOWNS.clear()
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.split()
    for prefix_id in subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name={PREFIX}-"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.split():
        if prefix_id not in ids:
            ids.append(prefix_id)
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], check=False, capture_output=True)


@dataclass
class Row:
    figure: str
    tfsops: str
    by_hand: str = "—"
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  measured: {row.figure}: {row.tfsops} | {row.by_hand}", flush=True)

    def markdown(self) -> str:
        lines = [
            "| figure | tfsops | by hand | ratio | goal | met |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
            met = "—" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| {r.figure} | {r.tfsops} | {r.by_hand} | {ratio} | {r.goal} | {met} |")
        return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), load average {load}, Python {sys.version.split()[0]}"


def seconds(value: float) -> str:
    return f"{value:.2f} s"
