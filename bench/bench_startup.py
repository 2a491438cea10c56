"""CLI start-up: median wall time of `tfsops --help` and `tfsops inspect`, next to a plain
`import tensorflow_serving.apis.predict_pb2` (which runs TensorFlow's __init__), same run.

    python bench/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from tfsops.example import half_plus

    with tempfile.TemporaryDirectory() as tmp:
        model = half_plus(Path(tmp) / "m", versions=(1,))
        py = sys.executable
        spec = Path(tmp) / "tfsops.yaml"
        rows = [
            ("python -c pass (interpreter floor)", [py, "-c", "pass"]),
            ("tfsops --help", [py, "-m", "tfsops", "--help"]),
            ("tfsops inspect MODEL", [py, "-m", "tfsops", "inspect", str(model)]),
            (
                "tfsops render config (spec from init)",
                [py, "-m", "tfsops", "render", "config", "-f", str(spec)],
            ),
            (
                "import tensorflow_serving.apis.predict_pb2",
                [py, "-c", "import tensorflow_serving.apis.predict_pb2"],
            ),
        ]
        subprocess.run(
            [py, "-m", "tfsops", "init", "--model-path", str(model), "-o", str(spec)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"median wall time over {args.runs} runs")
        for label, cmd in rows:
            print(f"  {label:<46} {median_wall(cmd, args.runs) * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
