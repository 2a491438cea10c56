"""``tfsops watch``: keep the served model set in sync with the spec and the model folders.

A foreground loop (for systemd or a sidecar container):
- the spec file changes -> converge (hot reload through the transactional path);
- a model folder gains or loses a version -> TF Serving's own folder scan loads it;
  the watcher waits until it is AVAILABLE and logs it;
- with discovery on, a new model folder under a watched root -> added to the spec;
- every few seconds a cheap health look: when the server came back (restart policy,
  engine restart) without the live config, it is re-applied.
Bursts of events are debounced; errors are retried with backoff; SIGTERM/SIGINT
end it cleanly. Idle, it blocks on a queue: no CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfsops.errors import EngineUnreachable, InvalidInput, NotReady, ServerStarting, TfsopsError
from tfsops.executor import ApplyOptions
from tfsops.modelops import ModelOps
from tfsops.ports import END, ContainerInfo
from tfsops.services import Services, endpoint_for
from tfsops.spec.load import load_spec
from tfsops.spec.model import NAME_PATTERN, DeploymentSpec

_UNSEEN = object()  # the container was not looked at yet


@dataclass
class WatchOptions:
    debounce: float = 1.0
    discover: list[Path] = field(default_factory=list)
    check_interval: float = 10.0
    timeout: float = 300.0
    max_backoff: float = 60.0
    once: bool = False  # one sync pass, then exit (tests, cron)


class EventLog:
    """One line per event: ``ts event key=value ...`` or JSON lines."""

    def __init__(self, as_json: bool, write: Callable[[str], None]) -> None:
        self.as_json = as_json
        self.write = write

    def __call__(self, event: str, **fields: Any) -> None:
        if self.as_json:
            self.write(
                json.dumps({"ts": round(time.time(), 3), "event": event, **fields}, default=str)
            )
        else:
            parts = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            self.write(f"{time.strftime('%H:%M:%S')} {event} {parts}".rstrip())


class Watcher:
    def __init__(
        self, spec_path: Path, services: Services, opts: WatchOptions, log: EventLog
    ) -> None:
        self.spec_path = spec_path.resolve()
        self.s = services
        self.opts = opts
        self.log = log
        self.ops = ModelOps(services)
        self.events: queue.Queue[Any] = queue.Queue()
        self.stopping = threading.Event()
        self.spec: DeploymentSpec | None = None
        self._container: Any = _UNSEEN  # (id, status, started_at) at the last check
        self._restarted = False
        self._missing_folders: set[str] = set()  # models whose folder is gone, as last logged
        self._unmounted: set[Path] = (
            set()
        )  # discovered folders refused (would restart), logged once

    # ---- what to watch -------------------------------------------------------------
    def folders(self, spec: DeploymentSpec | None) -> list[tuple[Path, bool]]:
        out = [(self.spec_path.parent, False)]
        if spec is not None:
            out += [(m.path, False) for m in spec.models]
        out += [(root, False) for root in self.opts.discover]
        return out

    def relevant(self, event: Any) -> str | None:
        """Classify an event: spec | versions | discover | None (ignored)."""
        paths = [p for p in (event.path, event.dest) if p is not None]
        if any(p == self.spec_path for p in paths):
            return "spec"
        spec = self.spec
        if spec is not None:
            for m in spec.models:
                if any(p.parent == m.path for p in paths):
                    return "versions"
        if any(p.parent in self.opts.discover for p in paths):
            return "discover"
        return None

    # ---- actions -------------------------------------------------------------------
    def _apply_opts(self, **kw: Any) -> ApplyOptions:
        return ApplyOptions(timeout=self.opts.timeout, hot_only="watch", **kw)

    def sync(self, reason: str, *, force: bool = True) -> None:
        """Converge to the spec file (a user's edit may remove models: that is their intent).

        ``force=False`` (the start) sends nothing when the server already runs the
        applied list; a server that lost it is caught by ``check()`` right after.
        """
        try:
            spec = load_spec(self.spec_path)
        except InvalidInput as exc:
            self.log("spec-invalid", error=exc.message)
            return
        self.spec = spec
        result = self.ops.reload(
            self.spec_path, self._apply_opts(prune=True, wait=force), force=force
        )
        info = self.s.runtime.find(spec.name)  # a container this sync replaced is no restart
        self._container = None if info is None else (info.id, info.status, info.started_at)
        self.log(
            "synced",
            reason=reason,
            action=result.plan.action,
            models=",".join(m.name for m in spec.models),
            revision=result.revision,
        )

    def discover(self) -> None:
        import re

        from tfsops.savedmodel.validate import check_model_dir

        spec = self.spec
        if spec is None:
            return
        known = {m.path for m in spec.models}
        names = {m.name for m in spec.models}
        for root in self.opts.discover:
            if not root.is_dir():
                continue
            for child in sorted(root.iterdir()):
                if not child.is_dir() or child in known or child.name.startswith("."):
                    continue
                if not re.fullmatch(NAME_PATTERN, child.name) or child.name in names:
                    continue
                report = check_model_dir(child)
                if not report.ok:
                    continue  # not (yet) a complete model folder: a later event retries
                if not _under_declared_root(spec, child):
                    # Hot-adding it would need a new container (a restart): refuse, once.
                    if child not in self._unmounted:
                        self._unmounted.add(child)
                        self.log(
                            "discover-refused",
                            model=child.name,
                            path=str(child),
                            error="not under a model_roots folder: adding it would restart the "
                            f"server; declare {root} in model_roots and run `tfsops apply` once",
                        )
                    continue
                self.log("discovered", model=child.name, path=str(child))
                self.ops.add_model(
                    self.spec_path,
                    child.name,
                    child,
                    policy=None,
                    labels={},
                    opts=self._apply_opts(),
                )
                self.spec = load_spec(self.spec_path)
                self.log("added", model=child.name)

    def versions_settled(self) -> None:
        """New or removed versions load through TF Serving's own scan; wait and report."""
        from tfsops.health import wait_until_healthy
        from tfsops.plan.expected import expected_models
        from tfsops.savedmodel.validate import check_model_dir

        spec = self.spec
        if spec is None or self.s.runtime.find(spec.name) is None:
            return
        # A model whose folder is broken now is reported, not waited for: the others go on.
        broken = set()
        for entry in spec.models:
            found = check_model_dir(entry.path, entry.policy_kind, dict(entry.labels)).problems
            if found:
                broken.add(entry.name)
                self.log("versions-invalid", model=entry.name, error=found[0])
        names = [m.name for m in spec.models if m.name not in broken]
        client = self.s.serving_factory(endpoint_for(spec))
        report = wait_until_healthy(
            client, expected_models(spec, names), timeout=self.opts.timeout, interval=0.5
        )
        for model in report.models:
            self.log(
                "versions",
                model=model.name,
                available=",".join(str(v.version) for v in model.versions if v.available) or "-",
                ok=model.ok,
            )

    def check(self) -> None:
        """Cheap periodic look: re-apply the live config when a restarted server lost it."""
        from tfsops.health import LABELS, MISSING, check_health
        from tfsops.plan.expected import expected_models

        spec = self.spec
        if spec is None:
            return
        self._note_folders(spec)
        info = self.s.runtime.find(spec.name)
        self._note_container(info)
        if info is None or info.status != "running":
            return
        client = self.s.serving_factory(endpoint_for(spec))
        report = check_health(client, expected_models(spec, smoke=False))  # cheap: no predicts
        if report.server_starting:
            return
        if report.ok:
            if self._restarted:
                self._restarted = False
                self.log("server-ready", models=",".join(m.name for m in spec.models))
            return
        # Unknown to the server, a label gone, or an expected version cleanly unloaded
        # (END, OK): the server runs another list than ours (a restart, a foreign reload).
        missing = [
            m.name
            for m in report.models
            if m.status in (MISSING, LABELS)
            or any(v.expected and v.state == END and not v.failed for v in m.versions)
        ]
        if missing:
            self.log("server-lost-models", models=",".join(missing))
            self.sync("re-apply after server restart")

    def _note_folders(self, spec: DeploymentSpec) -> None:
        """Log once when a served model's folder goes away (and when it is back)."""
        from tfsops.plan.folders import RESTART_CONSEQUENCE, missing_model_folders

        missing = {m["model"]: m["path"] for m in missing_model_folders(spec)}
        for name in sorted(set(missing) - self._missing_folders):
            self.log(
                "model-folder-missing", model=name, path=missing[name], restart=RESTART_CONSEQUENCE
            )
        for name in sorted(self._missing_folders - set(missing)):
            self.log("model-folder-back", model=name)
        self._missing_folders = set(missing)

    def _note_container(self, info: ContainerInfo | None) -> None:
        """Log when the server's container stops, or runs again (restart policy, engine restart)."""
        seen = None if info is None else (info.id, info.status, info.started_at)
        previous, self._container = self._container, seen
        if previous is _UNSEEN or seen == previous:
            return
        if info is None or info.status != "running":
            self.log("server-down", state=info.status if info else "absent")
        else:
            self.log("server-restarted", container=info.name, restarts=info.restart_count)
            self._restarted = True

    # ---- loop ----------------------------------------------------------------------
    def run(self) -> int:
        from tfsops.adapters.fs_watch import FsWatcher

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())
        watcher = FsWatcher(self.events)
        self.log(
            "watching",
            spec=str(self.spec_path),
            discover=",".join(map(str, self.opts.discover)) or None,
        )
        pending: set[str] = {"spec", "discover"}
        backoff = 1.0
        last_check = time.monotonic()
        watcher.start()
        try:
            while not self.stopping.is_set():
                with contextlib.suppress(TfsopsError):
                    self.spec = load_spec(self.spec_path)
                watcher.watch(self.folders(self.spec))
                if pending:
                    try:
                        self._handle(pending)
                        pending = set()
                        backoff = 1.0
                    except (EngineUnreachable, ServerStarting, NotReady) as exc:
                        # Transient (engine or server restarting): keep the change, retry later.
                        event = (
                            "engine-unreachable"
                            if isinstance(exc, EngineUnreachable)
                            else "server-busy"
                        )
                        self.log(event, error=exc.message.splitlines()[0], retry_in=f"{backoff:g}s")
                        if isinstance(exc, EngineUnreachable):
                            self.s.close()
                        self._sleep(backoff)
                        backoff = min(backoff * 2, self.opts.max_backoff)
                        continue
                    except TfsopsError as exc:
                        # Invalid input (3) or a reload the server refused (5): retrying the same
                        # change would fail the same way; the next file event tries again.
                        self.log(
                            "error", error=exc.message.splitlines()[0], exit_code=int(exc.exit_code)
                        )
                        pending = set()
                        if self.opts.once:
                            return int(exc.exit_code)
                    if self.opts.once:
                        return 0
                pending |= self._collect(last_check)
                if time.monotonic() - last_check >= self.opts.check_interval:
                    last_check = time.monotonic()
                    try:
                        self.check()
                    except EngineUnreachable as exc:
                        self.log("engine-unreachable", error=exc.message)
                        self.s.close()
                    except TfsopsError as exc:
                        self.log("check-failed", error=exc.message.splitlines()[0])
        finally:
            watcher.stop()
            self.log("stopped")
        return 0

    def _handle(self, pending: set[str]) -> None:
        if "spec" in pending:
            if self.spec is None:
                self.sync("start", force=False)
                self.check()
            else:
                self.sync("spec changed")
        if "discover" in pending and self.opts.discover:
            self.discover()
        if "versions" in pending:
            self.versions_settled()

    def _collect(self, last_check: float) -> set[str]:
        """Wait for events (blocking: no CPU while idle), then debounce the burst."""
        kinds: set[str] = set()
        wait = max(0.1, self.opts.check_interval - (time.monotonic() - last_check))
        try:
            first = self.events.get(timeout=wait)
        except queue.Empty:
            return kinds
        batch = [first]
        quiet_until = time.monotonic() + self.opts.debounce
        while not self.stopping.is_set():
            remaining = quiet_until - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self.events.get(timeout=remaining))
                quiet_until = time.monotonic() + self.opts.debounce
            except queue.Empty:
                break
        for event in batch:
            if event is None:  # stop() wakes the loop
                continue
            kind = self.relevant(event)
            if kind:
                kinds.add(kind)
        if kinds:
            self.log("changed", what=",".join(sorted(kinds)), events=len(batch))
        return kinds

    def _sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def stop(self) -> None:
        self.stopping.set()
        self.events.put(None)  # wake the loop


def _under_declared_root(spec: DeploymentSpec, folder: Path) -> bool:
    """Whether the running container reaches ``folder`` through a declared ``model_roots`` mount."""
    text = os.path.normpath(str(folder))
    roots = [os.path.normpath(str(r)) for r in spec.model_roots]
    return any(text == r or text.startswith(r.rstrip("/") + "/") for r in roots)
