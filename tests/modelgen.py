"""Real SavedModels for the tests, made with TensorFlow (in a child process).

``python -m tests.modelgen DIR`` writes half_plus_two/{1,2} and half_plus_three/1.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tfsops.example import half_plus, make_models

__all__ = ["half_plus", "make_models"]

if __name__ == "__main__":
    out = Path(sys.argv[1])
    half_plus(out / "half_plus_two", 0.5, 2.0, (1, 2))
    half_plus(out / "half_plus_three", 0.5, 3.0, (1,))
    print(out)
