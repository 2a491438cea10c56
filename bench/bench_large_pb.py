"""Peak memory of `tfsops validate` on a model whose saved_model.pb is large.

Writes a copy of a small SavedModel whose graph carries an unused constant of
SIZE_MB megabytes (the shape of a model with folded weights), then runs
`tfsops validate` on it and prints the peak RSS (ru_maxrss of the child).

    python bench/bench_large_pb.py MODEL_VERSION_DIR [SIZE_MB]

MODEL_VERSION_DIR: a SavedModel folder, e.g. models/half_plus_two/1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_large(src: Path, dest: Path, size_mb: int) -> None:
    from tfsops.adapters import protos

    shutil.copytree(src, dest)
    pb = dest / "saved_model.pb"
    saved = protos.saved_model_pb2().SavedModel()
    saved.ParseFromString(pb.read_bytes())
    node = saved.meta_graphs[0].graph_def.node.add()
    node.name = "tfsops_bench_padding"
    node.op = "Const"
    tensor = node.attr["value"].tensor
    tensor.dtype = 4  # DT_UINT8
    tensor.tensor_shape.dim.add().size = size_mb * 1024 * 1024
    tensor.tensor_content = b"\x01" * (size_mb * 1024 * 1024)
    node.attr["dtype"].type = 4
    pb.write_bytes(saved.SerializeToString())


def main() -> None:
    if sys.argv[1] == "--make":  # in a child process: the parent's peak stays small
        make_large(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    src = Path(sys.argv[1])
    size_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "big"
        subprocess.run(
            [sys.executable, __file__, "--make", str(src), str(model / "1"), str(size_mb)],
            check=True,
        )
        size = (model / "1" / "saved_model.pb").stat().st_size
        spec = Path(tmp) / "tfsops.yaml"
        spec.write_text(f"name: big\nmodels:\n  - name: big\n    path: {model}\n")
        # A fresh process runs validate, so its children's peak is validate's alone.
        probe = (
            "import resource, subprocess, sys; "
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
            "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        command = [sys.executable, "-m", "tfsops", "-f", str(spec), "validate"]
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", probe, *command],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            cwd=tmp,  # -m puts the working folder first on sys.path
        )
        elapsed = time.monotonic() - started
        code_text, peak_kb = out.stdout.split()
        code = int(code_text)
        peak_mb = int(peak_kb) / 1024
        print(
            f"saved_model.pb {size / 2**20:.0f} MiB: validate exit {code}, "
            f"{elapsed:.2f} s, peak RSS {peak_mb:.0f} MiB"
        )
        if code != 0:
            print(out.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
