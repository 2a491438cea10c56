"""ServerCore semantics with a fake loader (no TensorFlow runtime, no container).

Checks the version-management rules of reference §3.4, §3.5 and §5: reload
validation order and texts, full-replacement semantics, waits, labels and
the availability-preserving rollover.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.double.tfserving_double import protos
from tests.double.tfserving_double.core import AVAILABLE, END, Harness, Manager, ServerCore
from tests.double.tfserving_double.status import ServingError


class FakeServable:
    def __init__(self, name: str, version: int, path: str) -> None:
        self.name, self.version, self.path = name, version, path

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


def fake_load(name: str, version: int, path: str) -> FakeServable:
    if Path(path, "BROKEN").exists():
        raise ServingError("DATA_LOSS", f"cannot load {path}")
    return FakeServable(name, version, path)


@pytest.fixture
def core() -> Iterator[ServerCore]:
    stop = threading.Event()
    server = ServerCore(
        fake_load,
        file_system_poll_wait_seconds=1,
        max_num_load_retries=0,
        load_retry_interval_micros=0,
        stop=stop,
    )
    yield server
    stop.set()


def config(*models: dict[str, Any]) -> Any:
    pb2 = protos.model_server_config_pb2()
    cfg = pb2.ModelServerConfig()
    cfg.model_config_list.SetInParent()
    for m in models:
        c = cfg.model_config_list.config.add(
            name=m["name"], base_path=m["base_path"], model_platform=m.get("platform", "tensorflow")
        )
        if m.get("all"):
            c.model_version_policy.all.SetInParent()
        for label, version in (m.get("labels") or {}).items():
            c.version_labels[label] = version
    return cfg


def versions(root: Path, *numbers: int | str) -> str:
    for n in numbers:
        (root / str(n)).mkdir(parents=True, exist_ok=True)
    return str(root)


def states(core: ServerCore, name: str) -> dict[int, str]:
    return {v: s.state for v, s in core.monitor.versions(name).items()}


def test_initial_load_serves_latest_only(core: ServerCore, tmp_path: Path) -> None:
    base = versions(tmp_path / "m", 1, 2, "00000003", "assets")
    assert core.reload_config(config({"name": "m", "base_path": base})).ok
    assert states(core, "m") == {3: AVAILABLE}
    with core.servable("m", None, None) as s:
        assert s.version == 3
    with pytest.raises(ServingError) as err, core.servable("m", 1, None):
        pass
    assert err.value.status.message == "Servable not found for request: Specific(m, 1)"


def test_initial_failure_message(core: ServerCore, tmp_path: Path) -> None:
    base = versions(tmp_path / "bad", 4)
    (tmp_path / "bad" / "4" / "BROKEN").touch()
    status = core.reload_config(config({"name": "bad", "base_path": base}))
    assert status.code == "UNKNOWN"
    assert status.message == (
        "1 servable(s) did not become available: {{name: bad version: 4} due to error: "
        f"DATA_LOSS: cannot load {base}/4}}, }}"
    )


@pytest.mark.parametrize(
    ("models", "code", "message"),
    [
        ([{"name": "a", "base_path": "/x"}, {"name": "a", "base_path": "/y"}], "INVALID_ARGUMENT",
         "Illegal to list model a multiple times in config list"),
        ([{"name": "a", "base_path": "rel"}], "INVALID_ARGUMENT",
         "Expected model a to have an absolute path or URI; got base_path()=rel"),
        ([{"name": "a", "base_path": "/x", "platform": ""}], "INVALID_ARGUMENT",
         "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
         "ModelServerConfig::model_platform, model name is a"),
    ],
)  # fmt: skip
def test_validation(
    core: ServerCore, models: list[dict[str, Any]], code: str, message: str
) -> None:
    status = core.reload_config(config(*models))
    assert (status.code, status.message) == (code, message)


def test_reload_replaces_the_list_and_keeps_end_states(core: ServerCore, tmp_path: Path) -> None:
    a = versions(tmp_path / "a", 1)
    b = versions(tmp_path / "b", 1, 2)
    assert core.reload_config(config({"name": "a", "base_path": a})).ok
    # The RPC returns once the new model is AVAILABLE.
    assert core.reload_config(
        config({"name": "a", "base_path": a}, {"name": "b", "base_path": b, "all": True})
    ).ok
    assert AVAILABLE in states(core, "b").values()
    # Omitting a model unloads it; its status stays readable with END.
    assert core.reload_config(config({"name": "b", "base_path": b, "all": True})).ok
    deadline = threading.Event()
    for _ in range(100):
        if states(core, "a") == {1: END}:
            break
        deadline.wait(0.05)
    assert states(core, "a") == {1: END}
    assert [v for v, _ in core.model_status("a", None)] == [1]
    with pytest.raises(ServingError) as err:
        core.model_status("nope", None)
    assert err.value.status.message == "Could not find any versions of model nope"


def test_platform_cannot_change(core: ServerCore, tmp_path: Path) -> None:
    a = versions(tmp_path / "a", 1)
    assert core.reload_config(config({"name": "a", "base_path": a})).ok
    status = core.reload_config(config({"name": "a", "base_path": a, "platform": "other"}))
    assert status.message == (
        "Illegal to change a model's platform. For model a platform was tensorflow and new "
        "platform requested is other"
    )


def test_labels(core: ServerCore, tmp_path: Path) -> None:
    a = versions(tmp_path / "a", 1, 2)
    assert core.reload_config(config({"name": "a", "base_path": a, "all": True})).ok
    for _ in range(100):
        if states(core, "a") == {1: AVAILABLE, 2: AVAILABLE}:
            break
        threading.Event().wait(0.05)
    cfg = config({"name": "a", "base_path": a, "all": True, "labels": {"stable": 1}})
    assert core.reload_config(cfg).ok
    assert core.resolve("a", None, "stable") == ("a", 1)
    with pytest.raises(ServingError) as err:
        core.resolve("a", None, "canary")
    assert err.value.status.message == "Unrecognized servable version label: canary"
    status = core.reload_config(
        config({"name": "a", "base_path": a, "all": True, "labels": {"stable": 9}})
    )
    assert (status.code, status.message) == (
        "FAILED_PRECONDITION",
        "Request to assign label to version 9 of model a, which is not currently available "
        "for inference",
    )


def _h(version: int, state: str, aspired: bool) -> Harness:
    return Harness("m", version, f"/m/{version}", state=state, aspired=aspired)


def test_availability_preserving_policy() -> None:
    # Rollover: the old version keeps serving until the new one is loaded...
    action = Manager._next_action([_h(1, AVAILABLE, False), _h(2, "START", True)])
    assert action is not None
    assert (action[0], action[1].version) == ("load", 2)
    # ...then the old one is unloaded.
    action = Manager._next_action([_h(1, AVAILABLE, False), _h(2, AVAILABLE, True)])
    assert action is not None
    assert (action[0], action[1].version) == ("unload", 1)
    # A failed new version leaves the old one serving.
    assert Manager._next_action([_h(1, AVAILABLE, False), _h(2, END, True)]) is None
    # Several new versions: the highest loads first.
    action = Manager._next_action([_h(1, "START", True), _h(3, "START", True)])
    assert action is not None
    assert action[1].version == 3
