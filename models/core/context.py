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
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from inrstore.models.core.mlp import FRACTION_BITS, MLPShape

ENCODING_ONE = 2**FRACTION_BITS
"""Integer value of 1.0 in an encoding."""

ARU_PASS1_INPUTS = 9 + 2 + 3
"""3×3 coarse neighbourhood, coarse (μ, log σ), position (a, b) and level encodings."""

ARU_PASS2_INPUTS = 4 + 2 + 1
"""Four decoded anchor neighbours, two pass-1 features (μ, log σ), the coarse value."""

ARU_PASS2_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""The four neighbours of a non-anchor, all anchors, in feature order (up, down, left, right)."""

ARM_COARSE_INPUTS = 4
"""The coarse value, coarse (μ, log σ) and the level encoding."""


@dataclass(frozen=True)
class ArmWindow:
    """The pixel ARM's causal neighbourhood: the ``rows`` rows above a pixel and its own row,
    ``radius`` columns either side, of which the pixels before it (raster order).

    A pixel's wavefront is ``(radius + 1) r + c``: every neighbour lies on an earlier one (the
    farthest right, ``(r - 1, c + radius)``, on the one just before), so each wavefront is
    decoded in one vectorized step.
    """

    rows: int
    radius: int

    @functools.cached_property
    def offsets(self) -> tuple[tuple[int, int], ...]:
        """``(dr, dc)`` of the neighbours, in feature order (row by row, left to right)."""
        columns = range(-self.radius, self.radius + 1)
        return tuple((dr, dc) for dr in range(-self.rows, 1) for dc in columns if dr < 0 or dc < 0)

    @functools.cached_property
    def inputs(self) -> int:
        """Width of the ARM's input: the neighbours and :data:`ARM_COARSE_INPUTS`."""
        return len(self.offsets) + ARM_COARSE_INPUTS


ARM_WINDOWS = {12: ArmWindow(rows=2, radius=2), 24: ArmWindow(rows=3, radius=3)}
"""The ARM neighbourhoods by their number of neighbours: 12 (5 wide, 3 high; formats 1-4)
and 24 (7 wide, 4 high, Cool-chic's count)."""


def aru_shapes(hidden: int) -> tuple[MLPShape, MLPShape]:
    """MLP shapes of the two ARU passes (each outputs μ and log σ)."""
    return (
        MLPShape((ARU_PASS1_INPUTS, hidden, hidden, 2)),
        MLPShape((ARU_PASS2_INPUTS, hidden, 2)),
    )


def arm_shape(hidden: int, window: ArmWindow) -> MLPShape:
    """MLP shape of the pixel ARM (outputs μ and log σ)."""
    return MLPShape((window.inputs, hidden, hidden, 2))


def upsample_nearest(coarse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(hc, wc)`` → ``(height*width,)``: each fine pixel reads its parent cell."""
    fine = coarse.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)
    return fine[:height, :width].reshape(-1)


def position_code(size: int, count: int, device: torch.device) -> torch.Tensor:
    """Integer encodings ``floor(256 a / size) - 128`` of the indices ``a = 0 … count - 1``
    of an axis of ``size`` cells, ``(count,)`` (int64, on ``device``)."""
    codes = torch.div(
        torch.arange(count, device=device) * ENCODING_ONE, size, rounding_mode="floor"
    )
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
        rows = position_code(height, 2 * coarse_height, weight.device) * coarse.encoding(1)
        cols = position_code(width, 2 * coarse_width, weight.device) * coarse.encoding(1)
        level = coarse.encoding(level_code(coarse.level, coarse.levels))
        row_term = weight[11][:, None] * rows.to(dtype)[None, :]
        col_term = (
            weight[12][:, None] * cols.to(dtype)[None, :] + (weight[13] * level + bias)[:, None]
        )
        return cls(per_cell, row_term, col_term, height, width)

    def rows(
        self, start: int = 0, stop: int | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The layer's output for the grid rows ``start … stop - 1`` (``start`` even),
        ``(hidden, (stop - start) * width)`` in row-major pixel order.

        ``out`` (no autograd), ``(hidden, n, 2, 2 * coarse width)`` with ``n`` at least the
        band's coarse rows, receives the sums: a decoder reusing it for every band skips an
        allocation per band (pass 1 of kodim23's finest grid: 77 → 69 ms, one thread). The
        result is then a view of it where the grid's width is even.
        """
        stop, first, last, rows = self._band(start, stop)
        hidden, _, coarse_width = self.per_cell.shape
        count = last - first
        # Cells repeated along their row, plus the column terms; then both rows of each cell.
        # Broadcasting along whole rows keeps the loops (and the backward's sums) long: 1.6×
        # faster than one five-dimensional sum with inner dimensions of size 2.
        cells = self.per_cell[:, first:last].repeat_interleave(2, dim=-1)
        cells += self.col_term[:, None]
        if out is None:
            fine = cells[:, :, None] + rows
        else:
            fine = torch.add(cells[:, :, None], rows, out=out[:, :count])
        fine = fine.reshape(hidden, 2 * count, 2 * coarse_width)[:, : stop - start, : self.width]
        return fine.reshape(hidden, (stop - start) * self.width)

    def anchor_rows(
        self, start: int = 0, stop: int | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The layer's output at the anchors of the grid rows ``start … stop - 1`` (``start``
        even), ``(hidden, anchors in the band)`` in row-major order: what format 3 evaluates.

        Coarse cell ``(i, j)`` holds two anchors, ``(2i, 2j)`` and ``(2i + 1, 2j + 1)``, so
        each is its cell's product plus one row term and one column term: half of
        :meth:`rows`' sums, with no cell repeated. ``out`` (no autograd), ``(hidden, n, 2,
        coarse width)`` with ``n`` at least the band's coarse rows, receives the sums; the
        result is then a view of it where the grid's width and the band's height are even.
        """
        stop, first, last, rows = self._band(start, stop)
        hidden, _, coarse_width = self.per_cell.shape
        count = last - first
        # Column terms of the even columns 2j (the even rows' anchors), then of the odd ones.
        columns = self.col_term.reshape(hidden, coarse_width, 2).transpose(1, 2)[:, None]
        cells = self.per_cell[:, first:last, None, :]
        if out is None:
            sums = cells + columns + rows
        else:
            sums = torch.add(cells, columns, out=out[:, :count])
            sums += rows
        sums = sums.reshape(hidden, 2 * count, coarse_width)[:, : stop - start]
        if self.width % 2:  # odd rows have no anchor in the last cell column
            keep = torch.ones(stop - start, coarse_width, dtype=torch.bool, device=sums.device)
            keep[1::2, -1] = False
            return sums[:, keep]
        return sums.reshape(hidden, -1)

    def _band(self, start: int, stop: int | None) -> tuple[int, int, int, torch.Tensor]:
        """The band's last row + 1 (clipped to the grid), its coarse rows ``first … last - 1``
        and their row terms ``(hidden, last - first, 2, 1)``."""
        stop = self.height if stop is None else min(stop, self.height)
        if start % 2:
            raise ValueError("a band of rows must start on an even row")
        first, last = start // 2, -(-stop // 2)
        hidden = self.row_term.shape[0]
        return stop, first, last, self.row_term[:, 2 * first : 2 * last].reshape(hidden, -1, 2, 1)


Half = Literal["anchors", "others"]
"""One half of a checkerboard (the coder writes the anchors first)."""


@dataclass(frozen=True)
class Checkerboard:
    """Index tensors (int64) of one grid shape's checkerboard, shared through
    :func:`checkerboard`'s cache: never modify them.

    ``anchors`` ``(na,)`` and ``others`` ``(no,)`` are flat pixel indices in row-major order,
    anchors where ``(a + b)`` is even: the order in which the coder writes the two ARU passes.
    ``neighbours`` ``(4 no,)`` indexes the grid padded by one zero cell on every side,
    ``ARU_PASS2_NEIGHBOURS`` one after the other; ``parents`` ``(no,)`` the coarser grid.
    :meth:`take`, :meth:`put` and :meth:`merge` split numpy arrays into the two halves and
    back, the coder's view of the same order.
    """

    anchors: torch.Tensor
    others: torch.Tensor
    neighbours: torch.Tensor
    parents: torch.Tensor
    width: int

    def take(self, values: np.ndarray, half: Half) -> np.ndarray:
        """The entries of ``values`` ``(..., h*w)`` at the ``half``'s pixels, in row-major
        order: ``(..., na)`` or ``(..., no)``, a new array."""
        views = self._parity_views(values, half)
        if views is None:
            return np.take(values, self._index(half), axis=-1)
        even_rows, odd_rows = views
        result = np.empty(
            (*even_rows.shape[:-2], even_rows.shape[-2] + odd_rows.shape[-2], even_rows.shape[-1]),
            dtype=values.dtype,
        )
        result[..., 0::2, :] = even_rows
        result[..., 1::2, :] = odd_rows
        return result.reshape(*result.shape[:-2], -1)

    def put(self, values: np.ndarray, half: Half, entries: np.ndarray) -> None:
        """Write ``entries`` ``(..., na)`` (or ``(..., no)``) into the ``half``'s places of
        ``values`` ``(..., h*w)``, in place."""
        views = self._parity_views(values, half)
        if views is None:
            values[..., self._index(half)] = entries
            return
        even_rows, odd_rows = views
        rows = entries.reshape(*entries.shape[:-1], -1, self.width // 2)
        even_rows[...] = rows[..., 0::2, :]
        odd_rows[...] = rows[..., 1::2, :]

    def merge(self, anchor_entries: np.ndarray, other_entries: np.ndarray) -> np.ndarray:
        """``(..., na)`` and ``(..., no)`` entries → ``(..., h*w)`` in pixel order."""
        values = np.empty((*anchor_entries.shape[:-1], len(self.anchors) + len(self.others)))
        self.put(values, "anchors", anchor_entries)
        self.put(values, "others", other_entries)
        return values

    def _index(self, half: Half) -> np.ndarray:
        return (self.anchors if half == "anchors" else self.others).numpy()

    def _parity_views(self, values: np.ndarray, half: Half) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the width is even and ``values`` C-contiguous, :func:`half_views` of
        ``values``; None otherwise: the callers then index with :attr:`anchors` /
        :attr:`others` (on kodim23's finest grid, gathering the anchors' (μ, log σ) that way
        took 7.7 ms, the views 0.7 ms)."""
        if self.width % 2 or not values.flags.c_contiguous:
            return None
        return half_views(values, self.width, half)


def half_views(values, width: int, half: Half):
    """Strided views of ``half`` of ``values`` ``(..., h*w)`` (a C-contiguous numpy array or
    torch tensor, ``w`` even): its entries on even rows and on odd rows, each
    ``(..., rows, w/2)``. Row ``r``'s anchors sit in the columns of parity ``r % 2``."""
    pairs = values.reshape(*values.shape[:-1], -1, width // 2, 2)
    even_column = 0 if half == "anchors" else 1
    return pairs[..., 0::2, :, even_column], pairs[..., 1::2, :, 1 - even_column]


@functools.lru_cache(maxsize=64)
def checkerboard(
    height: int, width: int, device: torch.device = torch.device("cpu")
) -> Checkerboard:
    """The :class:`Checkerboard` of a ``height × width`` grid, built once on the CPU and kept
    on ``device``."""
    all_rows, all_cols = pixel_coordinates(height, width)
    parity = (all_rows + all_cols) % 2
    anchors, others = torch.nonzero(parity == 0)[:, 0], torch.nonzero(parity)[:, 0]
    rows, cols = all_rows[others], all_cols[others]
    neighbours = padded_neighbour_index(rows + 1, cols + 1, width + 2, ARU_PASS2_NEIGHBOURS)
    neighbours = neighbours.reshape(-1)
    parents = (rows // 2) * ((width + 1) // 2) + cols // 2
    indices = (index.to(device) for index in (anchors, others, neighbours, parents))
    return Checkerboard(*indices, width)


def aru_pass2_inputs(
    grid: torch.Tensor, pass1: torch.Tensor, coarse: torch.Tensor, *, own_pass1: bool = False
) -> torch.Tensor:
    """Pass-2 features of the non-anchors, ``(ARU_PASS2_INPUTS, no)`` in row-major order: the
    four neighbours in ``grid`` ``(h, w)`` (zero outside; all anchors, so ``grid`` needs
    correct values at anchors only), two pass-1 features and the value of the parent cell in
    ``coarse`` ``(ceil(h/2), ceil(w/2))``.

    The pass-1 features are the means of the four neighbours' pass-1 (μ, log σ), counting
    zero outside, from ``pass1`` ``(2, na)`` at the anchors (format 3: pass 1 runs at the
    anchors only). In fixed point they are quarter integers: the next layer's sums stay exact
    (below 2**24 × 2**15 × 7 with two more fractional bits, far under 2**53). With
    ``own_pass1`` (formats 1 and 2) they are the pixel's own pass-1 (μ, log σ), from
    ``pass1`` ``(2, h*w)``.

    Where the width is even, ``grid``, ``pass1`` and ``coarse`` may carry the same leading
    batch dimensions (several grids at once; the result is then ``(..., ARU_PASS2_INPUTS,
    no)``), each row holds ``w/2`` anchors and ``w/2`` others and every
    neighbour is a shifted slice of the anchors' planes
    (:func:`_write_neighbours_of_others`); the decoder takes that path (kodim23's finest grid:
    10 ms against 21 ms by gathering, float64, one thread). Odd widths, and training, gather
    with :class:`Checkerboard`'s index lists: under autograd the slice writes cost more than
    the gathers (forward and backward on kodim23's finest grid: 31 against 25 ms; 10 against
    5 ms on a 256×256 grid).
    """
    *batch, height, width = grid.shape
    if width % 2 or grid.requires_grad or pass1.requires_grad:
        if batch:
            raise ValueError("a batch of grids needs an even width and no autograd")
        return _aru_pass2_inputs_by_index(grid, pass1, coarse, own_pass1)
    features = grid.new_empty(ARU_PASS2_INPUTS, *batch, height, width // 2)
    anchors = _half_planes(grid.reshape(-1, height, width), "anchors")
    _write_neighbours_of_others(features[:4], anchors.reshape(*batch, height, width // 2))
    if own_pass1:
        own = _half_planes(pass1.reshape(-1, height, width), "others")
        features[4:6] = own.reshape(*batch, 2, height, width // 2).movedim(-3, 0)
    else:
        around = features.new_empty(4, 2, *batch, height, width // 2)
        planes = pass1.reshape(*batch, 2, height, width // 2).movedim(-3, 0)
        _write_neighbours_of_others(around, planes)
        features[4:6] = around.sum(dim=0) * 0.25
    features[6] = coarse.repeat_interleave(2, dim=-2)[..., :height, :]
    return features.reshape(ARU_PASS2_INPUTS, *batch, -1).movedim(0, -2)


def _half_planes(values: torch.Tensor, half: Half) -> torch.Tensor:
    """``(C, h, w)`` with ``w`` even → the ``half``'s entries, ``(C, h, w/2)``: row ``r``
    holds its anchors (or others) in column order."""
    channels, height, width = values.shape
    even_rows, odd_rows = half_views(values.reshape(channels, -1), width, half)
    planes = values.new_empty(channels, height, width // 2)
    planes[:, 0::2] = even_rows
    planes[:, 1::2] = odd_rows
    return planes


def _write_neighbours_of_others(out: torch.Tensor, anchors: torch.Tensor) -> None:
    """Write the up, down, left and right neighbours of every non-anchor into ``out``
    ``(4, ..., h, w/2)``, zero outside the grid, from the anchors' planes ``(..., h, w/2)``
    (of a grid of even width ``w``).

    The non-anchor ``k`` of row ``r`` has the anchors ``k`` of rows ``r ± 1`` above and below
    it; beside it, the anchors ``k`` and ``k + 1`` of its row (even rows) or ``k - 1`` and
    ``k`` (odd rows). Slices only: no index lists, no intermediate copies.
    """
    # One select per plane: unbinding would give views that autograd cannot write into.
    up, down, left, right = (out[index] for index in range(4))
    up[..., :1, :] = 0.0
    up[..., 1:, :] = anchors[..., :-1, :]
    down[..., -1:, :] = 0.0
    down[..., :-1, :] = anchors[..., 1:, :]
    left[..., 0::2, :] = anchors[..., 0::2, :]
    left[..., 1::2, :1] = 0.0
    left[..., 1::2, 1:] = anchors[..., 1::2, :-1]
    right[..., 1::2, :] = anchors[..., 1::2, :]
    right[..., 0::2, -1:] = 0.0
    right[..., 0::2, :-1] = anchors[..., 0::2, 1:]


def _aru_pass2_inputs_by_index(
    grid: torch.Tensor, pass1: torch.Tensor, coarse: torch.Tensor, own_pass1: bool
) -> torch.Tensor:
    """:func:`aru_pass2_inputs` for any width, by gathering with index lists."""
    height, width = grid.shape
    board = checkerboard(height, width, grid.device)
    neighbours = _gather_neighbours(board, grid[None])[0]
    parents = coarse.reshape(-1).index_select(0, board.parents)
    if own_pass1:
        pass1_features = pass1.index_select(1, board.others)
    else:
        spread = pass1.new_zeros(2, height * width).index_copy(1, board.anchors, pass1)
        around = _gather_neighbours(board, spread.reshape(2, height, width))
        pass1_features = around.sum(dim=1) * 0.25
    return torch.cat([neighbours, pass1_features, parents[None]])


def _gather_neighbours(board: Checkerboard, planes: torch.Tensor) -> torch.Tensor:
    """``(C, h, w)`` → the four neighbours of every non-anchor, ``(C, 4, no)`` in
    ``ARU_PASS2_NEIGHBOURS`` order, zero outside the grid."""
    channels = planes.shape[0]
    padded = F.pad(planes, (1, 1, 1, 1)).reshape(channels, -1)
    return padded.index_select(1, board.neighbours).reshape(channels, 4, -1)


def arm_inputs(grid: torch.Tensor, coarse: CoarseContext, window: ArmWindow) -> torch.Tensor:
    """ARM features for every pixel, from the whole (known) grid: ``(window.inputs, h*w)``.

    On a GPU the causal neighbours are one gather from the zero-padded grid, one kernel each
    way where a slice per neighbour costs a launch or two each: on an H200, `best`'s training
    went from 27.7 to 37.1 iterations/s on a whole Kodak image. On a CPU the slices stay: there
    the gather's backward pass is slower (1 thread, a 512×768 grid: 107 against 72 ms).
    """
    height, width = grid.shape
    padded = F.pad(grid[None, None], (window.radius, window.radius, window.rows, 0))[0, 0]
    gather = arm_neighbours_by_index if grid.is_cuda else arm_neighbours_by_slices
    causal = gather(padded, window)
    return torch.cat([causal, arm_coarse_inputs(coarse, (height, width))], dim=0)


def arm_neighbours_by_slices(padded: torch.Tensor, window: ArmWindow) -> torch.Tensor:
    """``(len(window.offsets), h*w)``: each pixel's causal neighbours, one slice of the
    ``(h + rows, w + 2 radius)`` zero-padded grid per neighbour."""
    top, side = window.rows, window.radius
    height, width = padded.shape[0] - top, padded.shape[1] - 2 * side
    neighbours = [
        padded[top + dr : top + dr + height, side + dc : side + dc + width].reshape(-1)
        for dr, dc in window.offsets
    ]
    return torch.stack(neighbours, dim=0)


def arm_neighbours_by_index(padded: torch.Tensor, window: ArmWindow) -> torch.Tensor:
    """:func:`arm_neighbours_by_slices` as one gather."""
    height, width = padded.shape[0] - window.rows, padded.shape[1] - 2 * window.radius
    return padded.reshape(-1)[arm_neighbour_index(height, width, window, padded.device)]


@functools.lru_cache(maxsize=64)
def arm_neighbour_index(
    height: int, width: int, window: ArmWindow, device: torch.device
) -> torch.Tensor:
    """``(len(window.offsets), h*w)``: where each pixel's neighbours sit in the row-major
    ``h + rows`` × ``w + 2 radius`` zero-padded grid (built once on the CPU, kept on
    ``device``)."""
    rows, cols = pixel_coordinates(height, width)
    stride = width + 2 * window.radius
    index = padded_neighbour_index(rows + window.rows, cols + window.radius, stride, window.offsets)
    return index.to(device)


def pixel_coordinates(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The row and the column of every pixel of a ``height × width`` grid, each ``(h*w,)``
    in row-major order, on the CPU."""
    rows, cols = torch.meshgrid(
        torch.arange(height, device="cpu"), torch.arange(width, device="cpu"), indexing="ij"
    )
    return rows.reshape(-1), cols.reshape(-1)


def padded_neighbour_index(
    rows: torch.Tensor, cols: torch.Tensor, stride: int, offsets: tuple[tuple[int, int], ...]
) -> torch.Tensor:
    """``(len(offsets), n)``: the flat, row-major indices of the neighbours at ``offsets``
    ``(dr, dc)`` of the ``n`` pixels at ``rows``, ``cols`` ``(n,)`` (already shifted by the
    padding) in a padded grid whose rows are ``stride`` long."""
    centres = rows * stride + cols
    shifts = torch.tensor([dr * stride + dc for dr, dc in offsets], device="cpu")
    return centres[None, :] + shifts[:, None]


def arm_coarse_inputs(coarse: CoarseContext, shape: tuple[int, int]) -> torch.Tensor:
    """The non-causal part of the ARM features, ``(ARM_COARSE_INPUTS, h*w)``."""
    height, width = shape
    level = coarse.encoding(level_code(coarse.level, coarse.levels))
    return torch.stack(
        [
            upsample_nearest(coarse.values, height, width),
            upsample_nearest(coarse.mu, height, width),
            upsample_nearest(coarse.log_scale, height, width),
            torch.full(
                (height * width,), level, dtype=coarse.values.dtype, device=coarse.values.device
            ),
        ],
        dim=0,
    )
