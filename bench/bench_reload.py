"""Hot-reload figures, one run:

- seconds from a complete new model folder appearing to AVAILABLE via `tfsops watch --discover`;
- the same through a direct HandleReloadConfigRequest made by a few lines of plain grpc (the floor);
- the same through TF Serving's own config polling at --model_config_file_poll_wait_seconds=1 and =60
  (what users do today);
- the watcher's CPU time and memory while idle for 60 s.

    python bench/bench_reload.py [--image tfsops-double:latest] [--idle 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
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


def available(port: int, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=2) as r:
            return any(
                v["state"] == "AVAILABLE" for v in json.loads(r.read())["model_version_status"]
            )
    except OSError:
        return False


def wait_available(port: int, model: str, start: float, limit: float = 180) -> float:
    while not available(port, model):
        if time.perf_counter() - start > limit:
            return float("nan")
        time.sleep(0.05)
    return time.perf_counter() - start


def drop_in(source: Path, root: Path, name: str) -> float:
    """Copy next to the root, then rename in: the folder appears complete, at once."""
    staging = root.parent / f".staging-{name}"
    shutil.copytree(source, staging)
    start = time.perf_counter()
    staging.rename(root / name)
    return start


def config_text(models: dict[str, str]) -> str:
    entries = "".join(
        f'  config {{ name: "{n}" base_path: "{p}" model_platform: "tensorflow" }}\n'
        for n, p in models.items()
    )
    return "model_config_list {\n" + entries + "}\n"


def bench_polling(image: str, source: Path, root: Path, wait_s: int) -> float:
    """The server's own poller: edit the mounted models.config, wait until the new model is AVAILABLE."""
    conf = root / f"poll{wait_s}"
    conf.mkdir()
    models = root / f"poll{wait_s}-models"
    models.mkdir()
    shutil.copytree(source, models / "first")
    (conf / "models.config").write_text(config_text({"first": "/models/first"}))
    port = free_port()
    cid = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "-p",
            f"127.0.0.1:{port}:8501",
            "-v",
            f"{models}:/models:ro",
            "-v",
            f"{conf}:/config:ro",
            "--label",
            "io.tfsops.test=bench",
            image,
            "--model_config_file=/config/models.config",
            f"--model_config_file_poll_wait_seconds={wait_s}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        wait_available(port, "first", time.perf_counter())
        shutil.copytree(source, models / "second")
        tmp = conf / ".models.config.tmp"
        tmp.write_text(config_text({"first": "/models/first", "second": "/models/second"}))
        start = time.perf_counter()
        os.replace(tmp, conf / "models.config")
        return wait_available(port, "second", start, limit=wait_s * 2 + 60)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], check=False, capture_output=True)


def bench_direct_rpc(grpc_port: int, rest_port: int, models: dict[str, str], new: str) -> float:
    """The floor: a few lines of plain grpc against the same server."""
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
    from tensorflow_serving.config import model_server_config_pb2

    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(
        text_format.Parse(config_text(models), model_server_config_pb2.ModelServerConfig())
    )
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        start = time.perf_counter()
        stub.HandleReloadConfigRequest(request, 120)
        return wait_available(rest_port, new, start)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--image", default=os.environ.get("TFSOPS_TEST_IMAGE", "tfsops-double:latest")
    )
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--skip-slow-poll", action="store_true", help="skip the 60 s poller case")
    args = parser.parse_args()
    from tfsops.example import half_plus

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = half_plus(base / "source", versions=(1,))
        root = base / "models"
        shutil.copytree(source, root / "seed" / "first")
        root = root / "seed"
        env = dict(os.environ, TFSOPS_STATE_DIR=str(base / "state"), TF_CPP_MIN_LOG_LEVEL="3")
        rest, grpc_port = free_port(), free_port()
        spec = base / "tfsops.yaml"
        spec.write_text(
            f"name: benchreload\nimage: {args.image}\nports: {{rest: {rest}, grpc: {grpc_port}}}\n"
            f"model_roots: [{root}]\nmodels:\n  - {{name: first, path: {root / 'first'}}}\n"
        )
        tfsops = [sys.executable, "-m", "tfsops"]
        subprocess.run(
            [*tfsops, "apply", "-f", str(spec)], env=env, check=True, capture_output=True
        )
        watcher = subprocess.Popen(
            [*tfsops, "watch", "-f", str(spec), "--discover", str(root), "--debounce", "0.2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3)
            watch_times = [
                wait_available(rest, f"w{i}", drop_in(source, root, f"w{i}")) for i in range(3)
            ]
            time.sleep(2)
            cpu0, t0 = cpu_seconds(watcher.pid), time.perf_counter()
            time.sleep(args.idle)
            idle_cpu = (cpu_seconds(watcher.pid) - cpu0) / (time.perf_counter() - t0) * 100
            idle_rss = rss_mb(watcher.pid)
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=30)
        # the floor, on the same server (its config now lists first, w0..w2)
        shutil.copytree(source, root / "direct")
        listed = {n: f"/models/seed/{n}" for n in ["first", "w0", "w1", "w2", "direct"]}
        direct = bench_direct_rpc(grpc_port, rest, listed, "direct")
        subprocess.run(
            [*tfsops, "down", "-f", str(spec), "--volumes"],
            env=env,
            check=False,
            capture_output=True,
        )
        poll1 = bench_polling(args.image, source, base, 1)
        poll60 = (
            float("nan") if args.skip_slow_poll else bench_polling(args.image, source, base, 60)
        )

    print("new model folder -> AVAILABLE")
    print(
        f"  tfsops watch --discover            {sorted(watch_times)[1]:6.2f} s (median of 3: "
        + ", ".join(f"{t:.2f}" for t in watch_times)
        + ")"
    )
    print(f"  direct HandleReloadConfigRequest   {direct:6.2f} s (the floor)")
    print(f"  server polling, wait 1 s           {poll1:6.2f} s")
    print(f"  server polling, wait 60 s          {poll60:6.2f} s")
    print(f"watcher idle over {args.idle:.0f} s: {idle_cpu:.2f}% of one CPU, {idle_rss:.0f} MB RSS")


if __name__ == "__main__":
    main()
