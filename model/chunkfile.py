"""The framing of snapshot files: self-delimiting, checksummed msgpack chunks.

A file is MAGIC, then chunks. Each chunk is

    SYNC (4 bytes) | length (u32 LE) | crc32 of length and payload (u32 LE) | payload (msgpack)

so a reader can tell a whole chunk from a torn one (a recording cut off by
SIGKILL or a power cut ends in a torn chunk) and from a damaged one (a
flipped bit anywhere fails the checksum), and can find the next chunk after
a damaged one by its SYNC word. This module knows nothing of what chunks
mean; model.snapshot does.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import msgpack

MAGIC = b"GRADETOP\x00SNAP\r\n\x1a\n"
"""16 bytes: the name, then a NUL, CR LF and ^Z so that text-mode mangling and `cat` show as damage."""
SYNC = b"\xa7GTc"
_HEAD = struct.Struct("<4sII")
MAX_CHUNK = 1 << 31
"""A length past this is damage, not data: no chunk gradetop writes comes near it."""


def pack_chunk(obj) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    length = struct.pack("<I", len(payload))
    crc = zlib.crc32(payload, zlib.crc32(length))
    return SYNC + length + struct.pack("<I", crc) + payload


@dataclass(frozen=True)
class Chunk:
    index: int
    offset: int
    body: object


@dataclass(frozen=True)
class Damage:
    """A stretch of the file that is not a whole, valid chunk."""

    index: int
    """Ordinal of the chunk it stands in for."""
    offset: int
    torn: bool
    """True when the file simply ends inside the chunk (the writer was cut off)."""


def read_chunks(data: bytes | memoryview, start: int = len(MAGIC)) -> Iterator[Chunk | Damage]:
    """Every chunk after the magic, in order; damage is reported once per bad stretch, then skipped."""
    raw = data if isinstance(data, bytes) else bytes(data)
    view = memoryview(raw)
    pos, index, size = start, 0, len(raw)
    while pos < size:
        if size - pos < _HEAD.size:
            yield Damage(index, pos, torn=True)
            return
        sync, length, crc = _HEAD.unpack_from(view, pos)
        body_at = pos + _HEAD.size
        if sync == SYNC and length <= MAX_CHUNK and body_at + length > size:
            yield Damage(index, pos, torn=True)
            return
        if sync == SYNC and zlib.crc32(view[body_at:body_at + length], zlib.crc32(view[pos + 4:pos + 8])) == crc:
            try:
                body = msgpack.unpackb(view[body_at:body_at + length], raw=False, strict_map_key=False)
            except (ValueError, msgpack.UnpackException):
                body = None
            if body is not None:
                yield Chunk(index, pos, body)
                pos, index = body_at + length, index + 1
                continue
        # Damaged: resume at the next SYNC word (a chunk's own payload may hold one by chance,
        # but then its checksum fails and the search goes on).
        yield Damage(index, pos, torn=False)
        index += 1
        pos = raw.find(SYNC, pos + 1)
        if pos < 0:
            return
