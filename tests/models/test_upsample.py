"""The training upsampler (dense interpolation matrices) against the decoder's sampler."""

from __future__ import annotations

import pytest
import torch

from inrstore.models.core.architecture import grid_shape
from inrstore.models.core.upsample import (
    GridSampler,
    cubic_taps,
    identity_prefilter,
    pixel_centres,
    prefilter_grids,
    prefilter_name,
    prefilter_rows,
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


def _direct_prefilter(grid: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """(grid + k ⊗ k * grid) / 2 cell by cell, border cells repeated outwards."""
    kernel = torch.cat([half, half[:-1].flip(0)])
    height, width = grid.shape
    out = torch.zeros_like(grid)
    for y in range(height):
        for x in range(width):
            total = 0.0
            for i in range(7):
                for j in range(7):
                    row, col = min(max(y + i - 3, 0), height - 1), min(max(x + j - 3, 0), width - 1)
                    total += kernel[i] * kernel[j] * grid[row, col]
            out[y, x] = 0.5 * (grid[y, x] + total)
    return out


def test_prefilter_is_the_identity_at_first_and_a_band_equals_the_whole_grid_filtered() -> None:
    generator = torch.Generator().manual_seed(3)
    grid = torch.randn(9, 5, generator=generator)
    assert torch.equal(prefilter_rows(grid, identity_prefilter()), grid)
    half = torch.randn(4, generator=generator)
    whole = prefilter_rows(grid, half)
    torch.testing.assert_close(whole, _direct_prefilter(grid, half), rtol=0, atol=1e-5)
    for first, last in [(0, 1), (2, 6), (7, 9)]:
        torch.testing.assert_close(prefilter_rows(grid, half, first, last), whole[first:last])


@pytest.mark.parametrize("scale", [0.37, 1.0, 2.5])
def test_sampling_prefiltered_grids_reads_only_the_rows_it_needs(scale: float) -> None:
    height, width = 45, 70
    generator = torch.Generator().manual_seed(4)
    grids = [
        torch.randn(grid_shape(height, width, level), generator=generator) for level in range(5)
    ]
    halves = {prefilter_name(level): torch.randn(4, generator=generator) for level in range(4)}
    filtered = prefilter_grids(grids, halves)
    assert torch.equal(filtered[4], grids[4])  # the coarsest grid has no pre-filter
    assert not torch.allclose(filtered[0], grids[0])
    rows, cols = max(1, round(height * scale)), max(1, round(width * scale))
    row_centres, col_centres = pixel_centres(0, rows, scale), pixel_centres(0, cols, scale)
    expected = sample_grids(filtered, row_centres, col_centres)
    sampler = GridSampler(grids, row_centres[5:], col_centres, halves)
    torch.testing.assert_close(sampler.rows(0, rows - 5), expected[:, 5:], rtol=0, atol=1e-5)
