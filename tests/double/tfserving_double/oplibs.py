"""Custom op libraries upstream links into ``tensorflow_model_server``.

The C++ server is built with TF Text's and TF Decision Forests' ops, so
models using them load there. The double registers them when the Python
packages are installed in its environment (``tensorflow-text`` /
``tensorflow-decision-forests`` matching its TensorFlow, see README); the
default image has neither, and such models fail to load with TensorFlow's
"Op type not registered" text.
"""

from __future__ import annotations

import importlib
import importlib.util

from . import log

OP_PACKAGES = ("tensorflow_text", "tensorflow_decision_forests")


def load_op_libraries() -> list[str]:
    """Import every installed op package (registering its ops); the names loaded."""
    loaded = []
    for name in OP_PACKAGES:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a broken optional package must not stop the server
            log.warning(log.SERVER, f"Could not load the ops of {name}: {exc}")
            continue
        loaded.append(name)
        log.info(log.SERVER, f"Loaded the ops of {name}")
    return loaded
