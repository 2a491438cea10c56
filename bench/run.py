"""Every performance figure in one run, each next to its by-hand counterpart, as ONE table.

    python bench/run.py [--image tfsops-double:latest] [--runs 3] [--idle 20] [--large-mb 200]
                        [--only startup,deploy,large,scale,predict,watch]

Figures (medians; by-hand measured in the same run, interleaved with tfsops):
- deploy to AVAILABLE, tiny model: `tfsops deploy` vs `docker run` + a status-poll loop;
- deploy to AVAILABLE, a large model (--large-mb of variables);
- `apply` of 1 / 20 / 50 models vs `docker run` with a models.config + poll;
- `status`, `health` with 1 / 20 / 50 models, `add-model` of the 2nd / 21st / 51st model;
- `tfsops predict` (REST) vs curl;
- new model folder -> AVAILABLE via `watch --discover` vs a direct HandleReloadConfigRequest;
- `watch` idle CPU and RSS;
- `--help`, `validate`, `inspect`, `render config` start-up.

Deployments are named `<run prefix>-...` on free ports and removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import harness as h
from bench_reload import bench_direct_rpc, config_text, cpu_seconds, drop_in, rss_mb

_LARGE = r"""
import json, sys
import tensorflow as tf
job = json.loads(sys.argv[1])[0]
n = int(job["mb"]) * 1024 * 1024 // 4

class Big(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.zeros([n], tf.float32), name="w")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": x * 0.5 + 2.0 + self.w[0]}

m = Big()
tf.saved_model.save(m, job["path"], signatures={"serving_default": m.serve})
"""


class Bench:
    def __init__(self, args: argparse.Namespace, base: Path) -> None:
        from tfsops.example import half_plus

        self.args = args
        self.base = base
        self.image = args.image
        self.env = h.child_env(TFSOPS_STATE_DIR=str(base / "state"))
        self.model = half_plus(base / "models" / "hp", versions=(1,))
        self.table = h.Table()

    # -- by hand -------------------------------------------------------------------------

    def by_hand_one(self, model: Path, model_name: str) -> float:
        """What people write: docker run, then poll the status endpoint until AVAILABLE."""
        port = h.free_port()
        start = time.perf_counter()
        cid = h.docker_run(
            [
                "--name",
                h.name(f"hand{port}"),
                "-p",
                f"127.0.0.1:{port}:8501",
                "-v",
                f"{model}:/models/{model_name}:ro",
                "-e",
                f"MODEL_NAME={model_name}",
                self.image,
            ]
        )
        try:
            return h.poll_until(lambda: h.versions_available(port, model_name), start)
        finally:
            h.docker_rm(cid)

    def by_hand_many(self, root: Path, names: list[str]) -> float:
        """docker run with a models.config listing every model, poll until all are AVAILABLE."""
        port = h.free_port()
        conf = self.base / f"handconf{len(names)}"
        conf.mkdir(exist_ok=True)
        (conf / "models.config").write_text(config_text({n: f"/models/{n}" for n in names}))
        start = time.perf_counter()
        cid = h.docker_run(
            [
                "--name",
                h.name(f"hand{port}"),
                "-p",
                f"127.0.0.1:{port}:8501",
                "-v",
                f"{root}:/models:ro",
                "-v",
                f"{conf}:/config:ro",
                self.image,
                "--model_config_file=/config/models.config",
            ]
        )
        try:
            return h.poll_until(lambda: all(h.versions_available(port, n) for n in names), start)
        finally:
            h.docker_rm(cid)

    # -- figures -------------------------------------------------------------------------

    def startup(self) -> None:
        spec = self.base / "startup.yaml"
        subprocess.run(
            h.tfsops_cmd("init", "--model-path", str(self.model), "-o", str(spec)),
            check=True,
            capture_output=True,
            env=self.env,
        )
        runs = max(5, self.args.runs * 2)

        def med(cmd: list[str]) -> float:
            return h.repeat(lambda: h.timed(cmd, self.env), runs)

        floor = med([h.PY, "-c", "pass"])
        # the reference runs TensorFlow's __init__ (seconds): once is enough
        ref = h.timed([h.PY, "-c", "import tensorflow_serving.apis.predict_pb2"], self.env)
        for label, cmd, goal in [
            ("`tfsops --help`", h.tfsops_cmd("--help"), 0.15),
            ("`tfsops validate` (one-model spec)", h.tfsops_cmd("-f", str(spec), "validate"), 0.35),
            ("`tfsops inspect MODEL`", h.tfsops_cmd("inspect", str(self.model)), 0.35),
            ("`tfsops render config`", h.tfsops_cmd("render", "config", "-f", str(spec)), 0.35),
        ]:
            t = med(cmd)
            self.table.add(
                h.Row(
                    label,
                    h.seconds(t),
                    f"`python -c pass` {h.seconds(floor)}; `import predict_pb2` {h.seconds(ref)}",
                    None,
                    f"≤ {goal:.2f} s",
                    t <= goal,
                )
            )

    def deploy_tiny(self) -> None:
        ours, hand = [], []
        for i in range(self.args.runs):
            dep = h.name(f"tiny{i}")
            h.remember_down(self.env, "-d", dep)
            ours.append(
                h.timed(
                    h.tfsops_cmd(
                        "deploy",
                        dep,
                        "--model-path",
                        str(self.model),
                        "--image",
                        self.image,
                        "--rest-port",
                        str(h.free_port()),
                        "--grpc-port",
                        str(h.free_port()),
                    ),
                    self.env,
                )
            )
            subprocess.run(
                h.tfsops_cmd("down", "-d", dep, "--volumes"),
                check=False,
                env=self.env,
                capture_output=True,
            )
            hand.append(self.by_hand_one(self.model, "hp"))
        self._ratio("deploy to AVAILABLE, tiny model", ours, hand, "`docker run` + poll", 1.10)

    def deploy_large(self) -> None:
        from tfsops.example import run_model_script

        big = self.base / "models" / "big"
        run_model_script(_LARGE, [{"path": str(big / "1"), "mb": self.args.large_mb}])
        dep = h.name("large")
        h.remember_down(self.env, "-d", dep)
        ours = h.timed(
            h.tfsops_cmd(
                "deploy",
                dep,
                "--model-path",
                str(big),
                "--image",
                self.image,
                "--rest-port",
                str(h.free_port()),
                "--grpc-port",
                str(h.free_port()),
                "--timeout",
                "300",
            ),
            self.env,
        )
        subprocess.run(
            h.tfsops_cmd("down", "-d", dep, "--volumes"),
            check=False,
            env=self.env,
            capture_output=True,
        )
        hand = self.by_hand_one(big, "big")
        shutil.rmtree(big, ignore_errors=True)
        self._ratio(
            f"deploy to AVAILABLE, {self.args.large_mb} MB model (one run)",
            [ours],
            [hand],
            "`docker run` + poll",
            1.10,
        )

    def scale(self) -> None:
        """Deploy, status, health and add-model with 1, 20 and 50 models; the three
        deployments stay up together and are asked in turn, so load hits them alike."""
        many = self.base / "many"
        many.mkdir()
        for i in range(51):
            shutil.copytree(self.model, many / f"m{i:02d}")
        counts = (1, 20, 50)
        specs: dict[int, Path] = {}
        for count in counts:
            names = [f"m{i:02d}" for i in range(count)]
            spec = self.base / f"scale{count}.yaml"
            rest, grpc = h.free_port(), h.free_port()
            lines = [
                f"name: {h.name(f'scale{count}')}",
                f"image: {self.image}",
                f"ports: {{rest: {rest}, grpc: {grpc}}}",
                f"model_roots: [{many}]",
                "models:",
            ]
            lines += [f"  - {{name: {n}, path: {many / n}}}" for n in names]
            spec.write_text("\n".join(lines) + "\n")
            specs[count] = spec
            hand = self.by_hand_many(many, names)
            h.remember_down(self.env, "-f", str(spec))
            ours = h.timed(h.tfsops_cmd("apply", "-f", str(spec), "--timeout", "600"), self.env)
            self._ratio(
                f"deploy {count} model(s) to AVAILABLE (`apply`, one run)",
                [ours],
                [hand],
                "`docker run` + models.config + poll",
                1.10,
            )
        samples: dict[str, dict[int, list[float]]] = {"status": {}, "health": {}}
        for _ in range(max(5, self.args.runs)):
            for command, per_count in samples.items():
                for count in counts:
                    cmd = h.tfsops_cmd("-f", str(specs[count]), command)
                    per_count.setdefault(count, []).append(h.timed(cmd, self.env))
        add: dict[int, float] = {}
        for count in counts:
            new = f"m{count:02d}"
            add[count] = h.timed(
                h.tfsops_cmd("-f", str(specs[count]), "add-model", new, "--path", str(many / new)),
                self.env,
            )
        for count in counts:
            subprocess.run(
                h.tfsops_cmd("down", "-f", str(specs[count]), "--volumes"),
                check=False,
                env=self.env,
                capture_output=True,
            )
        status = {c: h.median(t) for c, t in samples["status"].items()}
        health = {c: h.median(t) for c, t in samples["health"].items()}
        for title, figures in [
            ("`status` 1 / 20 / 50 models", status),
            ("`health` 1 / 20 / 50 models", health),
            ("`add-model` 2nd / 21st / 51st model (one run)", add),
        ]:
            one, fifty = figures[1], figures[50]
            text = " / ".join(f"{figures[c]:.2f}" for c in counts) + " s"
            self.table.add(
                h.Row(
                    title, text, "(50 vs 1)", fifty / one, "≤ 1.30x (50 vs 1)", fifty / one <= 1.3
                )
            )

    def predict(self) -> None:
        rest, grpc = h.free_port(), h.free_port()
        dep = h.name("predict")
        h.remember_down(self.env, "-d", dep)
        subprocess.run(
            h.tfsops_cmd(
                "deploy",
                dep,
                "--model-path",
                str(self.model),
                "--image",
                self.image,
                "--rest-port",
                str(rest),
                "--grpc-port",
                str(grpc),
            ),
            env=self.env,
            check=True,
            capture_output=True,
        )
        runs = max(7, self.args.runs * 2)
        body = '{"instances": [1.0, 2.0, 5.0]}'
        url = f"http://127.0.0.1:{rest}/v1/models/{dep}:predict"
        ours: list[float] = []
        ours_json: list[float] = []
        hand: list[float] = []
        for _ in range(runs):
            cmd = h.tfsops_cmd("-d", dep, "predict", dep, "--instances", "[1.0, 2.0, 5.0]")
            ours.append(h.timed(cmd, self.env))
            ours_json.append(h.timed([*cmd[:3], "--json", *cmd[3:]], self.env, check=False))
            hand.append(h.timed(["curl", "-sf", "-d", body, url]))
        subprocess.run(
            h.tfsops_cmd("down", "-d", dep, "--volumes"),
            check=False,
            env=self.env,
            capture_output=True,
        )
        t, tj, c = h.median(ours), h.median(ours_json), h.median(hand)
        self.table.add(
            h.Row(
                "one predict (REST, 3 instances): table / `--json`",
                f"{t:.2f} / {tj:.2f} s",
                f"curl {h.seconds(c)}",
                t / c,
                "≤ 0.30 s",
                max(t, tj) <= 0.30,
            )
        )

    def watch(self) -> None:
        root = self.base / "watched" / "seed"
        shutil.copytree(self.model, root / "first")
        rest, grpc = h.free_port(), h.free_port()
        spec = self.base / "watch.yaml"
        spec.write_text(
            f"name: {h.name('watch')}\nimage: {self.image}\n"
            f"ports: {{rest: {rest}, grpc: {grpc}}}\n"
            f"model_roots: [{root}]\nmodels:\n  - {{name: first, path: {root / 'first'}}}\n"
        )
        h.remember_down(self.env, "-f", str(spec))
        subprocess.run(
            h.tfsops_cmd("apply", "-f", str(spec)), env=self.env, check=True, capture_output=True
        )
        watcher = subprocess.Popen(
            h.tfsops_cmd("watch", "-f", str(spec), "--discover", str(root), "--debounce", "0.2"),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        listed = ["first"]
        ours: list[float] = []
        direct: list[float] = []
        try:
            time.sleep(3)
            for i in range(self.args.runs):
                new = f"w{i}"
                start = drop_in(self.model, root, new)
                ours.append(
                    h.poll_until(lambda n=new: h.versions_available(rest, n), start, step=0.05)
                )
                listed.append(new)
                time.sleep(1.0)
            time.sleep(2)
            cpu0, t0 = cpu_seconds(watcher.pid), time.perf_counter()
            time.sleep(self.args.idle)
            idle_cpu = (cpu_seconds(watcher.pid) - cpu0) / (time.perf_counter() - t0) * 100
            idle_rss = rss_mb(watcher.pid)
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=30)
        # the floor on the same server: a few lines of plain grpc
        for i in range(self.args.runs):
            new = f"d{i}"
            shutil.copytree(self.model, root / new)
            listed.append(new)
            direct.append(
                bench_direct_rpc(grpc, rest, {n: f"/models/seed/{n}" for n in listed}, new)
            )
        o, d = h.median(ours), h.median(direct)
        self.table.add(
            h.Row(
                "new model folder → AVAILABLE, `watch --discover`",
                h.seconds(o),
                f"direct reload RPC {h.seconds(d)}",
                o / d,
                "≤ direct + 0.30 s",
                o <= d + 0.30,
            )
        )
        self.table.add(
            h.Row(
                f"`watch` idle over {self.args.idle:.0f} s",
                f"{idle_rss:.0f} MB RSS, {idle_cpu:.2f} % CPU",
                "—",
                None,
                "< 80 MB, ~0 % CPU",
                idle_rss < 80 and idle_cpu < 1.0,
            )
        )

    def _ratio(
        self, label: str, ours: list[float], hand: list[float], how: str, goal: float
    ) -> None:
        o, d = h.median(ours), h.median(hand)
        self.table.add(
            h.Row(
                label, h.seconds(o), f"{how} {h.seconds(d)}", o / d, f"≤ {goal:.2f}x", o / d <= goal
            )
        )


SECTIONS = ["startup", "deploy", "large", "scale", "predict", "watch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--image", default=os.environ.get("TFSOPS_TEST_IMAGE", "tfsops-double:latest")
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of watcher idle")
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    wanted = args.only.split(",")
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up when stopped
    print(f"bench run {h.PREFIX}: {h.machine()}", flush=True)
    h.compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, Path(tmp))
        steps = {
            "startup": bench.startup,
            "deploy": bench.deploy_tiny,
            "large": bench.deploy_large,
            "scale": bench.scale,
            "predict": bench.predict,
            "watch": bench.watch,
        }
        try:
            for section in SECTIONS:
                if section in wanted:
                    steps[section]()
        finally:
            h.cleanup()
    print()
    print(f"image {args.image}; {h.machine()}; {time.perf_counter() - started:.0f} s in all")
    print()
    print(bench.table.markdown())


if __name__ == "__main__":
    main()
