"""Image quality and rate metrics, following CompressAI's evaluation conventions.

All functions take ``uint8`` arrays of shape ``(H, W, C)``. PSNR and MS-SSIM are computed
per image on 8-bit values (peak 255); averaging over a set is the caller's job (per image,
then mean, as CompressAI does).
"""

from __future__ import annotations

import math

import numpy as np


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {test.shape}")


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error over all pixels and channels, in 8-bit units squared."""
    _check_pair(reference, test)
    diff = reference.astype(np.float64) - test.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 255); ``inf`` for identical images."""
    error = mse(reference, test)
    return math.inf if error == 0 else 10.0 * math.log10(255.0**2 / error)


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel: ``num_bytes × 8 / (H × W)``."""
    return num_bytes * 8.0 / (height * width)


MS_SSIM_MIN_SIDE = 161
"""Shortest side (px) for which standard five-scale MS-SSIM (11-px window) is defined."""


def ms_ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Standard five-scale MS-SSIM (peak 255) through ``pytorch_msssim`` (the ``bench`` extra).

    Returns NaN for images whose short side is below :data:`MS_SSIM_MIN_SIDE`: the metric is
    not defined there, and a non-standard variant would not compare with published figures.
    """
    _check_pair(reference, test)
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def to_tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)[None]

    return float(_ms_ssim(to_tensor(reference), to_tensor(test), data_range=255.0))
