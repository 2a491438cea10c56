"""The one validation layer for strings a user hands to tfsops outside the spec.

The spec itself is validated by pydantic (``tfsops/spec/model.py``). Everything
else a user types (command-line numbers, names, image tags, engine URLs, text
files read as specs) is checked here before it reaches a path, a URL, a YAML
document, a container name or a number given to TF Serving. Each check raises
``InvalidInput`` (exit 3) with what was wrong and what is accepted;
``tfsops/cli/params.py`` turns the same checks into option callbacks, so a bad
flag value is a usage error (exit 2) before any command runs.

Kept light: no heavy imports, so ``--help`` stays fast.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from tfsops.errors import InvalidInput

INT64_MAX = 2**63 - 1
# Same rules as the spec (tfsops/spec/model.py): usable in a URL path, a
# container name and a models.config string.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9_]{1,63}$")
# Docker's reference grammar (distribution/reference): lowercase path
# components, an optional registry host[:port], an optional tag.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)"
IMAGE_REF_RE = re.compile(
    rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?$"
)
ENGINE_SCHEMES = ("unix", "tcp", "http", "https", "ssh", "npipe")


def version_number(value: int, what: str = "--version") -> int:
    """A model version: a folder name TF Serving reads as int64 (reference §5.3)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise InvalidInput(
            f"{what} {value}: a version is a whole number from 0 to {INT64_MAX}",
            hint="TF Serving reads version folders as 64-bit integers and ignores any other name",
        )
    return value


def positive_int(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT64_MAX:
        raise InvalidInput(f"{what} {value}: expected a whole number of 1 or more")
    return value


def seconds(value: float, what: str = "--timeout", *, allow_zero: bool = False) -> float:
    """A duration: finite and positive (zero only where it means "do not wait")."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInput(f"{what} {value}: expected a number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise InvalidInput(f"{what} {value}: expected {bound} seconds")
    if value > 10**7:
        raise InvalidInput(f"{what} {value}: more than 100 days is not a timeout")
    return float(value)


def name(value: str, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r}: must start with a letter or digit and hold only letters, "
            "digits, '_', '.' and '-' (at most 63 characters)",
            hint="it is used in URLs, container names and models.config",
        )
    return value


def label(value: str, what: str = "--label") -> str:
    if not isinstance(value, str) or not LABEL_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r}: labels hold only letters, digits and '_' (TF Serving's rule)"
        )
    return value


def log_tail(value: str, what: str = "--tail") -> str:
    """A line count for logs: a whole number, or "all"."""
    if value != "all" and not (value.isascii() and value.isdigit() and len(value) < 10):
        raise InvalidInput(f"{what} {value!r}: expected a number of lines, or all")
    return value


def image_reference(value: str, what: str = "--tag") -> str:
    """An image reference Docker accepts: ``[host[:port]/]repo/path[:tag]``, lowercase repo."""
    if not isinstance(value, str) or len(value) > 255 or not IMAGE_REF_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r}: not an image reference Docker accepts",
            hint="use [registry/]repository[:tag] with a lowercase repository, e.g. my/serving:1.0",
        )
    return value


def engine_url(value: str, what: str = "--docker-host") -> str:
    """A Docker engine URL: unix://PATH, tcp://HOST:PORT, ssh://[USER@]HOST[:PORT], ..."""
    from urllib.parse import urlsplit

    problem = None
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in ENGINE_SCHEMES:
        problem = f"the scheme must be one of {', '.join(s + '://' for s in ENGINE_SCHEMES)}"
    elif any(c.isspace() or ord(c) < 32 for c in value):
        problem = "it holds white space or control characters"
    else:
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port, problem = None, "the port is not a number from 0 to 65535"
        if problem is None and scheme in ("unix", "npipe"):
            if not (parts.netloc + parts.path):
                problem = "it names no socket path"
        elif problem is None and not parts.hostname:
            problem = "it names no host"
        del port
    if problem:
        raise InvalidInput(
            f"{what} {value!r}: not a Docker engine URL ({problem})",
            hint="e.g. unix:///var/run/docker.sock, tcp://10.0.0.5:2376 or ssh://user@host",
        )
    return value


def text_file(path: Path, what: str = "file") -> str:
    """Read a text file a user pointed at: UTF-8, or exit 3 naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{what} not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.reason})",
            hint="save it as UTF-8",
        ) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def yaml_string(value: str) -> str:
    """``value`` as a YAML double-quoted scalar: nothing in it can start new keys."""
    import json

    return json.dumps(value, ensure_ascii=False)
