"""The training upsampler (dense interpolation matrices) against the decoder's sampler."""

from __future__ import annotations

import pytest
import torch

from inrstore.models.core.architecture import grid_shape
from inrstore.models.core.upsample import pixel_centres, sample_grids, upsample_full


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
