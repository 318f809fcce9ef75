"""Sampling latent grids at arbitrary pixel centres with separable bicubic interpolation.

A grid at level ``l`` covers the image with cells of ``2**l`` original pixels. An output
pixel whose centre lies at ``y`` (in original pixel units) reads grid ``l`` at the continuous
index ``y / 2**l - 0.5``. Interpolation is separable, four taps per output row and column, so the
cost is ``O(4 × R × C)`` per grid for ``R × C`` output pixels: crops and small scales are cheap,
and the same code serves training (scale 1) and any-scale decoding.
"""

from __future__ import annotations

import functools

import torch

CUBIC_A = -0.75
"""Keys' cubic convolution parameter (the value PyTorch and OpenCV use)."""


def _cubic(t: torch.Tensor) -> torch.Tensor:
    t = t.abs()
    near = ((CUBIC_A + 2) * t - (CUBIC_A + 3)) * t * t + 1
    far = ((CUBIC_A * t - 5 * CUBIC_A) * t + 8 * CUBIC_A) * t - 4 * CUBIC_A
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def cubic_taps(positions: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The four bicubic taps of each continuous index, border-replicated.

    Returns ``(index, weight)``, both ``(4, len(positions))``; ``index`` is in ``[0, size)``.
    """
    base = torch.floor(positions)
    offsets = torch.arange(-1, 3, dtype=positions.dtype)[:, None]
    index = base[None, :] + offsets
    weight = _cubic(positions[None, :] - index)
    return index.clamp(0, size - 1).long(), weight


def pixel_centres(start: int, count: int, scale: float, dtype=torch.float32) -> torch.Tensor:
    """Original-unit centres of output pixels ``start … start+count-1`` at ``scale``."""
    return (torch.arange(start, start + count, dtype=torch.float64) + 0.5).div(scale).to(dtype)


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
    planes = []
    for level, grid in enumerate(grids):
        step = float(2**level)
        rows = _interpolate(grid, row_centres / step - 0.5, dim=0)
        planes.append(_interpolate(rows, col_centres / step - 0.5, dim=1))
    return torch.stack(planes, dim=0)


def _interpolate(grid: torch.Tensor, positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Bicubic interpolation of ``grid`` along ``dim`` at continuous ``positions``."""
    size = grid.shape[dim]
    if torch.equal(positions, positions.round()):  # on the grid points: a plain gather
        return grid.index_select(dim, positions.long().clamp(0, size - 1))
    index, weight = cubic_taps(positions, size)
    weight = weight.to(grid.dtype)
    shape = (-1, 1) if dim == 0 else (1, -1)
    return sum(weight[k].reshape(shape) * grid.index_select(dim, index[k]) for k in range(4))


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
    positions = pixel_centres(0, length, 1.0) / float(2**level) - 0.5
    index, weight = cubic_taps(positions, size)
    matrix = torch.zeros(length, size, dtype=torch.float32)
    matrix.scatter_add_(1, index.T, weight.T)
    return matrix.to(device)
