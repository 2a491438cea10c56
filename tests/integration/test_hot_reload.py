"""Hot reload without downtime: add-model, remove-model, publish, promote, reload, rollback, watch."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]


def rest(
    port: int, path: str, body: dict[str, Any] | None = None, timeout: float = 10
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}{path}", data=data, timeout=timeout
    ) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


class Traffic:
    """A thread sending predicts to one model for the whole test, counting failures."""

    def __init__(self, port: int, model: str, expected: list[float]) -> None:
        self.port, self.model, self.expected = port, model, expected
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = rest(
                    self.port,
                    f"/v1/models/{self.model}:predict",
                    {"instances": [1.0, 2.0]},
                    timeout=5,
                )
                if body.get("predictions") != self.expected:
                    self.failures.append(f"wrong answer {body}")
                else:
                    self.ok += 1
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def deployed(tfsops: Tfsops, name: str, ports: tuple[int, int], models: Path, serving_image: str):  # type: ignore[no-untyped-def]
    rest_port, grpc_port = ports
    dropbox = models.parent / "dropbox"  # watch --discover: a declared root, so new models hot-load
    dropbox.mkdir()
    spec = write_spec(
        tfsops.cwd,
        f"""# the user's comment survives edits
name: {name}
image: {serving_image}
ports: {{rest: {rest_port}, grpc: {grpc_port}}}
server_args: {{max_num_load_retries: 0}}  # fail fast
model_roots: [{models}, {dropbox}]  # models added later under these hot-load
models:
  - name: a
    path: {models / "half_plus_two"}
""",
    )
    run = tfsops("apply", "--timeout", "120")
    assert run.code == 0, run
    yield spec
    tfsops("down", "--volumes")


def test_changes_under_load_never_fail_a_request(
    tfsops: Tfsops,
    deployed: Path,
    name: str,
    ports: tuple[int, int],
    models: Path,
    broken_model: Path,
    tmp_path: Path,
) -> None:
    rest_port = ports[0]
    models_config = Path(tfsops.env["TFSOPS_STATE_DIR"]) / name / "config" / "models.config"
    with Traffic(rest_port, "a", [2.5, 3.0]) as traffic:
        run = tfsops("--json", "add-model", "b", "--path", str(models / "half_plus_three"))
        assert run.code == 0, run
        assert rest(rest_port, "/v1/models/b:predict", {"instances": [1.0]})["predictions"] == [3.5]

        # publish a new version of a (copied from version 2), then promote a label to it
        src = tmp_path / "export"
        shutil.copytree(models / "half_plus_two" / "2", src)
        run = tfsops("--json", "publish", "a", str(src))
        assert run.code == 0, run
        assert run.json["data"]["version"] == 3
        status = rest(rest_port, "/v1/models/a")
        assert {v["version"]: v["state"] for v in status["model_version_status"]}[
            "3"
        ] == "AVAILABLE"

        run = tfsops("--json", "promote", "a", "--label", "stable", "--version", "3")
        assert run.code == 0, run
        assert (
            rest(rest_port, "/v1/models/a/labels/stable/metadata")["model_spec"]["version"] == "3"
        )

        config_before = models_config.read_text()
        spec_before = deployed.read_text()
        run = tfsops("--json", "add-model", "c", "--path", str(broken_model), "--timeout", "60")
        assert run.code == 5, run
        assert "reload" in run.json["error"]["message"]
        time.sleep(1.0)
    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.ok > 20
    # after the failed reload: a and b still AVAILABLE, files unchanged
    assert tfsops("health").code == 0
    assert models_config.read_text() == config_before
    assert deployed.read_text() == spec_before
    assert "# the user's comment survives edits" in spec_before and "# fail fast" in spec_before


def test_bad_model_refused_before_the_server_is_touched(
    tfsops: Tfsops, deployed: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "bad" / "123"
    empty.mkdir(parents=True)
    (empty / "checkpoint").write_text("legacy")
    before = deployed.read_text()
    run = tfsops("--json", "add-model", "bad", "--path", str(empty.parent))
    assert run.code == 3, run
    assert "no saved_model.pb" in run.json["error"]["message"]
    assert deployed.read_text() == before


def test_concurrent_add_model_runs_serialize(
    tfsops: Tfsops, deployed: Path, ports: tuple[int, int], models: Path
) -> None:
    one = tfsops.popen("--json", "add-model", "b", "--path", str(models / "half_plus_three"))
    two = tfsops.popen("--json", "add-model", "c", "--path", str(models / "times_two_plus_one"))
    _, err1 = one.communicate(timeout=300)
    _, err2 = two.communicate(timeout=300)
    assert one.returncode == 0, err1
    assert two.returncode == 0, err2
    text = deployed.read_text()
    assert "name: b" in text and "name: c" in text
    assert rest(ports[0], "/v1/models/c:predict", {"instances": [1.0]})["predictions"] == [3.0]
    assert rest(ports[0], "/v1/models/b:predict", {"instances": [1.0]})["predictions"] == [3.5]


def test_remove_model_and_rollback(
    tfsops: Tfsops, deployed: Path, ports: tuple[int, int], models: Path
) -> None:
    assert tfsops("add-model", "b", "--path", str(models / "half_plus_three")).code == 0
    run = tfsops("remove-model", "b")
    assert run.code == 3  # needs --yes
    run = tfsops("--json", "remove-model", "b", "--yes")
    assert run.code == 0, run
    status = rest(ports[0], "/v1/models/b")  # the server remembers it as END
    assert all(v["state"] in ("END", "UNLOADING") for v in status["model_version_status"])
    run = tfsops("--json", "rollback")
    assert run.code == 0, run
    assert "name: b" in deployed.read_text()
    assert rest(ports[0], "/v1/models/b:predict", {"instances": [1.0]})["predictions"] == [3.5]
    revisions = tfsops("--json", "revisions").json["data"]["revisions"]
    assert len(revisions) >= 3


def test_watch_discovers_models_and_versions(
    tfsops: Tfsops,
    deployed: Path,
    ports: tuple[int, int],
    models: Path,
    tmp_path: Path,
) -> None:
    root = tmp_path / "dropbox"  # declared in model_roots by the fixture
    watcher = tfsops.popen(
        "--json", "watch", "--discover", str(root), "--debounce", "0.5", "--check-interval", "2"
    )
    try:
        time.sleep(3)
        # a complete model folder appears (copied elsewhere, then moved in: as a training job would)
        staging = tmp_path / "staging-new"
        shutil.copytree(models / "times_two_plus_one", staging)
        staging.rename(root / "fresh")
        deadline = time.monotonic() + 60
        while True:
            try:
                if rest(ports[0], "/v1/models/fresh:predict", {"instances": [1.0]})[
                    "predictions"
                ] == [3.0]:
                    break
            except (OSError, urllib.error.URLError):
                pass
            assert time.monotonic() < deadline, "watch did not pick up the new model"
            time.sleep(0.5)
        # a version published with tfsops publish is picked up too
        src = tmp_path / "v"
        shutil.copytree(models / "half_plus_two" / "1", src)
        assert tfsops("publish", "a", str(src), "--version", "7").code == 0
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, err
        events = [json.loads(line)["event"] for line in out.splitlines() if line.startswith("{")]
        assert "discovered" in events and "added" in events and events[-1] == "stopped"
    finally:
        if watcher.poll() is None:
            watcher.kill()
