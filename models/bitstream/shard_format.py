"""Byte formats of a shard (format version 1): one shard header, one record per member.

Shard header, big-endian::

    magic "INSH" | version u8 | network fields (channels, levels, arm_levels, widths) |
    bases K u16 | per present module (synthesis, aru, arm): basis exponent u8,
    basis scale code u16, coefficient exponent u8, coefficient scale code u16 |
    basis section length u32 | basis section | CRC-32 (u32)

Member record::

    magic "INSM" | version u8 | height u16 | width u16 | prior index i8 | zero flags u8 |
    CRC-32 of its shard header u32 | coefficient section length u32 |
    latent section length u32 | coefficient section | latent section | CRC-32 (u32)

With K = 1 the coefficients are fixed to 1: their exponents and codes are 0 and the member's
coefficient section is empty. A member names its header's CRC, so decoding it against the
wrong header is an error, not garbage. Sizes are validated before anything is allocated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

import numpy as np

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.fields import Field, Prefix, read, seal, split_sections
from inrstore.models.bitstream.image_format import (
    LATENT_FIELDS,
    MAX_EXPONENT,
    NETWORK_FIELDS,
    SIZE_FIELDS,
    ModuleCoding,
    arch_values,
    check_zero_flags,
    checked_arch,
    present_modules,
)
from inrstore.models.core.architecture import Architecture

HEADER_MAGIC = b"INSH"
MEMBER_MAGIC = b"INSM"
FORMAT_VERSION = 1
MAX_BASES = 4096
MAX_BASIS_INTEGERS = 1 << 22
"""Largest number of basis integers (K × parameters) a header may declare."""
HEADER_PREFIX = Prefix(
    HEADER_MAGIC,
    FORMAT_VERSION,
    "shard header",
    (*NETWORK_FIELDS, Field("bases", "H", 1, MAX_BASES)),
)
MEMBER_PREFIX = Prefix(
    MEMBER_MAGIC,
    FORMAT_VERSION,
    "shard member",
    (*SIZE_FIELDS, *LATENT_FIELDS, Field("header_crc", "I", 0, 2**32 - 1)),
)
_MODULE = struct.Struct(">BHBH")
_LENGTH = struct.Struct(">I")
_SECTIONS = struct.Struct(">II")


@dataclass(frozen=True)
class ShardHeader:
    """The shared part of a shard. ``template`` has the networks (its size is 1×1);
    ``coefficients`` is None when K = 1 (plain sharing)."""

    template: Architecture
    bases: int
    modules: dict[str, ModuleCoding]
    coefficients: dict[str, ModuleCoding] | None

    def basis_counts(self) -> list[int]:
        return basis_counts(self.template, self.bases)


def basis_counts(template: Architecture, bases: int) -> list[int]:
    """Integers per present module in the basis section (K × parameters)."""
    shapes = template.modules()
    return [
        bases * sum(int(np.prod(s)) for s in shapes[name].values())
        for name in present_modules(template)
    ]


@dataclass(frozen=True)
class MemberHeader:
    """A member's own fields."""

    height: int
    width: int
    prior_index: int
    zero_flags: int
    header_crc: int

    def arch(self, template: Architecture) -> Architecture:
        return replace(template, height=self.height, width=self.width)


def header_crc(header_bytes: bytes) -> int:
    return zlib.crc32(header_bytes)


def pack_header(header: ShardHeader, bases: bytes) -> bytes:
    values = {k: v for k, v in arch_values(header.template).items() if k not in ("height", "width")}
    parts = [HEADER_PREFIX.pack(values | {"bases": header.bases})]
    for name in present_modules(header.template):
        basis = header.modules[name]
        alpha = ModuleCoding(0, 0) if header.coefficients is None else header.coefficients[name]
        parts.append(
            _MODULE.pack(basis.exponent, basis.scale_code, alpha.exponent, alpha.scale_code)
        )
    parts.append(_LENGTH.pack(len(bases)))
    return seal(b"".join([*parts, bases]))


def unpack_header(data: bytes) -> tuple[ShardHeader, bytes]:
    """Parse and validate a shard header; returns it and its basis section."""
    data = bytes(data)
    values = HEADER_PREFIX.unpack(data)
    template = checked_arch(values | {"height": 1, "width": 1})
    if sum(basis_counts(template, values["bases"])) > MAX_BASIS_INTEGERS:
        raise BitstreamError(
            f"shard header declares too many basis weights ({values['bases']} bases)"
        )
    plain = values["bases"] == 1
    offset = HEADER_PREFIX.size
    modules, coefficients = {}, {}
    for name in present_modules(template):
        exponent, code, alpha_exponent, alpha_code = read(_MODULE, data, offset, "module coding")
        offset += _MODULE.size
        if exponent > MAX_EXPONENT or code == 0:
            raise BitstreamError(f"invalid quantization of module {name}")
        if plain != (alpha_code == 0) or alpha_exponent > MAX_EXPONENT:
            raise BitstreamError(f"invalid coefficient coding of module {name}")
        modules[name] = ModuleCoding(exponent, code)
        coefficients[name] = ModuleCoding(alpha_exponent, alpha_code)
    header = ShardHeader(template, values["bases"], modules, None if plain else coefficients)
    (length,) = read(_LENGTH, data, offset, "section length")
    (section,) = split_sections(data, offset + _LENGTH.size, (length,), "shard header")
    return header, section


def pack_member(member: MemberHeader, coefficients: bytes, latents: bytes) -> bytes:
    prefix = MEMBER_PREFIX.pack(member.__dict__)
    sections = _SECTIONS.pack(len(coefficients), len(latents))
    return seal(prefix + sections + coefficients + latents)


def unpack_member(data: bytes, template: Architecture) -> tuple[MemberHeader, bytes, bytes]:
    """Parse and validate a member record; returns it and its two sections."""
    data = bytes(data)
    values = MEMBER_PREFIX.unpack(data)
    member = MemberHeader(**values)
    check_zero_flags(member.zero_flags, checked_arch(arch_values(template) | values))
    lengths = read(_SECTIONS, data, MEMBER_PREFIX.size, "section lengths")
    coefficients, latents = split_sections(
        data, MEMBER_PREFIX.size + _SECTIONS.size, lengths, "shard member"
    )
    return member, coefficients, latents
