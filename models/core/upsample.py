"""Sampling latent grids at arbitrary pixel centres with separable bicubic interpolation.

A grid at level ``l`` covers the image with cells of ``2**l`` original pixels. An output
pixel whose centre lies at ``y`` (in original pixel units) reads grid ``l`` at the continuous
index ``y / 2**l - 0.5``. Interpolation is separable, four taps per output row and column, so the
cost is ``O(4 × R × C)`` per grid for ``R × C`` output pixels: crops and small scales are cheap,
and the same code serves training (scale 1) and any-scale decoding. Where the architecture
has them (format 6), each grid but the coarsest first passes through its learned pre-filter
(:func:`prefilter_rows`), at the grid's own resolution and only over the rows read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CUBIC_A = -0.75
"""Keys' cubic convolution parameter (the value PyTorch and OpenCV use)."""


def _cubic(t: torch.Tensor) -> torch.Tensor:
    t = t.abs()
    near = ((CUBIC_A + 2) * t - (CUBIC_A + 3)) * t * t + 1
    far = ((CUBIC_A * t - 5 * CUBIC_A) * t + 8 * CUBIC_A) * t - 4 * CUBIC_A
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


PREFILTER_TAPS = 7
"""Taps of each grid's learned pre-filter along each axis (symmetric: 4 free values)."""
PREFILTER_HALF = PREFILTER_TAPS // 2 + 1
PREFILTER_PREFIX = "ups."


def prefilter_name(level: int) -> str:
    """Parameter name of grid ``level``'s pre-filter: its ``(PREFILTER_HALF,)`` outer half,
    centre tap last."""
    return f"{PREFILTER_PREFIX}{level}"


def identity_prefilter() -> torch.Tensor:
    """The half-kernel of the identity pre-filter (a unit centre tap)."""
    half = torch.zeros(PREFILTER_HALF)
    half[-1] = 1.0
    return half


def prefilter_rows(
    grid: torch.Tensor, half: torch.Tensor, first: int = 0, last: int | None = None
) -> torch.Tensor:
    """Rows ``first … last - 1`` of ``grid`` ``(h, w)`` after its learned pre-filter:
    ``(grid + k ⊗ k * grid) / 2`` with ``k`` the symmetric 7-tap kernel of ``half`` and the
    grid's border cells repeated outwards, ``(last - first, w)``.

    With ``k`` the unit tap (the initial value) it is the identity. Half the sum of the grid
    and a separable filtering of it: a learned smoothing or sharpening of each grid at its own
    resolution before the interpolation, as Cool-chic's pre-concatenation filters. A band of
    rows costs in proportion to its size and equals the same rows of the whole grid filtered.
    """
    height = grid.shape[0]
    last = height if last is None else last
    margin = PREFILTER_TAPS // 2
    rows = torch.arange(first - margin, last + margin, device=grid.device).clamp(0, height - 1)
    band = grid.index_select(0, rows)[None, None]
    band = F.pad(band, (margin, margin, 0, 0), mode="replicate")
    kernel = torch.cat([half, half[:-1].flip(0)]).to(grid.dtype)
    filtered = F.conv2d(band, kernel.view(1, 1, -1, 1))
    filtered = F.conv2d(filtered, kernel.view(1, 1, 1, -1))[0, 0]
    return 0.5 * (grid[first:last] + filtered)


def prefilter_grids(
    grids: list[torch.Tensor], halves: dict[str, torch.Tensor], first_level: int = 0
) -> list[torch.Tensor]:
    """``grids`` (finest first, the first at ``first_level``) with each grid's pre-filter
    applied where ``halves`` holds one (every grid but the coarsest, when the architecture
    has pre-filters; none otherwise)."""
    return [
        prefilter_rows(grid, halves[name]) if (name := prefilter_name(level)) in halves else grid
        for level, grid in enumerate(grids, start=first_level)
    ]


CACHED_TAPS_BELOW = 4096
"""Taps of fewer CPU positions than this are cached (:func:`cubic_taps`): decoding many small
images of one size at one scale computes the same taps for each."""


def cubic_taps(positions: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The four bicubic taps of each continuous index, border-replicated.

    Returns ``(index, weight)``, both ``(4, len(positions))``; ``index`` is in ``[0, size)``.
    Short CPU position lists share cached results: never modify them.
    """
    if positions.device.type == "cpu" and len(positions) < CACHED_TAPS_BELOW:
        return _cached_taps(positions.numpy().tobytes(), positions.dtype, size)
    return _taps(positions, size)


@functools.lru_cache(maxsize=256)
def _cached_taps(
    positions: bytes, dtype: torch.dtype, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return _taps(torch.frombuffer(bytearray(positions), dtype=dtype), size)


def _taps(positions: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    base = torch.floor(positions)
    offsets = torch.arange(-1, 3, dtype=positions.dtype, device=positions.device)[:, None]
    index = base[None, :] + offsets
    weight = _cubic(positions[None, :] - index)
    return index.clamp(0, size - 1).long(), weight


def pixel_centres(
    start: int,
    count: int,
    scale: float,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Original-unit centres of output pixels ``start … start+count-1`` at ``scale``, on
    ``device`` (default: the CPU)."""
    centres = torch.arange(start, start + count, dtype=torch.float64, device=device or "cpu")
    return (centres + 0.5).div(scale).to(dtype)


def sample_grids(
    grids: list[torch.Tensor], row_centres: torch.Tensor, col_centres: torch.Tensor
) -> torch.Tensor:
    """Sample every grid at the given centres.

    Args:
        grids: L tensors, grid ``l`` of shape ``(h_l, w_l)`` (finest first).
        row_centres, col_centres: ``(R,)`` and ``(C,)`` centres in original pixel units.

    Returns:
        ``(L, R, C)`` dense latent features (channels first).
    """
    return GridSampler(grids, row_centres, col_centres).rows(0, len(row_centres))


@dataclass(frozen=True)
class _SampledGrid:
    """One grid interpolated along its columns, with the taps of every output row."""

    columns: torch.Tensor
    """``(rows touched, C)``."""
    index: torch.Tensor
    """``(4, R)`` rows of ``columns`` each output row reads, or ``(1, R)`` with ``weight``
    None where every output row falls on a grid row."""
    weight: torch.Tensor | None


class GridSampler:
    """Every grid sampled at fixed output columns, for any band of output rows.

    Each grid is interpolated along its columns once, over the grid rows that some output row
    reads: ``(rows touched, C)``, about ``2**-l`` of the output's size at scale 1. A band of
    output rows is then one product per grid with a small matrix of row taps (a gather where
    the rows fall on grid points, as for the finest grid at scale 1; the four taps one by one
    where the band reads more grid rows than it has, as when downscaling), written straight
    into the output: one pass over the band per grid instead of a dozen. Costs stay
    ``O(R × C)`` per grid whatever the scale.
    """

    def __init__(
        self,
        grids: list[torch.Tensor],
        row_centres: torch.Tensor,
        col_centres: torch.Tensor,
        prefilters: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """``grids`` as for :func:`sample_grids`, or a batch of members' grids ``(B, h_l,
        w_l)``; ``row_centres`` ``(R,)`` are every output row that :meth:`rows` may ask for,
        ``col_centres`` ``(C,)`` the output columns; ``prefilters``: the grids' pre-filter
        halves by name (stacked, ``(B, PREFILTER_HALF)``, for a batch), where the image has
        them (only the rows read are filtered)."""
        prefilters = prefilters or {}
        self._grids: list[_SampledGrid] = []
        for level, grid in enumerate(grids):
            step = float(2**level)
            positions = row_centres / step - 0.5
            index, weight = cubic_taps(positions, grid.shape[-2])
            if torch.equal(positions, positions.round()):  # taps (0, 1, 0, 0)
                index, weight = index[1:2], None
            else:
                weight = weight.to(grid.dtype)
            first, last = int(index.min()), int(index.max()) + 1
            half = prefilters.get(prefilter_name(level))
            if half is None:
                band = grid[..., first:last, :]
            elif grid.dim() == 3:  # a batch: each member with its own pre-filter
                band = torch.stack(
                    [
                        prefilter_rows(*member, first, last)
                        for member in zip(grid, half, strict=True)
                    ]
                )
            else:
                band = prefilter_rows(grid, half, first, last)
            columns = _interpolate_columns(band, col_centres / step - 0.5)
            self._grids.append(_SampledGrid(columns, index - first, weight))

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """``(L, stop - start, C)``: the grids at output rows ``start … stop - 1`` (``(B, L,
        stop - start, C)`` for a batch)."""
        count = stop - start
        first_grid = self._grids[0].columns
        *batch, _, cols = first_grid.shape
        output = first_grid.new_empty(*batch, len(self._grids), count, cols)
        for level, grid in enumerate(self._grids):
            plane = output[..., level, :, :]
            index = grid.index[:, start:stop]
            if grid.weight is None:
                plane.copy_(grid.columns.index_select(-2, index[0]))
                continue
            weight = grid.weight[:, start:stop]
            first, last = int(index.min()), int(index.max()) + 1
            if last - first > count:  # downscaling: a dense matrix would cost more than taps
                torch.mul(grid.columns.index_select(-2, index[0]), weight[0, :, None], out=plane)
                for k in range(1, 4):
                    plane.addcmul_(grid.columns.index_select(-2, index[k]), weight[k, :, None])
                continue
            matrix = taps_matrix(index - first, weight, last - first)
            plane.copy_(torch.matmul(matrix, grid.columns[..., first:last, :]))
        return output


def _interpolate_columns(grid: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bicubic interpolation of ``grid`` ``(..., h, w)`` along its columns at continuous
    ``positions`` ``(C,)``: ``(..., h, C)``."""
    size = grid.shape[-1]
    if torch.equal(positions, positions.round()):  # on the grid points: a plain gather
        return grid.index_select(-1, positions.long().clamp(0, size - 1))
    index, weight = cubic_taps(positions, size)
    weight = weight.to(grid.dtype)
    return sum(weight[k] * grid.index_select(-1, index[k]) for k in range(4))


def upsample_full(grids: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """:func:`sample_grids` at scale 1 over the whole image, channels first: ``(L, H, W)``.

    Each coarse grid is upsampled as ``rows @ grid @ cols.T`` with dense interpolation
    matrices built from the same taps (:func:`interpolation_matrix`): two small matrix
    products whose backward pass is two more, several times faster on a CPU than a bicubic
    ``F.interpolate`` and its scatter-based gradient. Used for training.
    """
    planes = [grids[0][:height, :width]]
    for level, grid in enumerate(grids[1:], start=1):
        rows = interpolation_matrix(height, grid.shape[-2], level, grid.device)
        cols = interpolation_matrix(width, grid.shape[-1], level, grid.device)
        planes.append(rows @ grid @ cols.T)
    return torch.stack(planes, dim=0)


@functools.lru_cache(maxsize=64)
def interpolation_matrix(length: int, size: int, level: int, device: torch.device) -> torch.Tensor:
    """``(length, size)``: row ``i`` holds the bicubic taps with which output pixel ``i`` (at
    scale 1) reads a grid line of ``size`` cells at ``level``."""
    positions = pixel_centres(0, length, 1.0, device=device) / float(2**level) - 0.5
    return taps_matrix(*cubic_taps(positions, size), size)


def taps_matrix(index: torch.Tensor, weight: torch.Tensor, size: int) -> torch.Tensor:
    """Dense ``(n, size)`` matrix of the taps ``(index, weight)``, each ``(4, n)``: row ``i``
    sums ``weight[k, i]`` at column ``index[k, i]`` (border taps that repeat a cell add up)."""
    matrix = weight.new_zeros(index.shape[1], size)
    return matrix.scatter_add_(1, index.T, weight.T)
