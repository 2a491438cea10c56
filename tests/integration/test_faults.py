"""Faults survived: crashes, kills, a full or read-only state folder, concurrent runs, an
engine restart. The real tfsops executable, the real engine, the TF Serving test double.

Each test ends with the deployment consistent: the server serves exactly what
``models.config`` holds (what a restart would load), the spec file says the same, and
the lock is free (the next command runs at once).

The engine-restart test stops and starts ``dockerd`` (by its pid): it is the last test
here, short, and always starts the engine again. ``TFSOPS_SKIP_ENGINE_RESTART=1`` skips it
(for machines where other work shares the engine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]


# ---------------------------------------------------------------------------
# helpers


def rest(
    port: int, path: str, body: dict[str, Any] | None = None, timeout: float = 10
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}{path}", data=data, timeout=timeout
    ) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def states(port: int, model: str) -> dict[int, str] | None:
    """version -> state as the server reports it; None when it does not know the model
    (or does not answer)."""
    try:
        body = rest(port, f"/v1/models/{model}", timeout=5)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return {int(v["version"]): v["state"] for v in body.get("model_version_status", [])}


def available(port: int, model: str) -> bool:
    found = states(port, model)
    return bool(found) and "AVAILABLE" in found.values()  # type: ignore[union-attr]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        time.sleep(0.2)


def predict(port: int, model: str, x: float = 1.0) -> list[float]:
    return rest(port, f"/v1/models/{model}:predict", {"instances": [x]})["predictions"]  # type: ignore[no-any-return]


class Lines:
    """Collects a subprocess's stdout lines in a thread (the watcher's event log)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in list(self.lines):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def names(self) -> list[str]:
        return [e.get("event", "") for e in self.events()]

    def wait_for(self, event: str, timeout: float = 90, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events()[after:]:
                if e.get("event") == event:
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event!r} event in {timeout:g}s; got {self.lines[-20:]}")
            if self.proc.poll() is not None:
                time.sleep(0.3)  # let the reader thread drain
                for e in self.events()[after:]:
                    if e.get("event") == event:
                        return e
                raise AssertionError(
                    f"watch exited ({self.proc.returncode}) before {event!r}: {self.lines[-20:]}"
                )
            time.sleep(0.2)

    def stop(self) -> str:
        """SIGTERM, wait, and return stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._thread.join(timeout=10)
        return self.proc.stderr.read() if self.proc.stderr else ""


@dataclass
class Deployment:
    tfsops: Tfsops
    name: str
    spec: Path
    rest_port: int
    grpc_port: int
    models: Path
    state: Path  # <TFSOPS_STATE_DIR>/<name>

    @property
    def models_config(self) -> Path:
        return self.state / "config" / "models.config"

    @property
    def intent(self) -> Path:
        return self.state / "reload-intent.json"

    def container(self, docker_client: Any) -> Any:
        [c] = docker_client.containers.list(
            all=True, filters={"label": f"io.tfsops.deployment={self.name}"}
        )
        return c

    def served(self, *names: str) -> dict[str, bool]:
        return {n: available(self.rest_port, n) for n in names}

    def assert_consistent(self, expected: list[str], gone: tuple[str, ...] = ()) -> None:
        """Server, models.config and spec agree on ``expected``; ``gone`` is not served."""
        config = self.models_config.read_text()
        spec = self.spec.read_text()
        for model in expected:
            assert f'name: "{model}"' in config, config
            assert f"name: {model}\n" in spec, spec
            assert available(self.rest_port, model), (model, states(self.rest_port, model))
        for model in gone:
            assert f'name: "{model}"' not in config, config
            assert f"name: {model}\n" not in spec, spec
            assert not available(self.rest_port, model), (model, states(self.rest_port, model))
        assert not self.intent.exists()


SPEC = """name: {name}
image: {image}
ports: {{rest: {rest}, grpc: {grpc}}}
server_args: {{max_num_load_retries: 0}}
restart: unless-stopped
model_roots: [{models}]  # models added later under it hot-load
models:
  - name: a
    path: {models}/half_plus_two
"""


def make_deployment(
    tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, image: str, **extra: str
) -> Deployment:
    text = SPEC.format(name=name, image=image, rest=ports[0], grpc=ports[1], models=models)
    for key, value in extra.items():
        text = text.replace("models:\n", f"{key}: {value}\nmodels:\n", 1)
    spec = write_spec(tfsops.cwd, text)
    return Deployment(
        tfsops,
        name,
        spec,
        ports[0],
        ports[1],
        models,
        Path(tfsops.env["TFSOPS_STATE_DIR"]) / name,
    )


@pytest.fixture
def deployed(
    tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, serving_image: str
) -> Iterator[Deployment]:
    dep = make_deployment(tfsops, name, ports, models, serving_image)
    run = tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 0, run
    yield dep
    tfsops("down", "--volumes")


def add(dep: Deployment, model: str, folder: str, *extra: str) -> Any:
    return dep.tfsops(
        "--json", "add-model", model, "--path", str(dep.models / folder), "--timeout", "120", *extra
    )


# ---------------------------------------------------------------------------
# two runs at once


def test_concurrent_runs_serialize_like_one_after_the_other(deployed: Deployment) -> None:
    """add-model, add-model, apply and watch --once started together: all succeed, and the
    result is what running them one after the other gives."""
    tfsops = deployed.tfsops
    procs = {
        "add b": tfsops.popen(
            "--json", "add-model", "b", "--path", str(deployed.models / "half_plus_three")
        ),
        "add c": tfsops.popen(
            "--json", "add-model", "c", "--path", str(deployed.models / "times_two_plus_one")
        ),
        "apply": tfsops.popen("--json", "apply", "--timeout", "120"),
        "watch --once": tfsops.popen("--json", "watch", "--once"),
    }
    outcomes = {}
    for what, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        outcomes[what] = (proc.returncode, out[-2000:], err[-2000:])
    failed = {w: (code, err) for w, (code, _, err) in outcomes.items() if code != 0}
    assert not failed, failed
    deployed.assert_consistent(["a", "b", "c"])
    assert predict(deployed.rest_port, "b") == [3.5]
    assert predict(deployed.rest_port, "c") == [3.0]
    # the same as sequential runs, in any order: one revision per change (apply and the
    # forced reload of watch --once change nothing), and nothing left to do
    revisions = tfsops("--json", "revisions").json["data"]["revisions"]
    reasons = [r["reason"] for r in revisions]
    assert reasons[0] == "create" and sorted(reasons[1:]) == ["add-model b", "add-model c"], reasons
    run = tfsops("--json", "apply")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "noop"
    # the lock is free: a command with a tiny lock timeout runs at once
    run = tfsops("--json", "remove-model", "c", "--yes", "--lock-timeout", "1")
    assert run.code == 0, run
    deployed.assert_consistent(["a", "b"], gone=("c",))


# ---------------------------------------------------------------------------
# the server dies


def _config_without(text: str, model: str) -> str:
    from tfsops.adapters.protos import model_server_config_pb2, text_format

    fmt = text_format()
    config = fmt.Parse(text, model_server_config_pb2().ModelServerConfig())
    kept = [c for c in config.model_config_list.config if c.name != model]
    del config.model_config_list.config[:]
    config.model_config_list.config.extend(kept)
    return str(fmt.MessageToString(config))


def _config_with(text: str, model: str, folder: str) -> str:
    from tfsops.adapters.protos import model_server_config_pb2, text_format

    fmt = text_format()
    config = fmt.Parse(text, model_server_config_pb2().ModelServerConfig())
    first = config.model_config_list.config[0]
    entry = config.model_config_list.config.add()
    entry.name = model
    entry.base_path = first.base_path.rsplit("/", 1)[0] + "/" + folder
    entry.model_platform = "tensorflow"
    return str(fmt.MessageToString(config))


def _admin(dep: Deployment) -> Any:
    from tfsops.adapters.serving_grpc import GrpcServingClient
    from tfsops.ports import Endpoint

    return GrpcServingClient(Endpoint("127.0.0.1", dep.rest_port, dep.grpc_port))


def test_watch_survives_a_server_crash_and_a_docker_kill(
    deployed: Deployment, docker_client: Any
) -> None:
    dep = deployed
    assert add(dep, "b", "half_plus_three").code == 0
    config = dep.models_config.read_text()
    watcher = Lines(
        dep.tfsops.popen("--json", "watch", "--debounce", "0.3", "--check-interval", "1")
    )
    try:
        watcher.wait_for("synced")
        time.sleep(1.5)  # one health look, so the watcher has seen the running container
        container = dep.container(docker_client)

        # 1. A crash (the OOM killer, a segfault): the server process dies; the restart
        #    policy starts the same container again, which loads models.config.
        n = len(watcher.events())
        os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
        watcher.wait_for("server-restarted", after=n)
        watcher.wait_for("server-ready", after=n)
        container.reload()
        assert container.attrs["RestartCount"] >= 1
        assert dep.container(docker_client).id == container.id
        dep.assert_consistent(["a", "b"])
        assert predict(dep.rest_port, "b") == [3.5]
        assert dep.models_config.read_text() == config

        # 2. The server loses a model it should serve (here: a foreign reload without b):
        #    the watcher notices at its next look and re-applies the live config.
        n = len(watcher.events())
        with _admin(dep) as admin:
            admin.reload_config(_config_without(config, "b"), timeout=60)
        lost = watcher.wait_for("server-lost-models", after=n)
        assert lost["models"] == "b"
        # The re-apply is one transaction (readiness ends with smoke requests, after
        # AVAILABLE): done when the watcher says synced, not when b first answers again.
        watcher.wait_for("synced", after=n)
        wait_until("b is AVAILABLE again", lambda: available(dep.rest_port, "b"))
        dep.assert_consistent(["a", "b"])

        # 3. `docker kill` is a manual stop for Docker: the restart policy does not apply.
        #    The watcher reports it; `tfsops apply` starts the container again.
        n = len(watcher.events())
        container.kill()
        down = watcher.wait_for("server-down", after=n)
        assert down["state"] == "exited"
        run = dep.tfsops("--json", "apply", "--timeout", "120")
        assert run.code == 0, run
        assert run.json["data"]["action"] == "start"
        watcher.wait_for("server-ready", after=n)
        dep.assert_consistent(["a", "b"])
    finally:
        stderr = watcher.stop()
    assert watcher.proc.returncode == 0, stderr
    assert watcher.names()[-1] == "stopped"
    assert "Traceback" not in stderr


def test_container_killed_while_deploy_waits(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    serving_image: str,
    docker_client: Any,
) -> None:
    import docker.errors

    dep = make_deployment(tfsops, name, ports, models, serving_image)
    dep.spec.write_text(
        dep.spec.read_text()
        + f"  - name: b\n    path: {models}/half_plus_three\n"
        + f"  - name: c\n    path: {models}/times_two_plus_one\n"
    )
    proc = tfsops.popen("--json", "apply", "--timeout", "120")
    killed = None
    while killed is None and proc.poll() is None:
        for c in docker_client.containers.list(
            filters={"label": f"io.tfsops.deployment={name}", "status": "running"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                c.kill()
                killed = c.id
        time.sleep(0.05)
    out, err = proc.communicate(timeout=180)
    assert killed is not None, f"the container never ran:\n{err}"
    assert proc.returncode == 5, err
    error = json.loads(out)["error"]
    assert "exited (code 137) before every model was AVAILABLE" in error["message"], error
    assert error["hint"]
    # nothing half-made is left: no container, no state
    assert (
        docker_client.containers.list(all=True, filters={"label": f"io.tfsops.deployment={name}"})
        == []
    )
    assert not dep.state.exists()
    # a second deploy converges
    run = tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "create"
    dep.assert_consistent(["a", "b", "c"])
    assert tfsops("down", "--volumes").code == 0


# ---------------------------------------------------------------------------
# tfsops dies between the reload RPC and the models.config write


def _dead_lock_holder(lock: Path) -> None:
    """A process that takes the deployment lock (as tfsops does) and is killed with -9."""
    code = (
        "import fcntl, json, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'purpose': 'add-model b'}).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)


def test_interrupted_reload_is_repaired_by_the_next_run(deployed: Deployment) -> None:
    """Deterministic: the write-ahead intent and the RPC happened, the file write did not,
    and the process died holding the lock."""
    dep = deployed
    before = dep.models_config.read_text()
    wanted = _config_with(before, "b", "half_plus_three")
    dep.intent.write_text(json.dumps({"pid": 999999, "started": time.time(), "config": wanted}))
    with _admin(dep) as admin:
        admin.reload_config(wanted, timeout=60)
    _dead_lock_holder(dep.state / "lock")
    assert available(dep.rest_port, "b")  # the server runs a list models.config does not hold

    # plan, status and health report the pending repair (not noop / ok), and change nothing
    run = dep.tfsops("--json", "plan")
    assert run.code == 0, run
    assert run.json["data"]["action"] == "repair", run
    assert any("interrupted" in r for r in run.json["data"]["reasons"]), run
    run = dep.tfsops("--json", "status", "-d", dep.name)
    assert run.code == 0, run
    [entry] = run.json["data"]["deployments"]
    assert entry["pending_repair"] and "interrupted" in entry["pending_repair"][0], run
    run = dep.tfsops("--json", "health")
    assert run.code == 5, run
    assert run.json["data"]["pending_repair"], run
    assert "pending repair" in run.stderr
    assert dep.intent.exists()

    started = time.monotonic()
    run = dep.tfsops("--json", "apply", "--timeout", "120")
    assert run.code == 0, run
    assert time.monotonic() - started < 60  # the dead holder's lock did not block it
    assert "repaired an interrupted reload" in run.stderr
    wait_until("b is unloaded", lambda: not available(dep.rest_port, "b"), timeout=30)
    assert dep.models_config.read_text() == before
    dep.assert_consistent(["a"], gone=("b",))

    # the lock is free: the next command runs at once
    run = add(dep, "c", "times_two_plus_one", "--lock-timeout", "1")
    assert run.code == 0, run
    dep.assert_consistent(["a", "c"], gone=("b",))


def test_tfsops_killed_mid_reload(deployed: Deployment) -> None:
    """The real thing: add-model SIGKILLed the moment the server starts loading the model
    (after the RPC, before models.config is written). The next run (reload) repairs it."""
    dep = deployed
    before = dep.models_config.read_text()
    proc = dep.tfsops.popen(
        "--json", "add-model", "b", "--path", str(dep.models / "half_plus_three")
    )
    while proc.poll() is None:
        if states(dep.rest_port, "b"):  # the server has the new list: the RPC arrived
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.communicate(timeout=60)
    hit_the_window = proc.returncode == -signal.SIGKILL and dep.intent.exists()

    run = dep.tfsops("--json", "reload", "--timeout", "120")  # (apply: see the test above)
    assert run.code == 0, run
    if hit_the_window:
        assert "repaired an interrupted reload" in run.stderr
        assert dep.models_config.read_text() == before
        wait_until("b is unloaded", lambda: not available(dep.rest_port, "b"), timeout=30)
        dep.assert_consistent(["a"], gone=("b",))
    else:  # add-model finished before the kill landed: that is consistent too
        dep.assert_consistent(["a", "b"])
    # the lock is not stuck
    run = add(dep, "c", "times_two_plus_one", "--lock-timeout", "1")
    assert run.code == 0, run
    assert available(dep.rest_port, "c")
    assert not dep.intent.exists()


# ---------------------------------------------------------------------------
# the state folder cannot be written


def _fill(folder: Path) -> Path:
    """Fill the file system holding ``folder`` to the last byte (a hidden file tfsops ignores)."""
    filler = folder / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def _mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tfsops-test", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


def test_full_or_read_only_state_folder(
    tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, serving_image: str
) -> None:
    """The deployment's state folder is a 256 KiB tmpfs and its config/ (models.config) a
    64 KiB one. Full, read-only, immutable: every change is refused with exit 5 and the
    reason; models.config, the spec and the server stay on the previous list."""
    dep = make_deployment(tfsops, name, ports, models, serving_image)
    config_dir = dep.state / "config"
    _mount_tmpfs(dep.state, "256k")
    try:
        _mount_tmpfs(config_dir, "64k")
        config_dir.chmod(0o755)
        run = tfsops("--json", "apply", "--timeout", "120")
        assert run.code == 0, run
        before = dep.models_config.read_text()
        spec_before = dep.spec.read_text()

        def refused(reason: str, after_rpc: bool) -> None:
            run = add(dep, "b", "half_plus_three")
            assert run.code == 5, run
            error = run.json["error"]
            assert reason in error["message"], error
            if after_rpc:  # the server had loaded b: it was put back
                assert "put back on the previous model list" in error["message"], error
            assert "Traceback" not in run.stderr
            assert dep.models_config.read_text() == before
            assert dep.spec.read_text() == spec_before
            assert not any(p.name.endswith(".tmp") for p in config_dir.iterdir())
            assert not dep.intent.exists()
            assert not available(dep.rest_port, "b")
            assert predict(dep.rest_port, "a") == [2.5]

        # models.config cannot be written after the RPC: the server is put back
        filler = _fill(config_dir)
        refused("No space left on device", after_rpc=True)
        filler.unlink()
        subprocess.run(["mount", "-o", "remount,ro", str(config_dir)], check=True)
        refused("Read-only file system", after_rpc=True)
        subprocess.run(["mount", "-o", "remount,rw", str(config_dir)], check=True)

        # the state folder itself is full: refused before the server is touched
        filler = _fill(dep.state)
        refused("No space left on device", after_rpc=False)
        filler.unlink()

        # the state folder is immutable (chattr +i): refused before anything changes
        chattr = subprocess.run(["chattr", "+i", str(dep.state)], capture_output=True, check=False)
        if chattr.returncode == 0:
            try:
                refused("state folder", after_rpc=False)
            finally:
                subprocess.run(["chattr", "-i", str(dep.state)], check=True)

        # space again: the same change goes through
        run = add(dep, "b", "half_plus_three")
        assert run.code == 0, run
        dep.assert_consistent(["a", "b"])
    finally:
        tfsops("down")
        subprocess.run(["umount", "-l", str(config_dir)], check=False)
        subprocess.run(["umount", "-l", str(dep.state)], check=False)
        shutil.rmtree(dep.state, ignore_errors=True)


# ---------------------------------------------------------------------------
# the engine restarts (last: it stops dockerd for a few seconds)


def _engine_answers() -> bool:
    import docker

    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


def _start_engine() -> None:
    if _engine_answers():
        return
    with open("/tmp/dockerd.log", "ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until("dockerd answers again", _engine_answers, timeout=120)


@pytest.mark.skipif(
    os.environ.get("TFSOPS_SKIP_ENGINE_RESTART") == "1", reason="TFSOPS_SKIP_ENGINE_RESTART=1"
)
def _synced(watcher: Lines, after: int, model: str) -> bool:
    return any(
        e.get("event") == "synced" and model in str(e.get("models", "")).split(",")
        for e in watcher.events()[after:]
    )


def test_engine_restart_while_watching(deployed: Deployment) -> None:
    pid_file = Path("/var/run/docker.pid")
    if not pid_file.exists() or shutil.which("dockerd") is None or os.geteuid() != 0:
        pytest.skip("dockerd is not a local process this test may restart (no pid file, not root)")
    if Path("/run/systemd/system").is_dir():
        pytest.skip("dockerd is managed by systemd here: not restarted behind its back")
    dep = deployed
    watcher = Lines(
        dep.tfsops.popen("--json", "watch", "--debounce", "0.3", "--check-interval", "1")
    )
    try:
        watcher.wait_for("synced")
        time.sleep(1.5)
        n = len(watcher.events())
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
            wait_until("dockerd is gone", lambda: not _engine_answers(), timeout=60)
            watcher.wait_for("engine-unreachable", after=n)
            # a spec change while the engine is away
            dep.spec.write_text(
                dep.spec.read_text() + f"  - name: b\n    path: {dep.models}/half_plus_three\n"
            )
            time.sleep(2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                wait_until("the old dockerd exited", lambda: not Path(f"/proc/{pid}").exists(), 60)
            _start_engine()
        # the watcher reconnects, sees the restarted server, and applies the change
        watcher.wait_for("server-restarted", after=n)
        wait_until("b is AVAILABLE", lambda: available(dep.rest_port, "b"), timeout=120)
        # b answers before the sync that added it is done (smoke requests, then the
        # models.config write): consistent once the watcher says it synced b.
        wait_until("the watcher synced b", lambda: _synced(watcher, n, "b"), timeout=120)
        dep.assert_consistent(["a", "b"])
        assert predict(dep.rest_port, "b") == [3.5]
    finally:
        _start_engine()
        stderr = watcher.stop()
    assert watcher.proc.returncode == 0, stderr
    assert "Traceback" not in stderr
