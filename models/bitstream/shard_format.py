"""Byte formats of a shard: one shard header (version 1), one record per member (version 3;
versions 1 and 2 are still read).

Shard header, big-endian::

    magic "INSH" | version u8 | network fields (channels, levels, arm_levels, widths) |
    bases K u16 | per present module (synthesis, aru, arm): basis exponent u8,
    basis scale code u16, coefficient exponent u8, coefficient scale code u16 |
    basis section length u32 | basis section | CRC-32 (u32)

Member record (compact: on a 32×32 image every byte is 0.008 bpp)::

    magic "IM" | version u8 | height u16 | width u16 | prior index i8 | zero flags u8 |
    header tag u16 (low 16 bits of the shard header's CRC-32) |
    payload (one range-coder stream, whole 32-bit words: the coefficients, then the latents) |
    check u16 (low 16 bits of the CRC-32 of everything before)

With K = 1 the coefficients are fixed to 1: their exponents and codes are 0 and the member
codes none. The header tag makes decoding a member against the wrong header an error, not
garbage (a 1 in 65 536 chance of a mismatch slipping through). The 16-bit check catches all
burst errors up to 16 bits; in a store, the member's record adds a full CRC-32. Sizes are
validated before anything is allocated. A member's version is the coding of its
latents, as for single images (:mod:`~inrstore.models.bitstream.image_format`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

import numpy as np

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.fields import (
    Field,
    Prefix,
    check_seal,
    read,
    seal,
    split_sections,
)
from inrstore.models.bitstream.image_format import (
    LATENT_FIELDS,
    LEGACY_SETTINGS,
    MAX_EXPONENT,
    NETWORK_FIELDS,
    SIZE_FIELDS,
    ModuleCoding,
    arch_values,
    check_zero_flags,
    checked_arch,
    present_modules,
)
from inrstore.models.core.architecture import Architecture, levels_for

HEADER_MAGIC = b"INSH"
MEMBER_MAGIC = b"IM"
HEADER_VERSION = 1
MEMBER_VERSION = 3
MEMBER_OLDEST_VERSION = 1
MAX_BASES = 4096
MAX_BASIS_INTEGERS = 1 << 22
"""Largest number of basis integers (K × parameters) a header may declare."""
HEADER_PREFIX = Prefix(
    HEADER_MAGIC,
    HEADER_VERSION,
    "shard header",
    (*NETWORK_FIELDS, Field("bases", "H", 1, MAX_BASES)),
)
MEMBER_PREFIX = Prefix(
    MEMBER_MAGIC,
    MEMBER_VERSION,
    "shard member",
    (*SIZE_FIELDS, *LATENT_FIELDS, Field("header_tag", "H", 0, 2**16 - 1)),
    MEMBER_OLDEST_VERSION,
)
_MODULE = struct.Struct(">BHBH")
_LENGTH = struct.Struct(">I")
MEMBER_CHECK = 2
"""Bytes of a member's check (the low half of a CRC-32)."""


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
    header_tag: int
    version: int = MEMBER_VERSION
    """The record's format version (written: always :data:`MEMBER_VERSION`)."""

    def arch(self, template: Architecture) -> Architecture:
        return replace(template, height=self.height, width=self.width)


def header_tag(header_bytes: bytes) -> int:
    """What a member records of its shard header: the low 16 bits of the header's CRC-32."""
    return zlib.crc32(header_bytes) & 0xFFFF


def pack_header(header: ShardHeader, bases: bytes) -> bytes:
    for field, legacy in LEGACY_SETTINGS.items():
        if getattr(header.template, field) != legacy:
            raise ValueError(
                f"shards code {field} {legacy!r} only, not {getattr(header.template, field)!r}"
            )
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
    template = checked_arch(values | {"height": 1, "width": 1} | LEGACY_SETTINGS)
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


def pack_member(member: MemberHeader, payload: bytes) -> bytes:
    return seal(MEMBER_PREFIX.pack(member.__dict__) + payload, MEMBER_CHECK)


def unpack_member(data: bytes, template: Architecture) -> tuple[MemberHeader, bytes]:
    """Parse and validate a member record; returns it and its payload (whole 32-bit words)."""
    data = bytes(data)
    values = MEMBER_PREFIX.unpack(data)
    member = MemberHeader(**values)
    check_zero_flags(member.zero_flags, checked_arch(arch_values(template) | values))
    if levels_for(member.height, member.width) > template.levels:
        raise BitstreamError(
            f"a {member.width}x{member.height} member needs more latent grids than its shard "
            f"header's {template.levels}: no encoder wrote it"
        )
    if len(data) < MEMBER_PREFIX.size + MEMBER_CHECK:
        raise BitstreamError("shard member is truncated")
    check_seal(data, "shard member", MEMBER_CHECK)
    payload = data[MEMBER_PREFIX.size : -MEMBER_CHECK]
    if len(payload) % 4:
        raise BitstreamError("shard member payload is not whole 32-bit words: truncated or damaged")
    return member, payload
