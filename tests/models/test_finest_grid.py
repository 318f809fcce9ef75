"""Dropping the finest grid: only for images that their half-resolution version explains."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from inrstore.models.fit.finest_grid import half_resolution_mse, zero_levels_for

from .conftest import TINY_PRESET


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.linspace(0, 1, 32)[:, None].expand(32, 32)
    smooth = torch.stack([rows, rows.T, 0.5 * (rows + rows.T)])
    noise = torch.rand((3, 32, 32), generator=torch.Generator().manual_seed(0))
    return smooth, noise


def test_half_resolution_error_separates_smooth_from_detailed_images() -> None:
    smooth, noise = _images()
    assert half_resolution_mse(torch.full((1, 9, 7), 0.3)) < 1e-12
    assert half_resolution_mse(smooth) < 1e-4 < 0.02 < half_resolution_mse(noise)


def _pixels(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def test_finest_grid_is_dropped_only_when_its_bits_are_worth_more() -> None:
    smooth, noise = (_pixels(image) for image in _images())
    preset = dataclasses.replace(TINY_PRESET, finest_grid_bpp=1.0)
    assert zero_levels_for(preset, smooth, lam=1e-3, levels=4) == 1
    assert zero_levels_for(preset, noise, lam=1e-3, levels=4) == 0
    assert zero_levels_for(preset, smooth, lam=1e-6, levels=4) == 0
    assert zero_levels_for(preset, smooth, lam=1e-3, levels=1) == 0
    assert zero_levels_for(TINY_PRESET, smooth, lam=1e-3, levels=4) == 0


def test_a_preset_may_keep_the_finest_grid_of_small_images_only() -> None:
    smooth = _pixels(_images()[0])
    large = np.kron(smooth, np.ones((16, 16, 1), np.uint8))  # 512×512, smoother still
    preset = dataclasses.replace(TINY_PRESET, finest_grid_bpp=1.0, compact_keeps_finest_grid=True)
    assert zero_levels_for(preset, smooth, lam=1e-3, levels=4) == 0
    assert zero_levels_for(preset, large, lam=1e-3, levels=7) == 1
