"""The single-image bitstream (format version 7; versions 1 to 6 are still read).

Layout, big-endian::

    magic "INRS" | version u8 | fixed header fields (FIELDS) |
    versions 5 and 6: the ARM's neighbour count u8 (12 or 24) |
    versions 6 and 7: pre-filters u8 (0: none, 1: every grid but the coarsest) |
    version 7: synthesis kind u8 (the index in SYNTHESIS_KINDS: 0 mixed, 1 refine) |
    quantization: versions 4 to 7: per parameter tensor of each present module
        (upsampling, synthesis, aru, arm, tensors in architecture order):
        u16 = exponent << 11 | scale code;
        versions 1-3: per present module: exponent u8, scale code u16 |
    parameter section length u32 | latent section length u32 |
    parameter section | latent section | CRC-32 of everything before it (u32)

Every field is range-checked when written and when read; section lengths must add up to the
byte count; the checksum is verified before any section is decoded. Nothing is unpickled.

Versions 1 to 3 differ only in the latent section (the version number is the coding of
:mod:`~inrstore.models.entropy.coding`): version 1 used a ``QuantizedLaplace`` per symbol
everywhere, version 2 codes the coarsest grid and the ARU passes with cached tables, version 3
runs ARU pass 1 at the anchors only (pass 2 reads the anchors' pass-1 outputs). Version 4
codes its latents as version 3 does and gives every parameter tensor its own quantization
step and Laplace scale, where earlier versions had one of each per module (a module's
parameters then decode as tensors that all carry the module's step and scale, which codes
the same symbols with the same model). Version 5 adds the pixel ARM's neighbourhood
(:data:`~inrstore.models.core.context.ARM_WINDOWS`); earlier versions all have the
12-neighbour one. Version 6 adds the grids' learned pre-filters
(:attr:`~inrstore.models.core.architecture.Architecture.prefilter`), coded as the
``upsampling`` module before the synthesis; earlier versions have none. Version 7 names the
synthesis's kind (:data:`~inrstore.models.core.synthesis.SYNTHESIS_KINDS`); earlier versions
all have the ``mixed`` one. Earlier bitstreams decode unchanged; nothing needs migrating.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, fields

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.fields import Field, Prefix, read, seal, split_sections
from inrstore.models.core.architecture import MAX_LEVELS, Architecture
from inrstore.models.core.context import ARM_WINDOWS
from inrstore.models.core.synthesis import SYNTHESIS_KINDS
from inrstore.models.entropy.laplace import LOG_SCALE_MAX_INDEX, LOG_SCALE_MIN_INDEX

MAGIC = b"INRS"
FORMAT_VERSION = 7
OLDEST_VERSION = 1
MAX_PIXELS = 100_000_000
"""Largest image (H × W) a bitstream may declare."""
MAX_WIDTH = 64
"""Largest network width a bitstream may declare (bounds decoding work and memory)."""
MODULE_ORDER = ("upsampling", "synthesis", "aru", "arm")
MAX_EXPONENT = 24
TENSOR_CODINGS_VERSION = 4
"""The first version that quantizes and codes each parameter tensor on its own."""


@dataclass(frozen=True)
class SettingByte:
    """An architecture setting coded in one header byte after the fixed fields, from format
    ``version`` on; earlier versions have ``legacy``."""

    field: str
    version: int
    what: str
    codes: dict[int, object]
    """The setting of each byte value; any other byte is refused."""
    legacy: object

    def code(self, setting: object) -> int:
        """The byte of ``setting`` (every value an :class:`Architecture` accepts has one)."""
        return next(code for code, value in self.codes.items() if value == setting)


SETTING_BYTES = (
    SettingByte("arm_context", 5, "ARM neighbourhood", {n: n for n in ARM_WINDOWS}, 12),
    SettingByte("prefilter", 6, "pre-filter kind", {0: False, 1: True}, False),
    SettingByte("synthesis_kind", 7, "synthesis kind", dict(enumerate(SYNTHESIS_KINDS)), "mixed"),
)
"""The settings later versions added, in header order: the pixel ARM's neighbourhood
(version 5), the grids' pre-filters (version 6), the synthesis's kind (version 7)."""
LEGACY_SETTINGS = {setting.field: setting.legacy for setting in SETTING_BYTES}
"""The settings of every image of versions 1 to 4, and of every version-1 shard header."""
LATENT_CODING = {1: 1, 2: 2, 3: 3, 4: 3, 5: 3, 6: 3, 7: 3}
"""The latent coding (:mod:`~inrstore.models.entropy.coding`) of each format version."""
MAX_TENSOR_EXPONENT = 16
"""Largest step exponent of a tensor (format 4): with weight and bias exponents in
[0, 16] the fixed-point layers stay exact (:class:`~inrstore.models.core.mlp.FixedLayer`)."""
TENSOR_SCALE_CODE_BITS = 11
MAX_TENSOR_SCALE_CODE = 2**TENSOR_SCALE_CODE_BITS - 1

SIZE_FIELDS = (Field("height", "H", 1, 65535), Field("width", "H", 1, 65535))
NETWORK_FIELDS = (
    Field("channels", "B", 1, 4),
    Field("levels", "B", 1, MAX_LEVELS),
    Field("arm_levels", "B", 0, MAX_LEVELS - 1),
    Field("head_hidden", "B", 1, MAX_WIDTH),
    Field("features", "B", 1, MAX_WIDTH),
    Field("tail_hidden", "B", 1, MAX_WIDTH),
    Field("aru_hidden", "B", 1, MAX_WIDTH),
    Field("arm_hidden", "B", 1, MAX_WIDTH),
)
"""The architecture's fields other than the image size (shared by a shard's members)."""
LATENT_FIELDS = (
    Field("prior_index", "b", LOG_SCALE_MIN_INDEX, LOG_SCALE_MAX_INDEX),
    Field("zero_flags", "B", 0, 2**MAX_LEVELS - 1),
)
"""What an image's latent section needs besides the networks."""
PREFIX = Prefix(
    MAGIC, FORMAT_VERSION, "image", SIZE_FIELDS + NETWORK_FIELDS + LATENT_FIELDS, OLDEST_VERSION
)
_SETTING = struct.Struct(">B")
_MODULE = struct.Struct(">BH")
_TENSOR = struct.Struct(">H")
_SECTIONS = struct.Struct(">II")


@dataclass(frozen=True)
class ModuleCoding:
    """Quantization step exponent (step = 2**-exponent) and parameter scale code of a module
    or of one parameter tensor."""

    exponent: int
    scale_code: int


@dataclass(frozen=True)
class ImageHeader:
    """Everything the decoder needs besides the two sections."""

    arch: Architecture
    prior_index: int
    zero_flags: int
    tensors: dict[str, ModuleCoding]
    """Step and scale of every parameter tensor of the present modules, by name."""
    version: int = FORMAT_VERSION
    """The format version (written: always :data:`FORMAT_VERSION`)."""

    @property
    def modules(self) -> tuple[str, ...]:
        """Names of the modules the bitstream codes."""
        return present_modules(self.arch)


def arch_values(arch: Architecture) -> dict[str, int]:
    return {f.name: getattr(arch, f.name) for f in fields(Architecture)}


def checked_arch(values: dict[str, int]) -> Architecture:
    """The architecture named by validated header ``values`` (any size is taken from them)."""
    if values["height"] * values["width"] > MAX_PIXELS:
        raise BitstreamError(f"declared size {values['width']}x{values['height']} is too large")
    try:
        return Architecture(**{f.name: values[f.name] for f in fields(Architecture)})
    except ValueError as err:
        raise BitstreamError(f"invalid architecture in header ({err})") from None


def check_zero_flags(zero_flags: int, arch: Architecture) -> None:
    if zero_flags >> arch.levels:
        raise BitstreamError("zero flags name grids that do not exist")


@functools.cache
def present_modules(arch: Architecture) -> tuple[str, ...]:
    """The modules ``arch`` has, in the bitstream's order."""
    modules = arch.modules()
    return tuple(name for name in MODULE_ORDER if name in modules)


def pack_image(header: ImageHeader, parameters: bytes, latents: bytes) -> bytes:
    """Serialize a header and its two sections, with the checksum."""
    values = arch_values(header.arch) | {
        "prior_index": header.prior_index,
        "zero_flags": header.zero_flags,
    }
    parts = [
        PREFIX.pack(values),
        pack_settings(header.arch),
        pack_tensor_codings(header.arch, header.tensors),
        _SECTIONS.pack(len(parameters), len(latents)),
    ]
    return seal(b"".join([*parts, parameters, latents]))


def unpack_image(data: bytes) -> tuple[ImageHeader, bytes, bytes]:
    """Parse and validate bytes; raise :class:`BitstreamError` on anything wrong."""
    data = bytes(data)
    values = PREFIX.unpack(data)
    version = values["version"]
    settings, offset = read_settings(data, PREFIX.size, version)
    arch = checked_arch(values | settings)
    check_zero_flags(values["zero_flags"], arch)
    read_codings = read_tensor_codings if version >= TENSOR_CODINGS_VERSION else _module_codings
    tensors, offset = read_codings(data, offset, arch)
    lengths = read(_SECTIONS, data, offset, "section lengths")
    parameters, latents = split_sections(data, offset + _SECTIONS.size, lengths, "image")
    header = ImageHeader(arch, values["prior_index"], values["zero_flags"], tensors, version)
    return header, parameters, latents


def tensor_names(arch: Architecture) -> list[str]:
    """The parameter tensors of the present modules, in coding order."""
    modules = arch.modules()
    return [name for module in present_modules(arch) for name in modules[module]]


def pack_settings(arch: Architecture) -> bytes:
    """The setting bytes of :data:`SETTING_BYTES` for ``arch``."""
    return b"".join(_SETTING.pack(byte.code(getattr(arch, byte.field))) for byte in SETTING_BYTES)


def read_settings(data: bytes, offset: int, version: int) -> tuple[dict[str, object], int]:
    """The settings a header of format ``version`` declares at ``offset`` (the legacy value
    of those it predates) and the offset after them."""
    settings: dict[str, object] = {}
    for byte in SETTING_BYTES:
        settings[byte.field] = byte.legacy
        if version >= byte.version:
            (code,) = read(_SETTING, data, offset, byte.what)
            if code not in byte.codes:
                raise BitstreamError(f"unknown {byte.what} {code}")
            settings[byte.field] = byte.codes[code]
            offset += _SETTING.size
    return settings, offset


def pack_tensor_codings(arch: Architecture, tensors: dict[str, ModuleCoding]) -> bytes:
    """One packed u16 per parameter tensor of ``arch`` (format 4): exponent and scale code."""
    parts = []
    for name in tensor_names(arch):
        coding = tensors[name]
        if not 0 <= coding.exponent <= MAX_TENSOR_EXPONENT:
            raise ValueError(f"step exponent {coding.exponent} of {name} is out of range")
        if not 1 <= coding.scale_code <= MAX_TENSOR_SCALE_CODE:
            raise ValueError(f"scale code {coding.scale_code} of {name} is out of range")
        parts.append(_TENSOR.pack(coding.exponent << TENSOR_SCALE_CODE_BITS | coding.scale_code))
    return b"".join(parts)


def read_tensor_codings(
    data: bytes, offset: int, arch: Architecture
) -> tuple[dict[str, ModuleCoding], int]:
    """Format 4: one packed u16 per tensor. Returns the codings and the offset after them."""
    tensors = {}
    for name in tensor_names(arch):
        (packed,) = read(_TENSOR, data, offset, "tensor coding")
        exponent, code = packed >> TENSOR_SCALE_CODE_BITS, packed & MAX_TENSOR_SCALE_CODE
        if exponent > MAX_TENSOR_EXPONENT or code == 0:
            raise BitstreamError(f"invalid quantization of parameter {name}")
        tensors[name] = ModuleCoding(exponent, code)
        offset += _TENSOR.size
    return tensors, offset


def _module_codings(
    data: bytes, offset: int, arch: Architecture
) -> tuple[dict[str, ModuleCoding], int]:
    """Formats 1-3: one exponent and scale code per module, carried by each of its tensors."""
    tensors = {}
    modules = arch.modules()
    for module in present_modules(arch):
        exponent, code = read(_MODULE, data, offset, "module coding")
        if exponent > MAX_EXPONENT or code == 0:
            raise BitstreamError(f"invalid quantization of module {module}")
        tensors |= dict.fromkeys(modules[module], ModuleCoding(exponent, code))
        offset += _MODULE.size
    return tensors, offset
