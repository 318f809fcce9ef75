"""The shard codec: many images, shared weight bases, one independently decodable record each.

``encode_shard(images) → EncodedShard(header, members)``; ``decode_member(header, member)``
needs the shard header and that member's record only. The decode path imports no training
code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import constriction
import numpy as np
import torch

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.image_format import ModuleCoding, present_modules
from inrstore.models.bitstream.parameters import (
    decode_parameters,
    encode_parameters,
    range_decoder,
    read_parameters,
    scale_code,
    write_parameters,
)
from inrstore.models.bitstream.shard_format import (
    MEMBER_VERSION,
    MemberHeader,
    ShardHeader,
    header_tag,
    pack_header,
    pack_member,
    unpack_header,
    unpack_member,
)
from inrstore.models.codec import as_pixels, fixed_entropy_model, render_decoded
from inrstore.models.core.architecture import Architecture, levels_for
from inrstore.models.core.mixture import member_modules
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.entropy.coding import CodingError, read_latents, write_latents
from inrstore.models.render import Crop, check_decode_memory

if TYPE_CHECKING:
    from inrstore.models.fit.presets import Preset
    from inrstore.models.fit.shard_quantization import QuantizedShard

__all__ = ["DecodedHeader", "EncodedShard", "decode_member", "encode_shard", "read_shard_header"]


@dataclass(frozen=True)
class EncodedShard:
    """A shard's bytes: the header every member needs and one record per image (in order).

    ``steps`` training steps took ``seconds``; ``warm_started`` says whether the bases started
    from the ``warm_start`` header passed in.
    """

    header: bytes
    members: list[bytes]
    steps: int
    seconds: float
    warm_started: bool

    def header_share(self) -> float:
        """Header bytes per member."""
        return len(self.header) / len(self.members)


@dataclass(frozen=True)
class DecodedHeader:
    """A parsed shard header with its integer bases (worth caching across member decodes)."""

    header: ShardHeader
    bases: dict[str, QuantizedModule]
    tag: int


def encode_shard(
    images: Sequence[np.ndarray],
    preset: str | Preset = "fast",
    quality: float = 50.0,
    *,
    bases: int = 4,
    batch_pixels: int = 1 << 20,
    device: str = "cpu",
    time_limit: float | None = None,
    seed: int = 0,
    warm_start: bytes | None = None,
    on_status: Callable | None = None,
) -> EncodedShard:
    """Compress ``images`` (``uint8 (H, W, C)``, any sizes, one channel count) as a shard.

    ``bases`` K is clipped to the number of images; K = 1 is plain weight sharing. A training
    step evaluates at most ``batch_pixels`` pixels (and at least one image).
    ``time_limit`` defaults to the sum of the preset's single-image budgets. ``warm_start``
    (an earlier shard's header) starts the bases from its own when the networks match, and
    then trains for :attr:`~inrstore.models.fit.shard_train.ShardSettings.warm_fraction` of
    the schedule.
    """
    from inrstore.models.fit.presets import preset as find_preset
    from inrstore.models.fit.presets import quality_to_lambda
    from inrstore.models.fit.shard_quantization import quantize_shard
    from inrstore.models.fit.shard_train import ShardSettings, fit_shard

    pixels = [as_pixels(image) for image in images]
    if not pixels:
        raise ValueError("a shard needs at least one image")
    channels = {p.shape[2] for p in pixels}
    if len(channels) > 1:
        raise ValueError(f"a shard's images must share one channel count, got {sorted(channels)}")
    chosen = find_preset(preset) if isinstance(preset, str) else preset
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    levels = max(levels_for(*p.shape[:2]) for p in pixels)
    template = Architecture(1, 1, channels.pop(), levels, min(chosen.arm_levels, levels - 1))
    settings = ShardSettings(bases=min(bases, len(pixels)), batch_pixels=batch_pixels)
    warm = _warm_bases(warm_start, template, settings.bases)
    if time_limit is None and chosen.crop_seconds is not None:
        time_limit = sum(chosen.time_budget(p.shape[0] * p.shape[1]) for p in pixels)
    fitted = fit_shard(
        pixels,
        template,
        chosen,
        quality_to_lambda(quality),
        settings,
        device=device,
        time_limit=time_limit,
        seed=seed,
        warm_bases=warm,
        on_status=on_status,
    )
    header, members = write_shard(quantize_shard(fitted, pixels))
    return EncodedShard(header, members, fitted.steps, fitted.seconds, warm is not None)


def write_shard(shard: QuantizedShard) -> tuple[bytes, list[bytes]]:
    """Entropy-code a quantized shard: its header and its member records."""
    names = present_modules(shard.template)
    flats = {name: shard.bases[name].flat() for name in names}
    codes = {name: scale_code(flat) for name, flat in flats.items()}
    alpha_codes = None
    if shard.coefficients is not None:
        alpha_codes = {
            name: scale_code(np.concatenate([member[name] for member in shard.coefficients]))
            for name in names
        }
    header = ShardHeader(
        shard.template,
        shard.basis_count,
        {name: ModuleCoding(shard.bases[name].exponent, codes[name]) for name in names},
        None
        if alpha_codes is None
        else {
            name: ModuleCoding(shard.coefficient_exponents[name], alpha_codes[name])
            for name in names
        },
    )
    header_bytes = pack_header(
        header, encode_parameters([(flats[name], codes[name]) for name in names])
    )
    tag = header_tag(header_bytes)
    members = []
    for index, grids in enumerate(shard.grids):
        height, width = grids[0].shape
        arch = replace(shard.template, height=height, width=width)
        encoder = constriction.stream.queue.RangeEncoder()
        if shard.coefficients is not None:
            own = shard.coefficients[index]
            write_parameters(encoder, [(own[name], alpha_codes[name]) for name in names])
        model = fixed_entropy_model(arch, shard.member_modules(index), shard.prior_indices[index])
        zero_flags = write_latents(encoder, model, grids, MEMBER_VERSION)
        member = MemberHeader(height, width, shard.prior_indices[index], zero_flags, tag)
        members.append(pack_member(member, encoder.get_compressed().tobytes()))
    return header_bytes, members


def read_shard_header(data: bytes) -> DecodedHeader:
    """Validate a shard header and decode its bases."""
    header, section = unpack_header(data)
    names = present_modules(header.template)
    flats = decode_parameters(
        section,
        [
            (count, header.modules[name].scale_code)
            for count, name in zip(header.basis_counts(), names, strict=True)
        ],
    )
    shapes = header.template.modules()
    bases = {
        name: QuantizedModule.from_flat(
            {key: (header.bases, *shape) for key, shape in shapes[name].items()},
            flat,
            header.modules[name].exponent,
        )
        for name, flat in zip(names, flats, strict=True)
    }
    return DecodedHeader(header, bases, header_tag(bytes(data)))


def decode_member(
    header: bytes | DecodedHeader,
    member: bytes,
    scale: float = 1.0,
    crop: Crop | None = None,
) -> np.ndarray:
    """Decode one member from its shard header (bytes, or parsed once with
    :func:`read_shard_header`) and its own record: ``uint8 (round(s H), round(s W), C)``."""
    shared = header if isinstance(header, DecodedHeader) else read_shard_header(header)
    template = shared.header.template
    own, payload = unpack_member(member, template)
    if own.header_tag != shared.tag:
        raise BitstreamError("this member record does not belong to this shard header")
    arch = own.arch(template)
    check_decode_memory(arch, scale)
    decoder = range_decoder(payload, "shard member payload")
    coefficients = None
    exponents = None
    if shared.header.coefficients is not None:
        names = present_modules(template)
        codes = [(shared.header.bases, shared.header.coefficients[n].scale_code) for n in names]
        coefficients = dict(zip(names, read_parameters(decoder, codes), strict=True))
        exponents = {name: shared.header.coefficients[name].exponent for name in names}
    modules = member_modules(shared.bases, coefficients, exponents)
    try:
        grids = read_latents(
            decoder,
            fixed_entropy_model(arch, modules, own.prior_index),
            own.zero_flags,
            own.version,
        )
    except CodingError as err:
        raise BitstreamError(str(err)) from None
    return render_decoded(arch, modules, grids, scale, crop)


def _warm_bases(
    warm_start: bytes | None, template: Architecture, bases: int
) -> dict[str, torch.Tensor] | None:
    """Float bases ``(K, *shape)`` of an earlier header whose networks match, else None."""
    if warm_start is None:
        return None
    earlier = read_shard_header(warm_start)
    if earlier.header.template != template or earlier.header.bases != bases:
        return None
    result: dict[str, torch.Tensor] = {}
    for module in earlier.bases.values():
        result |= module.dequantized()
    return result
