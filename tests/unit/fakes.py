"""An in-memory TF Serving for unit tests: ``FakeServing`` and ``FakeClock``.

``FakeServing`` implements the ``ServingClient`` and ``ModelAdmin`` ports
(``tfsops/ports.py``) as a small state machine that follows upstream's
semantics (reference/tfserving.md §2, §3, §5):

- Each model keeps every version it has ever seen (the status answer keeps END
  entries, as the server's ServableStateMonitor does).
- Versions move ``START -> LOADING -> AVAILABLE`` one step per ``tick()``
  (``load_ticks`` ticks in LOADING), or ``-> END`` with an error when marked
  with ``fail_version``. Un-served versions go ``UNLOADING -> END`` (OK), and,
  like the AvailabilityPreservingPolicy, only once a served version is
  AVAILABLE.
- ``reload_config(text)`` parses the text as a ``ModelServerConfig`` and
  *replaces the whole model list*: missing models are unloaded, new ones load
  the versions their policy selects from disk (``disk`` overrides, else the
  numeric children of ``base_path``). It validates like the server (duplicate
  names, relative paths, platform changes, labels only on AVAILABLE versions),
  raising the errors the gRPC adapter raises, with upstream's texts. Like the
  real RPC it returns only when every *new* model has loaded (the fake settles
  them at once); a new model with no version on disk "hangs", reported as the
  adapter reports a missed deadline.
- ``starting = True`` makes every call raise ``ServerStarting`` (ports closed
  during the initial load).
- ``fail_next(method, error)`` injects a one-shot error; ``calls`` and
  ``reloads`` record what the code under test did.

Errors carry ``details["server_message"]`` (upstream's exact text) and
``details["code"]`` (absl code name), so test servers can serve the fake over
real REST/gRPC (see ``run_serving_contract``) and the adapters must translate
them back into the same classes: the fake cannot drift from the adapters.

Typical use::

    fake = FakeServing()
    fake.add_model("resnet", [1, 2], labels={"stable": 1})   # AVAILABLE now
    fake.add_model("bert", [3], state=START)                 # loads on tick()
    clock = fake.ticking_clock()                             # each sleep = one tick
    report = wait_until_healthy(fake, expected, timeout=10, clock=clock)
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfsops.errors import (
    InvalidInput,
    ModelNotFound,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.ports import (
    AVAILABLE,
    END,
    LOADING,
    START,
    UNLOADING,
    ExpectedModel,
    VersionStatus,
)

Predictor = Callable[[Mapping[str, Any]], dict[str, Any]]

_TRANSITIONAL = frozenset({START, LOADING, UNLOADING})


def tensor_info(
    name: str, dtype: str = "DT_FLOAT", dims: Iterable[int] = (-1, 1)
) -> dict[str, Any]:
    """A REST-shaped ``TensorInfo`` (as in ``.../metadata`` answers)."""
    return {
        "dtype": dtype,
        "tensor_shape": {
            "dim": [{"size": str(d), "name": ""} for d in dims],
            "unknown_rank": False,
        },
        "name": name,
    }


def half_plus_two_signatures() -> dict[str, Any]:
    """Signatures of upstream's ``saved_model_half_plus_two``: y = 0.5 x + 2, float [-1, 1]."""
    return {
        "serving_default": {
            "inputs": {"x": tensor_info("x:0")},
            "outputs": {"y": tensor_info("y:0")},
            "method_name": "tensorflow/serving/predict",
        }
    }


def _map_numbers(value: Any, fn: Callable[[float], float]) -> Any:
    if isinstance(value, list):
        return [_map_numbers(v, fn) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = type(value).__name__
        raise _err(
            OperationFailed,
            "INVALID_ARGUMENT",
            f"JSON Value: {value!r} Type: {kind} is not of expected type: float",
        )
    return fn(float(value))


def half_plus_two(body: Mapping[str, Any]) -> dict[str, Any]:
    """The default predictor: upstream's half_plus_two (``{"instances": [1.0, 2.0, 5.0]}`` ->
    ``{"predictions": [2.5, 3.0, 4.5]}``)."""

    def fn(x: float) -> float:
        return 0.5 * x + 2.0

    if "instances" in body:
        return {"predictions": _map_numbers(body["instances"], fn)}
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        if set(inputs) != {"x"}:
            raise _err(OperationFailed, "INVALID_ARGUMENT", f"unexpected inputs: {sorted(inputs)}")
        inputs = inputs["x"]
    return {"outputs": _map_numbers(inputs, fn)}


def _err(cls: type[TfsopsError], code: str, text: str, message: str | None = None) -> TfsopsError:
    return cls(message or text, details={"server_message": text, "code": code})


@dataclass
class FakeVersion:
    version: int
    state: str = START
    error_code: str = "OK"
    error_message: str = ""
    ticks_left: int = 0

    def status(self) -> VersionStatus:
        return VersionStatus(self.version, self.state, self.error_code, self.error_message)


@dataclass
class FakeModel:
    name: str
    base_path: str = ""
    platform: str = "tensorflow"
    # ("latest", (n,)) | ("all", ()) | ("specific", (v, ...))
    policy: tuple[str, tuple[int, ...]] = ("latest", (1,))
    versions: dict[int, FakeVersion] = field(default_factory=dict)  # every version ever seen
    served: set[int] = field(default_factory=set)  # the versions the policy selects now
    labels: dict[str, int] = field(default_factory=dict)
    failures: dict[int, tuple[str, str]] = field(default_factory=dict)  # version -> (code, message)
    signatures: dict[str, Any] = field(default_factory=half_plus_two_signatures)
    predictor: Predictor = half_plus_two
    configured: bool = True  # False once removed from the config (versions stay in the status)


class FakeServing:
    """In-memory TF Serving: a ``ServingClient`` and ``ModelAdmin`` (see the module docstring)."""

    def __init__(
        self,
        *,
        load_ticks: int = 1,
        unload_ticks: int = 1,
        starting: bool = False,
        allow_labels_for_unavailable: bool = False,
        disk: Mapping[str, Iterable[int]] | None = None,
    ) -> None:
        self.load_ticks = load_ticks
        self.unload_ticks = unload_ticks
        self.starting = starting
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.disk: dict[str, list[int]] = {k: sorted(v) for k, v in (disk or {}).items()}
        self.models: dict[str, FakeModel] = {}
        self.config_text: str | None = None  # what the last accepted reload committed
        self.reloads: list[str] = []  # every text given to reload_config, accepted or not
        self.calls: list[tuple[str, str]] = []  # (method, model) in call order
        self._injected: dict[str, deque[TfsopsError]] = defaultdict(deque)
        self._lock = threading.RLock()

    # -- setting the scene -------------------------------------------------

    def add_model(
        self,
        name: str,
        versions: Iterable[int] = (1,),
        *,
        state: str = AVAILABLE,
        labels: Mapping[str, int] | None = None,
        base_path: str | None = None,
        platform: str = "tensorflow",
        signatures: Mapping[str, Any] | None = None,
        predictor: Predictor | None = None,
    ) -> FakeModel:
        """Serve ``name`` with ``versions`` already in ``state``.

        AVAILABLE by default; START to watch them load on ``tick()``.
        """
        with self._lock:
            model = FakeModel(
                name=name, base_path=base_path or f"/models/{name}", platform=platform
            )
            for v in versions:
                model.versions[v] = FakeVersion(v, state, ticks_left=self.load_ticks)
                model.served.add(v)
            model.policy = ("specific", tuple(sorted(model.served)))
            model.labels = dict(labels or {})
            if signatures is not None:
                model.signatures = dict(signatures)
            if predictor is not None:
                model.predictor = predictor
            self.models[name] = model
            return model

    def serve_versions(self, name: str, versions: Iterable[int]) -> None:
        """Change which versions ``name`` serves (as a policy/disk change would): new ones START,
        dropped ones unload once a served version is AVAILABLE."""
        with self._lock:
            self._set_served(self.models[name], set(versions))

    def fail_version(self, name: str, version: int, message: str, code: str = "UNKNOWN") -> None:
        """Make ``version`` fail to load (now, if it is loading; else when it next loads)."""
        with self._lock:
            model = self.models[name]
            model.failures[version] = (code, message)
            v = model.versions.get(version)
            if v is not None and v.state in (START, LOADING):
                v.ticks_left = min(v.ticks_left, 1)

    def set_state(
        self, name: str, version: int, state: str, error_code: str = "OK", error_message: str = ""
    ) -> None:
        """Force one version's state (tracks the version if it is new)."""
        with self._lock:
            model = self.models[name]
            model.versions[version] = FakeVersion(
                version, state, error_code, error_message, ticks_left=self.load_ticks
            )

    def set_labels(self, name: str, labels: Mapping[str, int]) -> None:
        """Replace a model's labels without validation."""
        with self._lock:
            self.models[name].labels = dict(labels)

    def remove_model(self, name: str) -> None:
        """Stop serving ``name``: its versions unload, but stay in the status answer as END."""
        with self._lock:
            model = self.models[name]
            model.configured = False
            model.labels = {}
            self._set_served(model, set())

    def open_ports(self) -> None:
        """End of the initial load: calls stop raising ``ServerStarting``."""
        self.starting = False

    def fail_next(self, method: str, error: TfsopsError) -> None:
        """Make the next call of ``method`` (e.g. ``"model_status"``) raise ``error``."""
        with self._lock:
            self._injected[method].append(error)

    def poll_filesystem(self) -> None:
        """Re-read every configured model's versions from disk (the server's FS poll)."""
        with self._lock:
            for model in self.models.values():
                if model.configured:
                    self._set_served(model, set(self._select_versions(model)))

    # -- time --------------------------------------------------------------

    def tick(self, n: int = 1) -> None:
        """Advance every version's state machine ``n`` steps."""
        with self._lock:
            for _ in range(n):
                for model in self.models.values():
                    self._advance(model)

    def settle(self, max_ticks: int = 1000) -> None:
        """Tick until no version is in a transitional state."""
        with self._lock:
            for _ in range(max_ticks):
                if not self.transitional():
                    return
                self.tick()
            raise AssertionError("FakeServing did not settle")

    def transitional(self) -> bool:
        with self._lock:
            return any(
                v.state in _TRANSITIONAL or self._will_unload(m, v)
                for m in self.models.values()
                for v in m.versions.values()
            )

    def ticking_clock(self, start: float = 0.0) -> FakeClock:
        """A clock whose every ``sleep`` is one ``tick()``: polling loops see progress."""
        return FakeClock(start, on_sleep=lambda _s: self.tick())

    # -- ServingClient -----------------------------------------------------

    def model_status(self, model: str, *, timeout: float = 5.0) -> list[VersionStatus]:
        with self._lock:
            self._enter("model_status", model)
            m = self.models.get(model)
            if m is None or not m.versions:
                raise _err(
                    ModelNotFound, "NOT_FOUND", f"Could not find any versions of model {model}"
                )
            return [m.versions[v].status() for v in sorted(m.versions)]

    def label_version(self, model: str, label: str, *, timeout: float = 5.0) -> int:
        with self._lock:
            self._enter("label_version", model)
            return self._resolve(model, None, label)

    def metadata(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        with self._lock:
            self._enter("metadata", model)
            resolved = self._resolve(model, version, label)
            return {
                "model_spec": {"name": model, "signature_name": "", "version": str(resolved)},
                "metadata": {
                    "signature_def": {"signature_def": dict(self.models[model].signatures)}
                },
            }

    def predict(
        self,
        model: str,
        body: Mapping[str, Any],
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        with self._lock:
            self._enter("predict", model)
            self._resolve(model, version, label)
            predictor = self.models[model].predictor
        if ("instances" in body) == ("inputs" in body):
            text = (
                "Missing 'inputs' or 'instances' key"
                if "instances" not in body
                else "JSON Value: ... Not formatted correctly expecting only one of 'inputs' "
                "or 'instances' keys to exist "
            )
            raise _err(OperationFailed, "INVALID_ARGUMENT", text)
        signature = body.get("signature_name") or "serving_default"
        if signature not in self.models[model].signatures:
            raise _err(
                OperationFailed,
                "INVALID_ARGUMENT",
                f'Serving signature name: "{signature}" not found in signature def',
            )
        return predictor(body)

    # -- ModelAdmin --------------------------------------------------------

    def reload_config(self, models_config_text: str, *, timeout: float) -> None:
        """Replace the whole model list (see the module docstring for what is checked)."""
        from tfsops.adapters import protos  # generated modules: imported only when reloading

        with self._lock:
            self._enter("reload_config", "")
            self.reloads.append(models_config_text)
            text_format = protos.text_format()
            try:
                config = text_format.Parse(
                    models_config_text, protos.model_server_config_pb2().ModelServerConfig()
                )
            except text_format.ParseError as exc:
                raise InvalidInput(f"the models.config text does not parse: {exc}") from exc
            if config.WhichOneof("config") != "model_config_list":
                raise InvalidInput("the models.config text holds no model_config_list")
            entries = list(config.model_config_list.config)
            self._validate(entries)
            self.config_text = models_config_text  # committed here, before labels (§3.4 step 5)
            self._check_labels(entries)
            for entry in entries:
                if entry.name not in self.models or not self.models[entry.name].configured:
                    if not entry.model_platform:
                        raise _reload_err(
                            "INVALID_ARGUMENT",
                            "Illegal setting neither ModelServerConfig::model_type (deprecated) "
                            "nor ModelServerConfig::model_platform, "
                            f"model name is {entry.name}",
                        )
                    if entry.model_platform != "tensorflow":
                        raise _reload_err(
                            "INVALID_ARGUMENT",
                            f"Model {entry.name} requests unsupported platform "
                            f"{entry.model_platform}",
                        )
            new_names = self._apply(entries)
            self._wait_for_new(new_names, timeout)

    # -- internals ---------------------------------------------------------

    def _enter(self, method: str, model: str) -> None:
        self.calls.append((method, model))
        if self.starting:
            raise ServerStarting(
                "nothing answers yet (connection refused)", details={"code": "UNAVAILABLE"}
            )
        queue = self._injected.get(method)
        if queue:
            raise queue.popleft()

    def _resolve(self, model: str, version: int | None, label: str | None) -> int:
        m = self.models.get(model)
        if label is not None:
            if m is None or label not in m.labels:
                raise _err(
                    ModelNotFound,
                    "INVALID_ARGUMENT",
                    f"Unrecognized servable version label: {label}",
                )
            version = m.labels[label]
        if version is not None:
            if m is None or m.versions.get(version, FakeVersion(version)).state != AVAILABLE:
                raise _err(
                    ModelNotFound,
                    "NOT_FOUND",
                    f"Servable not found for request: Specific({model}, {version})",
                )
            return version
        available = [v for v, fv in (m.versions.items() if m else ()) if fv.state == AVAILABLE]
        if not available:
            raise _err(
                ModelNotFound, "NOT_FOUND", f"Servable not found for request: Latest({model})"
            )
        return max(available)

    def _set_served(self, model: FakeModel, served: set[int]) -> None:
        for v in served - model.served:
            current = model.versions.get(v)
            if current is None or current.state in (END, UNLOADING):
                model.versions[v] = FakeVersion(v, START, ticks_left=self.load_ticks)
        model.served = set(served)

    @staticmethod
    def _will_unload(model: FakeModel, fv: FakeVersion) -> bool:
        # Availability preserving: an old version serves until a new one is ready
        # (and keeps serving when the new one fails).
        if fv.state != AVAILABLE or fv.version in model.served:
            return False
        if not model.served:
            return True
        return any(
            model.versions[v].state == AVAILABLE for v in model.served if v in model.versions
        )

    def _advance(self, model: FakeModel) -> None:
        unloading = [fv for fv in model.versions.values() if self._will_unload(model, fv)]
        for fv in list(model.versions.values()):
            if fv.state == START:
                fv.state, fv.ticks_left = LOADING, self.load_ticks
            elif fv.state == LOADING:
                fv.ticks_left -= 1
                if fv.ticks_left <= 0:
                    failure = model.failures.get(fv.version)
                    if failure is not None:
                        fv.state, fv.error_code, fv.error_message = END, failure[0], failure[1]
                    else:
                        fv.state, fv.error_code, fv.error_message = AVAILABLE, "OK", ""
            elif fv.state == UNLOADING:
                fv.ticks_left -= 1
                if fv.ticks_left <= 0:
                    fv.state = END
            elif fv in unloading:
                fv.state, fv.ticks_left = UNLOADING, self.unload_ticks

    def _validate(self, entries: list[Any]) -> None:
        seen: set[str] = set()
        for entry in entries:
            if entry.name in seen:
                raise _reload_err(
                    "INVALID_ARGUMENT",
                    f"Illegal to list model {entry.name} multiple times in config list",
                )
            seen.add(entry.name)
            if not (entry.base_path.startswith("/") or re.match(r"^[a-z0-9]+://", entry.base_path)):
                raise _reload_err(
                    "INVALID_ARGUMENT",
                    f"Expected model {entry.name} to have an absolute path or URI; "
                    f"got base_path()={entry.base_path}",
                )
            old = self.models.get(entry.name)
            if old is not None and old.configured and entry.model_platform != old.platform:
                raise _reload_err(
                    "INVALID_ARGUMENT",
                    f"Illegal to change a model's platform. For model {entry.name} platform was "
                    f"{old.platform} and new platform requested is {entry.model_platform}",
                )

    def _check_labels(self, entries: list[Any]) -> None:
        for entry in entries:
            model = self.models.get(entry.name)
            for label, version in sorted(entry.version_labels.items()):
                available = (
                    model is not None
                    and model.versions.get(version, FakeVersion(version)).state == AVAILABLE
                )
                if available:
                    continue
                current = model.labels.get(label) if model is not None else None
                if self.allow_labels_for_unavailable and current in (None, version):
                    continue
                raise _reload_err(
                    "FAILED_PRECONDITION",
                    f"Request to assign label to version {version} of model {entry.name}, "
                    "which is not currently available for inference",
                )

    def _apply(self, entries: list[Any]) -> list[str]:
        new_names: list[str] = []
        wanted = {e.name for e in entries}
        for name, old in self.models.items():
            if name not in wanted and old.configured:
                old.configured = False
                old.labels = {}
                self._set_served(old, set())
        for entry in entries:
            model = self.models.get(entry.name)
            if model is None or not model.configured:
                new_names.append(entry.name)
                if model is None:
                    model = FakeModel(name=entry.name)
                    self.models[entry.name] = model
                model.configured = True
            model.base_path = entry.base_path
            model.platform = entry.model_platform
            model.policy = _policy(entry)
            model.labels = dict(entry.version_labels)
            self._set_served(model, set(self._select_versions(model)))
        return new_names

    def _wait_for_new(self, names: list[str], timeout: float) -> None:
        hung = [n for n in names if not self.models[n].served]
        if hung:
            # The real RPC waits forever for a model with no version dir (#1447, #1565).
            raise _reload_err(
                "DEADLINE_EXCEEDED",
                "Deadline Exceeded",
                f"reload did not finish within {timeout:g}s: Deadline Exceeded",
            )
        for _ in range(1000):
            states = {
                self.models[n].versions[v].state for n in names for v in self.models[n].served
            }
            if not states & _TRANSITIONAL:
                break
            for n in names:
                self._advance(self.models[n])
        failed = [
            (n, fv)
            for n in names
            for v in sorted(self.models[n].served)
            if (fv := self.models[n].versions[v]).state == END and fv.error_code != "OK"
        ]
        if failed:
            parts = "".join(
                f"{{name: {n} version: {fv.version}}} due to error: {fv.error_message}}}, "
                for n, fv in failed
            )
            raise _reload_err(
                "UNKNOWN", f"{len(failed)} model(s) did not become available: {{{parts}}}"
            )

    def _select_versions(self, model: FakeModel) -> list[int]:
        on_disk = self._disk_versions(model.base_path)
        kind, values = model.policy
        if kind == "all":
            return on_disk
        if kind == "specific":
            return [v for v in values if v in on_disk]
        count = max(values[0] if values else 1, 1)
        return on_disk[-count:]

    def _disk_versions(self, base_path: str) -> list[int]:
        if base_path in self.disk:
            return sorted(self.disk[base_path])
        root = Path(base_path)
        if not root.is_dir():
            return []
        versions = set()
        for child in root.iterdir():
            try:
                versions.add(int(child.name.strip()))  # absl::SimpleAtoi: numeric names only
            except ValueError:
                continue
        return sorted(versions)


def _reload_err(code: str, text: str, message: str | None = None) -> OperationFailed:
    # Same message shape as GrpcServingClient's translation: "reload failed (CODE): text".
    return OperationFailed(
        message or f"reload failed ({code}): {text}", details={"server_message": text, "code": code}
    )


def _policy(entry: Any) -> tuple[str, tuple[int, ...]]:
    if not entry.HasField("model_version_policy"):
        return ("latest", (1,))
    policy = entry.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return ("all", ())
    if which == "specific":
        return ("specific", tuple(policy.specific.versions))
    return ("latest", (policy.latest.num_versions or 1,))


class FakeClock:
    """A ``Clock`` whose ``sleep`` advances ``now`` at once (and optionally runs a callback)."""

    def __init__(self, start: float = 0.0, on_sleep: Callable[[float], None] | None = None) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------------------
# contract: the same assertions against the fake and the real adapters


CONTRACT_FAILURE = "Could not load the servable: bad graph"


def contract_scene(fake: FakeServing) -> None:
    """The server state ``run_serving_contract`` expects (call on a fresh fake)."""
    fake.add_model("half", [1, 2], labels={"stable": 1})
    fake.set_state("half", 3, END, "UNKNOWN", CONTRACT_FAILURE)
    fake.add_model("loading", [1], state=LOADING)


def _fake_starting(fake: FakeServing) -> Callable[[], AbstractContextManager[object]]:
    @contextmanager
    def starting() -> Iterator[object]:
        fake.starting = True
        try:
            yield fake
        finally:
            fake.starting = False

    return starting


def run_serving_contract(
    fake: FakeServing | None,
    client: Any,
    *,
    failure: tuple[str, str] = ("UNKNOWN", CONTRACT_FAILURE),
    starting: Callable[[], AbstractContextManager[object]] | None = None,
) -> None:
    """Assertions every ``ServingClient`` must pass against a server showing ``contract_scene``.

    ``client`` is the fake itself or an adapter talking to a test server that
    serves ``fake``; errors must be the same classes with the same server texts.
    A real server (the test double's image) passes ``fake=None``, the code
    and text of its failed version 3 as ``failure``, and ``starting``: a
    context in which the server is not up (none: that part is skipped).
    """
    import pytest

    from tfsops.health import FAILED, MISSING, OK, check_health
    from tfsops.health import LOADING as H_LOADING

    assert client.model_status("half") == [
        VersionStatus(1, AVAILABLE),
        VersionStatus(2, AVAILABLE),
        VersionStatus(3, END, *failure),
    ]
    assert client.model_status("loading") == [VersionStatus(1, LOADING)]
    with pytest.raises(ModelNotFound) as exc_info:
        client.model_status("nope")
    assert exc_info.value.details["server_message"] == "Could not find any versions of model nope"

    assert client.label_version("half", "stable") == 1
    with pytest.raises(ModelNotFound) as exc_info:
        client.label_version("half", "canary")
    assert exc_info.value.details["server_message"] == "Unrecognized servable version label: canary"

    meta = client.metadata("half")
    assert meta["model_spec"]["version"] == "2"
    assert "x" in meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert client.metadata("half", label="stable")["model_spec"]["version"] == "1"
    assert client.metadata("half", version=1)["model_spec"]["version"] == "1"
    with pytest.raises(ModelNotFound) as exc_info:
        client.metadata("loading")
    assert (
        exc_info.value.details["server_message"]
        == "Servable not found for request: Latest(loading)"
    )

    assert client.predict("half", {"instances": [1.0, 2.0, 5.0]}) == {
        "predictions": [2.5, 3.0, 4.5]
    }
    assert client.predict("half", {"inputs": [[1.0], [3.0]]}, version=1) == {
        "outputs": [[2.5], [3.5]]
    }
    assert client.predict("half", {"instances": [4.0]}, label="stable") == {"predictions": [4.0]}
    with pytest.raises(ModelNotFound) as exc_info:
        client.predict("half", {"instances": [1.0]}, version=7)
    assert (
        exc_info.value.details["server_message"]
        == "Servable not found for request: Specific(half, 7)"
    )

    report = check_health(
        client,
        [
            ExpectedModel("half", frozenset({1, 2}), {"stable": 1}),
            ExpectedModel("half", frozenset({3})),
            ExpectedModel("loading", frozenset({1})),
            ExpectedModel("nope", frozenset({1})),
        ],
        timeout_per_call=5.0,
    )
    assert [m.status for m in report.models] == [OK, FAILED, H_LOADING, MISSING]
    assert report.models[1].problem == f"version 3 END ({failure[0]}: {failure[1]})"

    if starting is None and fake is not None:
        starting = _fake_starting(fake)
    if starting is None:
        return
    with starting():
        with pytest.raises(ServerStarting):
            client.model_status("half")
        assert check_health(client, [ExpectedModel("half", frozenset({1}))]).server_starting


__all__ = [
    "FakeClock",
    "FakeModel",
    "FakeServing",
    "FakeVersion",
    "contract_scene",
    "half_plus_two",
    "half_plus_two_signatures",
    "run_serving_contract",
    "tensor_info",
]
