"""The deployment's single-writer lock (an advisory ``flock`` on ``<state>/lock``).

The kernel drops a flock when its process dies, so a ``kill -9`` never leaves
the lock stuck. A second tfsops run waits up to ``timeout`` seconds, then
fails clearly, naming the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tfsops.errors import OperationFailed


@contextmanager
def deployment_lock(path: Path, *, timeout: float = 120.0, purpose: str = "") -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise OperationFailed(
                        f"another tfsops run holds the deployment lock {path} ({_holder(fd)})",
                        hint="wait for it to finish, or raise --lock-timeout",
                    ) from None
                time.sleep(0.1)
        # Who holds it, for the message of a run that waits: informational, so a full
        # disk must not stop the run here (the state writes that matter report it).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(
                fd,
                json.dumps({"pid": os.getpid(), "purpose": purpose, "since": time.time()}).encode(),
            )
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
        return f"pid {data.get('pid')}, {data.get('purpose') or 'unknown purpose'}"
    except (OSError, ValueError):
        return "holder unknown"
