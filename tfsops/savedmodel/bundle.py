"""Read the keys of a TensorBundle index (``variables/variables.index``) without TensorFlow.

The index is a leveldb-style table (TensorFlow's ``core/lib/io/table``): a
48-byte footer (two block handles, zero padding, the magic number), an index
block whose values are the block handles of the data blocks, and data blocks
of prefix-compressed entries (``shared``, ``non_shared``, ``value_length`` as
varints, then the key suffix and the value), followed by a restart array.
Each block on disk is followed by a 5-byte trailer (compression type, CRC).
The empty key holds the ``BundleHeaderProto``; every other key is a
checkpoint key whose value is a ``BundleEntryProto``. Only the keys matter
here: which variables the SavedModel's restore step can fill.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tfsops.errors import InvalidInput
from tfsops.savedmodel._fs import os_problem, show

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # 2 block handles of at most 20 bytes, padded, + 8-byte magic
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked CRC32C (4 bytes)
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1  # TF1-era bundles (e.g. upstream's half_plus_two_cpu) use it
MAX_INDEX_BYTES = 1 << 30


class BundleFormatError(ValueError):
    """The bytes are not a TensorBundle index this reader understands."""


def read_varint(data: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decode a little-endian base-128 varint at ``pos`` (before ``end``, default the end
    of ``data``); return (value, next position). Protobuf's wire format uses the same."""
    end = len(data) if end is None else end
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise BundleFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BundleFormatError("varint longer than 64 bits")


def _block_handle(data: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(data, pos)
    size, pos = read_varint(data, pos)
    return (offset, size), pos


def _block(data: bytes, handle: tuple[int, int]) -> bytes:
    offset, size = handle
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data):
        raise BundleFormatError(f"block at {offset} (+{size}) runs past the end of the file")
    kind = data[end]
    if kind == SNAPPY_COMPRESSION:
        return snappy_decompress(data[offset:end])
    if kind != NO_COMPRESSION:
        raise BundleFormatError(f"block at {offset} is compressed (type {kind})")
    return data[offset:end]


def snappy_decompress(data: bytes) -> bytes:
    """Raw (unframed) Snappy, as leveldb tables store compressed blocks."""
    size, pos = read_varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > len(data):
                raise BundleFormatError("truncated snappy literal")
            out += data[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        if offset == 0 or offset > len(out):
            raise BundleFormatError("bad snappy copy offset")
        for _ in range(length):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != size:
        raise BundleFormatError("snappy block has the wrong length")
    return bytes(out)


def block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block, prefix compression undone."""
    if len(block) < 4:
        raise BundleFormatError("block shorter than its restart count")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise BundleFormatError("restart array larger than the block")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_length, pos = read_varint(block, pos)
        if shared > len(key) or pos + non_shared + value_length > limit:
            raise BundleFormatError("corrupt block entry")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_length]))
        pos += value_length
    return entries


def table_entries(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a leveldb-style table held in ``data``, in key order."""
    if len(data) < FOOTER_SIZE:
        raise BundleFormatError(f"{len(data)} bytes: shorter than a table footer")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise BundleFormatError("bad magic number (not a TensorBundle index)")
    _meta, pos = _block_handle(footer, 0)
    index_handle, _ = _block_handle(footer, pos)
    entries: list[tuple[bytes, bytes]] = []
    for _last_key, handle_bytes in block_entries(_block(data, index_handle)):
        handle, _ = _block_handle(handle_bytes, 0)
        entries.extend(block_entries(_block(data, handle)))
    return entries


def checkpoint_keys(index: Path) -> frozenset[str]:
    """The checkpoint keys of a ``variables.index`` (the header entry left out).

    ``InvalidInput`` names the file when it cannot be read or parsed.
    """
    try:
        with open(index, "rb") as fh:
            data = fh.read(MAX_INDEX_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(os_problem(exc, index), details={"path": show(index)}) from None
    try:
        if len(data) > MAX_INDEX_BYTES:
            raise BundleFormatError("larger than 1 GiB")
        entries = table_entries(data)
    except BundleFormatError as exc:
        raise InvalidInput(
            f"{show(index)} is not a readable TensorBundle index ({exc})",
            hint="a truncated copy? export the model again",
            details={"path": show(index)},
        ) from None
    return frozenset(k.decode("utf-8", "replace") for k, _ in entries if k)
