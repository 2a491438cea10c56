"""Read a SavedModel's tag-sets and signatures, like ``saved_model_cli show --all``.

Only the generated ``saved_model_pb2`` module is used (through
``tfsops.adapters.protos``), never the TensorFlow runtime, so inspecting a
model takes milliseconds instead of seconds.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from tfsops.adapters import protos
from tfsops.errors import InvalidInput
from tfsops.savedmodel._fs import listing, os_problem, show
from tfsops.savedmodel.lean import LEAN_THRESHOLD, WireError, read_lean
from tfsops.savedmodel.versions import (
    CHUNKED_SAVED_MODEL_FILE,
    SAVED_MODEL_FILES,
    no_versions_problem,
    parse_version,
    scan_versions,
)

# TF2's ``tf.saved_model.save`` stores the restore/initialisation op as a
# signature; saved_model_cli lists it like any other, TF Serving's metadata
# API too, but nobody calls it.
INTERNAL_SIGNATURES = frozenset({"__saved_model_init_op"})

UNKNOWN_RANK = "unknown rank"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature."""

    key: str  # the name clients use, e.g. "x"
    name: str  # the graph tensor, e.g. "x:0"
    dtype: str  # e.g. "DT_FLOAT"
    shape: tuple[int, ...] | None  # -1 for an unknown dimension; None for unknown rank
    encoding: str = "name"  # "name" (dense), "coo_sparse" or "composite_tensor"

    def shape_text(self) -> str:
        if self.shape is None:
            return UNKNOWN_RANK
        return "[" + ", ".join(str(d) for d in self.shape) + "]"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "shape": UNKNOWN_RANK if self.shape is None else list(self.shape),
        }
        if self.encoding != "name":
            data["encoding"] = self.encoding
        return data


@dataclass(frozen=True)
class Signature:
    """One SignatureDef."""

    key: str
    method_name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    internal: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "method_name": self.method_name,
            "inputs": {t.key: t.to_dict() for t in self.inputs},
            "outputs": {t.key: t.to_dict() for t in self.outputs},
        }
        if self.internal:
            data["internal"] = True
        return data


@dataclass(frozen=True)
class MetaGraphInfo:
    """One MetaGraph: its tag-set and signatures (public ones first, each group by name)."""

    tags: tuple[str, ...]
    signatures: tuple[Signature, ...]
    tensorflow_version: str = ""
    restores_variables: bool = False  # has a SaverDef: needs variables/variables.index

    @property
    def public_signatures(self) -> tuple[Signature, ...]:
        return tuple(s for s in self.signatures if not s.internal)

    def signature(self, key: str) -> Signature | None:
        return next((s for s in self.signatures if s.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tags": list(self.tags),
            "tensorflow_version": self.tensorflow_version,
            "signatures": {s.key: s.to_dict() for s in self.signatures},
        }


@dataclass(frozen=True)
class VersionInfo:
    """One version dir: the SavedModel file read and its MetaGraphs."""

    version: int | None  # None for a SavedModel folder whose name is not a number
    path: Path
    file: str  # "saved_model.pb" or "saved_model.pbtxt"
    meta_graphs: tuple[MetaGraphInfo, ...]

    def meta_graph(self, tags: tuple[str, ...] | list[str]) -> MetaGraphInfo | None:
        """The MetaGraph whose tag-set equals ``tags`` (TF's loader wants an exact match)."""
        wanted = set(tags)
        return next((m for m in self.meta_graphs if set(m.tags) == wanted), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": show(self.path),
            "file": self.file,
            "meta_graphs": [m.to_dict() for m in self.meta_graphs],
        }


@dataclass(frozen=True)
class InspectResult:
    """What ``inspect_path`` found: the versions it could read, and warnings for the rest."""

    path: Path
    versions: tuple[VersionInfo, ...]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": show(self.path), "versions": [v.to_dict() for v in self.versions]}


# -- reading --------------------------------------------------------------------------------


def _unreadable(exc: OSError, path: Path) -> InvalidInput:
    return InvalidInput(os_problem(exc, path), details={"path": show(path)})


def find_saved_model_file(version_dir: Path) -> Path:
    """The ``saved_model.pb`` (or ``.pbtxt``) of a version dir; ``InvalidInput`` says why not."""
    try:
        st = os.stat(version_dir)
    except OSError as exc:
        raise _unreadable(exc, version_dir) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(
            f"{show(version_dir)} is a file, not a version directory",
            details={"path": show(version_dir)},
        )
    # Decide from the listing, not by stat-ing candidates: stat fails with
    # EACCES in a folder that can be listed but not searched.
    try:
        names = os.listdir(version_dir)
    except OSError as exc:
        raise _unreadable(exc, version_dir) from None
    for name in SAVED_MODEL_FILES:
        if name in names:
            return version_dir / name
    raise InvalidInput(
        f"{show(version_dir)} has {_why_no_saved_model(version_dir, names)}",
        details={"path": show(version_dir), "found": [show(n) for n in sorted(names)]},
    )


def _why_no_saved_model(version_dir: Path, names: list[str]) -> str:
    if not names:
        return "no saved_model.pb (the folder is empty: a version still being written?)"
    found = f"found: {listing(names)}"
    present = set(names)
    if CHUNKED_SAVED_MODEL_FILE in present:
        return (
            f"no saved_model.pb ({found} — a chunked SavedModel (over 2 GB), "
            "which tfsops cannot inspect without TensorFlow)"
        )
    if "export.meta" in present or any(n.endswith(".meta") for n in names):
        return (
            f"no saved_model.pb ({found} — a legacy SessionBundle export, "
            "which TF Serving cannot load)"
        )
    if "model.tflite" in present:
        return f"no saved_model.pb ({found} — a TensorFlow Lite model, not a SavedModel)"
    nested = _nested_saved_model(version_dir, names)
    if nested:
        return (
            f"no saved_model.pb ({found}; there is one in {show(nested)}: "
            "TF Serving needs it directly in the version folder)"
        )
    return f"no saved_model.pb ({found})"


def _nested_saved_model(version_dir: Path, names: list[str], limit: int = 20) -> str | None:
    for name in sorted(names)[:limit]:
        # os.path.isfile is False on any OSError (pathlib's raises on EACCES).
        if any(os.path.isfile(version_dir / name / f) for f in SAVED_MODEL_FILES):
            return f"{name}/"
    return None


def read_saved_model(version_dir: Path | str) -> tuple[Any, Path]:
    """Parse a version dir's SavedModel proto; return it and the file it came from.

    Raises ``InvalidInput`` naming the path and the problem for anything that
    is not a readable SavedModel with at least one MetaGraph.
    """
    version_dir = Path(version_dir)
    path = find_saved_model_file(version_dir)
    try:
        st = os.stat(path)
        # A FIFO or device under that name would block or never end: read regular files only.
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a special file"
            raise InvalidInput(
                f"{show(path)} is {kind}, not a SavedModel file", details={"path": show(path)}
            )
        # Do not hold a graph of a gigabyte in memory to read tags and signatures.
        lean = st.st_size > LEAN_THRESHOLD and not path.name.endswith(".pbtxt")
        raw = read_lean(path) if lean else path.read_bytes()
    except OSError as exc:
        raise _unreadable(exc, path) from None
    except WireError as exc:
        raise InvalidInput(
            f"{show(path)} is not a SavedModel (parse error: {exc})",
            hint="a truncated copy or a file of another kind; export the model again",
            details={"path": show(path)},
        ) from None
    module = protos.saved_model_pb2()
    saved_model = module.SavedModel()
    text_format = protos.text_format()
    try:
        if path.name.endswith(".pbtxt"):
            text_format.Parse(raw.decode("utf-8"), saved_model)
        else:
            saved_model.ParseFromString(raw)
    except (DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise InvalidInput(
            f"{show(path)} is not a SavedModel (parse error: {reason})",
            hint="a truncated copy or a file of another kind; export the model again",
            details={"path": show(path)},
        ) from None
    # Protobuf parsing is lenient: an empty or foreign file can parse to an empty message.
    if not saved_model.meta_graphs:
        detail = "the file is empty" if not raw else "it holds no MetaGraph"
        raise InvalidInput(
            f"{show(path)} is not a SavedModel ({detail})", details={"path": show(path)}
        )
    return saved_model, path


def _dtype_name(value: int) -> str:
    types_pb2 = protos.load("tensorflow.core.framework.types_pb2")
    try:
        return str(types_pb2.DataType.Name(value))
    except ValueError:
        return f"DT_UNKNOWN_{value}"


def _tensor(key: str, info: Any) -> TensorSpec:
    encoding = info.WhichOneof("encoding") or "name"
    if encoding == "coo_sparse":
        sp = info.coo_sparse
        name = (
            f"values={sp.values_tensor_name}, indices={sp.indices_tensor_name}, "
            f"dense_shape={sp.dense_shape_tensor_name}"
        )
    elif encoding == "composite_tensor":
        name = ", ".join(_tensor("", c).name for c in info.composite_tensor.components)
    else:
        name = info.name
    shape: tuple[int, ...] | None
    # Exports from TF 1.0 leave the shape out: that says nothing about the rank
    # (saved_model_cli prints "()", which reads as a scalar and misleads).
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(int(d.size) for d in info.tensor_shape.dim)
    return TensorSpec(key, name, _dtype_name(info.dtype), shape, encoding)


def _signature(key: str, sig: Any) -> Signature:
    return Signature(
        key=key,
        method_name=sig.method_name,
        inputs=tuple(_tensor(k, sig.inputs[k]) for k in sorted(sig.inputs)),
        outputs=tuple(_tensor(k, sig.outputs[k]) for k in sorted(sig.outputs)),
        internal=key in INTERNAL_SIGNATURES,
    )


def describe_saved_model(
    saved_model: Any, *, version: int | None, path: Path, file: str
) -> VersionInfo:
    """Turn a parsed SavedModel proto into a ``VersionInfo``."""
    metas: list[MetaGraphInfo] = []
    for mg in saved_model.meta_graphs:
        keys = sorted(mg.signature_def, key=lambda k: (k in INTERNAL_SIGNATURES, k))
        metas.append(
            MetaGraphInfo(
                tags=tuple(mg.meta_info_def.tags),
                signatures=tuple(_signature(k, mg.signature_def[k]) for k in keys),
                tensorflow_version=mg.meta_info_def.tensorflow_version,
                restores_variables=mg.HasField("saver_def"),
            )
        )
    metas.sort(key=lambda m: m.tags)  # saved_model_cli's order
    return VersionInfo(version=version, path=path, file=file, meta_graphs=tuple(metas))


def inspect_version(version_dir: Path | str, version: int | None = None) -> VersionInfo:
    """Inspect one version dir (a folder holding ``saved_model.pb``)."""
    version_dir = Path(version_dir)
    saved_model, file = read_saved_model(version_dir)
    if version is None:
        version = parse_version(version_dir.name)
    return describe_saved_model(saved_model, version=version, path=version_dir, file=file.name)


def is_saved_model_dir(path: Path | str) -> bool:
    """Whether ``path`` itself holds a SavedModel file (a version dir, not a base dir)."""
    names = (*SAVED_MODEL_FILES, CHUNKED_SAVED_MODEL_FILE)
    return any(os.path.isfile(Path(path) / n) for n in names)


def inspect_path(
    path: Path | str, *, version: int | None = None, signature: str | None = None
) -> InspectResult:
    """Inspect a model base dir (every numeric version) or a single version dir.

    ``version`` keeps one version, ``signature`` one signature. Versions that
    cannot be read become warnings as long as one can be read; otherwise (or
    when the requested version or signature is unusable) ``InvalidInput``.
    """
    path = Path(path)
    scan = scan_versions(path)
    if scan.is_saved_model and not scan.versions:
        # A version dir given directly (``.../00000123``) or an unversioned export.
        own = parse_version(path.name)
        if version is not None and version != own:
            raise InvalidInput(
                f"{show(path)} is a single SavedModel"
                + (f" (version {own})" if own is not None else "")
                + f"; it has no version {version}",
                details={"path": show(path)},
            )
        infos = [inspect_version(path, own)]
        warnings: list[str] = list(scan.warnings)
    else:
        if not scan.versions:
            raise InvalidInput(no_versions_problem(scan), details={"path": show(path)})
        entries = list(scan.versions.values())
        if version is not None:
            entries = [e for e in entries if e.version == version]
            if not entries:
                raise InvalidInput(
                    f"{show(path)} has no version {version} "
                    f"(versions: {', '.join(str(v) for v in scan.numbers)})",
                    details={"path": show(path), "versions": list(scan.numbers)},
                )
        infos = []
        problems: list[str] = []
        for entry in entries:
            try:
                if entry.problem:
                    raise InvalidInput(entry.problem)
                infos.append(inspect_version(entry.path, entry.version))
            except InvalidInput as exc:
                problems.append(exc.message)
        if not infos:
            message = (
                problems[0]
                if len(problems) == 1
                else (
                    f"{show(path)}: no readable version\n" + "\n".join(f"  {p}" for p in problems)
                )
            )
            raise InvalidInput(message, details={"path": show(path), "problems": problems})
        warnings = [*scan.warnings, *problems]
    if signature is not None:
        infos = _only_signature(path, infos, signature)
    return InspectResult(path=path, versions=tuple(infos), warnings=tuple(warnings))


def _only_signature(path: Path, infos: list[VersionInfo], key: str) -> list[VersionInfo]:
    kept: list[VersionInfo] = []
    names: set[str] = set()
    for info in infos:
        metas = []
        for mg in info.meta_graphs:
            names.update(s.key for s in mg.signatures)
            sig = mg.signature(key)
            if sig is not None:
                metas.append(
                    MetaGraphInfo(mg.tags, (sig,), mg.tensorflow_version, mg.restores_variables)
                )
        if metas:
            kept.append(VersionInfo(info.version, info.path, info.file, tuple(metas)))
    if not kept:
        raise InvalidInput(
            f"{show(path)} has no signature {key!r} (signatures: {listing(sorted(names), 50)})",
            details={"path": show(path), "signatures": sorted(names)},
        )
    return kept
