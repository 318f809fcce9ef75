"""Inputs of the entropy networks: the MARM upsampler (ARU) and the pixel ARM.

Each builder works in a chosen *unit*: ``unit=1`` for the float training path (latents in
integer steps, encodings in [-0.5, 0.5)), ``unit=2**FRACTION_BITS`` for the fixed-point coding
path, where every input is an integer. Position and level encodings are defined as integers
first, so both paths see the same numbers up to that scale.

Grids are ``(h, w)`` tensors; a coarser grid has shape ``(ceil(h/2), ceil(w/2))``. Builders
return ``(features, h*w)`` (channels first, the layout of :func:`~inrstore.models.core.mlp.
mlp_forward`) in row-major pixel order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inrstore.models.core.mlp import FRACTION_BITS, MLPShape

ENCODING_ONE = 2**FRACTION_BITS
"""Integer value of 1.0 in an encoding."""

ARU_PASS1_INPUTS = 9 + 2 + 3
"""3×3 coarse neighbourhood, coarse (μ, log σ), position (a, b) and level encodings."""

ARU_PASS2_INPUTS = 4 + 2 + 1
"""Four decoded anchor neighbours, pass-1 (μ, log σ), the coarse value."""

ARM_OFFSETS = tuple((dr, dc) for dr in (-2, -1, 0) for dc in range(-2, 3) if dr < 0 or dc < 0)
"""Causal neighbourhood of the pixel ARM (12 positions in a 5-wide, 3-high window)."""

ARM_MAX_RIGHT = max(dc for dr, dc in ARM_OFFSETS if dr < 0)
"""Largest look-ahead to the right on earlier rows; wavefront of pixel (r, c) is
``(ARM_MAX_RIGHT + 1) * r + c``, so every context pixel lies on an earlier wavefront."""

ARM_INPUTS = len(ARM_OFFSETS) + 4
"""Causal neighbours, the coarse value, coarse (μ, log σ) and the level encoding."""


def aru_shapes(hidden: int) -> tuple[MLPShape, MLPShape]:
    """MLP shapes of the two ARU passes (each outputs μ and log σ)."""
    return (
        MLPShape((ARU_PASS1_INPUTS, hidden, hidden, 2)),
        MLPShape((ARU_PASS2_INPUTS, hidden, 2)),
    )


def arm_shape(hidden: int) -> MLPShape:
    """MLP shape of the pixel ARM (outputs μ and log σ)."""
    return MLPShape((ARM_INPUTS, hidden, hidden, 2))


def upsample_nearest(coarse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(hc, wc)`` → ``(height*width,)``: each fine pixel reads its parent cell."""
    fine = coarse.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)
    return fine[:height, :width].reshape(-1)


def _neighbourhood(coarse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    padded = F.pad(coarse[None, None], (1, 1, 1, 1))[0, 0]
    hc, wc = coarse.shape
    columns = [
        upsample_nearest(padded[1 + dr : 1 + dr + hc, 1 + dc : 1 + dc + wc], height, width)
        for dr in (-1, 0, 1)
        for dc in (-1, 0, 1)
    ]
    return torch.stack(columns, dim=0)


def position_codes(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer encodings ``floor(256 a / h) - 128`` and ``floor(256 b / w) - 128``, ``(h*w,)``."""
    rows = torch.div(torch.arange(height) * ENCODING_ONE, height, rounding_mode="floor")
    cols = torch.div(torch.arange(width) * ENCODING_ONE, width, rounding_mode="floor")
    half = ENCODING_ONE // 2
    return (
        (rows - half)[:, None].expand(height, width).reshape(-1),
        (cols - half)[None, :].expand(height, width).reshape(-1),
    )


def level_code(level: int, levels: int) -> int:
    """Integer encoding of ``2 level / L``."""
    return (2 * ENCODING_ONE * level) // levels


@dataclass(frozen=True)
class CoarseContext:
    """What a grid's entropy model knows from the level above it.

    ``values`` is the decoded coarser grid in ``unit`` × latent steps, ``mu`` and
    ``log_scale`` its (μ, log σ) already in the path's unit; ``level`` is the grid being
    coded (0 = finest) out of ``levels``.
    """

    values: torch.Tensor
    mu: torch.Tensor
    log_scale: torch.Tensor
    level: int
    levels: int
    unit: float

    def encoding(self, code: int) -> float:
        """An integer encoding (:func:`position_codes`, :func:`level_code`) in this unit."""
        return code * self.unit / ENCODING_ONE


def aru_pass1_inputs(coarse: CoarseContext, shape: tuple[int, int]) -> torch.Tensor:
    """Pass-1 features for every pixel of a grid of ``shape``: ``(ARU_PASS1_INPUTS, h*w)``."""
    height, width = shape
    rows, cols = position_codes(height, width)
    dtype = coarse.values.dtype
    level = coarse.encoding(level_code(coarse.level, coarse.levels))
    return torch.cat(
        [
            _neighbourhood(coarse.values, height, width),
            upsample_nearest(coarse.mu, height, width)[None],
            upsample_nearest(coarse.log_scale, height, width)[None],
            (rows * coarse.encoding(1)).to(dtype)[None],
            (cols * coarse.encoding(1)).to(dtype)[None],
            torch.full((1, height * width), level, dtype=dtype),
        ],
        dim=0,
    )


def aru_pass2_inputs(grid: torch.Tensor, pass1: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Pass-2 features ``(ARU_PASS2_INPUTS, h*w)``.

    ``grid`` ``(h, w)`` needs correct values at anchors only (the four neighbours of a
    non-anchor are anchors); ``pass1`` is ``(2, h*w)``; ``coarse`` the coarser grid.
    """
    height, width = grid.shape
    padded = F.pad(grid[None, None], (1, 1, 1, 1))[0, 0]
    neighbours = [
        padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width].reshape(-1)
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
    ]
    return torch.cat(
        [torch.stack(neighbours, dim=0), pass1, upsample_nearest(coarse, height, width)[None]],
        dim=0,
    )


def anchor_mask(height: int, width: int) -> torch.Tensor:
    """Boolean ``(h*w,)``: True on the checkerboard anchors, where ``(a + b)`` is even."""
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    return ((rows + cols) % 2 == 0).reshape(-1)


def arm_inputs(grid: torch.Tensor, coarse: CoarseContext) -> torch.Tensor:
    """ARM features for every pixel, from the whole (known) grid: ``(ARM_INPUTS, h*w)``."""
    height, width = grid.shape
    padded = F.pad(grid[None, None], (2, 2, 2, 0))[0, 0]
    neighbours = [
        padded[2 + dr : 2 + dr + height, 2 + dc : 2 + dc + width].reshape(-1)
        for dr, dc in ARM_OFFSETS
    ]
    causal = torch.stack(neighbours, dim=0)
    return torch.cat([causal, arm_coarse_inputs(coarse, (height, width))], dim=0)


def arm_coarse_inputs(coarse: CoarseContext, shape: tuple[int, int]) -> torch.Tensor:
    """The non-causal part of the ARM features, ``(4, h*w)``."""
    height, width = shape
    level = coarse.encoding(level_code(coarse.level, coarse.levels))
    return torch.stack(
        [
            upsample_nearest(coarse.values, height, width),
            upsample_nearest(coarse.mu, height, width),
            upsample_nearest(coarse.log_scale, height, width),
            torch.full((height * width,), level, dtype=coarse.values.dtype),
        ],
        dim=0,
    )
