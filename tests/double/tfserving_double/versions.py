"""Version discovery under a model's base path (``file_system_storage_path_source.cc``).

* a child is a version iff its name parses with ``absl::SimpleAtoi`` as an
  int64: surrounding ASCII whitespace and a sign are fine, leading zeros too
  (``00000123`` -> 123), anything else (``v1``, ``0.1``, ``assets``) is
  silently ignored; numeric *files* count as well;
* ``latest{k}`` keeps the k highest (k = 0 means 1), ``all`` keeps every
  one, ``specific`` keeps the listed numbers that exist.

Pure module: the file-system listing is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_ATOI_RE = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*")


def parse_version(name: str) -> int | None:
    """``absl::SimpleAtoi(name, &int64)``; None when it would return false."""
    m = _ATOI_RE.fullmatch(name)
    if m is None:
        return None
    value = int(m.group(1))
    if not INT64_MIN <= value <= INT64_MAX:
        return None
    return value


@dataclass(frozen=True)
class Policy:
    """``ServableVersionPolicy``: kind is latest | all | specific."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def from_proto(cls, proto: object) -> Policy:
        which = proto.WhichOneof("policy_choice")  # type: ignore[attr-defined]
        if which == "all":
            return cls("all")
        if which == "specific":
            return cls("specific", versions=tuple(proto.specific.versions))  # type: ignore[attr-defined]
        if which == "latest":
            return cls("latest", num_versions=int(proto.latest.num_versions))  # type: ignore[attr-defined]
        return cls("latest", num_versions=1)


@dataclass
class Discovery:
    versions: dict[int, str]  # version -> child name to load from
    warnings: list[str] = field(default_factory=list)


def versions_in(children: Iterable[str], servable: str = "", base_path: str = "") -> Discovery:
    """Map every numeric child to its version; the first of two spellings wins."""
    found: dict[int, str] = {}
    warnings: list[str] = []
    for child in sorted(children):
        version = parse_version(child)
        if version is None:
            continue
        if version in found:
            warnings.append(
                f"Duplicate version directories detected. Version {version} will be loaded "
                f"from {base_path}/{found[version]}, {base_path}/{child} will be ignored."
            )
            continue
        found[version] = child
    return Discovery(found, warnings)


def select(policy: Policy, available: dict[int, str], servable: str = "") -> Discovery:
    """Versions the policy aspires to, from what is on disk."""
    warnings: list[str] = []
    if policy.kind == "all":
        chosen = dict(available)
    elif policy.kind == "specific":
        chosen = {}
        if not policy.versions:
            warnings.append(f"No specific versions requested for servable {servable}.")
        for v in policy.versions:
            if v in available:
                chosen[v] = available[v]
            else:
                warnings.append(
                    f"Version {v} of servable {servable}, which was requested to be served as a "
                    "'specific' version in the servable's version policy, was not found in the "
                    "file system"
                )
    else:
        k = max(policy.num_versions, 1)
        chosen = {v: available[v] for v in sorted(available, reverse=True)[:k]}
    return Discovery(chosen, warnings)


def no_versions_warning(servable: str, base_path: str) -> str:
    return (
        f"No versions of servable {servable} found under base path {base_path}. "
        "Did you forget to name your leaf directory as a number (eg. '/1/')?"
    )
