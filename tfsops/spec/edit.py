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
    if path.suffix.lower() == ".toml":
        raise InvalidInput(
            f"{path}: tfsops edits YAML specs only (TOML has no comment-keeping writer here)",
            hint="make the change in the file by hand, then run `tfsops apply`",
        )
    from ruamel.yaml.error import YAMLError

    yaml = _yaml()
    try:
        data = yaml.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
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


def write_spec_text(path: Path, text: str) -> None:
    from tfsops.state import atomic_write

    mode = 0o644
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777
    atomic_write(path, text, mode=mode)
