"""The single-image bitstream (format version 1).

Layout, big-endian::

    magic "INRS" | version u8 | fixed header fields (FIELDS) |
    per present module (synthesis, aru, arm): exponent u8, scale code u16 |
    parameter section length u32 | latent section length u32 |
    parameter section | latent section | CRC-32 of everything before it (u32)

Every field is range-checked when written and when read; section lengths must add up to the
byte count; the checksum is verified before any section is decoded. Nothing is unpickled.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, fields

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.core.architecture import MAX_LEVELS, Architecture
from inrstore.models.entropy.laplace import LOG_SCALE_MAX_INDEX, LOG_SCALE_MIN_INDEX

MAGIC = b"INRS"
FORMAT_VERSION = 1
MAX_PIXELS = 100_000_000
"""Largest image (H × W) a bitstream may declare."""
MAX_WIDTH = 64
"""Largest network width a bitstream may declare (bounds decoding work and memory)."""
MODULE_ORDER = ("synthesis", "aru", "arm")
MAX_EXPONENT = 24


@dataclass(frozen=True)
class Field:
    name: str
    code: str
    low: int
    high: int


FIELDS = (
    Field("height", "H", 1, 65535),
    Field("width", "H", 1, 65535),
    Field("channels", "B", 1, 4),
    Field("levels", "B", 1, MAX_LEVELS),
    Field("arm_levels", "B", 0, MAX_LEVELS - 1),
    Field("head_hidden", "B", 1, MAX_WIDTH),
    Field("features", "B", 1, MAX_WIDTH),
    Field("tail_hidden", "B", 1, MAX_WIDTH),
    Field("aru_hidden", "B", 1, MAX_WIDTH),
    Field("arm_hidden", "B", 1, MAX_WIDTH),
    Field("prior_index", "b", LOG_SCALE_MIN_INDEX, LOG_SCALE_MAX_INDEX),
    Field("zero_flags", "B", 0, 2**MAX_LEVELS - 1),
)
_PREFIX = struct.Struct(">4sB" + "".join(f.code for f in FIELDS))
_MODULE = struct.Struct(">BH")
_SECTIONS = struct.Struct(">II")
_CRC = struct.Struct(">I")


@dataclass(frozen=True)
class ModuleCoding:
    """Quantization step exponent (step = 2**-exponent) and parameter scale code of a module."""

    exponent: int
    scale_code: int


@dataclass(frozen=True)
class ImageHeader:
    """Everything the decoder needs besides the two sections."""

    arch: Architecture
    prior_index: int
    zero_flags: int
    modules: dict[str, ModuleCoding]


def _field_values(header: ImageHeader) -> dict[str, int]:
    arch_values = {f.name: getattr(header.arch, f.name) for f in fields(Architecture)}
    return arch_values | {"prior_index": header.prior_index, "zero_flags": header.zero_flags}


def pack_image(header: ImageHeader, parameters: bytes, latents: bytes) -> bytes:
    """Serialize a header and its two sections, with the checksum."""
    values = _field_values(header)
    for field in FIELDS:
        if not field.low <= values[field.name] <= field.high:
            raise ValueError(
                f"{field.name}={values[field.name]} outside [{field.low}, {field.high}]"
            )
    parts = [_PREFIX.pack(MAGIC, FORMAT_VERSION, *(values[f.name] for f in FIELDS))]
    for name in _present_modules(header.arch):
        coding = header.modules[name]
        parts.append(_MODULE.pack(coding.exponent, coding.scale_code))
    parts.append(_SECTIONS.pack(len(parameters), len(latents)))
    body = b"".join([*parts, parameters, latents])
    return body + _CRC.pack(zlib.crc32(body))


def _present_modules(arch: Architecture) -> list[str]:
    return [name for name in MODULE_ORDER if name in arch.modules()]


def unpack_image(data: bytes) -> tuple[ImageHeader, bytes, bytes]:
    """Parse and validate bytes; raise :class:`BitstreamError` on anything wrong."""
    data = bytes(data)
    if len(data) < _PREFIX.size:
        raise BitstreamError(f"too short for an inrstore image ({len(data)} bytes)")
    magic, version, *raw = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError("not an inrstore image (bad magic number)")
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"unsupported format version {version} (this inrstore reads {FORMAT_VERSION})"
        )
    values = dict(zip((f.name for f in FIELDS), raw, strict=True))
    for field in FIELDS:
        if not field.low <= values[field.name] <= field.high:
            raise BitstreamError(f"header field {field.name}={values[field.name]} is out of range")
    if values["height"] * values["width"] > MAX_PIXELS:
        raise BitstreamError(f"declared size {values['width']}x{values['height']} is too large")
    try:
        arch = Architecture(**{f.name: values[f.name] for f in fields(Architecture)})
    except ValueError as err:
        raise BitstreamError(f"invalid architecture in header ({err})") from None
    if values["zero_flags"] >> arch.levels:
        raise BitstreamError("zero flags name grids that do not exist")
    offset = _PREFIX.size
    modules = {}
    for name in _present_modules(arch):
        exponent, code = _read(_MODULE, data, offset, "module coding")
        if exponent > MAX_EXPONENT or code == 0:
            raise BitstreamError(f"invalid quantization of module {name}")
        modules[name] = ModuleCoding(exponent, code)
        offset += _MODULE.size
    parameter_length, latent_length = _read(_SECTIONS, data, offset, "section lengths")
    offset += _SECTIONS.size
    if offset + parameter_length + latent_length + _CRC.size != len(data):
        raise BitstreamError(
            f"section lengths ({parameter_length} + {latent_length} bytes) do not match the "
            f"data ({len(data)} bytes): truncated or damaged"
        )
    (checksum,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != checksum:
        raise BitstreamError("checksum mismatch: the data is damaged")
    parameters = data[offset : offset + parameter_length]
    latents = data[offset + parameter_length : offset + parameter_length + latent_length]
    header = ImageHeader(arch, values["prior_index"], values["zero_flags"], modules)
    return header, parameters, latents


def _read(layout: struct.Struct, data: bytes, offset: int, what: str) -> tuple:
    if offset + layout.size > len(data):
        raise BitstreamError(f"truncated in the {what}")
    return layout.unpack_from(data, offset)
