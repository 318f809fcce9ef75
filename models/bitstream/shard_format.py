"""Byte formats of a shard: one shard header (version 3 when the members share latents,
else version 2; version 1 is still read), one record per member (version 4; versions 1 to 3
are still read).

Shard header version 2, big-endian::

    magic "INSH" | version u8 | sharing u8 (0: own networks, 1: shared networks) |
    shared networks only:
        network fields (channels, levels, arm_levels, widths) | bases K u16 |
        setting bytes (ARM neighbourhood, pre-filters, synthesis kind: as image format 7) |
        per parameter tensor of the present modules (upsampling, synthesis, aru, arm):
            u16 = basis exponent << 11 | basis scale code |
        per present module: coefficient exponent u8, coefficient scale code u16 |
        basis section length u32 | basis section (each tensor's K × weights in turn) |
        version 3 only: shared latents length u32 | shared latents (a member record) |
    CRC-32 (u32)

Version 3 adds the *shared latents* (plain sharing, K = 1, only): grids that every member's
synthesis adds to its own, coded as a member record of the members' size (header tag 0)
under the shared networks; every member of such a shard has that size.

A shard of *own networks* shares nothing: each member record is a whole single-image
bitstream (:mod:`~inrstore.models.bitstream.image_format`), so a single image is a shard of
one. Version 1 headers (always shared networks) had no sharing byte and no setting bytes
(their settings are the legacy ones), and one basis step and scale code per module, which
decode as tensors that all carry the module's step and scale.

Member record of shared networks (compact: on a 32×32 image every byte is 0.008 bpp)::

    magic "IM" | version u8 | height u16 | width u16 | prior index i8 | zero flags u8 |
    header tag u16 (low 16 bits of the shard header's CRC-32) |
    payload (one range-coder stream, whole 32-bit words: the coefficients, then the latents) |
    check u16 (low 16 bits of the CRC-32 of everything before)

With K = 1 the coefficients are fixed to 1: their exponents and codes are 0 and the member
codes none. The header tag makes decoding a member against the wrong header an error, not
garbage (a 1 in 65 536 chance of a mismatch slipping through). The 16-bit check catches all
burst errors up to 16 bits; in a store, the member's record adds a full CRC-32. Sizes are
validated before anything is allocated. A member's version is the coding of its
latents, as for single images.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass

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
    FORMAT_VERSION,
    LATENT_FIELDS,
    LEGACY_SETTINGS,
    MAX_EXPONENT,
    NETWORK_FIELDS,
    SIZE_FIELDS,
    ModuleCoding,
    arch_values,
    check_zero_flags,
    checked_arch,
    pack_settings,
    pack_tensor_codings,
    present_modules,
    read_settings,
    read_tensor_codings,
    tensor_names,
)
from inrstore.models.core.architecture import Architecture, levels_for

HEADER_MAGIC = b"INSH"
MEMBER_MAGIC = b"IM"
HEADER_VERSION = 3
SHARED_LATENTS_VERSION = 3
"""The first header version that may carry shared latents; shards without them are
written as version 2."""
HEADER_OLDEST_VERSION = 1
MEMBER_VERSION = 4
MEMBER_OLDEST_VERSION = 1
MAX_BASES = 4096
MAX_BASIS_INTEGERS = 1 << 22
"""Largest number of basis integers (K × parameters) a header may declare."""
SHARINGS = ("own", "shared")
"""What the sharing byte of a version-2 header names, by value."""
HEADER_PREFIX = Prefix(
    HEADER_MAGIC,
    HEADER_VERSION,
    "shard header",
    (Field("sharing", "B", 0, len(SHARINGS) - 1),),
    HEADER_OLDEST_VERSION,
)
V2_HEADER_PREFIX = Prefix(HEADER_MAGIC, 2, "shard header", HEADER_PREFIX.fields)
NETWORKS_PREFIX = struct.Struct(">" + "".join(f.code for f in NETWORK_FIELDS) + "H")
"""The shared networks' fields of a version-2 header, then K."""
NETWORKS_FIELDS = (*NETWORK_FIELDS, Field("bases", "H", 1, MAX_BASES))
V1_HEADER_PREFIX = Prefix(HEADER_MAGIC, 1, "shard header", NETWORKS_FIELDS)
MEMBER_PREFIX = Prefix(
    MEMBER_MAGIC,
    MEMBER_VERSION,
    "shard member",
    (*SIZE_FIELDS, *LATENT_FIELDS, Field("header_tag", "H", 0, 2**16 - 1)),
    MEMBER_OLDEST_VERSION,
)
_MODULE = struct.Struct(">BHBH")
_COEFFICIENTS = struct.Struct(">BH")
_LENGTH = struct.Struct(">I")
MEMBER_CHECK = 2
"""Bytes of a member's check (the low half of a CRC-32)."""


@dataclass(frozen=True)
class ShardHeader:
    """The shared part of a shard. ``template`` has the shared networks (its size is 1×1),
    or is None when every member has its own networks (then ``bases`` is 0);
    ``tensors``: each basis tensor's step and scale; ``coefficients`` (per module) is None
    when K = 1 (plain sharing); ``latents``: the shared latents' member record, if any."""

    template: Architecture | None
    bases: int
    tensors: dict[str, ModuleCoding]
    coefficients: dict[str, ModuleCoding] | None
    version: int = 2
    """The format version (written: 3 with shared latents, else 2)."""
    latents: bytes | None = None

    @property
    def own_networks(self) -> bool:
        """Whether each member carries its own networks (a single-image bitstream)."""
        return self.template is None

    def basis_counts(self) -> list[int]:
        """Integers of each basis tensor in the basis section, in coding order."""
        return basis_counts(self.template, self.bases)


def basis_counts(template: Architecture, bases: int) -> list[int]:
    """Integers per parameter tensor in the basis section (K × its weights)."""
    shapes = template.parameter_shapes()
    return [bases * int(np.prod(shapes[name])) for name in tensor_names(template)]


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
        return member_arch(template, self.height, self.width)


@functools.lru_cache(maxsize=256)
def member_arch(template: Architecture, height: int, width: int) -> Architecture:
    """The validated architecture of a ``height × width`` member of a shard of ``template``
    (cached: a shard's members share a few sizes)."""
    return checked_arch(arch_values(template) | {"height": height, "width": width})


def header_tag(header_bytes: bytes) -> int:
    """What a member records of its shard header: the low 16 bits of the header's CRC-32."""
    return zlib.crc32(header_bytes) & 0xFFFF


def pack_header(header: ShardHeader, bases: bytes) -> bytes:
    """A header with its basis section (empty for own networks): version 3 when it has
    shared latents, else version 2."""
    if header.own_networks:
        return seal(V2_HEADER_PREFIX.pack({"sharing": SHARINGS.index("own")}))
    if header.latents is not None and header.bases != 1:
        raise ValueError("shared latents need plain sharing (one basis)")
    prefix = V2_HEADER_PREFIX if header.latents is None else HEADER_PREFIX
    values = arch_values(header.template) | {"bases": header.bases}
    for field in NETWORKS_FIELDS:
        if not field.low <= values[field.name] <= field.high:
            raise ValueError(
                f"{field.name}={values[field.name]} outside [{field.low}, {field.high}]"
            )
    parts = [
        prefix.pack({"sharing": SHARINGS.index("shared")}),
        NETWORKS_PREFIX.pack(*(values[field.name] for field in NETWORKS_FIELDS)),
        pack_settings(header.template),
        pack_tensor_codings(header.template, header.tensors),
    ]
    for name in present_modules(header.template):
        alpha = ModuleCoding(0, 0) if header.coefficients is None else header.coefficients[name]
        parts.append(_COEFFICIENTS.pack(alpha.exponent, alpha.scale_code))
    parts += [_LENGTH.pack(len(bases)), bases]
    if header.latents is not None:
        parts += [_LENGTH.pack(len(header.latents)), header.latents]
    return seal(b"".join(parts))


def unpack_header(data: bytes) -> tuple[ShardHeader, bytes]:
    """Parse and validate a shard header; returns it and its basis section."""
    data = bytes(data)
    if data[: len(HEADER_MAGIC)] == HEADER_MAGIC and data[len(HEADER_MAGIC) : 5] == b"\x01":
        return _unpack_v1_header(data)
    prefix = HEADER_PREFIX.unpack(data)
    sharing, version = prefix["sharing"], prefix["version"]
    offset = HEADER_PREFIX.size
    if SHARINGS[sharing] == "own":
        split_sections(data, offset, (), "shard header")
        return ShardHeader(None, 0, {}, None, version), b""
    raw = read(NETWORKS_PREFIX, data, offset, "network fields")
    values = dict(zip((field.name for field in NETWORKS_FIELDS), raw, strict=True))
    for field in NETWORKS_FIELDS:
        if not field.low <= values[field.name] <= field.high:
            raise BitstreamError(
                f"shard header field {field.name}={values[field.name]} is out of range"
            )
    settings, offset = read_settings(data, offset + NETWORKS_PREFIX.size, FORMAT_VERSION)
    template = _checked_template(values | settings)
    tensors, offset = read_tensor_codings(data, offset, template)
    plain = values["bases"] == 1
    coefficients = {}
    for name in present_modules(template):
        alpha_exponent, alpha_code = read(_COEFFICIENTS, data, offset, "coefficient coding")
        offset += _COEFFICIENTS.size
        if plain != (alpha_code == 0) or alpha_exponent > MAX_EXPONENT:
            raise BitstreamError(f"invalid coefficient coding of module {name}")
        coefficients[name] = ModuleCoding(alpha_exponent, alpha_code)
    (length,) = read(_LENGTH, data, offset, "section length")
    offset += _LENGTH.size
    lengths: tuple[int, ...] = (length,)
    if version >= SHARED_LATENTS_VERSION:
        (latents_length,) = read(_LENGTH, data, offset + length, "shared latents length")
        lengths = (length, _LENGTH.size, latents_length)
        if not plain:
            raise BitstreamError("shard header has shared latents but more than one basis")
    section, *rest = split_sections(data, offset, lengths, "shard header")
    latents = rest[1] if rest else None
    alphas = None if plain else coefficients
    return ShardHeader(template, values["bases"], tensors, alphas, version, latents), section


def _checked_template(values: dict) -> Architecture:
    template = checked_arch(values | {"height": 1, "width": 1})
    if sum(basis_counts(template, values["bases"])) > MAX_BASIS_INTEGERS:
        raise BitstreamError(
            f"shard header declares too many basis weights ({values['bases']} bases)"
        )
    return template


def _unpack_v1_header(data: bytes) -> tuple[ShardHeader, bytes]:
    """Version 1: shared networks of the legacy settings, one step and scale per module."""
    values = V1_HEADER_PREFIX.unpack(data)
    template = _checked_template(values | LEGACY_SETTINGS)
    plain = values["bases"] == 1
    offset = V1_HEADER_PREFIX.size
    modules = template.modules()
    tensors, coefficients = {}, {}
    for name in present_modules(template):
        exponent, code, alpha_exponent, alpha_code = read(_MODULE, data, offset, "module coding")
        offset += _MODULE.size
        if exponent > MAX_EXPONENT or code == 0:
            raise BitstreamError(f"invalid quantization of module {name}")
        if plain != (alpha_code == 0) or alpha_exponent > MAX_EXPONENT:
            raise BitstreamError(f"invalid coefficient coding of module {name}")
        tensors |= dict.fromkeys(modules[name], ModuleCoding(exponent, code))
        coefficients[name] = ModuleCoding(alpha_exponent, alpha_code)
    header = ShardHeader(template, values["bases"], tensors, None if plain else coefficients, 1)
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
    check_zero_flags(member.zero_flags, member.arch(template))
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
