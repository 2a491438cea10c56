"""Load a spec from YAML or TOML (or from flags), turning every problem into
one ``key.path: message`` line and raising ``SpecError`` (exit 3)."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tfsops.errors import InvalidInput, SpecError
from tfsops.spec.model import LABEL_PATTERN, NAME_PATTERN, DeploymentSpec, image_has_tag

_PATTERN_MESSAGES = {
    NAME_PATTERN: (
        "must start with a letter or digit and hold only letters, digits, '_', '.' and '-' "
        "(at most 63 characters): it is used in URLs, container names and models.config"
    ),
    LABEL_PATTERN: "labels hold only letters, digits and '_' (TF Serving's rule)",
}

DEFAULT_SPEC_NAMES = ("tfsops.yaml", "tfsops.yml", "tfsops.toml")


def find_spec_file(explicit: Path | None, cwd: Path | None = None) -> Path:
    if explicit is not None:
        if not explicit.exists():
            raise InvalidInput(
                f"spec file not found: {explicit}",
                hint="create one with `tfsops init`, or pass -f PATH",
            )
        return explicit
    cwd = cwd or Path.cwd()
    for name in DEFAULT_SPEC_NAMES:
        candidate = cwd / name
        if candidate.exists():
            return candidate
    raise InvalidInput(
        f"no spec file: looked for {', '.join(DEFAULT_SPEC_NAMES)} in {cwd}",
        hint="create one with `tfsops init`, pass -f PATH, or name a deployment with -d NAME",
    )


def parse_text(text: str, source: str, fmt: str) -> Any:
    """Parse YAML/TOML text; syntax errors name the line."""
    if fmt == "toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError([f"TOML syntax error: {exc}"], source=source) from None
        except RecursionError:
            raise SpecError(["TOML nested too deeply"], source=source) from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = exc.problem or "syntax error"
        raise SpecError([f"YAML syntax error at {where}: {problem}"], source=source) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"YAML error: {exc}"], source=source) from None
    except RecursionError:  # e.g. thousands of nested brackets
        raise SpecError(["YAML nested too deeply"], source=source) from None


def format_loc(loc: Sequence[int | str], data: Any) -> str:
    """``("models", 0, "path")`` -> ``models.resnet.path`` (the model's name when known)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            name = None
            if isinstance(node, list) and 0 <= item < len(node) and isinstance(node[item], Mapping):
                candidate = node[item].get("name")
                if isinstance(candidate, str) and re.match(NAME_PATTERN, candidate):
                    name = candidate
            if name:
                parts.append(name)
            else:
                parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        else:
            if (
                item in ("latest", "all", "specific")
                and parts
                and parts[-1] == "policy"
                and not (isinstance(node, Mapping) and item in node)
            ):
                continue  # a union tag pydantic added, not a key the user wrote
            parts.append(str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    text = ".".join(parts).replace(".[", "[")
    return text or "(top level)"


def validation_problems(exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = format_loc(err["loc"], data)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        elif err["type"] == "missing":
            msg = "required key missing"
        elif err["type"] == "string_pattern_mismatch":
            pattern = (err.get("ctx") or {}).get("pattern", "")
            msg = _PATTERN_MESSAGES.get(pattern, msg)
            msg = f"{err['input']!r} {msg}" if pattern in _PATTERN_MESSAGES else msg
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        problems.append(f"{loc}: {msg}")
    return problems


def spec_from_data(data: Any, *, base_dir: Path, source: str) -> DeploymentSpec:
    if data is None:
        raise SpecError(["the file is empty"], source=source)
    if not isinstance(data, Mapping):
        raise SpecError(
            [f"(top level): expected a mapping of keys, got {type(data).__name__}"], source=source
        )
    try:
        return DeploymentSpec.model_validate(dict(data), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise SpecError(validation_problems(exc, data), source=source) from None


def load_spec(path: Path) -> DeploymentSpec:
    """Read, parse and validate a spec file. Relative paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(
            f"spec file not found: {path}", hint="create one with `tfsops init`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read spec file {path}: {exc}") from None
    fmt = "toml" if path.suffix.lower() == ".toml" else "yaml"
    data = parse_text(text, str(path), fmt)
    return spec_from_data(data, base_dir=path.resolve().parent, source=str(path))


def spec_from_flags(
    name: str,
    *,
    model_paths: Sequence[tuple[str, Path]],
    overrides: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> DeploymentSpec:
    """A spec built from flags alone: the embedded defaults plus what was given."""
    data: dict[str, Any] = {
        "name": name,
        "models": [{"name": n, "path": str(p)} for n, p in model_paths],
    }
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    return spec_from_data(data, base_dir=base_dir or Path.cwd(), source="command-line flags")


def with_overrides(
    spec: DeploymentSpec,
    *,
    image: str | None = None,
    version: str | None = None,
    gpu: bool | None = None,
    gpu_devices: str | None = None,
    gpu_memory_fraction: float | None = None,
) -> DeploymentSpec:
    """The spec with command-line overrides applied, validated again."""
    data = spec.model_dump(mode="json", exclude_none=True)
    if image:
        # "--image repo:tag" is used as is; "--image repo" keeps the spec's version.
        data["image"] = image
        if image_has_tag(image):
            data.pop("version", None)
    if version:
        data["image"] = _strip_tag(str(data.get("image", "tensorflow/serving")))
        data["version"] = version
    if gpu is False:
        data.pop("gpu", None)
    elif gpu or gpu_devices or gpu_memory_fraction is not None:
        section = dict(data.get("gpu") or {})
        if gpu_devices:
            ids = [d.strip() for d in gpu_devices.split(",") if d.strip()]
            section["devices"] = (
                "all" if gpu_devices == "all" else [int(d) if d.isdigit() else d for d in ids]
            )
        if gpu_memory_fraction is not None:
            section["memory_fraction"] = gpu_memory_fraction
        data["gpu"] = section
    return spec_from_data(data, base_dir=Path("/"), source="spec with command-line overrides")


def _strip_tag(image: str) -> str:
    return image.rsplit(":", 1)[0] if image_has_tag(image) else image
