"""Building blocks of the codec's byte formats: a checked fixed-field prefix and a CRC seal.

A prefix is ``magic | version u8 | fields``, big-endian; every field has a declared range,
checked when written (``ValueError``) and when read (:class:`BitstreamError`). A seal is the
CRC-32 of everything before it, whole (4 bytes) or its low 16 bits (2 bytes, for records
small enough that two bytes matter).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from inrstore.models.bitstream.errors import BitstreamError

CRC = struct.Struct(">I")
_SEALS = {4: (CRC, 0xFFFFFFFF), 2: (struct.Struct(">H"), 0xFFFF)}


@dataclass(frozen=True)
class Field:
    """A header field: ``struct`` code and the inclusive range of valid values."""

    name: str
    code: str
    low: int
    high: int


class Prefix:
    """Magic, version and range-checked fields of one format. Written with ``version``; read
    from any version in ``oldest … version``."""

    def __init__(
        self,
        magic: bytes,
        version: int,
        what: str,
        fields: tuple[Field, ...],
        oldest: int | None = None,
    ) -> None:
        self.magic, self.version, self.what, self.fields = magic, version, what, fields
        self.oldest = version if oldest is None else oldest
        self.layout = struct.Struct(f">{len(magic)}sB" + "".join(f.code for f in fields))

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
        """The fields by name, and the version read under ``"version"``."""
        if len(data) < self.size:
            raise BitstreamError(f"too short for an inrstore {self.what} ({len(data)} bytes)")
        magic, version, *raw = self.layout.unpack_from(data)
        if magic != self.magic:
            raise BitstreamError(f"not an inrstore {self.what} (bad magic number)")
        if not self.oldest <= version <= self.version:
            readable = f"{self.oldest} to {self.version}" if self.oldest < self.version else ""
            raise BitstreamError(
                f"unsupported {self.what} format version {version} (this inrstore reads "
                f"{readable or self.version})"
            )
        values = dict(zip((f.name for f in self.fields), raw, strict=True))
        for field in self.fields:
            if not field.low <= values[field.name] <= field.high:
                raise BitstreamError(
                    f"{self.what} field {field.name}={values[field.name]} is out of range"
                )
        return values | {"version": version}


def seal(body: bytes, size: int = 4) -> bytes:
    """``body`` followed by its CRC-32 (``size`` 4) or the CRC's low 16 bits (``size`` 2)."""
    layout, mask = _SEALS[size]
    return body + layout.pack(zlib.crc32(body) & mask)


def check_seal(data: bytes, what: str, size: int = 4) -> None:
    """Raise :class:`BitstreamError` unless the trailing seal of ``size`` bytes matches."""
    layout, mask = _SEALS[size]
    if len(data) < size:
        raise BitstreamError(f"{what} is truncated")
    (checksum,) = layout.unpack_from(data, len(data) - size)
    if zlib.crc32(data[:-size]) & mask != checksum:
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
