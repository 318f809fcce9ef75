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


def position_code(size: int, count: int) -> torch.Tensor:
    """Integer encodings ``floor(256 a / size) - 128`` of the indices ``a = 0 … count - 1``
    of an axis of ``size`` cells, ``(count,)`` (int64)."""
    codes = torch.div(torch.arange(count) * ENCODING_ONE, size, rounding_mode="floor")
    return codes - ENCODING_ONE // 2


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
        """An integer encoding (:func:`position_code`, :func:`level_code`) in this unit."""
        return code * self.unit / ENCODING_ONE


def aru_pass1_first_layer(
    coarse: CoarseContext, shape: tuple[int, int], weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """First layer of ARU pass 1 before its activation: ``weightᵀ @ features + bias`` for
    every pixel of a grid of ``shape``, ``(hidden, h*w)``.

    ``weight`` is ``(ARU_PASS1_INPUTS, hidden)`` and ``bias`` ``(hidden,)``, both already in
    the caller's unit. The features of pixel ``(a, b)`` are the 3×3 neighbourhood of its parent
    cell ``(a//2, b//2)`` in the coarser grid (zero outside), the parent's (μ, log σ), the
    position encodings of ``a`` and ``b`` and the level encoding. Eleven of the fourteen depend
    on the parent cell only, so their product is taken once per coarse cell (4× fewer) and
    repeated; the position terms are one row and one column vector. Integer inputs and weights
    give the same exact sums as the full product.
    """
    height, width = shape
    coarse_height, coarse_width = coarse.values.shape
    padded = F.pad(coarse.values[None, None], (1, 1, 1, 1))[0, 0]
    cells = torch.stack(
        [
            padded[1 + dr : 1 + dr + coarse_height, 1 + dc : 1 + dc + coarse_width]
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        ]
        + [coarse.mu, coarse.log_scale],
        dim=0,
    ).reshape(11, -1)
    hidden = weight.shape[1]
    per_cell = (weight[:11].T @ cells).reshape(hidden, coarse_height, 1, coarse_width, 1)
    dtype = weight.dtype
    # Codes of the rows 0 … 2·hc − 1 (the last one past an odd height is cropped below).
    rows = position_code(height, 2 * coarse_height) * coarse.encoding(1)
    cols = position_code(width, 2 * coarse_width) * coarse.encoding(1)
    level = coarse.encoding(level_code(coarse.level, coarse.levels))
    row_term = weight[11][:, None] * rows.to(dtype)[None, :]
    col_term = weight[12][:, None] * cols.to(dtype)[None, :] + (weight[13] * level + bias)[:, None]
    fine = (
        per_cell
        + row_term.reshape(hidden, coarse_height, 2, 1, 1)
        + col_term.reshape(hidden, 1, 1, coarse_width, 2)
    ).reshape(hidden, 2 * coarse_height, 2 * coarse_width)[:, :height, :width]
    return fine.reshape(hidden, height * width)


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
