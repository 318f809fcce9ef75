"""PSNR, MS-SSIM and bpp on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inrstore.models.metrics import MS_SSIM_MIN_SIDE, bpp, ms_ssim, psnr


def test_psnr_of_unit_error_and_identical_images() -> None:
    reference = np.full((4, 4, 3), 100, dtype=np.uint8)
    assert psnr(reference, reference) == math.inf
    assert psnr(reference, reference + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)


def test_psnr_uses_float_arithmetic_not_uint8_wraparound() -> None:
    dark, bright = np.zeros((2, 2, 1), np.uint8), np.full((2, 2, 1), 255, np.uint8)
    assert psnr(bright, dark) == pytest.approx(0.0)
    assert psnr(dark, bright) == pytest.approx(0.0)


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8))


def test_bpp() -> None:
    assert bpp(48, 8, 12) == 4.0


def test_ms_ssim_is_one_for_identical_and_drops_with_noise() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (MS_SSIM_MIN_SIDE, 170, 3), dtype=np.uint8)
    noisy = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim(image, noisy) < 0.99


def test_ms_ssim_is_nan_below_its_minimum_size() -> None:
    image = np.zeros((MS_SSIM_MIN_SIDE - 1, 300, 3), np.uint8)
    assert math.isnan(ms_ssim(image, image))
