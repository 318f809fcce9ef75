"""Whether an image is worth its finest latent grid, decided before training.

The finest grid holds one latent per pixel: three quarters of all latents, and the most
expensive part of a training step. An image that its half-resolution version already
approximates well gains little from it at a given λ, so a short budget is better spent on
the coarser grids (and on 1.75× more iterations without it).
"""

from __future__ import annotations

import numpy as np
import torch

from inrstore.models.core.architecture import is_compact
from inrstore.models.core.upsample import interpolation_matrix
from inrstore.models.fit.image_model import half_resolution, to_unit
from inrstore.models.fit.presets import Preset


def half_resolution_mse(target: torch.Tensor) -> float:
    """MSE between ``target`` (``(C, H, W)`` in [0, 1]) and its 2×2 box average upsampled
    back with the decoder's bicubic taps: roughly what an image coded without its finest grid
    loses, before the synthesis sharpens it."""
    _, height, width = target.shape
    half = half_resolution(target)
    rows = interpolation_matrix(height, half.shape[1], 1, target.device)
    cols = interpolation_matrix(width, half.shape[2], 1, target.device)
    return float(torch.mean((rows @ half @ cols.T - target) ** 2))


def zero_levels_for(preset: Preset, pixels: np.ndarray, lam: float, levels: int) -> int:
    """The number of finest grids to hold at zero for ``pixels`` (``uint8 (H, W, C)``), at
    most ``levels - 1``.

    With ``preset.finest_grid_bpp`` set, the finest grid is dropped when the distortion it
    could remove at most, :func:`half_resolution_mse`, is worth less than λ × the rate it
    would cost (``finest_grid_bpp`` bits per pixel), except on images under
    :data:`~inrstore.models.core.architecture.COMPACT_BELOW_PIXELS` pixels when the preset
    keeps their finest grid.
    """
    zero_levels = preset.zero_levels
    rate = preset.finest_grid_bpp
    if preset.compact_keeps_finest_grid and is_compact(*pixels.shape[:2]):
        rate = None
    if rate is not None and levels > 1 and half_resolution_mse(to_unit(pixels)) < lam * rate:
        zero_levels = max(zero_levels, 1)
    return min(zero_levels, levels - 1)
