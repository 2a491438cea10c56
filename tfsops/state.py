"""The per-deployment state folder.

``$TFSOPS_STATE_DIR/<name>/`` (else ``$XDG_STATE_HOME/tfsops/<name>/``, else
``~/.local/state/tfsops/<name>/``), created with user-only permissions:

- ``deployment.json``: where the spec lives (the user's file, or ``tfsops.yaml`` here
  for a flag-only deploy) and what was last applied;
- ``config/``: the rendered files, bind-mounted (as a folder, so atomic
  tmp+rename rewrites are seen) read-only at /etc/tfsops in the container;
- ``revisions/<N>/``: numbered (spec, models.config) pairs for rollback;
- ``lock``: the single-writer lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfsops.errors import InvalidInput, OperationFailed


class StateWriteError(OperationFailed):
    """A file in the state folder could not be written (disk full, read-only, permissions)."""


def state_root() -> Path:
    explicit = os.environ.get("TFSOPS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "tfsops"


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temp file and rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class DeploymentState:
    name: str
    root: Path

    @classmethod
    def for_name(cls, name: str) -> DeploymentState:
        return cls(name=name, root=state_root() / name)

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def revisions_dir(self) -> Path:
        return self.root / "revisions"

    @property
    def lock_path(self) -> Path:
        return self.root / "lock"

    @property
    def meta_path(self) -> Path:
        return self.root / "deployment.json"

    @property
    def generated_spec_path(self) -> Path:
        return self.root / "tfsops.yaml"

    def exists(self) -> bool:
        return self.meta_path.exists()

    def ensure(self) -> None:
        try:
            state_root().mkdir(parents=True, exist_ok=True, mode=0o700)
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)
            # The container's server reads config/ as whatever user the image runs as.
            self.config_dir.mkdir(exist_ok=True, mode=0o755)
            self.revisions_dir.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise OperationFailed(
                f"cannot create the state folder {self.root}: {exc.strerror}",
                hint="set TFSOPS_STATE_DIR to a writable folder",
            ) from None

    def read_meta(self) -> dict[str, Any]:
        try:
            data = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OperationFailed(f"state file {self.meta_path} is unreadable: {exc}") from None
        return data if isinstance(data, dict) else {}

    def write_meta(self, **updates: Any) -> None:
        meta = self.read_meta()
        meta.update(updates)
        meta["name"] = self.name
        try:
            atomic_write(
                self.meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n", mode=0o600
            )
        except OSError as exc:
            raise StateWriteError(
                f"could not write {self.meta_path}: {exc.strerror or exc}",
                hint="free disk space or fix the state folder's permissions, then run again",
            ) from exc

    def spec_path(self) -> Path:
        meta = self.read_meta()
        if "spec_file" not in meta:
            raise InvalidInput(
                f"no deployment named {self.name!r} (no state at {self.root})",
                hint="`tfsops status` lists deployments",
            )
        return Path(meta["spec_file"])

    def applied_file(self, name: str) -> str | None:
        try:
            return (self.config_dir / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_config_files(self, files: dict[str, str], *, remove_others: bool = True) -> None:
        """Write each file atomically; a failure leaves every previous file intact."""
        self.ensure()
        for name, text in files.items():
            mode = 0o600 if name == "ssl.config" else 0o644
            try:
                atomic_write(self.config_dir / name, text, mode=mode)
            except OSError as exc:
                raise StateWriteError(
                    f"could not write {self.config_dir / name}: {exc.strerror or exc}",
                    hint="free disk space or fix the state folder's permissions, then run again",
                ) from exc
        if remove_others:
            for existing in self.config_dir.iterdir():
                if (
                    existing.is_file()
                    and not existing.name.startswith(".")
                    and existing.name not in files
                ):
                    existing.unlink()


def list_states() -> list[DeploymentState]:
    root = state_root()
    if not root.is_dir():
        return []
    return [
        DeploymentState(name=p.name, root=p)
        for p in sorted(root.iterdir())
        if (p / "deployment.json").exists()
    ]
