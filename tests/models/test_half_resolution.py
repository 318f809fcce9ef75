"""The half-resolution training phase: its view of the image and what it trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrstore.models.core.architecture import image_architecture
from inrstore.models.core.synthesis import synthesize
from inrstore.models.core.upsample import pixel_centres, sample_grids
from inrstore.models.fit.image_model import ImageModel, half_resolution, init_parameters
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.train import TrainingStatus, fit_image


def test_half_resolution_averages_blocks_and_the_cut_ones_at_the_border() -> None:
    target = torch.arange(15, dtype=torch.float32).reshape(1, 3, 5)
    half = half_resolution(target)
    expected = torch.tensor([[[3.0, 5.0, 6.5], [10.5, 12.5, 14.0]]])
    torch.testing.assert_close(half, expected)


@pytest.mark.parametrize("size", [(40, 56), (37, 53)])
def test_the_half_resolution_view_is_the_decoders_rendering_at_scale_one_half(size) -> None:
    height, width = size
    arch = image_architecture(height, width, 3, 0)
    generator = torch.Generator().manual_seed(3)
    params = init_parameters(arch, generator)
    params = {
        name: value + 0.1 * torch.randn(value.shape, generator=generator)
        for name, value in params.items()
    }
    grids = [torch.randn(shape, generator=generator) * 3 for shape in arch.grid_shapes()]
    view = ImageModel(arch, torch.device("cpu")).reconstruct_half(params, grids)
    assert view.shape == (3, (height + 1) // 2, (width + 1) // 2)
    # The decoder at scale 1/2 with the finest grid zeroed. Its output has round(H / 2) rows,
    # one fewer for odd sizes, so its last row and column see the convolution's zero padding
    # where the view sees one more row: compare the rest.
    rows, cols = round(height / 2), round(width / 2)
    decoded = synthesize(
        arch.synthesis,
        params,
        sample_grids(
            [torch.zeros_like(grids[0]), *grids[1:]],
            pixel_centres(0, rows, 0.5),
            pixel_centres(0, cols, 0.5),
        ),
    )
    inner = (slice(None), slice(0, rows - 1), slice(0, cols - 1))
    torch.testing.assert_close(view[inner], decoded[inner], rtol=0, atol=1e-4)


def _fit(share: float, statuses: list[TrainingStatus]):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    arch = image_architecture(32, 32, 3, 0)
    preset = Preset("phases", iterations=20, arm_levels=0, half_resolution_share=share)
    return fit_image(pixels, arch, preset, 1e-3, on_status=statuses.append, status_every=1)


def test_the_half_resolution_phase_leaves_the_finest_grid_to_the_rest() -> None:
    statuses: list[TrainingStatus] = []
    only_half = _fit(1.0, statuses)
    # All of the training at half resolution: the finest grid is never read, so never moves.
    assert not only_half.grids[0].any()
    assert all(grid.any() for grid in only_half.grids[1:])
    assert len(statuses) == 20
    half_then_full = _fit(0.5, [])
    assert half_then_full.grids[0].any()
