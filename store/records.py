"""Explicit byte formats of the records a store holds (format version 1).

Every record is ``magic (4 bytes) | version u8 | fields | CRC-32 of everything before``, all
big-endian, parsed with ``struct``; lengths are checked against the bytes before use.

Member record ``INRM``::

    content id (32 bytes, SHA-256 of shape + pixels) | decoded id (32 bytes, the same hash of
    the image as decoded when it was added) | shard u64 | height u32 | width u32 |
    channels u8 | original file bytes u64 | PSNR in 1/1000 dB u32 | label i32 (-1: none) |
    name (u16 length + UTF-8) | mode conversion (u16 length + UTF-8) |
    bitstream (u32 length + bytes)

Shard record ``INRH``::

    shard u64 | created (Unix seconds) u64 | preset (u8 length + ASCII) | quality in 1/100 u16 |
    member count u32 | member content ids (32 bytes each)

A member's bitstream is its shard-member record from the shard codec; the shard's header (the
weight bases) is stored under the shard's number in its own database. A member record names
its shard, so decoding reads exactly one member record and one shard header.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from inrstore.store.errors import CorruptRecordError

RECORD_VERSION = 1
MEMBER_MAGIC = b"INRM"
SHARD_MAGIC = b"INRH"
_CRC = struct.Struct(">I")
_MEMBER_FIXED = struct.Struct(">4sB32s32sQIIBQIi")
_SHARD_FIXED = struct.Struct(">4sBQQ")


@dataclass(frozen=True)
class MemberRecord:
    """One stored image."""

    content_id: bytes
    decoded_id: bytes
    shard: int
    height: int
    width: int
    channels: int
    original_bytes: int
    psnr: float
    label: int | None
    name: str
    conversion: str
    bitstream: bytes

    @property
    def hex_id(self) -> str:
        return self.content_id.hex()


@dataclass(frozen=True)
class ShardRecord:
    """A group of members committed together, and what they share."""

    shard: int
    created: int
    preset: str
    quality: float
    members: tuple[bytes, ...]


class _Reader:
    """Bounds-checked sequential reads from a record body."""

    def __init__(self, data: bytes, offset: int, what: str) -> None:
        self.data, self.offset, self.what = data, offset, what

    def take(self, count: int) -> bytes:
        if count < 0 or self.offset + count > len(self.data):
            raise CorruptRecordError(f"{self.what} record is truncated")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def unpack(self, layout: str) -> tuple:
        size = struct.calcsize(layout)
        return struct.unpack(layout, self.take(size))

    def text(self, length_layout: str, encoding: str = "utf-8") -> str:
        (length,) = self.unpack(length_layout)
        try:
            return self.take(length).decode(encoding)
        except UnicodeDecodeError:
            raise CorruptRecordError(f"{self.what} record holds invalid text") from None

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise CorruptRecordError(f"{self.what} record has trailing bytes")


def _seal(body: bytes) -> bytes:
    return body + _CRC.pack(zlib.crc32(body))


def _open(data: bytes, magic: bytes, what: str) -> bytes:
    data = bytes(data)
    if len(data) < 9 or data[:4] != magic:
        raise CorruptRecordError(f"{what} record has a bad magic number")
    if data[4] != RECORD_VERSION:
        raise CorruptRecordError(f"{what} record has unsupported version {data[4]}")
    (checksum,) = _CRC.unpack_from(data, len(data) - 4)
    if zlib.crc32(data[:-4]) != checksum:
        raise CorruptRecordError(f"{what} record fails its checksum (damaged bytes)")
    return data[:-4]


def _text(value: str, length_layout: str, encoding: str = "utf-8") -> bytes:
    encoded = value.encode(encoding)
    return struct.pack(length_layout, len(encoded)) + encoded


def pack_member(record: MemberRecord) -> bytes:
    if len(record.content_id) != 32 or len(record.decoded_id) != 32:
        raise ValueError("content and decoded ids must be 32 bytes")
    fixed = _MEMBER_FIXED.pack(
        MEMBER_MAGIC,
        RECORD_VERSION,
        record.content_id,
        record.decoded_id,
        record.shard,
        record.height,
        record.width,
        record.channels,
        record.original_bytes,
        min(2**32 - 1, max(0, round(record.psnr * 1000))),
        -1 if record.label is None else record.label,
    )
    body = (
        fixed
        + _text(record.name, ">H")
        + _text(record.conversion, ">H")
        + struct.pack(">I", len(record.bitstream))
        + record.bitstream
    )
    return _seal(body)


def unpack_member(data: bytes) -> MemberRecord:
    body = _open(data, MEMBER_MAGIC, "member")
    reader = _Reader(body, 0, "member")
    fields = reader.unpack(_MEMBER_FIXED.format)
    content_id, decoded_id, shard, height, width, channels, original, psnr, label = fields[2:]
    name = reader.text(">H")
    conversion = reader.text(">H")
    (length,) = reader.unpack(">I")
    bitstream = reader.take(length)
    reader.finish()
    return MemberRecord(
        content_id, decoded_id, shard, height, width, channels, original, psnr / 1000,
        None if label < 0 else label, name, conversion, bitstream,
    )  # fmt: skip


def pack_shard(record: ShardRecord) -> bytes:
    fixed = _SHARD_FIXED.pack(SHARD_MAGIC, RECORD_VERSION, record.shard, record.created)
    members = b"".join(record.members)
    body = (
        fixed
        + _text(record.preset, ">B", "ascii")
        + struct.pack(">HI", round(record.quality * 100), len(record.members))
        + members
    )
    return _seal(body)


def unpack_shard(data: bytes) -> ShardRecord:
    body = _open(data, SHARD_MAGIC, "shard")
    reader = _Reader(body, 0, "shard")
    _, _, shard, created = reader.unpack(_SHARD_FIXED.format)
    preset = reader.text(">B", "ascii")
    quality, count = reader.unpack(">HI")
    members = tuple(reader.take(32) for _ in range(min(count, len(body) // 32 + 1)))
    if len(members) != count:
        raise CorruptRecordError("shard record is truncated")
    reader.finish()
    return ShardRecord(shard, created, preset, quality / 100, members)


FRAME_MAGIC = b"INRF"
STAGED_MAGIC = b"INRG"
TOKEN_MAGIC = b"INRT"
_FRAME_FIXED = struct.Struct(">4sB")
_FRAME_FIELDS = ">qqIIBQ"


@dataclass(frozen=True)
class FrameRecord:
    """What a gateway knows of a frame besides its pixels: who sent it and when (Unix
    milliseconds), its size, and the bytes of the file it arrived as."""

    source: str
    captured_ms: int
    received_ms: int
    width: int
    height: int
    channels: int
    original_bytes: int


def pack_frame(record: FrameRecord) -> bytes:
    fields = struct.pack(
        _FRAME_FIELDS, record.captured_ms, record.received_ms, record.width, record.height,
        record.channels, record.original_bytes,
    )  # fmt: skip
    return _seal(
        _FRAME_FIXED.pack(FRAME_MAGIC, RECORD_VERSION) + _text(record.source, ">B") + fields
    )


def unpack_frame(data: bytes) -> FrameRecord:
    reader = _Reader(_open(data, FRAME_MAGIC, "frame"), _FRAME_FIXED.size, "frame")
    source = reader.text(">B")
    captured, received, width, height, channels, original = reader.unpack(_FRAME_FIELDS)
    reader.finish()
    return FrameRecord(source, captured, received, width, height, channels, original)


def pack_staged(original: bytes) -> bytes:
    """A staged frame: the file exactly as it arrived."""
    head = _FRAME_FIXED.pack(STAGED_MAGIC, RECORD_VERSION)
    return _seal(head + struct.pack(">I", len(original)) + original)


def unpack_staged(data: bytes) -> bytes:
    reader = _Reader(_open(data, STAGED_MAGIC, "staged frame"), _FRAME_FIXED.size, "staged frame")
    (length,) = reader.unpack(">I")
    original = reader.take(length)
    reader.finish()
    return original


@dataclass(frozen=True)
class TokenRecord:
    """An API token's scope (``read`` or ``write``), creation time and label; the table's key
    is the SHA-256 of the token, never the token."""

    scope: str
    created: int
    label: str


TOKEN_SCOPES = ("read", "write")


def pack_token(record: TokenRecord) -> bytes:
    head = _FRAME_FIXED.pack(TOKEN_MAGIC, RECORD_VERSION)
    scope = TOKEN_SCOPES.index(record.scope)
    return _seal(head + struct.pack(">Bq", scope, record.created) + _text(record.label, ">B"))


def unpack_token(data: bytes) -> TokenRecord:
    reader = _Reader(_open(data, TOKEN_MAGIC, "token"), _FRAME_FIXED.size, "token")
    scope, created = reader.unpack(">Bq")
    label = reader.text(">B")
    reader.finish()
    if scope >= len(TOKEN_SCOPES):
        raise CorruptRecordError("token record has an unknown scope")
    return TokenRecord(TOKEN_SCOPES[scope], created, label)
