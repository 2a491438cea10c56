"""What the relay costs: predict latency through the engine vs the published port.

One deployment of the test double on the local engine; the same client code
(tfsops's REST and gRPC clients, one connection each, kept alive) sends N
predicts straight to the published port, then N through the relay (an exec in
the container, forced with TFSOPS_FORCE_RELAY=1 as for a remote engine). Also
the first request through a fresh relay, which pays for the exec.

    python bench/bench_relay.py [--image tfsops-double:latest] [-n 50]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tfsops(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "tfsops", *args], cwd=cwd, env=env, check=True)


def median_ms(call: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(relay: bool, n: int) -> dict[str, float]:
    from tfsops.cli.common import load_spec
    from tfsops.cli.context import GlobalOptions
    from tfsops.services import endpoint_for, real_services

    os.environ["TFSOPS_FORCE_RELAY"] = "1" if relay else "0"
    spec, _ = load_spec(GlobalOptions())
    services = real_services(None)
    body = {"instances": [1.0, 2.0, 5.0]}
    out: dict[str, float] = {}
    try:
        for kind, factory in (("rest", services.serving_factory), ("grpc", services.admin_factory)):
            client: Any = factory(endpoint_for(spec))
            start = time.perf_counter()
            client.predict("half_plus_two", body)  # the first: connects (and execs the relay)
            out[f"{kind}_first"] = (time.perf_counter() - start) * 1000
            out[kind] = median_ms(lambda c=client: c.predict("half_plus_two", body), n)
            client.close()
    finally:
        services.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", default="tfsops-double:latest")
    parser.add_argument("-n", type=int, default=50)
    args = parser.parse_args()
    from tfsops.example import half_plus

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        half_plus(work / "models" / "half_plus_two")
        for p in (work / "models").rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        name = f"benchrelay{uuid.uuid4().hex[:6]}"
        (work / "tfsops.yaml").write_text(
            f"name: {name}\nimage: {args.image}\n"
            f"ports: {{rest: {free_port()}, grpc: {free_port()}}}\n"
            f"models:\n  - name: half_plus_two\n    path: {work / 'models' / 'half_plus_two'}\n"
        )
        env = dict(os.environ, TFSOPS_STATE_DIR=str(work / "state"), TF_CPP_MIN_LOG_LEVEL="3")
        os.environ["TFSOPS_STATE_DIR"] = env["TFSOPS_STATE_DIR"]
        os.chdir(work)
        tfsops(env, work, "deploy", "--timeout", "180")
        try:
            direct = measure(False, args.n)
            relayed = measure(True, args.n)
        finally:
            tfsops(env, work, "down", "--volumes")
    print(f"relay: predict latency, median of {args.n} on one kept-alive connection")
    for kind in ("rest", "grpc"):
        d, r = direct[kind], relayed[kind]
        print(
            f"  {kind:4}  published port {d:6.2f} ms   relay {r:6.2f} ms   "
            f"added {r - d:+6.2f} ms   ratio {r / d:4.2f}x   "
            f"(first request: {direct[kind + '_first']:.1f} ms vs {relayed[kind + '_first']:.1f} ms)"
        )


if __name__ == "__main__":
    main()
