"""The single-image codec: ``encode_image`` → bytes → ``decode_image`` at any scale or crop.

The decode path imports no training code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.image_format import (
    FORMAT_VERSION,
    LATENT_CODING,
    MAX_TENSOR_SCALE_CODE,
    ImageHeader,
    ModuleCoding,
    pack_image,
    tensor_names,
    unpack_image,
)
from inrstore.models.bitstream.parameters import (
    decode_parameters,
    encode_parameters,
    scale_code,
)
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mlp import Params
from inrstore.models.core.quantized import QuantizedModule, entropy_layers, select_members
from inrstore.models.entropy.coding import (
    CodingError,
    FixedEntropyModel,
    decode_latents,
    encode_latents,
)
from inrstore.models.metrics import bpp, mse
from inrstore.models.render import RENDER_BLOCK, Crop, check_decode_memory, output_size, render

if TYPE_CHECKING:
    from inrstore.models.fit.candidates import EncodeJob
    from inrstore.models.fit.presets import Preset

__all__ = ["BitstreamError", "Crop", "decode_image", "encode_image", "read_header"]

RENDERING_MODULES = ("upsampling", "synthesis")
"""The modules that turn decoded grids into pixels (the others only code the grids)."""


def as_pixels(image: np.ndarray) -> np.ndarray:
    """Validate an image array: ``uint8`` ``(H, W)`` or ``(H, W, C)`` with C in {1, 3, 4}."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"expected uint8 pixels of shape (H, W, C) with C in 1/3/4, got {pixels.dtype} "
            f"{pixels.shape}"
        )
    if min(pixels.shape[:2]) < 1:
        raise ValueError("the image is empty")
    return np.ascontiguousarray(pixels)


def encode_image(
    image: np.ndarray,
    preset: str | Preset = "default",
    quality: float = 50.0,
    *,
    device: str = "cpu",
    time_limit: float | None = None,
    seed: int = 0,
    on_status: Callable | None = None,
    warm_start: bytes | None = None,
) -> bytes:
    """Compress ``image`` (``uint8 (H, W, C)``) into an inrstore bitstream.

    ``quality`` in [0, 100] sets the rate-distortion trade-off. ``preset`` (a name or a
    :class:`~inrstore.models.fit.presets.Preset`) sets the effort and the decoder's entropy
    model. ``time_limit`` (seconds; default: the preset's budget for this image size)
    compresses the training schedule. ``on_status`` receives
    :class:`~inrstore.models.fit.train.TrainingStatus` updates. Where the preset asks for
    several candidates (:func:`~inrstore.models.fit.candidates.candidate_count`), seeds
    ``seed``, ``seed + 1``, … are encoded at once and the best kept; ``on_status`` follows
    the first. ``warm_start`` (an earlier bitstream) starts each network module whose
    shapes match from that bitstream's, the others from the offline sets.
    """
    from inrstore.models.fit.candidates import EncodeJob, best_candidate, candidate_count
    from inrstore.models.fit.presets import preset as find_preset

    chosen = find_preset(preset) if isinstance(preset, str) else preset
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    job = EncodeJob(as_pixels(image), chosen, quality, device, time_limit, warm_start=warm_start)
    count = candidate_count(job)
    if count == 1:
        return encode_seed(job, seed, on_status)
    return best_candidate(encode_seed, rate_distortion, job, range(seed, seed + count), on_status)


def encode_seed(job: EncodeJob, seed: int, on_status: Callable | None = None) -> bytes:
    """One encode of ``job`` from ``seed``: train, quantize, entropy-code."""
    from inrstore.models.core.architecture import image_architecture, levels_for
    from inrstore.models.fit.finest_grid import zero_levels_for
    from inrstore.models.fit.network_quantization import quantize_networks, round_latents
    from inrstore.models.fit.presets import quality_to_lambda
    from inrstore.models.fit.train import fit_image

    pixels, chosen = job.pixels, job.preset
    lam = quality_to_lambda(job.quality)
    height, width, channels = pixels.shape
    zero_levels = zero_levels_for(chosen, pixels, lam, levels_for(height, width))
    arch = image_architecture(
        height,
        width,
        channels,
        chosen.arm_levels,
        zero_levels,
        chosen.wide_arm,
        chosen.prefilter,
        chosen.compact_synthesis,
    )
    time_limit = job.time_limit
    if time_limit is None:
        time_limit = chosen.time_budget(height * width)
    start = None if job.warm_start is None else read_networks(job.warm_start)[1]
    fitted = fit_image(
        pixels,
        arch,
        chosen,
        lam,
        device=job.device,
        time_limit=time_limit,
        seed=seed,
        on_status=on_status,
        zero_levels=zero_levels,
        start=None if start is None else _dequantized(start),
    )
    modules, prior_index = quantize_networks(fitted, pixels, chosen.weight_deadzones)
    grids = [grid.numpy().astype(np.int64) for grid in round_latents(fitted.grids)]
    return write_bitstream(arch, modules, prior_index, grids)


def rate_distortion(job: EncodeJob, data: bytes) -> float:
    """D + λR of a bitstream of ``job``: the mean squared error of its decode in [0, 1]
    units plus λ × its bits per pixel (what training minimizes)."""
    from inrstore.models.fit.presets import quality_to_lambda

    error = mse(job.pixels, decode_image(data)) / 255.0**2
    return error + quality_to_lambda(job.quality) * bpp(len(data), *job.pixels.shape[:2])


def write_bitstream(
    arch: Architecture,
    modules: dict[str, QuantizedModule],
    prior_index: int,
    grids: list[np.ndarray],
) -> bytes:
    """Entropy-code quantized networks and integer grids (finest first) into bytes."""
    model = fixed_entropy_model(arch, modules, prior_index)
    latents, zero_flags = encode_latents(model, grids, LATENT_CODING[FORMAT_VERSION])
    integers = {
        name: value for module in modules.values() for name, value in module.integers.items()
    }
    exponents = {
        name: module.exponent_of(name) for module in modules.values() for name in module.integers
    }
    names = tensor_names(arch)
    flats = [integers[name].reshape(-1).numpy() for name in names]
    codes = [scale_code(flat, MAX_TENSOR_SCALE_CODE) for flat in flats]
    parameters = encode_parameters(list(zip(flats, codes, strict=True)))
    tensors = {
        name: ModuleCoding(exponents[name], code) for name, code in zip(names, codes, strict=True)
    }
    return pack_image(ImageHeader(arch, prior_index, zero_flags, tensors), parameters, latents)


def fixed_entropy_model(
    arch: Architecture, modules: dict[str, QuantizedModule], prior_index: int
) -> FixedEntropyModel:
    """The exact integer entropy model of an image with these quantized networks."""
    layers = entropy_layers(arch, modules)
    return FixedEntropyModel(arch, layers["aru1"], layers["aru2"], layers["arm"], prior_index)


def read_header(data: bytes) -> ImageHeader:
    """Validate ``data`` and return its header."""
    return unpack_image(data)[0]


def _dequantized(modules: dict[str, QuantizedModule]) -> dict[str, torch.Tensor]:
    return {
        name: value for module in modules.values() for name, value in module.dequantized().items()
    }


def read_networks(data: bytes) -> tuple[ImageHeader, dict[str, QuantizedModule], bytes]:
    """Header, quantized modules and the undecoded latent section of a bitstream."""
    header, parameter_bytes, latent_bytes = unpack_image(data)
    arch = header.arch
    shapes = arch.parameter_shapes()
    codings = header.tensors
    names = tensor_names(arch)
    flats = decode_parameters(
        parameter_bytes,
        [(int(np.prod(shapes[name])), codings[name].scale_code) for name in names],
    )
    integers = {
        name: torch.from_numpy(flat).reshape(shapes[name])
        for name, flat in zip(names, flats, strict=True)
    }
    modules = {
        module: QuantizedModule.with_tensor_steps(
            {name: integers[name] for name in module_shapes},
            {name: codings[name].exponent for name in module_shapes},
        )
        for module, module_shapes in arch.modules().items()
    }
    return header, modules, latent_bytes


def decode_latent_state(
    data: bytes, scale: float = 1.0
) -> tuple[ImageHeader, dict[str, QuantizedModule], list]:
    """Header, quantized modules and integer grids (float64 arrays, finest first).

    Raises ``ValueError`` before decoding when rendering at ``scale`` would exceed the decode
    memory budget (:func:`~inrstore.models.render.check_decode_memory`).
    """
    header, modules, latent_bytes = read_networks(data)
    arch = header.arch
    check_decode_memory(arch, scale)
    grids = decode_grids(
        arch, modules, header.prior_index, latent_bytes, header.zero_flags, header.version
    )
    return header, modules, grids


def decode_grids(
    arch: Architecture,
    modules: dict[str, QuantizedModule],
    prior_index: int,
    latent_bytes: bytes,
    zero_flags: int,
    version: int,
) -> list[np.ndarray]:
    """Integer grids (float64 arrays, finest first) from the latent section of a bitstream of
    format ``version`` (its latent coding)."""
    try:
        model = fixed_entropy_model(arch, modules, prior_index)
        return decode_latents(model, latent_bytes, zero_flags, LATENT_CODING[version])
    except CodingError as err:
        raise BitstreamError(str(err)) from None


def render_decoded(
    arch: Architecture,
    modules: dict[str, QuantizedModule],
    grids: list[np.ndarray],
    scale: float,
    crop: Crop | None,
) -> np.ndarray:
    """Pixels of decoded networks and grids at ``scale``, optionally inside ``crop``."""
    float_grids = [torch.from_numpy(grid.astype(np.float32)) for grid in grids]
    return render(arch, _rendering_params(modules), float_grids, scale, crop)


def render_members(
    arch: Architecture,
    modules: dict[str, QuantizedModule],
    grids: Sequence[list[np.ndarray]],
    scale: float,
    crop: Crop | None,
) -> list[np.ndarray]:
    """:func:`render_decoded` of several members of ``arch``, in order; ``modules``' integers
    carry a leading member dimension ``(members, *shape)`` (one shard's step exponents).
    Members whose output is below :data:`~inrstore.models.render.RENDER_BLOCK` pixels render
    together, that many pixels at a time (one band), each bit for bit as alone; larger members
    one by one."""
    rows, cols = output_size(arch, scale)
    together = max(1, RENDER_BLOCK // (rows * cols))
    images: list[np.ndarray] = []
    for start in range(0, len(grids), together):
        stop = min(len(grids), start + together)
        if stop - start == 1:
            own = select_members(modules, start)
            images.append(render_decoded(arch, own, grids[start], scale, crop))
            continue
        stacked = _rendering_params(select_members(modules, slice(start, stop)))
        float_grids = [
            torch.from_numpy(
                np.stack([grids[i][level] for i in range(start, stop)]).astype(np.float32)
            )
            for level in range(len(grids[start]))
        ]
        images.extend(render(arch, stacked, float_grids, scale, crop))
    return images


def _rendering_params(modules: dict[str, QuantizedModule]) -> Params:
    """The float parameters the rendering reads: the synthesis's and the pre-filters' (with
    the modules' member dimension, if they have one)."""
    return {
        name: value
        for module in RENDERING_MODULES
        if module in modules
        for name, value in modules[module].dequantized().items()
    }


def decode_image(data: bytes, scale: float = 1.0, crop: Crop | None = None) -> np.ndarray:
    """Decode bytes into ``uint8 (round(s H), round(s W), C)``, or the part inside ``crop``.

    Raises :class:`BitstreamError` for bytes that are not a valid inrstore image and
    ``ValueError`` for a scale outside [1/16, 8] or a crop outside the image.
    """
    header, modules, grids = decode_latent_state(data, scale)
    return render_decoded(header.arch, modules, grids, scale, crop)
