"""Run TF Serving's own integration suite, unchanged, against the test double.

Upstream's ``tensorflow_model_server_test.py`` (with its base class and every
test model, from ``../shared/upstream``; see its README) starts the server
binary at ``$TEST_SRCDIR/tf_serving/tensorflow_serving/model_servers/
tensorflow_model_server``. This runner builds that runfiles tree in a
temporary folder, puts a shim there that starts the double
(``python -m tfserving_double``) with the same argv, and runs each test in
its own process (``python tensorflow_model_server_test.py
TensorflowModelServerTest.<test>``, as bazel runs the script) with a
timeout. The Keras tests run under Keras 2 semantics (``tf-keras`` with
``TF_USE_LEGACY_KERAS=1``), as upstream's environment has.

Prints one line per test and the totals; exits 1 when an applicable test
fails, 0 otherwise (also when the suite is absent: it says so and skips).

Usage: ``python tests/upstream/run_upstream.py [--jobs N] [--timeout S] [-k SUBSTRING]``
(``nox -s upstream`` runs it in a venv with tf-keras, portpicker and six).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# As tests/conftest.py finds ../shared: the folder beside the checkout.
DEFAULT_UPSTREAM = REPO.parent / "shared" / "upstream"
TEST_FILE = "tensorflow_serving/model_servers/tensorflow_model_server_test.py"
TEST_CLASS = "TensorflowModelServerTest"
# Every server the suite starts binds this UNIX socket (GRPC_SOCKET_PATH), so
# the test that talks over it runs alone, after the others.
EXCLUSIVE = ("testPredictUDS",)
KERAS_TESTS = (
    "test_sequential_keras_saved_model_save",
    "test_distrat_sequential_keras_saved_model_save",
)

# Tests that cannot apply to the double, with the reason. Listed, never hidden.
NOT_APPLICABLE = {
    "test_profiler_service_with_valid_trace_request": (
        "no TF profiler service in the double (upstream registers it by default); the test "
        "also shells out to wget"
    ),
    "test_tf_text": (
        "not runnable as exported: its model (tf_text_regression/01/saved_model.pb) is absent "
        "and the test reads flags.os, which TensorFlow 2.21 no longer has"
    ),
}

SHIM = """#!/bin/sh
# tensorflow_model_server for upstream's suite: the tfsops test double, same argv.
PYTHONPATH={pythonpath}
export PYTHONPATH
exec {python} -m tfserving_double "$@"
"""

PACKAGE_INIT = (
    "# Joins this tree with the tensorflow-serving-api wheel's package.\n"
    "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
)


@dataclass
class Result:
    name: str
    outcome: str  # PASS, FAIL, TIMEOUT, N/A
    seconds: float = 0.0
    detail: str = ""


def test_names(test_file: Path) -> list[str]:
    """The suite's test methods, in file order."""
    return re.findall(r"^  def (test\w*)\(self\)", test_file.read_text(), flags=re.M)


def make_tree(upstream: Path, root: Path) -> Path:
    """``$TEST_SRCDIR``: ``tf_serving/tensorflow_serving/...`` plus the server shim."""
    pkg = root / "tf_serving" / "tensorflow_serving"
    shutil.copytree(upstream / "tensorflow_serving", pkg)
    for folder in (pkg, pkg / "model_servers", pkg / "model_servers" / "test_util"):
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text(PACKAGE_INIT)
    pythonpath = os.pathsep.join([str(REPO / "tests" / "double"), str(REPO)])
    shim = pkg / "model_servers" / "tensorflow_model_server"
    shim.write_text(SHIM.format(pythonpath=pythonpath, python=sys.executable))
    shim.chmod(0o755)
    return root


def keras2_problem() -> str | None:
    if importlib.util.find_spec("tf_keras") is None:
        return "tf-keras is not installed (the Keras tests need Keras 2 semantics, as upstream's environment)"
    return None


@contextmanager
def _process_group(
    cmd: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            # The test's servers (and anything they started) share its process group.
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_one(name: str, srcdir: Path, work: Path, timeout: float) -> Result:
    tmp = work / name
    tmp.mkdir(parents=True)
    test_file = srcdir / "tf_serving" / TEST_FILE
    env = {
        **os.environ,
        "TEST_SRCDIR": str(srcdir),
        "TEST_TMPDIR": str(tmp),
        "PYTHONPATH": os.pathsep.join([str(srcdir / "tf_serving"), str(REPO)]),
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",
    }
    log = work / f"{name}.log"
    started = time.monotonic()
    cmd = [sys.executable, str(test_file), f"{TEST_CLASS}.{name}"]
    with _process_group(cmd, env, log) as proc:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    if code is None:
        return Result(name, "TIMEOUT", seconds, _tail(text))
    if code == 0 and re.search(r"^OK\b", text, flags=re.M):
        return Result(name, "PASS", seconds)
    return Result(name, "FAIL", seconds, _tail(text))


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join("      " + line for line in text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--upstream",
        type=Path,
        default=Path(os.environ.get("TFSOPS_UPSTREAM_SUITE", DEFAULT_UPSTREAM)),
        help="the exported upstream tree (default: ../shared/upstream beside the checkout)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="tests run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per test")
    parser.add_argument("-k", dest="only", default="", help="run tests whose name contains this")
    args = parser.parse_args(argv)

    test_file = args.upstream / TEST_FILE
    if not test_file.is_file():
        print(
            f"upstream suite: SKIPPED, {test_file} not found (upstream's suite is not beside this checkout)"
        )
        return 0
    names = [n for n in test_names(test_file) if args.only in n]
    skipped = {n: NOT_APPLICABLE[n] for n in names if n in NOT_APPLICABLE}
    keras = keras2_problem()
    if keras:
        skipped.update({n: keras for n in names if n in KERAS_TESTS})
    runnable = [n for n in names if n not in skipped]
    print(
        f"upstream suite: {len(names)} tests from {test_file} ({len(runnable)} to run, "
        f"{args.jobs} at a time, {args.timeout:.0f} s each at most)",
        flush=True,
    )
    started = time.monotonic()
    results: dict[str, Result] = {n: Result(n, "N/A", detail=why) for n, why in skipped.items()}
    with tempfile.TemporaryDirectory(prefix="tfsops-upstream-") as tmp:
        srcdir = make_tree(args.upstream, Path(tmp) / "srcdir")
        work = Path(tmp) / "work"

        def run(name: str) -> Result:
            result = run_one(name, srcdir, work, args.timeout)
            line = f"{result.outcome:<8}{name}  ({result.seconds:.1f} s)"
            print(line + (f"\n{result.detail}" if result.detail else ""), flush=True)
            return result

        shared = [n for n in runnable if n not in EXCLUSIVE]
        with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
            for result in pool.map(run, shared):
                results[result.name] = result
        for name in (n for n in runnable if n in EXCLUSIVE):
            results[name] = run(name)
    for name, why in skipped.items():
        print(f"{'N/A':<8}{name}: {why}")
    counts = {
        k: sum(r.outcome == k for r in results.values()) for k in ("PASS", "FAIL", "TIMEOUT", "N/A")
    }
    print(
        f"upstream suite: {counts['PASS']} passed, {counts['FAIL']} failed, "
        f"{counts['TIMEOUT']} timed out, {counts['N/A']} not applicable, of {len(names)} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 1 if counts["FAIL"] or counts["TIMEOUT"] else 0


if __name__ == "__main__":
    sys.exit(main())
