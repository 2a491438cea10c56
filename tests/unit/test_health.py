"""Health logic over the in-memory FakeServing (and the fake itself, which others reuse)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.fakes import (
    FakeClock,
    FakeServing,
    contract_scene,
    run_serving_contract,
)
from tfsops.errors import (
    ExitCode,
    InvalidInput,
    ModelNotFound,
    NotReady,
    OperationFailed,
    ServerStarting,
)
from tfsops.health import (
    LABELS,
    LOADING,
    MISSING,
    OK,
    STARTING,
    UNREACHABLE,
    HealthReport,
    check_health,
    expected_from_mapping,
    wait_until_healthy,
)
from tfsops.ports import AVAILABLE, END, START, UNLOADING, ExpectedModel, VersionStatus


def exp(name: str, versions: set[int] | None = None, **labels: int) -> ExpectedModel:
    return ExpectedModel(name, frozenset(versions or set()), labels)


# ---------------------------------------------------------------------------
# FakeServing behaves like the server


def test_fake_passes_the_serving_contract() -> None:
    fake = FakeServing()
    contract_scene(fake)
    run_serving_contract(fake, fake)


def test_fake_versions_load_step_by_step() -> None:
    fake = FakeServing(load_ticks=2)
    fake.add_model("m", [1], state=START)
    states = []
    for _ in range(4):
        states.append(fake.model_status("m")[0].state)
        fake.tick()
    assert states == ["START", "LOADING", "LOADING", "AVAILABLE"]


def test_fake_failed_load_ends_with_the_error() -> None:
    fake = FakeServing()
    fake.add_model("m", [1], state=START)
    fake.fail_version("m", 1, "Not found: saved_model.pb", code="NOT_FOUND")
    fake.settle()
    assert fake.model_status("m") == [
        VersionStatus(1, END, "NOT_FOUND", "Not found: saved_model.pb")
    ]


def test_fake_keeps_the_old_version_until_the_new_one_is_available() -> None:
    fake = FakeServing()
    fake.add_model("m", [1])
    fake.serve_versions("m", [2])
    seen = []
    while fake.transitional():
        seen.append({s.version: s.state for s in fake.model_status("m")})
        fake.tick()
    assert seen[0] == {1: AVAILABLE, 2: START}
    assert {1: AVAILABLE, 2: AVAILABLE} in seen  # no gap with nothing to serve
    assert {1: UNLOADING, 2: AVAILABLE} in seen
    assert {s.version: s.state for s in fake.model_status("m")} == {1: END, 2: AVAILABLE}


def test_fake_keeps_the_old_version_when_the_new_one_fails() -> None:
    fake = FakeServing()
    fake.add_model("m", [1])
    fake.fail_version("m", 2, "boom")
    fake.serve_versions("m", [2])
    fake.settle()
    assert {s.version: s.state for s in fake.model_status("m")} == {1: AVAILABLE, 2: END}


def test_fake_removed_model_stays_in_status_as_end() -> None:
    fake = FakeServing()
    fake.add_model("m", [1])
    fake.remove_model("m")
    fake.settle()
    assert fake.model_status("m") == [VersionStatus(1, END)]
    with pytest.raises(ModelNotFound):
        fake.metadata("m")


def test_fake_injected_error_is_one_shot() -> None:
    fake = FakeServing()
    fake.add_model("m")
    fake.fail_next("model_status", NotReady("slow"))
    with pytest.raises(NotReady):
        fake.model_status("m")
    assert fake.model_status("m")[0].state == AVAILABLE
    assert fake.calls == [("model_status", "m"), ("model_status", "m")]


CONFIG = """
model_config_list {{
  config {{
    name: "{name}"
    base_path: "{path}"
    model_platform: "tensorflow"
    {extra}
  }}
}}
"""


def config(name: str, path: str, extra: str = "") -> str:
    return CONFIG.format(name=name, path=path, extra=extra)


def test_fake_reload_loads_new_models_from_disk_and_replaces_the_list(tmp_path: Path) -> None:
    for v in ("1", "2", "tmp-3", "assets"):  # non-numeric names are ignored, as upstream does
        (tmp_path / "b" / v).mkdir(parents=True)
    fake = FakeServing()
    fake.add_model("a", [1])
    fake.reload_config(config("b", str(tmp_path / "b")), timeout=5)
    # The RPC returns once new models are loaded; "a" was not listed, so it unloads.
    assert fake.model_status("b") == [VersionStatus(2, AVAILABLE)]  # latest policy: 2
    fake.settle()
    assert fake.model_status("a") == [VersionStatus(1, END)]
    assert fake.config_text is not None
    assert fake.reloads == [fake.config_text]


def test_fake_reload_policies_and_disk_override() -> None:
    fake = FakeServing(disk={"/m": [1, 2, 3]})
    fake.reload_config(config("m", "/m", "model_version_policy { all {} }"), timeout=5)
    assert [s.version for s in fake.model_status("m")] == [1, 2, 3]
    fake.reload_config(
        config("m", "/m", "model_version_policy { specific { versions: 2 } }"), timeout=5
    )
    fake.settle()
    assert {s.version: s.state for s in fake.model_status("m")} == {1: END, 2: AVAILABLE, 3: END}


def test_fake_reload_rejects_like_the_server() -> None:
    fake = FakeServing(disk={"/m": [1]})
    double = (
        'model_config_list { config { name: "m" base_path: "/m" model_platform: "tensorflow" } '
        'config { name: "m" base_path: "/m" model_platform: "tensorflow" } }'
    )
    with pytest.raises(OperationFailed) as exc_info:
        fake.reload_config(double, timeout=5)
    assert exc_info.value.details["server_message"] == (
        "Illegal to list model m multiple times in config list"
    )
    with pytest.raises(OperationFailed, match="absolute path"):
        fake.reload_config(config("m", "relative/m"), timeout=5)
    with pytest.raises(InvalidInput):
        fake.reload_config("model_config_list { nonsense: 1 }", timeout=5)
    assert fake.config_text is None  # nothing was committed


def test_fake_reload_label_on_unavailable_version_fails_after_commit() -> None:
    fake = FakeServing(disk={"/m": [1, 2]})
    fake.reload_config(config("m", "/m"), timeout=5)  # serves 2
    text = config("m", "/m", 'version_labels { key: "stable" value: 1 }')
    with pytest.raises(OperationFailed) as exc_info:
        fake.reload_config(text, timeout=5)
    assert exc_info.value.details["code"] == "FAILED_PRECONDITION"
    assert "version 1 of model m, which is not currently available" in exc_info.value.message
    assert fake.config_text == text  # upstream commits the config before checking labels
    with pytest.raises(ModelNotFound):
        fake.label_version("m", "stable")


def test_fake_reload_of_a_model_without_versions_reports_a_deadline() -> None:
    fake = FakeServing()
    with pytest.raises(OperationFailed, match=r"reload did not finish within 2s"):
        fake.reload_config(config("m", "/nowhere"), timeout=2)


def test_fake_reload_of_a_failing_new_model_reports_upstream_text() -> None:
    fake = FakeServing(disk={"/m": [4]})
    fake.add_model("m", [])
    fake.remove_model("m")
    fake.models["m"].failures[4] = ("UNKNOWN", "bad graph")
    with pytest.raises(OperationFailed) as exc_info:
        fake.reload_config(config("m", "/m"), timeout=5)
    assert exc_info.value.details["server_message"] == (
        "1 model(s) did not become available: {{name: m version: 4} due to error: bad graph}, }"
    )


def test_fake_starting_refuses_everything() -> None:
    fake = FakeServing(starting=True)
    with pytest.raises(ServerStarting):
        fake.model_status("m")
    with pytest.raises(ServerStarting):
        fake.reload_config("model_config_list {}", timeout=1)
    fake.open_ports()
    with pytest.raises(ModelNotFound):
        fake.model_status("m")


# ---------------------------------------------------------------------------
# check_health


def test_healthy_when_every_version_available_and_labels_resolve() -> None:
    fake = FakeServing()
    fake.add_model("a", [1, 2], labels={"stable": 1, "canary": 2})
    fake.add_model("b", [7])
    report = check_health(fake, [exp("a", {1, 2}, stable=1, canary=2), exp("b", {7})])
    assert report.ok
    assert not report.failed
    assert [m.status for m in report.models] == [OK, OK]
    assert report.error() is None
    assert report.models[0].describe() == (
        "a: ok (version 1 AVAILABLE; version 2 AVAILABLE; label canary -> 2; label stable -> 1)"
    )


def test_status_200_while_loading_is_not_healthy() -> None:
    fake = FakeServing()
    fake.add_model("a", [1])
    fake.serve_versions("a", [1, 2])
    fake.tick()
    report = check_health(fake, [exp("a", {1, 2})])
    model = report.model("a")
    assert model.status == LOADING
    assert model.problem == "version 2 LOADING"
    error = report.error(timeout=30)
    assert isinstance(error, NotReady)
    assert error.exit_code == ExitCode.NOT_READY
    assert "within 30s" in error.message


def test_expected_version_not_tracked_yet() -> None:
    fake = FakeServing()
    fake.add_model("a", [1])
    model = check_health(fake, [exp("a", {1, 3})]).model("a")
    assert model.status == LOADING
    assert model.problem == "version 3 not tracked by the server"


def test_end_with_error_is_failed_with_the_servers_message() -> None:
    fake = FakeServing()
    fake.add_model("a", [1])
    fake.set_state("a", 2, END, "NOT_FOUND", "Could not find SavedModel .pb")
    report = check_health(fake, [exp("a", {1, 2})])
    assert report.failed
    assert report.model("a").problem == "version 2 END (NOT_FOUND: Could not find SavedModel .pb)"
    error = report.error()
    assert isinstance(error, OperationFailed)
    assert error.exit_code == ExitCode.FAILED
    assert "Could not find SavedModel .pb" in error.message


def test_end_ok_is_unloaded_not_failed() -> None:
    fake = FakeServing()
    fake.add_model("a", [1])
    fake.set_state("a", 2, END)
    model = check_health(fake, [exp("a", {1, 2})]).model("a")
    assert model.status == LOADING
    assert model.problem == "version 2 END (unloaded)"


def test_missing_model() -> None:
    fake = FakeServing()
    model = check_health(fake, [exp("ghost", {1})]).model("ghost")
    assert model.status == MISSING
    assert model.problem == "Could not find any versions of model ghost"


def test_label_pointing_elsewhere_or_unknown() -> None:
    fake = FakeServing()
    fake.add_model("a", [1, 2], labels={"stable": 1})
    report = check_health(fake, [exp("a", {1, 2}, stable=2, canary=2)])
    model = report.model("a")
    assert model.status == LABELS
    labels = {lab.label: lab for lab in model.labels}
    assert labels["stable"].resolved_version == 1
    assert not labels["stable"].ok
    assert labels["canary"].resolved_version is None
    assert labels["canary"].error == "Unrecognized servable version label: canary"
    assert model.problem == (
        "label canary (want 2) does not resolve: Unrecognized servable version label: canary; "
        "label stable resolves to 1, want 2"
    )


def test_label_to_a_version_that_is_not_loaded() -> None:
    fake = FakeServing()
    fake.add_model("a", [1], labels={"stable": 1})
    fake.set_labels("a", {"stable": 5})
    model = check_health(fake, [exp("a", {1}, stable=5)]).model("a")
    assert model.status == LABELS
    assert model.labels[0].error == "Servable not found for request: Specific(a, 5)"


def test_no_particular_version_expected_means_any_available() -> None:
    fake = FakeServing()
    fake.add_model("a", [3])
    fake.add_model("b", [1], state=START)
    report = check_health(fake, [exp("a"), exp("b")])
    assert report.model("a").ok
    assert report.model("b").status == LOADING
    assert report.model("b").problem == "no version AVAILABLE: version 1 START"


def test_unexpected_versions_are_reported_but_do_not_matter() -> None:
    fake = FakeServing()
    fake.add_model("a", [1])
    fake.set_state("a", 9, END, "UNKNOWN", "old failure")
    report = check_health(fake, [exp("a", {1})])
    assert report.ok
    assert report.to_dict()["models"][0]["versions"] == [
        {"version": 1, "state": "AVAILABLE", "error": None, "expected": True},
        {"version": 9, "state": "END", "error": "UNKNOWN: old failure", "expected": False},
    ]


def test_server_starting_and_unreachable() -> None:
    fake = FakeServing(starting=True)
    report = check_health(fake, [exp("a", {1}), exp("b", {1})])
    assert report.server_starting
    assert {m.status for m in report.models} == {STARTING}
    error = report.error(timeout=5)
    assert isinstance(error, NotReady)
    assert "did not open its ports within 5s" in error.message

    fake.open_ports()
    fake.add_model("a", [1])
    fake.fail_next("model_status", NotReady("status of model 'a': no answer within 5s"))
    model = check_health(fake, [exp("a", {1})]).model("a")
    assert model.status == UNREACHABLE
    assert model.problem == "status of model 'a': no answer within 5s"


def test_to_dict_shape() -> None:
    fake = FakeServing()
    fake.add_model("a", [1], labels={"stable": 1})
    data = check_health(fake, [exp("a", {1}, stable=1), exp("z", {1})]).to_dict()
    assert data == {
        "ok": False,
        "failed": False,
        "server_starting": False,
        "models": [
            {
                "name": "a",
                "ok": True,
                "status": "ok",
                "versions": [{"version": 1, "state": "AVAILABLE", "error": None, "expected": True}],
                "labels": [
                    {
                        "label": "stable",
                        "expected_version": 1,
                        "resolved_version": 1,
                        "ok": True,
                        "error": None,
                    }
                ],
                "problem": None,
            },
            {
                "name": "z",
                "ok": False,
                "status": "missing",
                "versions": [],
                "labels": [],
                "problem": "Could not find any versions of model z",
            },
        ],
    }


class SlowClient:
    """Real sleeps per status call, to prove models are checked at the same time."""

    def __init__(self, inner: FakeServing, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def model_status(self, model: str, *, timeout: float = 5.0) -> list[VersionStatus]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1
        return self.inner.model_status(model, timeout=timeout)

    def label_version(self, model: str, label: str, *, timeout: float = 5.0) -> int:
        return self.inner.label_version(model, label, timeout=timeout)

    def metadata(self, model: str, **kw: Any) -> dict[str, Any]:
        return self.inner.metadata(model, **kw)

    def predict(self, model: str, body: Any, **kw: Any) -> dict[str, Any]:
        return self.inner.predict(model, body, **kw)


def test_models_are_checked_concurrently() -> None:
    fake = FakeServing()
    names = [f"m{i}" for i in range(8)]
    for name in names:
        fake.add_model(name, [1])
    client = SlowClient(fake, delay=0.2)
    started = time.monotonic()
    report = check_health(client, [exp(n, {1}) for n in names])
    elapsed = time.monotonic() - started
    assert report.ok
    assert [m.name for m in report.models] == names  # order of the expected list
    assert client.max_active == 8
    assert elapsed < 0.2 * 4


def test_expected_from_mapping() -> None:
    assert expected_from_mapping({"a": {"versions": [1, "2"], "labels": {"s": 1}}, "b": {}}) == [
        ExpectedModel("a", frozenset({1, 2}), {"s": 1}),
        ExpectedModel("b", frozenset()),
    ]


# ---------------------------------------------------------------------------
# wait_until_healthy


def test_wait_polls_until_healthy_without_sleeping() -> None:
    fake = FakeServing(load_ticks=3)
    fake.add_model("a", [1], state=START)
    fake.add_model("b", [1, 2], state=START, labels={})
    clock = fake.ticking_clock()
    progress: list[HealthReport] = []
    started = time.monotonic()
    report = wait_until_healthy(
        fake,
        [exp("a", {1}), exp("b", {1, 2})],
        timeout=60,
        interval=2,
        clock=clock,
        on_progress=progress.append,
    )
    assert time.monotonic() - started < 1
    assert report.ok
    assert report.polls == len(progress) == 5  # START, LOADING x3, AVAILABLE
    assert report.elapsed_s == 8
    assert clock.sleeps == [2, 2, 2, 2]
    assert [p.model("a").status for p in progress] == [LOADING] * 4 + [OK]


def test_wait_returns_at_the_deadline_when_never_ready() -> None:
    fake = FakeServing(load_ticks=1000)
    fake.add_model("a", [1], state=START)
    clock = fake.ticking_clock(start=100.0)
    report = wait_until_healthy(fake, [exp("a", {1})], timeout=10, interval=3, clock=clock)
    assert not report.ok
    assert not report.failed
    assert clock.sleeps == [3, 3, 3, 1]  # the last sleep stops at the deadline
    assert report.elapsed_s == 10
    assert report.polls == 5
    error = report.error(timeout=10)
    assert isinstance(error, NotReady)
    assert error.exit_code == ExitCode.NOT_READY
    assert error.details["health"]["models"][0]["versions"][0]["state"] == "LOADING"


def test_wait_fails_fast_on_a_failed_load() -> None:
    fake = FakeServing()
    fake.add_model("a", [1], state=START)
    fake.add_model("b", [1], state=START)
    fake.fail_version("b", 1, "Op type not registered 'Foo'")
    clock = fake.ticking_clock()
    report = wait_until_healthy(fake, [exp("a", {1}), exp("b", {1})], timeout=300, clock=clock)
    assert report.failed
    assert clock.now < 5  # did not wait out the 300 s
    error = report.error()
    assert isinstance(error, OperationFailed)
    assert "Op type not registered 'Foo'" in error.message


def test_wait_without_fail_fast_keeps_polling() -> None:
    fake = FakeServing()
    fake.add_model("a", [1])
    fake.set_state("a", 2, END, "UNKNOWN", "boom")
    clock = FakeClock()
    report = wait_until_healthy(
        fake, [exp("a", {1, 2})], timeout=5, interval=1, clock=clock, fail_fast=False
    )
    assert report.failed
    assert clock.now == 5


def test_wait_through_server_start() -> None:
    fake = FakeServing(starting=True)
    fake.add_model("a", [1])
    sleeps = 0

    def on_sleep(_s: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps == 3:
            fake.open_ports()

    clock = FakeClock(on_sleep=on_sleep)
    statuses: list[str] = []
    report = wait_until_healthy(
        fake,
        [exp("a", {1})],
        timeout=30,
        clock=clock,
        on_progress=lambda r: statuses.append(r.models[0].status),
    )
    assert report.ok
    assert statuses == [STARTING, STARTING, STARTING, OK]


def test_wait_with_zero_timeout_checks_once() -> None:
    fake = FakeServing()
    fake.add_model("a", [1], state=START)
    clock = FakeClock()
    report = wait_until_healthy(fake, [exp("a", {1})], timeout=0, clock=clock)
    assert report.polls == 1
    assert clock.sleeps == []


def test_wait_caps_the_per_call_timeout_near_the_deadline() -> None:
    seen: list[float] = []

    class Recording(FakeServing):
        def model_status(self, model: str, *, timeout: float = 5.0) -> list[VersionStatus]:
            seen.append(timeout)
            return super().model_status(model, timeout=timeout)

    fake = Recording(load_ticks=1000)
    fake.add_model("a", [1], state=START)
    wait_until_healthy(
        fake, [exp("a", {1})], timeout=3, interval=1, clock=FakeClock(), timeout_per_call=5
    )
    assert seen == [3, 2, 1, 0.5]


def test_while_the_server_starts_one_call_per_poll_not_one_per_model() -> None:
    fake = FakeServing(starting=True)
    clock = fake.ticking_clock()
    names = [f"m{i}" for i in range(20)]
    polls: list[int] = []

    def progress(report: HealthReport) -> None:
        polls.append(len(fake.calls))
        if len(polls) == 3:  # the ports open after the third poll
            fake.open_ports()
            for n in names:
                fake.add_model(n, [1])

    report = wait_until_healthy(
        fake, [exp(n, {1}) for n in names], timeout=30, clock=clock, on_progress=progress
    )
    assert report.ok and [m.name for m in report.models] == names
    # first poll: every model (nothing known yet); then one call while still refused;
    # then one probe that answers, and every model again
    assert polls == [20, 21, 22, 43]
