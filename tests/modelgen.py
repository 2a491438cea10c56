"""Real SavedModels for the tests, made with TensorFlow (in a child process).

``python -m tests.modelgen DIR`` writes half_plus_two/{1,2} and half_plus_three/1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tfsops.example import half_plus, make_models, run_model_script

__all__ = ["half_plus", "make_models"]

if __name__ == "__main__":
    out = Path(sys.argv[1])
    half_plus(out / "half_plus_two", 0.5, 2.0, (1, 2))
    half_plus(out / "half_plus_three", 0.5, 3.0, (1,))
    print(out)


# Models for the "does it answer?" checks: each job is {"kind", "path"}.
_SPECIAL = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

def keras_bn():
    import keras
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(3)(inp)
    h = keras.layers.BatchNormalization()(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))

for job in json.loads(sys.argv[1]):
    kind, path = job["kind"], job["path"]
    if kind == "keras_broken":
        # keras-team/keras#20095: saves, loads, and every request fails.
        model = keras_bn()

        class Wrap(tf.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def serve(self, x):
                return {"y": self.m(x, training=False)}

        w = Wrap(model)
        tf.saved_model.save(w, path, signatures={"serving_default": w.serve})
    elif kind == "keras_good":
        keras_bn().export(path)
    elif kind == "fails_at_run_time":
        # Loads fine; any x <= 0 (the generated smoke request sends zeros) fails.
        class Recip(tf.Module):
            def __init__(self):
                super().__init__()
                self.k = tf.Variable(1.0, name="k")

            @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
            def serve(self, x):
                tf.debugging.assert_positive(x, message="x must be positive")
                return {"y": self.k / x}

        m = Recip()
        tf.saved_model.save(m, path, signatures={"serving_default": m.serve})
    elif kind == "jpeg_classifier":
        # A tiny ResNet-style classifier over JPEG bytes: decode, resize, conv + BN-like
        # scale, residual add, global pool, dense, softmax over 10 classes.
        tf.random.set_seed(int(job.get("seed", 1)))

        class Net(tf.Module):
            def __init__(self):
                super().__init__()
                self.stem = tf.Variable(tf.random.normal([3, 3, 3, 8], stddev=0.3), name="stem")
                self.res = tf.Variable(tf.random.normal([3, 3, 8, 8], stddev=0.3), name="res")
                self.scale = tf.Variable(tf.ones([8]), name="bn_scale")
                self.dense = tf.Variable(tf.random.normal([8, 10], stddev=0.5), name="dense")

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
            def serve(self, image_bytes):
                def decode(b):
                    img = tf.io.decode_jpeg(b, channels=3)
                    return tf.image.resize(tf.cast(img, tf.float32) / 255.0, [16, 16])

                x = tf.map_fn(decode, image_bytes, fn_output_signature=tf.float32)
                h = tf.nn.relu(tf.nn.conv2d(x, self.stem, 1, "SAME"))
                h = h + tf.nn.relu(tf.nn.conv2d(h, self.res, 1, "SAME") * self.scale)
                logits = tf.reduce_mean(h, axis=[1, 2]) @ self.dense
                return {"probabilities": tf.nn.softmax(logits)}

        m = Net()
        tf.saved_model.save(m, path, signatures={"serving_default": m.serve})
    elif kind == "jpeg":
        img = tf.cast(tf.random.uniform([24, 24, 3], 0, 255, seed=3), tf.uint8)
        tf.io.write_file(path, tf.io.encode_jpeg(img))
    else:
        raise SystemExit(f"unknown kind {kind}")
"""


def make_special(jobs: list[dict[str, object]]) -> None:
    """Write the models of ``jobs`` (``{"kind", "path"}``) in one TensorFlow process."""
    run_model_script(_SPECIAL, jobs)
