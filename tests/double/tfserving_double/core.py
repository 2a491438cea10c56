"""ServerCore: config reloads, version discovery, the manager, labels, lookups.

Mirrors the pieces of TF Serving that decide what is served:

* ``StoragePathSource`` polls each model's base path every
  ``--file_system_poll_wait_seconds`` (0 = once, < 0 = never) and hands the
  aspired versions to the manager (``file_system_storage_path_source.cc``);
* ``Manager`` drives every version START -> LOADING -> AVAILABLE ->
  UNLOADING -> END with the ``AvailabilityPreservingPolicy`` (one action per
  model at a time, loads retried ``--max_num_load_retries`` times);
* ``Monitor`` remembers every state each version ever reached
  (``ServableStateMonitor``): model status reads it, waits watch it;
* ``ServerCore.reload_config`` runs ``ServerCore::ReloadConfig``'s checks in
  upstream order and waits like upstream (startup: every model; reload:
  only newly named models).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import log
from .status import OK, ServingError, Status, failed_precondition, invalid_argument, not_found
from .versions import Policy, no_versions_warning, select, versions_in

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"
STATE_NUMBERS = {"UNKNOWN": 0, START: 10, LOADING: 20, AVAILABLE: 30, UNLOADING: 40, END: 50}
PLATFORM = "tensorflow"


def servable_id(name: str, version: int) -> str:
    return f"{{name: {name} version: {version}}}"


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionState:
    state: str
    status: Status


class Monitor:
    """Every (state, status) each version reached; waiters are woken on change."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._states: dict[str, dict[int, VersionState]] = {}
        self._views: list[dict[str, dict[int, VersionState]]] = []

    def publish(self, name: str, version: int, state: str, status: Status = OK) -> None:
        with self.cond:
            vs = VersionState(state, status)
            self._states.setdefault(name, {})[version] = vs
            for view in self._views:
                view.setdefault(name, {})[version] = vs
            self.cond.notify_all()

    def versions(self, name: str) -> dict[int, VersionState]:
        with self.cond:
            return dict(self._states.get(name, {}))

    @contextmanager
    def fresh_view(self) -> Iterator[dict[str, dict[int, VersionState]]]:
        """Only events from now on (upstream waits with a fresh monitor on reload)."""
        view: dict[str, dict[int, VersionState]] = {}
        with self.cond:
            self._views.append(view)
        try:
            yield view
        finally:
            with self.cond:
                self._views.remove(view)

    def wait_latest(
        self,
        names: list[str],
        states: Callable[[], dict[str, dict[int, VersionState]]],
        stop: threading.Event,
    ) -> dict[str, tuple[int, VersionState]] | None:
        """``WaitUntilServablesReachState(Latest(name)..., kAvailable)``.

        Done for a name once one of its versions (highest first) is AVAILABLE
        or END. Returns, per name, the version that ended the wait; None when
        stopped.
        """
        with self.cond:
            while not stop.is_set():
                snapshot = states()
                reached: dict[str, tuple[int, VersionState]] = {}
                for name in names:
                    for version in sorted(snapshot.get(name, {}), reverse=True):
                        vs = snapshot[name][version]
                        if vs.state in (AVAILABLE, END):
                            reached[name] = (version, vs)
                            break
                if len(reached) == len(names):
                    return reached
                self.cond.wait(timeout=0.5)
        return None

    def all_states(self) -> dict[str, dict[int, VersionState]]:
        with self.cond:
            return {k: dict(v) for k, v in self._states.items()}


# ---------------------------------------------------------------------------


@dataclass
class Harness:
    name: str
    version: int
    path: str
    state: str = START
    aspired: bool = True
    busy: bool = False
    status: Status = OK
    servable: Any = None


class Manager:
    """AspiredVersionsManager + AvailabilityPreservingPolicy."""

    def __init__(
        self,
        monitor: Monitor,
        load_fn: Callable[[str, int, str], Any],
        *,
        max_retries: int,
        retry_interval_s: float,
        stop: threading.Event,
        load_threads: int = 4,
    ) -> None:
        self.monitor = monitor
        self._load_fn = load_fn
        self._max_retries = max(max_retries, 0)
        self._retry_interval_s = retry_interval_s
        self._stop = stop
        self._lock = threading.RLock()
        self._models: dict[str, dict[int, Harness]] = {}
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(load_threads, 1), thread_name_prefix="load")
        self._thread = threading.Thread(target=self._loop, name="manager", daemon=True)
        self._thread.start()

    # -- source side -------------------------------------------------------

    def set_aspired_versions(self, name: str, versions: dict[int, str]) -> None:
        with self._lock:
            harnesses = self._models.setdefault(name, {})
            for version, harness in harnesses.items():
                harness.aspired = version in versions
            for version, path in versions.items():
                if version not in harnesses:
                    harnesses[version] = Harness(name, version, path)
                    self.monitor.publish(name, version, START)
        self._wake.set()

    # -- request side --------------------------------------------------------

    def available(self, name: str) -> dict[int, Harness]:
        with self._lock:
            return {v: h for v, h in self._models.get(name, {}).items() if h.state == AVAILABLE}

    def acquire(self, name: str, version: int | None) -> Any:
        """A loaded servable (Latest when version is None), or None; caller releases."""
        with self._lock:
            ready = self.available(name)
            if not ready:
                return None
            chosen = max(ready) if version is None else version
            harness = ready.get(chosen)
            if harness is None:
                return None
            harness.servable.acquire()
            return harness.servable

    # -- the loop ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            with self._lock:
                for name in list(self._models):
                    self._step(name)

    def _step(self, name: str) -> None:
        harnesses = self._models[name]
        # Forget versions that are done: unloaded ones, and errors/new ones nobody aspires to.
        for version in list(harnesses):
            h = harnesses[version]
            if not h.busy and not h.aspired and h.state in (START, END):
                del harnesses[version]
        if not harnesses:
            del self._models[name]
            return
        if any(h.busy for h in harnesses.values()):
            return
        action = self._next_action(list(harnesses.values()))
        if action is None:
            return
        kind, harness = action
        harness.busy = True
        self._pool.submit(self._load if kind == "load" else self._unload, harness)

    @staticmethod
    def _next_action(harnesses: list[Harness]) -> tuple[str, Harness] | None:
        """``AvailabilityPreservingPolicy::GetNextAction``."""
        has_aspired = any(h.aspired for h in harnesses)
        has_aspired_serving = any(h.aspired and h.state == AVAILABLE for h in harnesses)
        unaspired_serving = [h for h in harnesses if not h.aspired and h.state == AVAILABLE]
        if unaspired_serving and (
            not has_aspired or has_aspired_serving or len(unaspired_serving) > 1
        ):
            return "unload", min(unaspired_serving, key=lambda h: h.version)
        new = [h for h in harnesses if h.aspired and h.state == START]
        if new:
            return "load", max(new, key=lambda h: h.version)
        return None

    def _load(self, h: Harness) -> None:
        sid = servable_id(h.name, h.version)
        with self._lock:
            h.state = LOADING
        self.monitor.publish(h.name, h.version, LOADING)
        log.info(log.MANAGER, f"Loading servable version {sid}")
        status = OK
        for attempt in range(self._max_retries + 1):
            if attempt:
                if not h.aspired or self._stop.is_set():
                    log.info(log.HARNESS, f"Load retries cancelled for servable version {sid}")
                    break
                if self._retry_interval_s > 0 and self._stop.wait(self._retry_interval_s):
                    break
                log.info(log.HARNESS, f"Retrying load on servable version {sid} retry: {attempt}")
            try:
                servable = self._load_fn(h.name, h.version, h.path)
            except ServingError as exc:
                status = exc.status
                log.error(log.HARNESS, f"Loading servable: {sid} failed: {status}")
                continue
            except Exception as exc:  # a bug or an unexpected TF error: still a failed load
                status = Status("UNKNOWN", f"{type(exc).__name__}: {exc}")
                log.error(log.HARNESS, f"Loading servable: {sid} failed: {status}")
                continue
            with self._lock:
                h.servable, h.state, h.status, h.busy = servable, AVAILABLE, OK, False
            self.monitor.publish(h.name, h.version, AVAILABLE)
            log.info(log.HARNESS, f"Successfully loaded servable version {sid}")
            self._wake.set()
            return
        with self._lock:
            h.state, h.status, h.busy = END, status, False
        self.monitor.publish(h.name, h.version, END, status)
        self._wake.set()

    def _unload(self, h: Harness) -> None:
        sid = servable_id(h.name, h.version)
        with self._lock:
            h.state = UNLOADING
        self.monitor.publish(h.name, h.version, UNLOADING)
        log.info(log.HARNESS, f"Quiescing servable version {sid}")
        log.info(log.HARNESS, f"Unloading servable version {sid}")
        try:
            if h.servable is not None:
                h.servable.close()
        finally:
            with self._lock:
                h.servable, h.state, h.busy = None, END, False
                h.aspired = False
            self.monitor.publish(h.name, h.version, END)
            log.info(log.HARNESS, f"Done unloading servable version {sid}")
            self._wake.set()


# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchedModel:
    name: str
    base_path: str
    policy: Policy


class StoragePathSource:
    """FileSystemStoragePathSource: poll base paths, emit aspired versions."""

    def __init__(
        self,
        poll_wait_seconds: int,
        emit: Callable[[str, dict[int, str]], None],
        stop: threading.Event,
    ) -> None:
        self._poll_wait = poll_wait_seconds
        self._emit = emit
        self._stop = stop
        self._lock = threading.Lock()
        self._models: dict[str, WatchedModel] = {}
        self._thread: threading.Thread | None = None

    def update(self, models: list[WatchedModel]) -> None:
        with self._lock:
            removed = set(self._models) - {m.name for m in models}
            self._models = {m.name: m for m in models}
        for name in sorted(removed):
            self._emit(name, {})  # UnaspireServables
        if self._thread is None and self._poll_wait >= 0:
            self._thread = threading.Thread(target=self._run, name="fs-poll", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            if self._poll_wait == 0 or self._stop.wait(self._poll_wait):
                return

    def poll(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            if not os.path.exists(model.base_path):
                log.error(
                    log.SOURCE,
                    "FileSystemStoragePathSource encountered a filesystem access error: Could not "
                    f"find base path {model.base_path} for servable {model.name} with error "
                    f"NOT_FOUND: {model.base_path} not found",
                )
                continue
            try:
                children = os.listdir(model.base_path)
            except OSError as exc:
                log.error(
                    log.SOURCE,
                    "FileSystemStoragePathSource encountered a filesystem access error: "
                    f"{exc.strerror}: {model.base_path}",
                )
                continue
            found = versions_in(children, model.name, model.base_path)
            chosen = select(model.policy, found.versions, model.name)
            for message in found.warnings + chosen.warnings:
                log.warning(log.SOURCE, message)
            if not chosen.versions:
                log.warning(log.SOURCE, no_versions_warning(model.name, model.base_path))
            with self._lock:
                if self._models.get(model.name) != model:
                    continue  # the config changed while we listed
            self._emit(
                model.name,
                {v: os.path.join(model.base_path, child) for v, child in chosen.versions.items()},
            )


# ---------------------------------------------------------------------------


def _platform(model: Any) -> str:
    """``GetPlatform``."""
    if model.model_type != 0:
        if model.model_platform:
            raise invalid_argument(
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                f"ModelServerConfig::model_platform, model name is {model.name}"
            )
        if model.model_type == 1:
            return PLATFORM
        raise invalid_argument(
            f"ModelServerConfig::model_type choice {model.model_type} not supported."
        )
    if not model.model_platform:
        raise invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            f"ModelServerConfig::model_platform, model name is {model.name}"
        )
    return str(model.model_platform)


def _is_absolute_or_uri(path: str) -> bool:
    return path.startswith("/") or "://" in path


class ServerCore:
    def __init__(
        self,
        load_fn: Callable[[str, int, str], Any],
        *,
        file_system_poll_wait_seconds: int = 1,
        max_num_load_retries: int = 5,
        load_retry_interval_micros: int = 60_000_000,
        allow_version_labels_for_unavailable_models: bool = False,
        load_threads: int = 4,
        stop: threading.Event | None = None,
    ) -> None:
        self.stop = stop or threading.Event()
        self.monitor = Monitor()
        retry_s = max(load_retry_interval_micros, 0) / 1e6
        self.manager = Manager(
            self.monitor,
            load_fn,
            max_retries=max_num_load_retries,
            retry_interval_s=retry_s,
            stop=self.stop,
            load_threads=load_threads,
        )
        self.source = StoragePathSource(
            file_system_poll_wait_seconds, self.manager.set_aspired_versions, self.stop
        )
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._config_lock = threading.Lock()
        self._config: Any = None  # ModelServerConfig, None until the first reload
        self._labels: dict[str, dict[str, int]] | None = None
        self._labels_lock = threading.Lock()
        self.reload_count = 0

    # -- ReloadConfig ----------------------------------------------------------

    def reload_config(self, new_config: Any) -> Status:
        try:
            self._reload(new_config)
        except ServingError as exc:
            return exc.status
        return OK

    def _reload(self, new: Any) -> None:
        with self._config_lock:
            old = self._config
            old_case = old.WhichOneof("config") if old is not None else None
            new_case = new.WhichOneof("config")
            is_first = old_case is None
            if not (
                is_first or (old_case == "model_config_list" and new_case == "model_config_list")
            ):
                raise failed_precondition(
                    "Cannot transition to requested config. It is only legal to transition from "
                    "one ModelConfigList to another."
                )
            if new_case is None:
                log.info(log.CORE, "Taking no action for empty config.")
                return
            if new_case != "model_config_list":
                # Only reachable at startup (custom_model_config): upstream LOG(FATAL)s.
                log.error(log.SERVER, "ModelServer does not yet support custom model config.")
                os._exit(134)
            models = list(new.model_config_list.config)
            seen: set[str] = set()
            for m in models:
                if m.name in seen:
                    raise invalid_argument(
                        f"Illegal to list model {m.name} multiple times in config list"
                    )
                seen.add(m.name)
                if not _is_absolute_or_uri(m.base_path):
                    raise invalid_argument(
                        f"Expected model {m.name} to have an absolute path or URI; got "
                        f"base_path()={m.base_path}"
                    )
            if old_case == "model_config_list":
                old_platforms = {m.name: _platform(m) for m in old.model_config_list.config}
                for m in models:
                    if m.name in old_platforms:
                        platform = _platform(m)
                        if platform != old_platforms[m.name]:
                            raise invalid_argument(
                                "Illegal to change a model's platform. For model "
                                f"{m.name} platform was {old_platforms[m.name]} and new platform "
                                f"requested is {platform}"
                            )
            self._config = new  # committed: later failures leave it in place, like upstream
            self.reload_count += 1
            log.info(log.CORE, "Adding/updating models.")
            self._update_labels(models)
            for m in models:
                platform = _platform(m)
                if platform != PLATFORM:
                    raise invalid_argument(
                        f"Model {m.name} requests unsupported platform {platform}"
                    )
            old_names = (
                {m.name for m in old.model_config_list.config}
                if old_case == "model_config_list"
                else set()
            )
            new_names = [m.name for m in models if m.name not in old_names]
            watched = []
            for m in models:
                log.info(log.CORE, f" (Re-)adding model: {m.name}")
                policy = (
                    Policy.from_proto(m.model_version_policy)
                    if m.HasField("model_version_policy")
                    else Policy()
                )
                watched.append(WatchedModel(m.name, m.base_path.rstrip("/") or "/", policy))
            if is_first:
                self._update_source_and_wait(watched, [m.name for m in models], initial=True)
            else:
                self._update_source_and_wait(watched, new_names, initial=False)
            if any(m.HasField("logging_config") for m in models):
                # The OSS binary has no request-logger creator (reference §3.4).
                raise invalid_argument("No request-logger-creator provided.")

    def _update_source_and_wait(
        self, watched: list[WatchedModel], awaited: list[str], initial: bool
    ) -> None:
        if initial:
            self.source.update(watched)
            reached = self.monitor.wait_latest(awaited, self.monitor.all_states, self.stop)
            what = "servable(s)"
        else:
            with self.monitor.fresh_view() as view:
                self.source.update(watched)
                reached = self.monitor.wait_latest(
                    awaited, lambda: {k: dict(v) for k, v in view.items()}, self.stop
                )
            what = "model(s)"
        if reached is None:
            raise ServingError("CANCELLED", "server is shutting down")
        failed = [
            (name, v, vs) for name, (v, vs) in sorted(reached.items()) if vs.state != AVAILABLE
        ]
        if failed:
            parts = "".join(
                # Upstream's exact (unbalanced) text, reference §1.3 / §3.4.
                f"{servable_id(name, v)} due to error: {vs.status}}}, "
                for name, v, vs in failed
            )
            raise ServingError(
                "UNKNOWN", f"{len(failed)} {what} did not become available: {{{parts}}}"
            )

    def _update_labels(self, models: list[Any]) -> None:
        """``UpdateModelVersionLabelMap`` (reference §3.5)."""
        new_map: dict[str, dict[str, int]] = {}
        for m in models:
            states = self.monitor.versions(m.name)
            for label, version in m.version_labels.items():
                vs = states.get(version)
                if vs is None or vs.state != AVAILABLE:
                    current = (self._labels or {}).get(m.name, {}).get(label)
                    allowed = self._allow_unavailable_labels and current in (None, version)
                    if not allowed:
                        raise failed_precondition(
                            f"Request to assign label to version {version} of model {m.name}, "
                            "which is not currently available for inference"
                        )
                new_map.setdefault(m.name, {})[label] = version
        with self._labels_lock:
            self._labels = new_map

    # -- requests ------------------------------------------------------------

    def version_for_label(self, name: str, label: str) -> int:
        with self._labels_lock:
            if self._labels is None:
                raise ServingError("UNAVAILABLE", f"Model labels does not init yet.{label}")
            version = self._labels.get(name, {}).get(label)
        if version is None:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return version

    def resolve(self, name: str, version: int | None, label: str | None) -> tuple[str, int | None]:
        """``ServableRequestFromModelSpec``: (name, version or None for Latest)."""
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        if version is not None:
            return name, version
        if label:
            return name, self.version_for_label(name, label)
        return name, None

    @contextmanager
    def servable(self, name: str, version: int | None, label: str | None) -> Iterator[Any]:
        """A ``ServableHandle``: the version stays loaded while the block runs."""
        name, resolved = self.resolve(name, version, label)
        servable = self.manager.acquire(name, resolved)
        if servable is None:
            request = f"Latest({name})" if resolved is None else f"Specific({name}, {resolved})"
            raise not_found(f"Servable not found for request: {request}")
        try:
            yield servable
        finally:
            servable.release()

    def model_status(self, name: str, version: int | None) -> list[tuple[int, VersionState]]:
        """``GetModelStatusWithModelSpec``: labels are ignored, as upstream."""
        states = self.monitor.versions(name)
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            return [(version, states[version])]
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        return [(v, states[v]) for v in sorted(states, reverse=True)]

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        return self.stop.wait(timeout)
