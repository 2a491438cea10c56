"""Run the real `tfsops` executable (acceptance style) with an isolated state folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"


class Tfsops:
    """``tfsops`` as a user runs it, in ``cwd``, with its own state folder."""

    def __init__(self, state_dir: Path, cwd: Path) -> None:
        self.env = dict(os.environ, TFSOPS_STATE_DIR=str(state_dir), TF_CPP_MIN_LOG_LEVEL="3")
        self.cwd = cwd

    def __call__(self, *args: str, timeout: float = 300, input: str | None = None) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "tfsops", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tfsops", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def free_ports(n: int) -> list[int]:
    """Ports free right now on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
