"""Is a model base dir something TF Serving will load? Checked before any deploy or reload.

A reload with a bad base path can hang TF Serving's reload RPC until its
deadline (issues #1447, #1565) and a version without a ``serve`` MetaGraph
ends in error only after retries, so tfsops checks the same things the
server would, up front, without loading TensorFlow:

- the base dir exists, is a directory and can be listed;
- it holds at least one numeric version and the policy serves at least one;
- each served version is a directory with a ``saved_model.pb`` that parses,
  has a MetaGraph whose tag-set equals the serving tags, and has signatures;
- every label points at a version the policy serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfsops.errors import InvalidInput
from tfsops.savedmodel._fs import listing, os_problem, show
from tfsops.savedmodel.inspect import describe_saved_model, read_saved_model
from tfsops.savedmodel.versions import (
    PolicyLike,
    Selection,
    VersionEntry,
    VersionPolicy,
    check_labels,
    no_versions_problem,
    scan_versions,
    select_versions,
)

DEFAULT_TAGS: tuple[str, ...] = ("serve",)  # tensorflow_model_server --saved_model_tags default
DEFAULT_SIGNATURE = "serving_default"  # what REST/gRPC use when a request names none


@dataclass(frozen=True)
class VersionCheck:
    """The outcome for one version dir."""

    version: int
    path: Path
    served: bool
    tag_sets: tuple[tuple[str, ...], ...] = ()
    signatures: tuple[str, ...] = ()  # public signatures of the MetaGraph TF Serving loads
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": show(self.path),
            "served": self.served,
            "ok": self.ok,
            "tag_sets": [list(t) for t in self.tag_sets],
            "signatures": list(self.signatures),
            "problem": self.problem,
        }


@dataclass(frozen=True)
class ModelDirReport:
    """Everything ``check_model_dir`` found; ``problems`` are fatal, ``warnings`` are not."""

    path: Path
    policy: VersionPolicy
    tags: tuple[str, ...]
    selection: Selection | None = None  # None when the base dir itself is unusable
    labels: Mapping[str, int] = field(default_factory=dict)
    versions: tuple[VersionCheck, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def available(self) -> tuple[int, ...]:
        return self.selection.available if self.selection else ()

    @property
    def served(self) -> tuple[int, ...]:
        return self.selection.served if self.selection else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": show(self.path),
            "ok": self.ok,
            "policy": self.policy.to_dict(),
            "tags": list(self.tags),
            "available": list(self.available),
            "served": list(self.served),
            "missing": list(self.selection.missing) if self.selection else [],
            "labels": dict(self.labels),
            "versions": [v.to_dict() for v in self.versions],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }

    def raise_for_problems(self, what: str = "") -> None:
        """Raise one ``InvalidInput`` carrying every problem (exit code 3)."""
        if not self.problems:
            return
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            prefix = f"{what}: " if what else ""
            message = f"{prefix}{show(self.path)} has {len(self.problems)} problems\n" + "\n".join(
                f"  {p}" for p in self.problems
            )
        raise InvalidInput(
            message,
            hint=f"run `tfsops inspect {show(self.path)}` to see what TF Serving would find",
            details=self.to_dict(),
        )


def check_model_dir(
    path: Path | str,
    policy: PolicyLike = None,
    labels: Mapping[str, int] | None = None,
    *,
    tags: Sequence[str] = DEFAULT_TAGS,
    what: str = "",
    check_unserved: bool = False,
) -> ModelDirReport:
    """Check a model base dir and return a report; never raises for a bad directory.

    ``policy`` is plain data (``("latest", 2)``, ``{"all": {}}``, ...; see
    ``versions.VersionPolicy.of``), ``labels`` maps label to version, ``tags``
    is the server's ``--saved_model_tags`` and ``what`` (e.g.
    ``models.resnet.path``) prefixes every problem. Unserved versions are only
    listed unless ``check_unserved``. An invalid ``policy`` raises ``InvalidInput``.
    """
    base = Path(path)
    pol = VersionPolicy.of(policy)
    tag_set = tuple(tags)
    label_map = dict(labels or {})
    prefix = f"{what}: " if what else ""

    def report(**kw: Any) -> ModelDirReport:
        kw["problems"] = tuple(prefix + p for p in kw.get("problems", ()))
        return ModelDirReport(path=base, policy=pol, tags=tag_set, labels=label_map, **kw)

    try:
        scan = scan_versions(base)
    except InvalidInput as exc:
        return report(problems=(exc.message,))
    warnings = list(scan.warnings)
    if not scan.versions:
        return report(problems=(no_versions_problem(scan),), warnings=tuple(warnings))

    selection = select_versions(scan.numbers, pol)
    problems: list[str] = []
    for version in selection.missing:
        problems.append(
            f"{show(base)} has no version {version}, which the policy ({pol.describe()}) asks "
            f"for (versions: {', '.join(str(v) for v in selection.available)})"
        )
    if not selection.served and not selection.missing:
        problems.append(f"the policy ({pol.describe()}) serves no version of {show(base)}")

    checks: list[VersionCheck] = []
    for number, entry in scan.versions.items():
        served = number in selection.served
        if not served and not check_unserved:
            if entry.problem:  # a numeric file or broken link is worth knowing about
                warnings.append(entry.problem)
            continue
        check, extra = _check_version(entry, served, tag_set)
        checks.append(check)
        warnings.extend(extra)
        if check.problem:
            (problems if served else warnings).append(check.problem)

    problems.extend(check_labels(label_map, selection, base=base))
    return report(
        selection=selection,
        versions=tuple(checks),
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def validate_model_dir(
    path: Path | str,
    policy: PolicyLike = None,
    labels: Mapping[str, int] | None = None,
    *,
    tags: Sequence[str] = DEFAULT_TAGS,
    what: str = "",
    check_unserved: bool = False,
) -> ModelDirReport:
    """Like ``check_model_dir``, but raise ``InvalidInput`` (exit 3) if anything is wrong.

    The returned report carries the non-fatal ``warnings``.
    """
    result = check_model_dir(
        path, policy, labels, tags=tags, what=what, check_unserved=check_unserved
    )
    result.raise_for_problems(what)
    return result


def validate_version_dir(path: Path, *, tags: Sequence[str] = DEFAULT_TAGS) -> None:
    """The checks of a served version for one version folder (e.g. before publishing it).

    Raises ``InvalidInput`` (exit 3) when TF Serving could not load it or it could not answer.
    """
    entry = VersionEntry(version=0, name=path.name, path=path, is_dir=path.is_dir())
    check, _ = _check_version(entry, True, tuple(tags))
    if check.problem:
        raise InvalidInput(check.problem, details={"path": show(path)})


def _check_version(
    entry: VersionEntry, served: bool, tags: tuple[str, ...]
) -> tuple[VersionCheck, list[str]]:
    """Check one version dir; returns the check and any warnings."""

    def failed(problem: str, tag_sets: tuple[tuple[str, ...], ...] = ()) -> VersionCheck:
        return VersionCheck(entry.version, entry.path, served, tag_sets=tag_sets, problem=problem)

    if entry.problem:
        return failed(entry.problem), []
    try:
        saved_model, saved_model_file = read_saved_model(entry.path)
    except InvalidInput as exc:
        return failed(exc.message), []
    info = describe_saved_model(
        saved_model, version=entry.version, path=entry.path, file=saved_model_file.name
    )
    tag_sets = tuple(m.tags for m in info.meta_graphs)
    file = show(entry.path / info.file)
    wanted = ",".join(tags)
    meta = info.meta_graph(tags)
    if meta is None:
        found = "; ".join(",".join(t) or "(none)" for t in tag_sets)
        return failed(
            f"{file} has no MetaGraph with the tag-set {wanted!r} (tag-sets: {found}); "
            "TF Serving loads the one that matches --saved_model_tags exactly",
            tag_sets,
        ), []
    public = tuple(s.key for s in meta.public_signatures)
    if not public:
        return failed(
            f"{file} has no signatures in its {wanted!r} MetaGraph: nothing can be called "
            "(export it with signatures=...)",
            tag_sets,
        ), []

    warnings: list[str] = []
    missing = False
    if meta.restores_variables:
        missing, problem = _variables_index(entry.path)
        if problem:
            return failed(problem, tag_sets), []
    if served:
        problem = _graph_problem(saved_model, tags, entry.path, missing)
        if problem:
            return failed(problem, tag_sets), []
    if meta.restores_variables and missing and served:
        # TF's loader skips the restore (logging at INFO) when the index is
        # missing: the version becomes AVAILABLE and fails at request time.
        warnings.append(
            f"{show(entry.path)} has no variables/variables.index although its graph "
            "restores variables: TF Serving loads it without them and requests fail "
            "(an incomplete copy?)"
        )
    if served and DEFAULT_SIGNATURE not in public:
        warnings.append(
            f"{show(entry.path)} has no {DEFAULT_SIGNATURE!r} signature; requests must name "
            f"one of: {listing(list(public))}"
        )
    check = VersionCheck(entry.version, entry.path, served, tag_sets=tag_sets, signatures=public)
    return check, warnings


def _graph_problem(
    saved_model: Any, tags: tuple[str, ...], version_dir: Path, index_missing: bool
) -> str | None:
    """The static graph checks of ``graphcheck`` as one problem line (None when fine)."""
    from tfsops.savedmodel.bundle import checkpoint_keys
    from tfsops.savedmodel.graphcheck import KERAS_HINT, check_meta_graph

    meta = next(
        (m for m in saved_model.meta_graphs if set(m.meta_info_def.tags) == set(tags)), None
    )
    if meta is None:
        return None
    keys = None
    if not index_missing and meta.HasField("saver_def"):
        try:
            keys = checkpoint_keys(version_dir / "variables" / "variables.index")
        except InvalidInput as exc:
            return exc.message
    result = check_meta_graph(meta, version_dir, keys)
    if result.ok:
        return None
    text = "; ".join(result.messages(show(version_dir)))
    if index_missing and result.missing_keys:
        text = (
            f"{show(version_dir)} has no variables/variables.index although its signatures "
            f"read variables (an incomplete copy?): {text}"
        )
    if result.unrestored and not index_missing:
        text += f" (hint: {KERAS_HINT})"
    return text


def _variables_index(version_dir: Path) -> tuple[bool, str | None]:
    """(missing, problem) for ``variables/variables.index``: absent, or present but unreadable."""
    index = version_dir / "variables" / "variables.index"
    try:
        with open(index, "rb"):
            return False, None
    except FileNotFoundError:
        return True, None
    except OSError as exc:
        return False, os_problem(exc, index)
