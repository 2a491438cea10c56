"""Deploy and health figures against the real engine and a serving image.

- `tfsops deploy` to healthy, next to a hand-written `docker run` + status-poll loop
  (same model, same image), and the ratio;
- the wall time of `tfsops health` for a deployment of 1 and of 20 models.

    python bench/bench_deploy.py [--image tfsops-double:latest] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tfsops(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tfsops", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def by_hand(image: str, model: Path, name: str) -> float:
    """What people write today: docker run, then poll the status endpoint until AVAILABLE."""
    port = free_port()
    start = time.perf_counter()
    cid = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "-p",
            f"127.0.0.1:{port}:8501",
            "-v",
            f"{model}:/models/{name}:ro",
            "-e",
            f"MODEL_NAME={name}",
            "--label",
            "io.tfsops.test=bench",
            image,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/v1/models/{name}", timeout=2
                ) as r:
                    states = [v["state"] for v in json.loads(r.read())["model_version_status"]]
                if states and all(s == "AVAILABLE" for s in states):
                    return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.1)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], check=False, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--image", default=os.environ.get("TFSOPS_TEST_IMAGE", "tfsops-double:latest")
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tfsops.example import half_plus

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = half_plus(root / "models" / "hp", versions=(1,))
        env = dict(os.environ, TFSOPS_STATE_DIR=str(root / "state"), TF_CPP_MIN_LOG_LEVEL="3")
        deploys, hands = [], []
        for i in range(args.runs):
            name = f"bench{i}"
            rest, grpc = free_port(), free_port()
            deploys.append(
                tfsops(
                    env,
                    "deploy",
                    name,
                    "--model-path",
                    str(model),
                    "--image",
                    args.image,
                    "--rest-port",
                    str(rest),
                    "--grpc-port",
                    str(grpc),
                )
            )
            tfsops(env, "down", "-d", name, "--volumes")
            hands.append(by_hand(args.image, model, "hp"))
        d, h = statistics.median(deploys), statistics.median(hands)
        print(f"deploy to healthy, median of {args.runs} ({args.image})")
        print(f"  tfsops deploy                       {d:6.2f} s")
        print(f"  docker run + status-poll loop       {h:6.2f} s")
        print(f"  ratio tfsops / by hand              {d / h:6.2f}")

        many = root / "many"
        many.mkdir()
        for i in range(20):
            shutil.copytree(model, many / f"m{i:02d}")
        for count in (1, 20):
            spec = root / f"spec{count}.yaml"
            rest, grpc = free_port(), free_port()
            lines = [
                f"name: health{count}",
                f"image: {args.image}",
                f"ports: {{rest: {rest}, grpc: {grpc}}}",
                "models:",
            ]
            lines += [f"  - {{name: m{i:02d}, path: {many / f'm{i:02d}'}}}" for i in range(count)]
            spec.write_text("\n".join(lines) + "\n")
            tfsops(env, "apply", "-f", str(spec), "--timeout", "600")
            times = [tfsops(env, "health", "-f", str(spec)) for _ in range(5)]
            print(
                f"  tfsops health, {count:2d} model(s)           {statistics.median(times):6.2f} s (median of 5)"
            )
            tfsops(env, "down", "-f", str(spec), "--volumes")


if __name__ == "__main__":
    main()
