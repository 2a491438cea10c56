"""Read what tfsops needs from a large ``saved_model.pb`` without reading the whole file.

A SavedModel proto is mostly its graph (constants folded into the GraphDef can
make it a gigabyte). Tags, signatures, the saver and the TF version live in
small fields beside it. This reader maps the file and walks the protobuf wire
format: it parses only those fields and steps over the others, checking that
each field's length fits in the file (so a truncated copy is still refused).
Pages of the skipped fields are never touched, so memory stays flat.

Wire format: https://protobuf.dev/programming-guides/encoding/
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfsops.savedmodel.bundle import BundleFormatError, read_varint

# Files above this size are read lean; smaller ones are parsed whole (every field checked).
LEAN_THRESHOLD = 64 * 1024 * 1024

# SavedModel: 1 saved_model_schema_version (varint), 2 meta_graphs (MetaGraphDef).
_SAVED_MODEL_META_GRAPHS = 2
# MetaGraphDef fields kept: 1 meta_info_def, 3 saver_def, 5 signature_def (map entries).
# Skipped: 2 graph_def, 4 collection_def, 6 asset_file_def, 7 object_graph_def.
_META_GRAPH_KEPT = frozenset({1, 3, 5})


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    try:
        return read_varint(buf, pos, end)
    except BundleFormatError as exc:
        raise WireError(str(exc)) from None


def _fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, start of the key, start of the payload, end) for each field."""
    pos = start
    while pos < end:
        key_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == 0:
            _, pos_end = _varint(buf, pos, end)
        elif wire == 1:
            pos_end = pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            pos_end = pos + length
        elif wire == 5:
            pos_end = pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        if pos_end > end:
            raise WireError(f"field {number} runs past the end (truncated?)")
        yield number, key_start, pos, pos_end
        pos = pos_end


def lean_bytes(buf: Any) -> bytes:
    """A SavedModel serialization holding only the small fields of each MetaGraph."""
    out = bytearray()
    for number, key_start, payload, end in _fields(buf, 0, len(buf)):
        if number != _SAVED_MODEL_META_GRAPHS:
            out += buf[key_start:end]
            continue
        kept = bytearray()
        for inner, inner_key, _payload, inner_end in _fields(buf, payload, end):
            if inner in _META_GRAPH_KEPT:
                kept += buf[inner_key:inner_end]
        out += _key_and_length(number, len(kept))
        out += kept
    return bytes(out)


def _key_and_length(number: int, length: int) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(length)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_lean(path: Path) -> bytes:
    """The lean serialization of the SavedModel in ``path`` (mapped, not read whole)."""
    with open(path, "rb") as fh:
        if fh.seek(0, 2) == 0:
            return b""
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return lean_bytes(buf)
