"""The training upsampler (dense interpolation matrices) against the decoder's sampler."""

from __future__ import annotations

import pytest
import torch

from inrstore.models.core.architecture import grid_shape
from inrstore.models.core.upsample import (
    GridSampler,
    cubic_taps,
    pixel_centres,
    sample_grids,
    upsample_full,
)


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (5, 130)])
def test_training_upsampling_equals_decoder_sampling_at_scale_one(size) -> None:
    height, width = size
    generator = torch.Generator().manual_seed(1)
    grids = [
        torch.randn(grid_shape(height, width, level), generator=generator) * 4 for level in range(5)
    ]
    training = upsample_full(grids, height, width)
    decoding = sample_grids(grids, pixel_centres(0, height, 1.0), pixel_centres(0, width, 1.0))
    assert training.shape == (5, height, width)
    torch.testing.assert_close(training, decoding, rtol=0, atol=1e-4)
    # Gradients reach every cell of every grid that some pixel reads.
    leaves = [grid.clone().requires_grad_() for grid in grids]
    upsample_full(leaves, height, width).sum().backward()
    assert all(leaf.grad is not None and leaf.grad.abs().sum() > 0 for leaf in leaves)


def _separable_reference(grids, row_centres, col_centres) -> torch.Tensor:
    """Every output pixel as the sum of its 4 × 4 bicubic taps, one grid at a time."""
    planes = []
    for level, grid in enumerate(grids):
        step = float(2**level)
        row_index, row_weight = cubic_taps(row_centres / step - 0.5, grid.shape[0])
        col_index, col_weight = cubic_taps(col_centres / step - 0.5, grid.shape[1])
        plane = torch.zeros(len(row_centres), len(col_centres))
        for i in range(4):
            for j in range(4):
                taps = grid[row_index[i]][:, col_index[j]]
                plane += row_weight[i][:, None] * col_weight[j][None, :] * taps
        planes.append(plane)
    return torch.stack(planes)


@pytest.mark.parametrize("scale", [1 / 16, 0.37, 1.0, 1.5, 8.0])
def test_any_band_of_any_scale_matches_the_bicubic_definition(scale: float) -> None:
    height, width = 45, 70
    generator = torch.Generator().manual_seed(2)
    grids = [
        torch.randn(grid_shape(height, width, level), generator=generator) for level in range(5)
    ]
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
    row_centres, col_centres = pixel_centres(0, rows, scale), pixel_centres(0, cols, scale)
    expected = _separable_reference(grids, row_centres, col_centres)
    sampler = GridSampler(grids, row_centres, col_centres)
    torch.testing.assert_close(sampler.rows(0, rows), expected, rtol=0, atol=1e-5)
    middle = slice(rows // 3, rows // 3 + max(1, rows // 4))
    band = sampler.rows(middle.start, middle.stop)
    torch.testing.assert_close(band, expected[:, middle], rtol=0, atol=1e-5)
