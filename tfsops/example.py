"""Generate small example SavedModels with TensorFlow (for `tfsops init --example` and tests).

TensorFlow runs in a child process: its import costs seconds and floods
stderr, and the CLI itself never imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tfsops.errors import OperationFailed

# y = a*x + b, as upstream's half_plus_two test model (serving_default: x -> y).
_SCRIPT = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

for job in json.loads(sys.argv[1]):
    a, b = float(job["a"]), float(job["b"])

    class HalfPlus(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(a, name="a")
            self.b = tf.Variable(b, name="b")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def twice(self, x):
            return {"y": 2.0 * (self.a * x + self.b), "x_echo": tf.identity(x)}

    m = HalfPlus()
    tf.saved_model.save(m, job["path"], signatures={"serving_default": m.serve, "twice": m.twice})
"""


def make_models(jobs: Sequence[dict[str, object]]) -> None:
    """Write SavedModels in one TensorFlow process; each job is ``{"path", "a", "b"}``."""
    run_model_script(_SCRIPT, jobs)


def run_model_script(script: str, jobs: Sequence[dict[str, object]]) -> None:
    """Run ``script`` with TensorFlow in a child process (the jobs as JSON in argv[1]);
    then make every job's ``path`` readable by the container's user."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(list(jobs))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise OperationFailed(
            f"could not write the example model with TensorFlow:\n{tail}",
            hint="tensorflow must be importable by this Python (it comes with tensorflow-serving-api)",
        )
    # Readable by the container's user, whoever that is.
    for job in jobs:
        root = Path(str(job["path"]))
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def half_plus(base: Path, a: float = 0.5, b: float = 2.0, versions: Sequence[int] = (1,)) -> Path:
    """A model folder ``base`` with numeric version subfolders computing ``a*x + b``."""
    make_models([{"path": str(base / str(v)), "a": a, "b": b} for v in versions])
    return base
