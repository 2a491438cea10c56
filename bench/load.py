"""Load held: concurrent predicts while tfsops adds, promotes and removes models.

N client threads (default 32, one ``requests`` session each) send predicts for
``--seconds`` to models that stay in the spec: ``a`` (by name), ``a`` through its
``stable`` label, ``b``, and ``d`` through its label ``x``. Meanwhile, after a quiet first fifth of the run, tfsops
changes the deployment every ``--interval`` seconds through its CLI, cycling through

    add-model c  ->  promote a --label stable (1 <-> 2)  ->  remove-model c --yes

and stops changing it for the last fifth. Two extra clients send predicts to ``c``
(their failures while ``c`` is absent are expected and reported apart).

After the first change it also walks the paths where hot changes used to break
(issue 12), each with the exit code it must end with (``--no-scenarios`` skips them):

    add-model ext (folder not under a mounted root)      exit 3, no restart
    publish b (a broken version), then publish b (good)   exit 5, then 0
    publish d (policy latest: 1, label x: 1)              exit 3 (would drop a labelled version)
    apply (server_args changed: recreate), Ctrl-C at 3 s  exit 130; then apply: 0; health: 0
    first deploy of a second deployment, Ctrl-C at 4 s    exit 130 (or 0); then apply: 0

Failed requests are attributed to the operation running when they failed (its wall
time plus 2 s); an operation that recreates the container on purpose is an outage by
design: its failures are shown, not counted against the goal.

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
import signal
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
    expect: tuple[int, ...] = (0,)
    outage_expected: bool = False  # recreates the container on purpose
    served: int = 0  # requests to models that stay, while it ran (+ grace)
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.code in self.expect


GRACE = 2.0  # seconds after an operation whose failed requests are still its own


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

    def op(
        self,
        what: str,
        *args: str,
        expect: tuple[int, ...] = (0,),
        interrupt_after: float | None = None,
        spec: Path | None = None,
        outage_expected: bool = False,
    ) -> None:
        """Run one tfsops command (Ctrl-C after ``interrupt_after`` s) and record its exit code."""
        start = time.monotonic()
        argv = [sys.executable, "-m", "tfsops", "-f", str(spec or self.spec), *args]
        proc = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=self.root,
        )  # fmt: skip
        try:
            if interrupt_after is not None:
                try:
                    proc.wait(timeout=interrupt_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        code = proc.returncode
        lines = [ln for ln in stderr.strip().splitlines() if ln.startswith(("error", "Error"))]
        error = "" if code == 0 else (lines or stderr.strip().splitlines() or ["?"])[0]
        op = Op(what, start, time.monotonic() - start, code, error, expect, outage_expected)
        self.ops.append(op)
        state = f"exit {code}" + ("" if op.ok else f" (expected {'/'.join(map(str, expect))})")
        if error:
            state += f": {error[:150]}"
        print(f"  {what:<44} {op.seconds:5.2f} s  {state}", file=sys.stderr)

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
        # d: one version, policy latest 1, and a label on it (a publish would drop it)
        shutil.copytree(models / "half_plus_two" / "1", self.root / "only_one" / "d" / "1")
        self.spec.write_text(
            f"""name: {self.name}
image: {self.args.image}
ports: {{rest: {self.rest}, grpc: {self.grpc}}}
server_args: {{max_num_load_retries: 0}}
model_roots: [{models}]
models:
  - name: a
    path: {models / "half_plus_two"}
    policy: {{all: {{}}}}
    labels: {{stable: 1}}
  - name: b
    path: {models / "half_plus_three"}
  - name: d
    path: {self.root / "only_one" / "d"}
    policy: {{latest: 1}}
    labels: {{x: 1}}
"""
        )
        print(f"deploying {self.name} ({self.args.image})", file=sys.stderr)
        done = self.tfsops("apply", "--timeout", "300")
        if done.returncode != 0:
            raise SystemExit(f"deploy failed (exit {done.returncode}):\n{done.stderr[-2000:]}")

    def teardown(self) -> None:
        for spec in (self.spec, self.root / "second" / "tfsops.yaml"):
            if spec.exists():
                for _ in range(2):  # a second run finishes what an interrupted swap left
                    subprocess.run(
                        [sys.executable, "-m", "tfsops", "-f", str(spec), "down", "--volumes"],
                        env=self.env, capture_output=True, timeout=120, check=False, cwd=self.root,
                    )  # fmt: skip

    # ---- the paths where hot changes used to break (issue 12) ---------------------------
    def _version_copy(self, src: Path, name: str, *, broken: bool = False) -> Path:
        dest = self.root / "incoming" / name
        shutil.copytree(src, dest)
        if broken:  # passes `validate` (saved_model.pb is fine), fails to load
            for data in (dest / "variables").glob("variables.data-*"):
                data.write_bytes(data.read_bytes()[: max(1, data.stat().st_size // 2)])
        return dest

    def scenarios(self) -> None:
        models = self.models
        # row 3: a folder the container does not mount; a hot command must not restart
        shutil.copytree(models / "times_two_plus_one", self.root / "extra" / "tf2")
        self.op(
            "add-model ext (not under a mounted root)",
            "add-model", "ext", "--path", str(self.root / "extra" / "tf2"),
            expect=(3,),
        )  # fmt: skip
        # row 7: a failed publish, then a good one
        self.op(
            "publish b (broken version)",
            "publish", "b", str(self._version_copy(models / "half_plus_three" / "1", "bad", broken=True)),
            "--timeout", "60",
            expect=(5,),
        )  # fmt: skip
        self.op(
            "publish b (good version after a failed one)",
            "publish", "b", str(self._version_copy(models / "half_plus_three" / "1", "good")),
            "--timeout", "60",
        )  # fmt: skip
        # row 8: publishing would unload the labelled version 1 of d
        self.op(
            "publish d (latest 1 would drop label x)",
            "publish", "d", str(self._version_copy(models / "half_plus_two" / "1", "d2")),
            "--timeout", "60",
            expect=(3,),
        )  # fmt: skip
        # row 5: a recreate interrupted mid-way; apply finishes it
        text = self.spec.read_text()
        self.spec.write_text(
            text.replace(
                "server_args: {max_num_load_retries: 0}",
                "server_args: {max_num_load_retries: 0, tensorflow_intra_op_parallelism: 2}",
            )
        )
        self.op(
            "apply (recreate), Ctrl-C at 3 s", "apply", "--timeout", "120",
            expect=(130,), interrupt_after=3.0, outage_expected=True,
        )  # fmt: skip
        self.op("apply (finish the recreate)", "apply", "--timeout", "120", outage_expected=True)
        self.op("health after the recreate", "health", "--wait", "--timeout", "60")
        # row 4: a first deploy interrupted while it waits; apply repairs it
        second = self.root / "second"
        second.mkdir()
        rest, grpc = free_ports(2)
        spec2 = second / "tfsops.yaml"
        spec2.write_text(
            f"name: {self.name}s\nimage: {self.args.image}\n"
            f"ports: {{rest: {rest}, grpc: {grpc}}}\n"
            f"models:\n  - {{name: a, path: {models / 'half_plus_two'}, policy: {{all: {{}}}}}}\n"
        )
        self.op(
            "first deploy (2nd deployment), Ctrl-C at 4 s", "apply", "--timeout", "120",
            spec=spec2, expect=(130, 0), interrupt_after=4.0,
        )  # fmt: skip
        self.op("apply (2nd deployment, after Ctrl-C)", "apply", "--timeout", "120", spec=spec2)

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
            if i == 1 and self.args.scenarios:  # after the first change, however slow
                self.scenarios()
            stop.wait(self.args.interval)

    def run(self) -> dict[str, Any]:
        seconds = self.args.seconds
        a = [0.5 * x + 2 for x in X]
        targets = [
            Target("a", "/v1/models/a:predict", a, True),
            Target("a@stable", "/v1/models/a/labels/stable:predict", a, True),
            Target("b", "/v1/models/b:predict", [0.5 * x + 3 for x in X], True),
            Target("d@x", "/v1/models/d/labels/x:predict", a, True),
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
        stay = [s for c in clients if c.target.stays for s in c.samples]
        unattributed = 0
        for s in stay:
            owner = next(
                (o for o in self.ops if o.started <= s.t <= o.started + o.seconds + GRACE), None
            )
            if owner is None:
                unattributed += 0 if s.ok else 1
            elif s.ok:
                owner.served += 1
            else:
                owner.failed += 1
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
            "operations": [dict(op.__dict__, ok=op.ok) for op in self.ops],
            "failed_outside_operations": unattributed,
        }


def report(fig: dict[str, Any]) -> None:
    print(
        f"\nload: {fig['clients']} clients, {fig['seconds']:g} s, {fig['image']}; "
        f"changes through the tfsops CLI in the middle 60%"
    )
    print(f"  {'models that stay (a, a@stable, b, d@x)':<36}{'served':>8}{'failed':>8}{'req/s':>8}"
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
    failed_ops = [o for o in ops if not o["ok"]]
    print(f"  {'operation':<46}{'exit':>5}{'wanted':>8}{'served':>8}{'failed':>8}{'s':>7}")
    for o in ops:
        wanted = "/".join(map(str, o["expect"]))
        mark = "" if o["ok"] else "  <- wrong exit"
        mark += "  (recreate: outage by design)" if o["outage_expected"] else ""
        print(
            f"  {o['what'][:45]:<46}{o['code']:>5}{wanted:>8}{o['served']:>8}{o['failed']:>8}"
            f"{o['seconds']:>7.2f}{mark}"
        )
    print(f"  failed requests outside any operation: {fig['failed_outside_operations']}")
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
    stay_failed = goal_failures(fig)
    verdict = "goal met" if stay_failed == 0 and not failed_ops else "GOAL MISSED"
    print(f"  failed requests to models that stay, outside recreates: {stay_failed} ({verdict})")


def goal_failures(fig: dict[str, Any]) -> int:
    """Failed requests to models that stay, except those of an operation that recreates."""
    by_design = sum(o["failed"] for o in fig["operations"] if o["outage_expected"])
    return sum(fig["phases"][f"stay/{p}"]["failed"] for p in PHASES) - by_design


def main() -> int:
    # Started in the background, SIGINT is ignored and the commands this run interrupts
    # would inherit that; a handler is reset to the default in them on exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between changes")
    parser.add_argument(
        "--image", default=os.environ.get("TFSOPS_TEST_IMAGE", "tfsops-double:latest")
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--no-scenarios",
        dest="scenarios",
        action="store_false",
        help="skip the issue-12 paths (failed publish, interrupted recreate, ...)",
    )
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
    failed_ops = [o for o in fig["operations"] if not o["ok"]]
    return 0 if goal_failures(fig) == 0 and not failed_ops else 1


if __name__ == "__main__":
    sys.exit(main())
