"""Building blocks of the codec's byte formats: a checked fixed-field prefix and a CRC seal.

A prefix is ``magic (4 bytes) | version u8 | fields``, big-endian; every field has a declared
range, checked when written (``ValueError``) and when read (:class:`BitstreamError`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from inrstore.models.bitstream.errors import BitstreamError

CRC = struct.Struct(">I")


@dataclass(frozen=True)
class Field:
    """A header field: ``struct`` code and the inclusive range of valid values."""

    name: str
    code: str
    low: int
    high: int


class Prefix:
    """Magic, version and range-checked fields of one format."""

    def __init__(self, magic: bytes, version: int, what: str, fields: tuple[Field, ...]) -> None:
        self.magic, self.version, self.what, self.fields = magic, version, what, fields
        self.layout = struct.Struct(">4sB" + "".join(f.code for f in fields))

    @property
    def size(self) -> int:
        return self.layout.size

    def pack(self, values: Mapping[str, int]) -> bytes:
        for field in self.fields:
            if not field.low <= values[field.name] <= field.high:
                raise ValueError(
                    f"{field.name}={values[field.name]} outside [{field.low}, {field.high}]"
                )
        return self.layout.pack(self.magic, self.version, *(values[f.name] for f in self.fields))

    def unpack(self, data: bytes) -> dict[str, int]:
        if len(data) < self.size:
            raise BitstreamError(f"too short for an inrstore {self.what} ({len(data)} bytes)")
        magic, version, *raw = self.layout.unpack_from(data)
        if magic != self.magic:
            raise BitstreamError(f"not an inrstore {self.what} (bad magic number)")
        if version != self.version:
            raise BitstreamError(
                f"unsupported {self.what} format version {version} (this inrstore reads "
                f"{self.version})"
            )
        values = dict(zip((f.name for f in self.fields), raw, strict=True))
        for field in self.fields:
            if not field.low <= values[field.name] <= field.high:
                raise BitstreamError(
                    f"{self.what} field {field.name}={values[field.name]} is out of range"
                )
        return values


def seal(body: bytes) -> bytes:
    """``body`` followed by its CRC-32."""
    return body + CRC.pack(zlib.crc32(body))


def check_seal(data: bytes, what: str) -> None:
    """Raise :class:`BitstreamError` unless the trailing CRC-32 matches."""
    (checksum,) = CRC.unpack_from(data, len(data) - CRC.size)
    if zlib.crc32(data[: -CRC.size]) != checksum:
        raise BitstreamError(f"{what} checksum mismatch: the data is damaged")


def read(layout: struct.Struct, data: bytes, offset: int, what: str) -> tuple:
    """Unpack ``layout`` at ``offset``, or raise :class:`BitstreamError` if truncated."""
    if offset + layout.size > len(data):
        raise BitstreamError(f"truncated in the {what}")
    return layout.unpack_from(data, offset)


def split_sections(
    data: bytes, offset: int, lengths: tuple[int, ...], what: str
) -> tuple[bytes, ...]:
    """The sections that follow ``offset``; their lengths plus the CRC must fill ``data``."""
    if offset + sum(lengths) + CRC.size != len(data):
        raise BitstreamError(
            f"{what} section lengths ({' + '.join(map(str, lengths))} bytes) do not match the "
            f"data ({len(data)} bytes): truncated or damaged"
        )
    check_seal(data, what)
    sections = []
    for length in lengths:
        sections.append(data[offset : offset + length])
        offset += length
    return tuple(sections)
