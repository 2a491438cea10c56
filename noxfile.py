"""Developer and CI tasks. `nox` runs lint, typecheck, the test-double image build and the tests.

Other sessions: `nox -s engine` (provision a Docker engine), `nox -s demo`
(set up and deploy an example model), `nox -s bench` (performance figures),
`nox -s load` (the long load run), `nox -s cluster` (a three-node test swarm:
its scenarios run with `nox -s cluster -- test`). `nox -s upstream` (TF Serving's
own integration suite against the test double) runs by default too.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "double_image", "tests", "upstream"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYTHON = "3.11"
TYPECHECK_DEPS = [
    "mypy>=1.10",
    "pydantic>=2.6",
    "typer>=0.12",
    "jinja2>=3.1",
    "docker>=7.0",
    "requests>=2.31",
    "grpcio>=1.60",
    "protobuf>=5",
    "watchdog>=4.0",
    "PyYAML>=6.0",
    "ruamel.yaml>=0.18",
    "types-PyYAML",
    "types-requests",
    "types-protobuf",
]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and this file."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "tfsops", "tests", "bench", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over tfsops/."""
    session.install(*TYPECHECK_DEPS)
    session.install("--no-deps", "-e", ".")
    session.run("mypy", "tfsops")


@nox.session(python=PYTHON)
def engine(session: nox.Session) -> None:
    """Provision a Docker engine when none answers (installs docker.io, starts dockerd)."""
    session.run("bash", str(ROOT / ".ci" / "provision-engine.sh"), external=True)


@nox.session(python=PYTHON)
def double_image(session: nox.Session) -> None:
    """Build tfsops-double:latest, the TF Serving test double (skipped when up to date)."""
    session.install("docker>=7.0")
    session.run("python", "tests/double/build_image.py", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """pytest: unit and integration (against the real engine and the test double)."""
    session.install("-e", ".[test]")
    env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    # The three-node cluster scenarios run on their own (`nox -s cluster -- test`): on a
    # loaded 2-core machine a rolling update there still fails now and then.
    session.run("pytest", *(session.posargs or ["tests", "--ignore=tests/cluster"]), env=env)


@nox.session(python=PYTHON)
def upstream(session: nox.Session) -> None:
    """TF Serving's own integration suite (../shared/upstream), unchanged, against the test double.

    Skipped, saying so, when the suite is not beside the checkout. The Keras
    tests need Keras 2 semantics: tf-keras matching the installed TensorFlow
    is installed here only.
    """
    suite = Path(os.environ.get("TFSOPS_UPSTREAM_SUITE", ROOT.parent / "shared" / "upstream"))
    if not suite.is_dir():
        session.skip(f"upstream suite not found at {suite}")
    session.install("-e", ".", "portpicker", "six")
    tf_version = session.run(
        "python",
        "-c",
        "import importlib.metadata as m; print(m.version('tensorflow'))",
        silent=True,
    )
    version = str(tf_version).strip().splitlines()[-1]
    try:
        session.install(f"tf-keras=={version}")
    except nox.command.CommandFailed:
        session.warn(f"tf-keras=={version} is not installable: the Keras tests are reported N/A")
    env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    session.run("python", "tests/upstream/run_upstream.py", *session.posargs, env=env)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every performance figure in one run, side by side with doing it by hand: one table.

    `nox -s bench -- --only startup,predict` runs some sections; `python bench/run.py -h`.
    """
    session.install("-e", ".[test]")
    env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    session.run("python", "bench/run.py", *session.posargs, env=env)


@nox.session(python=PYTHON)
def cluster(session: nox.Session) -> None:
    """A three-node Docker-in-Docker swarm with a registry (the cluster tests' fixture), by hand.

    `nox -s cluster -- up` prints the manager's DOCKER_HOST (it stays until
    `nox -s cluster -- down [ID]`); `-- list` lists the clusters on this engine.
    `TFSOPS_CLUSTER=ID pytest tests/cluster` runs the scenarios on it, and
    `nox -s cluster -- test` runs them on a cluster of their own.
    """
    if session.posargs[:1] == ["test"]:
        session.install("-e", ".[test]")
        env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
        session.run("pytest", "tests/cluster", *session.posargs[1:], env=env)
        return
    session.install("docker>=7.0")
    session.run("python", "-m", "tests.cluster", *(session.posargs or ["up"]))


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Set up and deploy an example model: engine, test-double image, tfsops, `init --example`, `deploy`.

    Uses the TF Serving test double as the serving image (no registry needed);
    pass `-- --image tensorflow/serving:2.19.0` to use the real one.
    """
    session.run("bash", str(ROOT / ".ci" / "provision-engine.sh"), external=True)
    session.install("-e", ".")
    image = session.posargs[1] if session.posargs[:1] == ["--image"] else "tfsops-double:latest"
    if image == "tfsops-double:latest":
        session.install("docker>=7.0")
        session.run("python", "tests/double/build_image.py")
    demo_dir = ROOT / "demo"
    demo_dir.mkdir(exist_ok=True)
    session.chdir(demo_dir)
    if not (demo_dir / "tfsops.yaml").exists():
        session.run("tfsops", "init", "--example", "--name", "demo", "--image", image)
    session.run("tfsops", "deploy", "--timeout", "180")
    session.run("tfsops", "predict", "half_plus_two", "--instances", "[1.0, 2.0, 5.0]")
    session.log("deployed: try `tfsops status`, `tfsops health`, `tfsops down -d demo`")


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """The long load run: concurrent predicts while models are added, promoted and removed."""
    session.install("-e", ".[test]")
    session.run("python", "bench/load.py", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
