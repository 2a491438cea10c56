"""TF Serving's REST API (``/v1/models/...``) behind the ``ServingClient`` port.

Every ``requests`` exception and every non-200 answer is translated here,
once, into a ``tfsops.errors`` class (``raise ... from``); callers never see a
``requests`` type. Every request carries a timeout, so nothing here can hang.

Translated server errors carry ``details["server_message"]`` (the server's
own ``error`` text, verbatim) and ``details["http_status"]``.

Import this module lazily (it imports ``requests``); ``tfsops --help`` must
not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from tfsops.errors import (
    InvalidInput,
    ModelNotFound,
    NotReady,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.ports import Endpoint, VersionStatus

_STATES = frozenset({"UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"})
_SNIPPET = 200
# tensorflow/core/protobuf/error_codes.proto
ERROR_CODE_NAMES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}  # how much of a foreign answer to quote in an error

LABEL_HINT = (
    "labels are assigned in models.config (version_labels) and TF Serving only "
    "accepts a label on a version that is AVAILABLE"
)
STARTING_HINT = (
    "TF Serving opens its ports only after every configured model has loaded or failed; "
    "wait (tfsops health --wait) or look at the container logs"
)


def model_path(model: str, *, version: int | None = None, label: str | None = None) -> str:
    """``/v1/models/<model>[/versions/<v>|/labels/<l>]`` with names URL-escaped.

    TF Serving URL-unescapes model names and labels, so names containing
    ``/`` ``:`` or spaces still reach the right servable.
    """
    if not model:
        raise InvalidInput("a model name is required")
    if version is not None and label is not None:
        raise InvalidInput("give a version or a label, not both")
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(f"version must be a non-negative integer, got {version!r}")
        path += f"/versions/{version}"
    elif label is not None:
        if not label:
            raise InvalidInput("a label must not be empty")
        path += f"/labels/{quote(label, safe='')}"
    return path


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


class RestServingClient:
    """``ServingClient`` over TF Serving's REST port.

    ``session`` may be injected (tests, custom TLS); otherwise the client
    owns one and closes it in ``close()`` / on leaving a ``with`` block.
    The client is safe to share between the threads of one health check.
    """

    def __init__(self, endpoint: Endpoint, session: requests.Session | None = None) -> None:
        self.base_url = endpoint.rest_url
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # The server is ours, usually on loopback: an HTTP(S)_PROXY from the
            # environment must not intercept health checks and predictions.
            session.trust_env = False
            # check_health queries every model at once; the default pool (10)
            # would discard connections and log warnings.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self._session = session

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> RestServingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- ServingClient -----------------------------------------------------

    def model_status(self, model: str, *, timeout: float = 5.0) -> list[VersionStatus]:
        """Every version the server tracks for ``model`` (AVAILABLE or not)."""
        what = f"status of model {model!r}"
        payload = self._call("GET", model_path(model), what=what, timeout=timeout, model=model)
        entries = payload.get("model_version_status") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            self._foreign(what, 200, payload)
        result: list[VersionStatus] = []
        for entry in entries:
            parsed = _parse_version_status(entry)
            if parsed is None:
                self._foreign(what, 200, payload)
            result.append(parsed)
        return sorted(result, key=lambda s: s.version)

    def label_version(self, model: str, label: str, *, timeout: float = 5.0) -> int:
        """The version ``label`` resolves to.

        Uses ``/labels/<L>/metadata``: the status URL ignores labels and would
        answer 200 even for a label that does not exist.
        """
        what = f"label {label!r} of model {model!r}"
        payload = self._call(
            "GET",
            model_path(model, label=label) + "/metadata",
            what=what,
            timeout=timeout,
            model=model,
            label=label,
        )
        spec = payload.get("model_spec") if isinstance(payload, dict) else None
        version = spec.get("version") if isinstance(spec, dict) else None
        parsed = _parse_int(version)
        if parsed is None:
            self._foreign(what, 200, payload)
        return parsed

    def metadata(
        self,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """``{"model_spec": {...}, "metadata": {"signature_def": {"signature_def": {...}}}}``."""
        what = f"metadata of model {model!r}"
        payload = self._call(
            "GET",
            model_path(model, version=version, label=label) + "/metadata",
            what=what,
            timeout=timeout,
            model=model,
            label=label,
        )
        if not isinstance(payload, dict) or "model_spec" not in payload:
            self._foreign(what, 200, payload)
        return payload

    def predict(
        self,
        model: str,
        body: Mapping[str, Any],
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """POST ``...:predict`` with a row (``instances``) or columnar (``inputs``) body.

        Returns the server's JSON: ``{"predictions": ...}`` or ``{"outputs": ...}``.
        """
        if not isinstance(body, Mapping):
            raise InvalidInput("a predict body must be a JSON object")
        what = f"predict on model {model!r}"
        try:
            # allow_nan: TF Serving accepts (and emits) NaN / Infinity tokens.
            data = json.dumps(dict(body), allow_nan=True).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"the predict body is not JSON-serialisable: {exc}") from exc
        payload = self._call(
            "POST",
            model_path(model, version=version, label=label) + ":predict",
            what=what,
            timeout=timeout,
            model=model,
            label=label,
            data=data,
        )
        if not isinstance(payload, dict) or not ({"predictions", "outputs"} & payload.keys()):
            self._foreign(what, 200, payload)
        return payload

    # -- plumbing ----------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        timeout: float,
        model: str,
        label: str | None = None,
        data: bytes | None = None,
    ) -> Any:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._session.request(
                method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.exceptions.RequestException as exc:
            raise self._transport_error(exc, what, url, timeout) from exc
        try:
            payload: Any = json.loads(response.content) if response.content else None
        except ValueError:  # not JSON (also UnicodeDecodeError)
            payload = None
            if response.status_code == 200:
                self._foreign(what, 200, response.text)
        if response.status_code == 200:
            return payload
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, str):
            self._foreign(
                what, response.status_code, payload if payload is not None else response.text
            )
        raise self._server_error(
            response.status_code, error, what, model=model, label=label, url=url
        )

    def _transport_error(
        self, exc: requests.exceptions.RequestException, what: str, url: str, timeout: float
    ) -> TfsopsError:
        details = {"url": url, "reason": str(exc)}
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return NotReady(
                f"{what}: {self.base_url} did not accept a connection within {timeout:g}s",
                hint="is the host reachable and the port published?",
                details=details,
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return NotReady(
                f"{what}: {self.base_url} accepted the connection but did not answer "
                f"within {timeout:g}s",
                hint="the server may be overloaded or stuck; try a longer --timeout",
                details=details,
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            reason = str(exc)
            if "BadStatusLine" in reason:
                return OperationFailed(
                    f"{what}: the answer from {self.base_url} is not HTTP/1.x, so not "
                    "TF Serving's REST API",
                    hint="is this the gRPC port? REST is usually 8501, gRPC 8500",
                    details={"url": url},
                )
            if "NameResolution" in reason or "resolve" in reason:
                return OperationFailed(
                    f"{what}: cannot resolve the host of {self.base_url}", details=details
                )
            return ServerStarting(
                f"{what}: nothing answers at {self.base_url} yet (connection refused or reset)",
                hint=STARTING_HINT,
                details=details,
            )
        return OperationFailed(f"{what}: request to {url} failed: {exc}", details=details)

    def _server_error(
        self, status: int, text: str, what: str, *, model: str, label: str | None, url: str
    ) -> TfsopsError:
        details: dict[str, Any] = {"http_status": status, "server_message": text, "url": url}
        if "Unrecognized servable version label" in text:
            return ModelNotFound(
                f"model {model!r} has no version label {label!r}: {text}",
                hint=LABEL_HINT,
                details=details,
            )
        if status == 404 and text.startswith(("Could not find", "Servable not found")):
            hint = None
            if text.startswith("Servable not found"):
                hint = "the model (or this version) is not AVAILABLE; see tfsops status"
            return ModelNotFound(f"{what}: {text}", hint=hint, details=details)
        if "Model labels does not init yet" in text:
            return NotReady(f"{what}: {text}", hint=STARTING_HINT, details=details)
        return OperationFailed(f"{what} failed (HTTP {status}): {text}", details=details)

    def _foreign(self, what: str, status: int, payload: Any) -> NoReturn:
        shown = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        raise OperationFailed(
            f"{what}: the answer from {self.base_url} (HTTP {status}) is not TF Serving's: "
            f"{_snippet(shown) or '(empty)'}",
            hint="is another program listening on the REST port?",
            details={"http_status": status, "answer": _snippet(shown)},
        )


def _parse_int(value: Any) -> int | None:
    # int64 fields arrive as JSON strings; accept plain ints too.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _parse_version_status(entry: Any) -> VersionStatus | None:
    if not isinstance(entry, dict):
        return None
    version = _parse_int(entry.get("version"))
    state = entry.get("state")
    if version is None or not isinstance(state, str) or state not in _STATES:
        return None
    status = entry.get("status") or {}
    if not isinstance(status, dict):
        return None
    code = status.get("error_code", "OK")
    message = status.get("error_message", "")
    if isinstance(code, int) and not isinstance(
        code, bool
    ):  # a numeric enum from a non-TF JSON printer
        code = ERROR_CODE_NAMES.get(code, str(code))
    if not isinstance(code, str) or not isinstance(message, str):
        return None
    return VersionStatus(version=version, state=state, error_code=code, error_message=message)
