"""File-system events through watchdog (inotify on Linux: no polling, no CPU while idle)."""

from __future__ import annotations

import queue
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


@dataclass(frozen=True)
class FsEvent:
    kind: str  # created | deleted | moved | modified | closed
    path: Path
    dest: Path | None = None
    is_directory: bool = False


class _Forward(FileSystemEventHandler):
    def __init__(self, sink: queue.Queue[FsEvent]) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        dest = getattr(event, "dest_path", None)
        self.sink.put(
            FsEvent(
                kind=event.event_type,
                path=Path(str(event.src_path)),
                dest=Path(str(dest)) if dest else None,
                is_directory=event.is_directory,
            )
        )


class FsWatcher:
    """Watch folders and put ``FsEvent``s on a queue."""

    def __init__(self, sink: queue.Queue[FsEvent]) -> None:
        self.sink = sink
        self.observer: Any = Observer()
        self._handler = _Forward(sink)
        self._watches: dict[tuple[str, bool], Any] = {}

    def watch(self, folders: Iterable[tuple[Path, bool]]) -> None:
        """Watch exactly these (folder, recursive) pairs; folders that do not exist are skipped."""
        wanted = {(str(p), r) for p, r in folders if p.is_dir()}
        for key in list(self._watches):
            if key not in wanted:
                self.observer.unschedule(self._watches.pop(key))
        for path, recursive in sorted(wanted - set(self._watches)):
            self._watches[(path, recursive)] = self.observer.schedule(
                self._handler, path, recursive=recursive
            )

    def start(self) -> None:
        self.observer.daemon = True
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)
