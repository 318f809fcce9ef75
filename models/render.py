"""Rendering a decoded image at any scale, optionally a crop, from grids and synthesis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mlp import Params
from inrstore.models.core.synthesis import synthesize
from inrstore.models.core.upsample import GridSampler, pixel_centres

MIN_SCALE, MAX_SCALE = 1.0 / 16.0, 8.0
MAX_OUTPUT_PIXELS = 400_000_000

DECODE_MEMORY_BUDGET = 4 << 30
"""Bytes a decode may use at most; a member or bitstream that would need more is refused."""
LATENT_BYTES = 32
"""Peak decode bytes per image pixel besides the output (float64 grids, their float32
copies, column interpolations, bands): 17–21 measured on 4–16 Mpx members whose grids were
all zero; the rest is room for the contexts of coded grids. With the 4 GiB budget every
image up to the 100 Mpx loader limit decodes at scale 1."""

RENDER_BLOCK = 65536
"""Pixels per band of rows rendered at once (plus the synthesis's margin rows on each side
for its 3×3 convolutions): a band's activations stay in the CPU's cache, about 2× faster than
one pass."""


@dataclass(frozen=True)
class Crop:
    """A box in original pixel coordinates: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Crop:
        """``"x,y,w,h"`` → Crop; ``ValueError`` on anything else."""
        parts = text.split(",")
        if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise ValueError(f"crop must be x,y,w,h in pixels, not {text!r}")
        return cls(*(int(p) for p in parts))


def output_size(arch: Architecture, scale: float) -> tuple[int, int]:
    """``(rows, cols)`` of the full image at ``scale``: ``round(s H) × round(s W)``, ≥ 1."""
    return max(1, round(scale * arch.height)), max(1, round(scale * arch.width))


def _span(start: int, length: int, ratio: float, limit: int) -> tuple[int, int]:
    first = min(limit - 1, round(start * ratio))
    return first, max(1, min(limit - first, round(length * ratio)))


def render(
    arch: Architecture,
    params: Params,
    grids: list[torch.Tensor],
    scale: float = 1.0,
    crop: Crop | None = None,
) -> np.ndarray:
    """``uint8 (rows, cols, C)``: the image at ``scale``, or the part of it inside ``crop``.

    ``params``: the synthesis's parameters and the grids' pre-filters where ``arch`` has them.
    A batch of members of ``arch`` renders together, each bit for bit as alone: ``grids``
    ``(B, h_l, w_l)``, ``params`` stacked (a leading member dimension), ``uint8 (B, rows,
    cols, C)``.

    A crop returns exactly the matching block of the full rendering (up to float rounding):
    it is computed with the synthesis's margin (a pixel per 3×3 convolution,
    :attr:`~inrstore.models.core.synthesis.MixedSynthesis.margin`), and costs in proportion
    to the pixels it returns. Rows are rendered in bands of about :data:`RENDER_BLOCK`
    pixels, each with the same margin.
    """
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be in [1/16, 8], not {scale}")
    full_rows, full_cols = output_size(arch, scale)
    if full_rows * full_cols > MAX_OUTPUT_PIXELS:
        raise ValueError(f"output of {full_cols}x{full_rows} pixels is too large")
    if crop is None:
        crop = Crop(0, 0, arch.width, arch.height)
    if crop.w <= 0 or crop.h <= 0 or crop.x < 0 or crop.y < 0:
        raise ValueError(
            f"crop {crop.x},{crop.y},{crop.w},{crop.h} must be non-empty and non-negative"
        )
    if crop.x + crop.w > arch.width or crop.y + crop.h > arch.height:
        raise ValueError(
            f"crop {crop.x},{crop.y},{crop.w},{crop.h} exceeds the {arch.width}x{arch.height} image"
        )
    row_ratio, col_ratio = full_rows / arch.height, full_cols / arch.width
    row0, rows = _span(crop.y, crop.h, row_ratio, full_rows)
    col0, cols = _span(crop.x, crop.w, col_ratio, full_cols)
    margin = arch.synthesis.margin
    top, left = max(0, row0 - margin), max(0, col0 - margin)
    bottom = min(full_rows, row0 + rows + margin)
    right = min(full_cols, col0 + cols + margin)
    row_centres = pixel_centres(top, bottom - top, row_ratio)
    col_centres = pixel_centres(left, right - left, col_ratio)
    band = max(1, RENDER_BLOCK // (right - left))
    batch = grids[0].shape[:-2]
    output = np.empty((*batch, rows, cols, arch.channels), np.uint8)
    with torch.no_grad():
        sampler = GridSampler(grids, row_centres, col_centres, params)
        for start in range(row0, row0 + rows, band):
            stop = min(row0 + rows, start + band)
            first, last = max(top, start - margin), min(bottom, stop + margin)
            latents = sampler.rows(first - top, last - top)
            image = synthesize(arch.synthesis, params, latents)
            block = image[..., start - first : stop - first, col0 - left : col0 - left + cols]
            pixels = (block.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1)
            output[..., start - row0 : stop - row0, :, :] = pixels.numpy()
    return output


def check_decode_memory(arch: Architecture, scale: float) -> None:
    """Refuse, before anything is allocated, a decode that would need more than
    :data:`DECODE_MEMORY_BUDGET` bytes (the latent grids at full size, the rendering bands
    and the ``uint8`` output; see :func:`decode_memory`)."""
    needed = decode_memory(arch, scale)
    if needed > DECODE_MEMORY_BUDGET:
        raise ValueError(
            f"decoding this {arch.width}x{arch.height} image at scale {scale:g} would need about "
            f"{needed / 2**30:.1f} GiB, over the {DECODE_MEMORY_BUDGET / 2**30:.0f} GiB decode "
            "budget (a smaller --scale or a --crop needs less)"
        )


def decode_memory(arch: Architecture, scale: float) -> int:
    """Peak bytes of decoding ``arch`` at ``scale``: :data:`LATENT_BYTES` per image pixel
    (the grids, their contexts and interpolations) plus ``channels`` per output pixel."""
    rows, cols = output_size(arch, scale)
    return LATENT_BYTES * arch.height * arch.width + arch.channels * rows * cols
