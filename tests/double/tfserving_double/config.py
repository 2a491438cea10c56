"""Text-format config files, read the way ``server.cc::ParseProtoTextFile`` does.

A missing file is the file system's error; a syntax error is logged by the
protobuf library (``Error parsing text-format <type>: ...``) and becomes
``INVALID_ARGUMENT: Invalid protobuf file: '<path>'``.
"""

from __future__ import annotations

import sys
from typing import Any

from google.protobuf import text_format

from .status import ServingError


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        raise ServingError("NOT_FOUND", f"{path}; No such file or directory") from None
    except IsADirectoryError:
        raise ServingError("FAILED_PRECONDITION", f"{path}; Is a directory") from None
    except PermissionError:
        raise ServingError("PERMISSION_DENIED", f"{path}; Permission denied") from None


def parse_text(path: str, message: Any) -> Any:
    """Fill ``message`` from the text proto at ``path``; raises ServingError."""
    text = read_text(path)
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        sys.stderr.write(
            "[libprotobuf ERROR google/protobuf/text_format.cc] Error parsing text-format "
            f"{message.DESCRIPTOR.full_name}: {exc}\n"
        )
        sys.stderr.flush()
        raise ServingError("INVALID_ARGUMENT", f"Invalid protobuf file: '{path}'") from None
    return message
