"""Real SavedModels for the tests, made with TensorFlow.

``half_plus(dir, a, b)`` writes a TF2 export computing ``y = a*x + b`` with
the same signature names upstream's half_plus_two test models use
(``serving_default`` takes ``x`` -> ``y``). Run in a subprocess so the test
process does not pay TensorFlow's import time: ``python -m tests.modelgen``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

jobs = json.loads(sys.argv[1])
for job in jobs:
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
    tf.saved_model.save(
        m, job["path"], signatures={"serving_default": m.serve, "twice": m.twice}
    )
"""


def make_models(jobs: list[dict[str, object]]) -> None:
    """Write several SavedModels in one TensorFlow process.

    Each job: ``{"path": <version dir>, "a": float, "b": float}``.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(jobs)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def half_plus(base: Path, a: float = 0.5, b: float = 2.0, versions: tuple[int, ...] = (1,)) -> Path:
    """A model dir ``base`` with numeric version subdirs computing ``a*x + b``."""
    make_models([{"path": str(base / str(v)), "a": a, "b": b} for v in versions])
    return base


if __name__ == "__main__":
    out = Path(sys.argv[1])
    half_plus(out / "half_plus_two", 0.5, 2.0, (1, 2))
    half_plus(out / "half_plus_three", 0.5, 3.0, (1,))
    print(out)
