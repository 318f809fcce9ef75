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

import functools
from dataclasses import dataclass

import numpy as np
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


@dataclass(frozen=True)
class Pass1FirstLayer:
    """First layer of ARU pass 1 before its activation, ``weightᵀ @ features + bias``,
    factored so that any band of rows costs in proportion to its pixels.

    The features of pixel ``(a, b)`` are the 3×3 neighbourhood of its parent cell
    ``(a//2, b//2)`` in the coarser grid (zero outside), the parent's (μ, log σ), the position
    encodings of ``a`` and ``b`` and the level encoding. Eleven of the fourteen depend on the
    parent cell only, so their product is taken once per coarse cell (4× fewer) and repeated;
    the position terms are one row and one column vector. Integer inputs and weights give the
    same exact sums as the full product.

    ``per_cell`` is ``(hidden, hc, wc)``, ``row_term`` ``(hidden, 2 hc)`` and ``col_term``
    ``(hidden, 2 wc)`` (it holds the level term and the bias); the grid is ``height × width``.
    """

    per_cell: torch.Tensor
    row_term: torch.Tensor
    col_term: torch.Tensor
    height: int
    width: int

    @classmethod
    def build(
        cls,
        coarse: CoarseContext,
        shape: tuple[int, int],
        weight: torch.Tensor,
        bias: torch.Tensor,
    ) -> Pass1FirstLayer:
        """``weight`` ``(ARU_PASS1_INPUTS, hidden)`` and ``bias`` ``(hidden,)`` are already in
        the caller's unit; ``shape`` is the grid being coded."""
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
        per_cell = (weight[:11].T @ cells).reshape(hidden, coarse_height, coarse_width)
        dtype = weight.dtype
        # Codes of the rows 0 … 2·hc − 1 (the last one past an odd height is cropped later).
        rows = position_code(height, 2 * coarse_height) * coarse.encoding(1)
        cols = position_code(width, 2 * coarse_width) * coarse.encoding(1)
        level = coarse.encoding(level_code(coarse.level, coarse.levels))
        row_term = weight[11][:, None] * rows.to(dtype)[None, :]
        col_term = (
            weight[12][:, None] * cols.to(dtype)[None, :] + (weight[13] * level + bias)[:, None]
        )
        return cls(per_cell, row_term, col_term, height, width)

    def rows(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The layer's output for the grid rows ``start … stop - 1`` (``start`` even),
        ``(hidden, (stop - start) * width)`` in row-major pixel order."""
        stop = self.height if stop is None else min(stop, self.height)
        if start % 2:
            raise ValueError("a band of rows must start on an even row")
        hidden, _, coarse_width = self.per_cell.shape
        first, last = start // 2, -(-stop // 2)
        count = last - first
        fine = (
            self.per_cell[:, first:last].reshape(hidden, count, 1, coarse_width, 1)
            + self.row_term[:, 2 * first : 2 * last].reshape(hidden, count, 2, 1, 1)
            + self.col_term.reshape(hidden, 1, 1, coarse_width, 2)
        ).reshape(hidden, 2 * count, 2 * coarse_width)[:, : stop - start, : self.width]
        return fine.reshape(hidden, (stop - start) * self.width)


ARU_PASS2_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""The four neighbours of a non-anchor, all anchors, in feature order (up, down, left, right)."""


def aru_pass2_inputs(grid: torch.Tensor, pass1: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Pass-2 features of every pixel, ``(ARU_PASS2_INPUTS, h*w)``: the four neighbours in
    ``grid`` ``(h, w)`` (zero outside), pass 1's ``(2, h*w)`` (μ, log σ) and the coarser grid's
    value at the parent cell. Only the non-anchors' columns are used; their neighbours are
    anchors, so ``grid`` needs correct values at anchors only."""
    height, width = grid.shape
    padded = F.pad(grid[None, None], (1, 1, 1, 1))[0, 0]
    neighbours = [
        padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width].reshape(-1)
        for dr, dc in ARU_PASS2_NEIGHBOURS
    ]
    parents = upsample_nearest(coarse, height, width)
    return torch.cat([torch.stack(neighbours, dim=0), pass1, parents[None]], dim=0)


def aru_pass2_inputs_at(
    grid: np.ndarray, pass1: np.ndarray, coarse: np.ndarray, pixels: np.ndarray
) -> np.ndarray:
    """The columns ``pixels`` (flat indices, ``(n,)``) of :func:`aru_pass2_inputs`, from
    numpy arrays, as float64 ``(ARU_PASS2_INPUTS, n)``: what the coder needs at the
    non-anchors, gathered without building the features of the other pixels."""
    height, width = grid.shape
    stride = width + 2
    padded = np.zeros((height + 2) * stride)
    padded.reshape(height + 2, stride)[1:-1, 1:-1] = grid
    rows, cols = np.divmod(pixels, width)
    centres = (rows + 1) * stride + cols + 1
    features = np.empty((ARU_PASS2_INPUTS, pixels.size))
    for k, (dr, dc) in enumerate(ARU_PASS2_NEIGHBOURS):
        np.take(padded, centres + (dr * stride + dc), out=features[k])
    features[4:6] = pass1[:, pixels]
    features[6] = coarse.reshape(-1)[(rows // 2) * coarse.shape[1] + cols // 2]
    return features


def anchor_mask(height: int, width: int) -> torch.Tensor:
    """Boolean ``(h*w,)``: True on the checkerboard anchors, where ``(a + b)`` is even."""
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    return ((rows + cols) % 2 == 0).reshape(-1)


@functools.lru_cache(maxsize=32)
def checkerboard(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the anchors (``(a + b)`` even) and of the other pixels, each in
    row-major order: the order in which the coder writes the two ARU passes. Read-only
    arrays, cached by shape."""
    parity = np.add.outer(np.arange(height), np.arange(width)).reshape(-1) % 2
    anchors, others = np.flatnonzero(parity == 0), np.flatnonzero(parity)
    anchors.flags.writeable = others.flags.writeable = False
    return anchors, others


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
