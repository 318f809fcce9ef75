"""The coarse training phases: their view of the image and what they train."""

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


@pytest.mark.parametrize("coarser", [1, 2])
@pytest.mark.parametrize("size", [(40, 56), (37, 53)])
def test_a_coarse_view_is_the_decoders_rendering_at_that_scale(size, coarser: int) -> None:
    height, width = size
    arch = image_architecture(height, width, 3, 0)
    generator = torch.Generator().manual_seed(3)
    params = {
        name: value + 0.1 * torch.randn(value.shape, generator=generator)
        for name, value in init_parameters(arch, generator).items()
    }
    grids = [torch.randn(shape, generator=generator) * 3 for shape in arch.grid_shapes()]
    view = ImageModel(arch, torch.device("cpu")).reconstruct(params, grids, coarser)
    assert view.shape == (3, *arch.grid_shapes()[coarser])
    # The decoder at scale 2**-coarser with the finer grids zeroed. Its output has
    # round(H / 2**coarser) rows, fewer for some sizes, so its last row and column see the
    # convolution's zero padding where the view sees more rows: compare the rest.
    scale = 2.0**-coarser
    rows, cols = round(height * scale), round(width * scale)
    zeroed = [torch.zeros_like(grid) for grid in grids[:coarser]] + grids[coarser:]
    decoded = synthesize(
        arch.synthesis,
        params,
        sample_grids(zeroed, pixel_centres(0, rows, scale), pixel_centres(0, cols, scale)),
    )
    inner = (slice(None), slice(0, rows - 1), slice(0, cols - 1))
    torch.testing.assert_close(view[inner], decoded[inner], rtol=0, atol=1e-4)


def _fit(phases: tuple[float, ...], statuses: list[TrainingStatus]):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    arch = image_architecture(32, 32, 3, 0)
    preset = Preset("phases", iterations=20, arm_levels=0, coarse_phases=phases)
    return fit_image(pixels, arch, preset, 1e-3, on_status=statuses.append, status_every=1)


def test_coarse_phases_leave_the_finer_grids_to_the_later_phases() -> None:
    statuses: list[TrainingStatus] = []
    # All of the training at quarter resolution: the two finest grids are never read.
    quarter = _fit((1.0, 1.0), statuses)
    assert not quarter.grids[0].any() and not quarter.grids[1].any()
    assert all(grid.any() for grid in quarter.grids[2:])
    assert len(statuses) == 20
    half = _fit((1.0,), [])
    assert not half.grids[0].any() and half.grids[1].any()
    staged = _fit((0.25, 0.5), [])
    assert all(grid.any() for grid in staged.grids)
