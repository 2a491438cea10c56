"""REST routing: ``http_rest_api_util.cc::ParseModelInfo`` and ``ProcessRequest``.

Only paths fully matching ``(?i)/v1/.*`` reach the handler (others get the
web server's plain 404). Inside, a POST must match the prediction regex and
a GET the status regex; anything else is ``Malformed request: <M> <path>``.
The regexes are case-insensitive but the dispatch compares the captured
method/subresource case-sensitively, so ``:PREDICT`` is malformed and
``/METADATA`` is a status request, as upstream.

Pure module.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from .status import invalid_argument
from .versions import INT64_MAX

HANDLER_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII,
)
MODEL_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True)
class Route:
    kind: str  # predict | classify | regress | metadata | status
    model: str
    version: int | None = None
    label: str | None = None


def is_api_path(path: str) -> bool:
    return HANDLER_PATH.fullmatch(path) is not None


def _decode(text: str) -> str:
    # curl_easy_unescape: %XX only ('+' stays '+').
    return urllib.parse.unquote(text, errors="surrogateescape")


def route(method: str, path: str) -> Route:
    """The request a ``/v1/`` path asks for; raises ServingError(INVALID_ARGUMENT)."""
    malformed = invalid_argument(f"Malformed request: {method} {path}")
    match: re.Match[str] | None = None
    if method == "POST":
        match = PREDICTION.fullmatch(path)
    elif method == "GET":
        match = MODEL_STATUS.fullmatch(path)
    if match is None:
        raise malformed
    name, version_text, label, last = match.groups()
    name = _decode(name) if name else ""
    version: int | None = None
    if version_text:
        version = int(version_text)
        if version > INT64_MAX:
            raise invalid_argument(f"Failed to convert version: {version_text} to numeric.")
    if label:
        label = _decode(label)
    if version is not None and label:
        # Unreachable through the regexes; kept for parity with FillModelSpec.
        raise invalid_argument(
            f"Both model version ({version}) and model version label ({label}) cannot be supplied."
        )
    if method == "POST":
        if last not in ("classify", "regress", "predict"):
            raise malformed
        return Route(last, name, version, label or None)
    if not name:
        raise invalid_argument("Missing model name in request.")
    kind = "metadata" if last == "metadata" else "status"
    return Route(kind, name, version, label or None)


def error_body(message: str) -> str:
    """``MakeJsonFromStatus``: ``{ "error": "<message>" }``."""
    import json

    return '{ "error": ' + json.dumps(message, ensure_ascii=False) + " }"


__all__ = ["Route", "error_body", "is_api_path", "route"]
