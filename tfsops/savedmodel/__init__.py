"""SavedModel inspection and model-directory validation, without the TensorFlow runtime.

- ``versions``: version directories and version policies as TF Serving sees them;
- ``inspect``: tag-sets and signatures from ``saved_model.pb``, like ``saved_model_cli show``;
- ``validate``: will TF Serving load this base dir with this policy and these labels?
"""

from __future__ import annotations

from tfsops.savedmodel.inspect import (
    InspectResult,
    MetaGraphInfo,
    Signature,
    TensorSpec,
    VersionInfo,
    inspect_path,
    inspect_version,
    read_saved_model,
)
from tfsops.savedmodel.validate import (
    DEFAULT_TAGS,
    ModelDirReport,
    VersionCheck,
    check_model_dir,
    validate_model_dir,
)
from tfsops.savedmodel.versions import (
    PolicyLike,
    Selection,
    VersionEntry,
    VersionPolicy,
    VersionScan,
    check_labels,
    latest_versions,
    parse_version,
    scan_versions,
    select_versions,
    served_versions,
)

__all__ = [
    "DEFAULT_TAGS",
    "InspectResult",
    "MetaGraphInfo",
    "ModelDirReport",
    "PolicyLike",
    "Selection",
    "Signature",
    "TensorSpec",
    "VersionCheck",
    "VersionEntry",
    "VersionInfo",
    "VersionPolicy",
    "VersionScan",
    "check_labels",
    "check_model_dir",
    "inspect_path",
    "inspect_version",
    "latest_versions",
    "parse_version",
    "read_saved_model",
    "scan_versions",
    "select_versions",
    "served_versions",
    "validate_model_dir",
]
