"""Where the shipped template folders are, installed or in a source checkout.

The wheel carries the top-level ``templates/`` and ``dockerfiles/`` folders as
``tfsops/_templates`` and ``tfsops/_dockerfiles`` (hatch force-include), so a
plain, non-editable install finds them through ``importlib.resources``. A
source checkout (editable install, or tests run from the repo) has no such
package folders; there the top-level folders next to the package are used.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def _resource_dir(packaged: str, toplevel: str) -> Path:
    candidate = importlib.resources.files("tfsops") / packaged
    # Templates are read as files by jinja2's FileSystemLoader, so only a real
    # directory will do (a zipped install would need extraction; we do not ship one).
    if isinstance(candidate, Path) and candidate.is_dir():
        return candidate
    source = Path(__file__).resolve().parent.parent / toplevel
    if source.is_dir():
        return source
    raise FileNotFoundError(
        f"tfsops resource folder not found: neither the package's {packaged}/ nor the "
        f"source checkout's {toplevel}/ exists (broken installation?)"
    )


def dockerfile_template_dir() -> Path:
    """The folder holding the jinja2 Dockerfile templates (``dockerfiles/``)."""
    return _resource_dir("_dockerfiles", "dockerfiles")


def template_dir() -> Path:
    """The folder holding the jinja2 config templates (``templates/``)."""
    return _resource_dir("_templates", "templates")
