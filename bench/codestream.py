"""Bytes of a baseline file's raw codestream: the file minus its container and metadata.

Used to compare inrstore members, which carry no container, fairly against per-file codecs:

- JPEG: the file minus its APPn (JFIF, EXIF, ICC) and COM segments;
- WebP: the payloads of the ``VP8 ``/``VP8L``/``ALPH`` chunks (no RIFF or chunk headers);
- AVIF: the payload of the ``mdat`` box (the AV1 data, without the ISOBMFF boxes);
- JPEG XL: a bare codestream as is; in a container, the ``jxlc``/``jxlp`` payloads.
"""

from __future__ import annotations

import struct

_JPEG_METADATA = set(range(0xE0, 0xF0)) | {0xFE}
_WEBP_IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"ALPH"}


def codestream_bytes(fmt: str, data: bytes) -> int:
    """Raw codestream size of ``data`` written by Pillow in format ``fmt`` (JPEG, WEBP, AVIF,
    JXL); other formats count whole. Raises ``ValueError`` on bytes it cannot walk."""
    walkers = {"JPEG": _jpeg, "WEBP": _webp, "AVIF": _avif, "JXL": _jxl}
    walker = walkers.get(fmt.upper())
    return len(data) if walker is None else walker(data)


def strip_jpeg_metadata(data: bytes) -> bytes:
    """The JPEG without APPn and COM segments (still a decodable JPEG)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file")
    kept, offset = [data[:2]], 2
    while offset + 4 <= len(data):
        marker = data[offset + 1]
        if data[offset] != 0xFF or marker == 0xDA:
            break
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if marker not in _JPEG_METADATA:
            kept.append(data[offset : offset + 2 + length])
        offset += 2 + length
    kept.append(data[offset:])
    return b"".join(kept)


def _jpeg(data: bytes) -> int:
    return len(strip_jpeg_metadata(data))


def _webp(data: bytes) -> int:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    total, offset = 0, 12
    while offset + 8 <= len(data):
        fourcc = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        if fourcc in _WEBP_IMAGE_CHUNKS:
            total += size
        offset += 8 + size + (size & 1)
    return total


def _boxes(data: bytes, offset: int = 0):
    """``(type, payload start, payload end)`` of the ISOBMFF boxes from ``offset``."""
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header:
            raise ValueError("damaged box structure")
        yield kind, offset + header, offset + size
        offset += size


def _avif(data: bytes) -> int:
    return sum(end - start for kind, start, end in _boxes(data) if kind == b"mdat")


def _jxl(data: bytes) -> int:
    if data[:2] == b"\xff\x0a":
        return len(data)
    total = 0
    for kind, start, end in _boxes(data):
        if kind == b"jxlc":
            total += end - start
        elif kind == b"jxlp":
            total += end - start - 4
    return total
