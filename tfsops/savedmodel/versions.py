"""Version directories and version policies, exactly as TF Serving sees them.

TF Serving's file-system source (``file_system_storage_path_source.cc``) lists
the children of a model's base path and takes every child whose name parses
as an int64 (``absl::SimpleAtoi``: leading zeros, surrounding whitespace and a
sign are accepted) as a version. Non-numeric children are ignored silently,
numeric *files* count too, and two names with the same number are a warning.
The policy then picks the served versions: ``latest`` the highest N,
``all`` every one, ``specific`` the listed ones that exist.

Policies are taken as plain data so that the spec module and the reload path
can call this without sharing classes: ``("latest", 2)``, ``("all", None)``,
``("specific", [3, 4])``, the YAML shapes ``{"latest": 2}``,
``{"all": {}}``, ``{"specific": [3, 4]}``, or ``None`` (TF Serving's default,
latest 1).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from tfsops.errors import InvalidInput
from tfsops.savedmodel._fs import listing, os_problem, show

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# What absl::SimpleAtoi accepts in base 10: ASCII whitespace around an
# optional sign and ASCII digits (not Python's int(): no "1_000", no Unicode digits).
_SIMPLE_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)[ \t\n\v\f\r]*", re.ASCII)

# Files that make a folder a SavedModel (TF's loader reads the first it finds).
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
CHUNKED_SAVED_MODEL_FILE = "saved_model.cpb"

PolicyKind: TypeAlias = Literal["latest", "all", "specific"]
PolicyLike: TypeAlias = "VersionPolicy | tuple[str, Any] | Mapping[str, Any] | None"


def parse_version(name: str) -> int | None:
    """The version number TF Serving reads from a child name, or ``None`` if it ignores it."""
    match = _SIMPLE_ATOI.fullmatch(name)
    if match is None:
        return None
    value = int(match.group(1) + match.group(2))
    if not INT64_MIN <= value <= INT64_MAX:
        return None  # SimpleAtoi fails on overflow, so TF Serving ignores the name
    return value


@dataclass(frozen=True)
class VersionEntry:
    """One child of a base dir that TF Serving takes as a version."""

    version: int
    name: str  # the name on disk, e.g. "00000123"
    path: Path
    is_dir: bool  # after following symlinks
    problem: str | None = None  # why it cannot be loaded as a version dir (file, loop, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": show(self.name),
            "path": show(self.path),
            "is_dir": self.is_dir,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class VersionScan:
    """What TF Serving would discover under a base path."""

    base: Path
    versions: Mapping[int, VersionEntry]  # ascending; the entry TF Serving uses per number
    ignored: tuple[str, ...] = ()  # non-numeric children (TF Serving skips them silently)
    duplicates: tuple[VersionEntry, ...] = ()  # same number as an entry in ``versions``
    warnings: tuple[str, ...] = ()
    is_saved_model: bool = False  # the base itself holds saved_model.pb: a common mistake
    model_children: tuple[str, ...] = ()  # non-numeric child dirs that hold numeric versions

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": show(self.base),
            "versions": [e.to_dict() for e in self.versions.values()],
            "ignored": [show(n) for n in self.ignored],
            "warnings": list(self.warnings),
        }


def check_dir(path: Path, *, what: str = "") -> None:
    """Raise ``InvalidInput`` unless ``path`` is an existing, listable directory."""
    prefix = f"{what}: " if what else ""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidInput(prefix + os_problem(exc, path), details={"path": show(path)}) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(
            f"{prefix}{show(path)} is a file, not a directory",
            hint="point at the model's base folder, the one holding numeric version folders",
            details={"path": show(path)},
        )


def scan_versions(base: Path | str, *, what: str = "") -> VersionScan:
    """List the versions TF Serving would find under ``base``.

    Raises ``InvalidInput`` when ``base`` is missing, not a directory or
    unreadable; ``what`` (e.g. ``models.resnet.path``) prefixes the message.
    Finding no version is not an error here (see ``no_versions_problem``).
    """
    base = Path(base)
    check_dir(base, what=what)
    try:
        with os.scandir(base) as it:
            children = list(it)
    except OSError as exc:
        prefix = f"{what}: " if what else ""
        raise InvalidInput(prefix + os_problem(exc, base), details={"path": show(base)}) from None

    first: dict[int, VersionEntry] = {}
    duplicates: list[VersionEntry] = []
    ignored: list[str] = []
    warnings: list[str] = []
    # scandir order is readdir order, the order TF Serving lists children in,
    # so "first wins" on duplicates matches what the server does on this host.
    for child in children:
        number = parse_version(child.name)
        if number is None:
            ignored.append(child.name)
            continue
        entry = _entry(base, child.name, number)
        if number in first:
            duplicates.append(entry)
            warnings.append(
                f"{show(base)}: {show(first[number].name)!r} and {show(child.name)!r} are both "
                f"version {number}; TF Serving loads the first it lists and ignores the other: "
                "remove or rename one"
            )
            continue
        first[number] = entry
        canonical = str(number)
        if child.name.strip() != child.name or child.name[:1] in "+-":
            warnings.append(
                f"{show(entry.path)}: TF Serving reads the name {show(child.name)!r} as version "
                f"{number}; rename it to {canonical!r}"
            )
        if number < 0:
            warnings.append(f"{show(entry.path)} is a negative version number ({number})")

    ignored.sort()
    names = set(ignored)
    is_saved_model = any(n in names for n in (*SAVED_MODEL_FILES, CHUNKED_SAVED_MODEL_FILE))
    model_children = () if first else _model_children(base, ignored)
    return VersionScan(
        base=base,
        versions={v: first[v] for v in sorted(first)},
        ignored=tuple(ignored),
        duplicates=tuple(duplicates),
        warnings=tuple(warnings),
        is_saved_model=is_saved_model,
        model_children=model_children,
    )


def _entry(base: Path, name: str, number: int) -> VersionEntry:
    path = base / name
    try:
        st = os.stat(path)  # follows symlinks, as TF Serving's loader does
    except OSError as exc:
        return VersionEntry(number, name, path, is_dir=False, problem=os_problem(exc, path))
    if not stat.S_ISDIR(st.st_mode):
        return VersionEntry(
            number,
            name,
            path,
            is_dir=False,
            problem=(
                f"{show(path)} is a file, not a version directory (TF Serving still counts "
                f"it as version {number} and fails to load it)"
            ),
        )
    return VersionEntry(number, name, path, is_dir=True)


def _model_children(base: Path, ignored: Sequence[str], limit: int = 50) -> tuple[str, ...]:
    """Non-numeric subfolders that themselves hold numeric versions (a folder of models)."""
    found: list[str] = []
    for name in ignored[:limit]:
        try:
            with os.scandir(base / name) as it:
                if any(parse_version(c.name) is not None for c in it):
                    found.append(name)
        except OSError:
            continue  # not a dir, unreadable, loop: not a model folder then
    return tuple(found)


def no_versions_problem(scan: VersionScan) -> str:
    """The message for a base dir without any numeric version, with the likely cause."""
    base = show(scan.base)
    message = (
        f"{base} holds no numeric version directory (TF Serving needs e.g. {base}/1/saved_model.pb)"
    )
    own = parse_version(scan.base.name)
    if scan.is_saved_model and own is not None:
        return message + (
            f"; {base} is itself version {own} of a model: point at its parent folder "
            f"{show(scan.base.parent)}"
        )
    if scan.is_saved_model:
        return message + (
            f"; {base} is itself a SavedModel: move its contents into {base}/1/ "
            "(or point at a parent folder that has it as a numeric subfolder)"
        )
    if scan.model_children:
        return message + (
            f"; it looks like a folder of models ({listing(list(scan.model_children))} "
            f"{'holds' if len(scan.model_children) == 1 else 'hold'} numeric versions): "
            "point at one of them"
        )
    if scan.ignored:
        return message + (
            f"; found {listing(list(scan.ignored))}, but version folders must be named by an "
            "integer, e.g. 1 or 00000123"
        )
    return message + "; the folder is empty"


# -- policies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ``ServableVersionPolicy`` as plain data."""

    kind: PolicyKind = "latest"
    num_versions: int = 1  # for "latest"
    versions: tuple[int, ...] = ()  # for "specific"

    @classmethod
    def of(cls, policy: PolicyLike) -> VersionPolicy:
        """Accept a tuple, a YAML-shaped mapping, ``None`` (latest 1) or a ``VersionPolicy``."""
        if policy is None:
            return cls()
        if isinstance(policy, VersionPolicy):
            return policy
        if isinstance(policy, Mapping):
            if len(policy) != 1:
                raise _bad_policy(policy)
            ((kind, value),) = policy.items()
        elif isinstance(policy, tuple) and len(policy) == 2:
            kind, value = policy
        else:
            raise _bad_policy(policy)
        if kind == "latest":
            if isinstance(value, Mapping):
                value = value.get("num_versions", 1)
            if value is None:
                value = 1
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _bad_policy(policy)
            # The proto field is uint32 and the server uses max(num_versions, 1).
            return cls("latest", num_versions=max(value, 1))
        if kind == "all":
            if value not in (None, {}, True):
                raise _bad_policy(policy)
            return cls("all")
        if kind == "specific":
            if isinstance(value, Mapping):
                value = value.get("versions", [])
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, Iterable) or isinstance(value, str | bytes):
                raise _bad_policy(policy)
            items = list(value)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                raise _bad_policy(policy)
            return cls("specific", versions=tuple(sorted(set(items))))
        raise _bad_policy(policy)

    def describe(self) -> str:
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        if self.kind == "all":
            return "all"
        return "specific [" + ", ".join(str(v) for v in self.versions) + "]"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "latest":
            return {"latest": self.num_versions}
        if self.kind == "all":
            return {"all": {}}
        return {"specific": list(self.versions)}


def _bad_policy(policy: object) -> InvalidInput:
    return InvalidInput(
        f"invalid version policy {policy!r}: use latest N (N >= 1), all, or specific [versions]",
        details={"policy": repr(policy)},
    )


@dataclass(frozen=True)
class Selection:
    """Which versions a policy serves out of those on disk."""

    policy: VersionPolicy
    available: tuple[int, ...]  # every numeric version, ascending
    served: tuple[int, ...]  # ascending
    missing: tuple[int, ...] = ()  # "specific" versions that are not on disk

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_dict(),
            "available": list(self.available),
            "served": list(self.served),
            "missing": list(self.missing),
        }


def select_versions(available: Iterable[int], policy: PolicyLike = None) -> Selection:
    """Apply a version policy to the version numbers found on disk, as TF Serving does."""
    pol = VersionPolicy.of(policy)
    numbers = tuple(sorted(set(available)))
    if pol.kind == "latest":
        served = numbers[-pol.num_versions :] if numbers else ()
        return Selection(pol, numbers, served)
    if pol.kind == "all":
        return Selection(pol, numbers, numbers)
    present = set(numbers)
    served = tuple(v for v in pol.versions if v in present)
    missing = tuple(v for v in pol.versions if v not in present)
    return Selection(pol, numbers, served, missing)


def latest_versions(available: Iterable[int], n: int = 1) -> tuple[int, ...]:
    """The ``n`` highest versions, ascending (``latest: n``)."""
    return select_versions(available, ("latest", n)).served


def served_versions(base: Path | str, policy: PolicyLike = None) -> Selection:
    """Scan ``base`` and apply ``policy``: what TF Serving would load from it right now."""
    return select_versions(scan_versions(base).numbers, policy)


def check_labels(
    labels: Mapping[str, int] | None, selection: Selection, *, base: Path | str | None = None
) -> tuple[str, ...]:
    """Problems with labels that point at versions the policy does not serve.

    TF Serving only assigns a label to a version that is AVAILABLE (or, with
    ``--allow_version_labels_for_unavailable_models``, a new label to a version
    about to load), so a label on an unserved version makes the reload fail.
    """
    problems: list[str] = []
    where = f" in {show(base)}" if base is not None else ""
    for label, version in sorted((labels or {}).items()):
        if version in selection.served:
            continue
        if version not in selection.available:
            on_disk = ", ".join(str(v) for v in selection.available) or "none"
            problems.append(
                f"label {label!r} points at version {version}, which is not on disk{where} "
                f"(versions: {on_disk})"
            )
        else:
            served = ", ".join(str(v) for v in selection.served) or "none"
            problems.append(
                f"label {label!r} points at version {version}, which the policy "
                f"({selection.policy.describe()}) does not serve (served: {served})"
            )
    return tuple(problems)
