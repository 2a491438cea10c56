"""Edit a spec file in place, keeping the user's comments and key order (YAML round-trip).

The edited text is validated before anyone writes it; the caller writes it
(atomically) only after the running server accepted the change.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tfsops.errors import InvalidInput, SpecError
from tfsops.spec.load import spec_from_data
from tfsops.spec.model import DeploymentSpec


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and flow style survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def edit_spec(path: Path, mutate: Callable[[Any], None]) -> tuple[str, DeploymentSpec]:
    """Apply ``mutate`` to the parsed spec file; return the new text and the validated spec."""
    from tfsops.inputs import text_file

    return edit_spec_text(path, text_file(path, "spec file"), mutate)


def edit_spec_text(
    path: Path, original: str, mutate: Callable[[Any], None]
) -> tuple[str, DeploymentSpec]:
    """``edit_spec`` on ``original``, the text read from ``path``."""
    if path.suffix.lower() == ".toml":
        raise InvalidInput(
            f"{path}: tfsops edits YAML specs only (TOML has no comment-keeping writer here)",
            hint="make the change in the file by hand, then run `tfsops apply`",
        )
    from ruamel.yaml.error import YAMLError

    yaml = _yaml()
    try:
        data = yaml.load(original)
    except YAMLError as exc:
        raise SpecError([f"YAML error: {exc}"], source=str(path)) from None
    if not isinstance(data, Mapping):
        raise SpecError(["(top level): expected a mapping of keys"], source=str(path))
    mutate(data)
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    from tfsops.spec.load import parse_text

    spec = spec_from_data(
        parse_text(text, str(path), "yaml"), base_dir=path.resolve().parent, source=str(path)
    )
    return text, spec


def model_entries(data: Any) -> list[Any]:
    models = data.get("models")
    if models is None:
        from ruamel.yaml.comments import CommentedSeq

        models = CommentedSeq()
        data["models"] = models
    return models  # type: ignore[no-any-return]


def find_model(data: Any, name: str) -> Any:
    for entry in model_entries(data):
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry
    raise InvalidInput(f"the spec has no model {name!r}")


def spec_relative(path: Path, spec_path: Path) -> str:
    """How to write ``path`` in the spec: relative to the spec's folder when it lies inside it."""
    folder = spec_path.resolve().parent
    absolute = Path(os.path.expanduser(path)).resolve()  # an unknown ~user stays as is
    try:
        rel = absolute.relative_to(folder)
    except ValueError:
        return str(absolute)
    return "./" + rel.as_posix() if str(rel) != "." else "."


def flow_map(items: Mapping[str, Any]) -> Any:
    """A mapping written inline (``{stable: 3}``), as a person would."""
    from ruamel.yaml.comments import CommentedMap

    out = CommentedMap(items)
    out.fa.set_flow_style()
    return out


def new_model_entry(
    name: str, path: str, policy: Mapping[str, Any] | None, labels: Mapping[str, int]
) -> Any:
    from ruamel.yaml.comments import CommentedMap

    entry = CommentedMap()
    entry["name"] = name
    entry["path"] = path
    if policy:
        entry["policy"] = flow_map(policy)
    if labels:
        entry["labels"] = flow_map(labels)
    return entry


class SpecChanged(InvalidInput):
    """The spec file changed on disk while a command that edits it was running."""


def check_spec_writable(path: Path) -> None:
    """Refuse (exit 3) before anything changes when the edited spec could not be saved.

    The file is replaced through a temporary file in its folder, so the folder
    must be writable too (a read-only mount is not).
    """
    target = path.resolve()
    for what, where in (("spec file", target), ("folder of the spec file", target.parent)):
        if where.exists() and not os.access(where, os.W_OK):
            raise InvalidInput(
                f"the {what} {where} is not writable: this command saves its change there",
                hint="make it writable (or edit a writable copy with -f); nothing was changed",
                details={"path": str(where)},
            )


def write_spec_text(path: Path, text: str, *, expected: str | None = None) -> None:
    """Replace the spec file's text; a symlinked spec has its target written (the link stays).

    With ``expected``, refuse (``SpecChanged``) when the file no longer holds that
    text: someone edited it meanwhile, and their edit must not be lost.
    """
    from tfsops.inputs import text_file
    from tfsops.state import atomic_write

    target = path.resolve()
    if expected is not None and text_file(target, "spec file") != expected:
        raise SpecChanged(f"{path} changed while this command ran", details={"path": str(path)})
    mode = 0o644
    with contextlib.suppress(OSError):
        mode = os.stat(target).st_mode & 0o777
    atomic_write(target, text, mode=mode)
