"""Load held: concurrent predicts while tfsops adds, promotes and removes models.

N client threads (default 32, one ``requests`` session each) send predicts for
``--seconds`` to models that stay in the spec: ``a`` (by name), ``a`` through its
``stable`` label, and ``b``. Meanwhile, after a quiet first fifth of the run, tfsops
changes the deployment every ``--interval`` seconds through its CLI, cycling through

    add-model c  ->  promote a --label stable (1 <-> 2)  ->  remove-model c --yes

and stops changing it for the last fifth. Two extra clients send predicts to ``c``
(their failures while ``c`` is absent are expected and reported apart).

Printed: requests served, failed requests (the goal is zero for the models that stay),
and p50/p99 latency before, during and after the reloads; each tfsops operation with
its wall time. Exit 1 when a request to a model that stays failed or a change failed.

    python bench/load.py [--seconds 60] [--clients 32] [--interval 3] [--image IMAGE] [--json]

Run by ``nox -s load`` (not part of the normal test run). Needs the Docker engine and
the serving image (default ``$TFSOPS_TEST_IMAGE`` or ``tfsops-double:latest``).
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
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHASES = ("before", "during", "after")
X = [1.0, 2.0, 5.0]


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Sample:
    t: float  # monotonic end time
    latency: float
    ok: bool
    error: str = ""


@dataclass
class Target:
    label: str  # what the table shows
    path: str  # REST path of the predict
    expected: list[float]
    stays: bool  # in the spec the whole run: failures count against the goal


@dataclass
class Client:
    target: Target
    port: int
    stop: threading.Event
    samples: list[Sample] = field(default_factory=list)

    def run(self) -> None:
        import requests

        url = f"http://127.0.0.1:{self.port}{self.target.path}"
        body = json.dumps({"instances": X})
        with requests.Session() as session:
            session.trust_env = False  # no proxy between us and our server
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    resp = session.post(url, data=body, timeout=30)
                    ok = resp.status_code == 200 and resp.json().get("predictions") == (
                        self.target.expected
                    )
                    error = "" if ok else f"HTTP {resp.status_code}: {resp.text[:120]}"
                except (requests.RequestException, ValueError) as exc:
                    ok, error = False, f"{type(exc).__name__}: {exc}"[:160]
                end = time.monotonic()
                self.samples.append(Sample(end, end - start, ok, error))
                if not ok and not self.target.stays:
                    self.stop.wait(0.05)  # absent on purpose: do not spin


@dataclass
class Op:
    what: str
    started: float
    seconds: float
    code: int
    error: str = ""


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.name = f"load{uuid.uuid4().hex[:6]}"
        self.rest, self.grpc = free_ports(2)
        self.env = dict(os.environ, TFSOPS_STATE_DIR=str(root / "state"), TF_CPP_MIN_LOG_LEVEL="3")
        self.spec = root / "tfsops.yaml"
        self.ops: list[Op] = []

    def tfsops(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tfsops", "-f", str(self.spec), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def op(self, what: str, *args: str) -> None:
        start = time.monotonic()
        done = self.tfsops(*args)
        error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[0]
        self.ops.append(Op(what, start, time.monotonic() - start, done.returncode, error))
        state = "ok" if done.returncode == 0 else f"exit {done.returncode}: {error}"
        print(f"  {what:<34} {time.monotonic() - start:5.2f} s  {state}", file=sys.stderr)

    def setup(self) -> None:
        from tfsops.example import make_models

        models = self.root / "models"
        print(f"generating models in {models}", file=sys.stderr)
        make_models(
            [
                {"path": str(models / "half_plus_two" / "1"), "a": 0.5, "b": 2.0},
                {"path": str(models / "half_plus_two" / "2"), "a": 0.5, "b": 2.0},
                {"path": str(models / "half_plus_three" / "1"), "a": 0.5, "b": 3.0},
                {"path": str(models / "times_two_plus_one" / "1"), "a": 2.0, "b": 1.0},
            ]
        )
        self.models = models
        self.spec.write_text(
            f"""name: {self.name}
image: {self.args.image}
ports: {{rest: {self.rest}, grpc: {self.grpc}}}
server_args: {{max_num_load_retries: 0}}
models:
  - name: a
    path: {models / "half_plus_two"}
    policy: {{all: {{}}}}
    labels: {{stable: 1}}
  - name: b
    path: {models / "half_plus_three"}
"""
        )
        print(f"deploying {self.name} ({self.args.image})", file=sys.stderr)
        done = self.tfsops("apply", "--timeout", "300")
        if done.returncode != 0:
            raise SystemExit(f"deploy failed (exit {done.returncode}):\n{done.stderr[-2000:]}")

    def teardown(self) -> None:
        self.tfsops("down", "--volumes", timeout=120)

    def changes(self, stop: threading.Event) -> None:
        cycle = [
            ("add-model c", ("add-model", "c", "--path", str(self.models / "times_two_plus_one"))),
            ("promote a stable=2", ("promote", "a", "--label", "stable", "--version", "2")),
            ("remove-model c", ("remove-model", "c", "--yes")),
            ("promote a stable=1", ("promote", "a", "--label", "stable", "--version", "1")),
        ]
        i = 0
        while not stop.is_set():
            what, args = cycle[i % len(cycle)]
            self.op(what, *args)
            i += 1
            stop.wait(self.args.interval)

    def run(self) -> dict[str, Any]:
        seconds = self.args.seconds
        a = [0.5 * x + 2 for x in X]
        targets = [
            Target("a", "/v1/models/a:predict", a, True),
            Target("a@stable", "/v1/models/a/labels/stable:predict", a, True),
            Target("b", "/v1/models/b:predict", [0.5 * x + 3 for x in X], True),
        ]
        churn = Target("c (added/removed)", "/v1/models/c:predict", [2 * x + 1 for x in X], False)
        stop = threading.Event()
        clients = [
            Client(targets[i % len(targets)], self.rest, stop) for i in range(self.args.clients)
        ]
        clients += [Client(churn, self.rest, stop) for _ in range(2)]
        threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        print(f"load: {self.args.clients} clients for {seconds:g} s", file=sys.stderr)
        time.sleep(seconds * 0.2)
        changes_start = time.monotonic()
        stop_changes = threading.Event()
        changer = threading.Thread(target=self.changes, args=(stop_changes,), daemon=True)
        changer.start()
        time.sleep(max(0.0, t0 + seconds * 0.8 - time.monotonic()))
        stop_changes.set()
        changer.join(timeout=300)
        changes_end = time.monotonic()
        time.sleep(max(0.0, changes_end + seconds * 0.2 - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(timeout=60)
        t_end = time.monotonic()
        bounds = {
            "before": (t0, changes_start),
            "during": (changes_start, changes_end),
            "after": (changes_end, t_end),
        }
        return self.figures(clients, bounds)

    def figures(
        self, clients: list[Client], bounds: dict[str, tuple[float, float]]
    ) -> dict[str, Any]:
        def phase_of(t: float) -> str:
            for phase in PHASES:
                lo, hi = bounds[phase]
                if lo <= t < hi:
                    return phase
            return "after"

        rows: dict[str, dict[str, Any]] = {}
        errors: dict[str, int] = {}
        for group in ("stay", "churn"):
            for phase in PHASES:
                picked = [
                    s
                    for c in clients
                    if c.target.stays == (group == "stay")
                    for s in c.samples
                    if phase_of(s.t) == phase
                ]
                lat = sorted(s.latency for s in picked if s.ok)
                lo, hi = bounds[phase]
                rows[f"{group}/{phase}"] = {
                    "seconds": round(hi - lo, 1),
                    "served": len(lat),
                    "failed": sum(1 for s in picked if not s.ok),
                    "rps": round(len(lat) / max(hi - lo, 1e-9), 1),
                    "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
                    "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1)
                    if lat
                    else None,
                }
                if group == "stay":
                    for s in picked:
                        if not s.ok:
                            errors[s.error] = errors.get(s.error, 0) + 1
        per_target: dict[str, dict[str, int]] = {}
        for c in clients:
            entry = per_target.setdefault(c.target.label, {"served": 0, "failed": 0})
            entry["served"] += sum(1 for s in c.samples if s.ok)
            entry["failed"] += sum(1 for s in c.samples if not s.ok)
        return {
            "deployment": self.name,
            "image": self.args.image,
            "clients": self.args.clients,
            "seconds": self.args.seconds,
            "phases": rows,
            "targets": per_target,
            "stay_errors": errors,
            "operations": [op.__dict__ for op in self.ops],
        }


def report(fig: dict[str, Any]) -> None:
    print(
        f"\nload: {fig['clients']} clients, {fig['seconds']:g} s, {fig['image']}; "
        f"changes through the tfsops CLI in the middle 60%"
    )
    print(f"  {'models that stay (a, a@stable, b)':<36}{'served':>8}{'failed':>8}{'req/s':>8}"
          f"{'p50 ms':>9}{'p99 ms':>9}")  # fmt: skip
    for group, title in (("stay", "stay"), ("churn", "c, added and removed")):
        if group == "churn":
            print(f"  {title}")
        for phase in PHASES:
            r = fig["phases"][f"{group}/{phase}"]
            print(
                f"    {phase:<8} ({r['seconds']:>5.1f} s){'':<18}{r['served']:>8}{r['failed']:>8}"
                f"{r['rps']:>8}{r['p50_ms'] or '-':>9}{r['p99_ms'] or '-':>9}"
            )
    print("  per target: " + ", ".join(
        f"{k} {v['served']} served / {v['failed']} failed" for k, v in fig["targets"].items()
    ))  # fmt: skip
    ops = fig["operations"]
    failed_ops = [o for o in ops if o["code"] != 0]
    by_kind: dict[str, list[float]] = {}
    for o in ops:
        by_kind.setdefault(o["what"].split(" ")[0], []).append(o["seconds"])
    print(
        f"  tfsops changes: {len(ops)} ({len(failed_ops)} failed); median wall time "
        + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in by_kind.items())
    )
    for o in failed_ops:
        print(f"    FAILED {o['what']}: exit {o['code']}: {o['error']}")
    for error, count in sorted(fig["stay_errors"].items(), key=lambda kv: -kv[1])[:5]:
        print(f"    {count} x {error}")
    stay_failed = sum(fig["phases"][f"stay/{p}"]["failed"] for p in PHASES)
    verdict = "goal met" if stay_failed == 0 and not failed_ops else "GOAL MISSED"
    print(f"  failed requests to models that stay: {stay_failed} ({verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between changes")
    parser.add_argument(
        "--image", default=os.environ.get("TFSOPS_TEST_IMAGE", "tfsops-double:latest")
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tfsops-load-"))
    bench = Bench(args, root)
    try:
        bench.setup()
        fig = bench.run()
    finally:
        bench.teardown()
        shutil.rmtree(root, ignore_errors=True)
    report(fig)
    if args.json:
        print(json.dumps(fig, indent=2))
    stay_failed = sum(fig["phases"][f"stay/{p}"]["failed"] for p in PHASES)
    failed_ops = [o for o in fig["operations"] if o["code"] != 0]
    return 0 if stay_failed == 0 and not failed_ops else 1


if __name__ == "__main__":
    sys.exit(main())
