"""absl-style status values, as TF Serving passes them between its layers.

Error texts are part of TF Serving's observable surface (clients match on
them), so every failure in the double travels as a ``Status`` with the
upstream code name and message; REST maps the code to HTTP with
``http_server.cc::ToHTTPStatusCode`` and gRPC casts it 1:1.
"""

from __future__ import annotations

from dataclasses import dataclass

# tensorflow/core/protobuf/error_codes.proto == grpc status codes.
CODES: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
NAMES: dict[int, str] = {v: k for k, v in CODES.items()}

# http_server.cc::ToHTTPStatusCode (reference §2.9).
HTTP_STATUS: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


@dataclass(frozen=True)
class Status:
    code: str = "OK"
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    @property
    def code_number(self) -> int:
        return CODES[self.code]

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def __str__(self) -> str:
        # absl::Status::ToString(): "OK" or "CODE: message".
        return "OK" if self.ok else f"{self.code}: {self.message}"


OK = Status()


class ServingError(Exception):
    """A non-OK Status raised through Python code paths."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.status = Status(code, message)

    @classmethod
    def of(cls, status: Status) -> ServingError:
        return cls(status.code, status.message)


def invalid_argument(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def failed_precondition(message: str) -> ServingError:
    return ServingError("FAILED_PRECONDITION", message)
