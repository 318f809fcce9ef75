"""The codec end to end: quality floor, any-scale and crop decoding, channels, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inrstore.models import render
from inrstore.models.codec import Crop, as_pixels, decode_image, encode_image, read_header
from inrstore.models.metrics import psnr

from .conftest import TINY_PRESET


def test_round_trip_quality_floor(sample_pixels: np.ndarray, tiny_bitstream: bytes) -> None:
    decoded = decode_image(tiny_bitstream)
    assert decoded.shape == sample_pixels.shape and decoded.dtype == np.uint8
    assert psnr(sample_pixels, decoded) > 20.0


def test_any_scale_gives_rounded_sizes(tiny_bitstream: bytes) -> None:
    for scale, size in [(1, 32), (2, 64), (0.5, 16), (1 / 16, 2), (8, 256), (1.37, 44)]:
        assert decode_image(tiny_bitstream, scale).shape == (size, size, 3)


def test_upscaled_decode_agrees_with_scale_one_on_average(tiny_bitstream: bytes) -> None:
    small = decode_image(tiny_bitstream).astype(np.float64)
    big = decode_image(tiny_bitstream, 2.0).astype(np.float64)
    pooled = big.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(pooled - small).mean() < 6.0


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.75, 3.3])
def test_crop_equals_the_block_of_the_full_decode(either_bitstream: bytes, scale: float) -> None:
    full = decode_image(either_bitstream, scale).astype(int)
    crop = Crop(5, 7, 20, 11)
    block = decode_image(either_bitstream, scale, crop).astype(int)
    ratio = full.shape[0] / 32  # the full output size sets the pixel grid
    top, left = round(7 * ratio), round(5 * ratio)
    assert block.shape == (round(11 * ratio), round(20 * ratio), 3)
    expected = full[top : top + block.shape[0], left : left + block.shape[1]]
    assert np.abs(block - expected).max() <= 1


def test_rendering_in_bands_matches_one_pass(
    either_bitstream: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_pass = decode_image(either_bitstream, 2.0).astype(int)
    monkeypatch.setattr(render, "RENDER_BLOCK", 64 * 3)  # bands of 3 rows of 64 pixels
    banded = decode_image(either_bitstream, 2.0).astype(int)
    assert np.abs(banded - one_pass).max() <= 1
    assert (banded != one_pass).mean() < 0.01


@pytest.mark.parametrize(
    ("scale", "crop", "message"),
    [
        (0.01, None, r"scale must be in \[1/16, 8\]"),
        (9.0, None, r"scale must be in \[1/16, 8\]"),
        (1.0, Crop(30, 0, 5, 5), "exceeds the 32x32 image"),
        (1.0, Crop(0, 0, 0, 5), "must be non-empty"),
    ],
)
def test_bad_scale_or_crop(tiny_bitstream: bytes, scale, crop, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_image(tiny_bitstream, scale, crop)


def test_crop_parsing() -> None:
    assert Crop.parse("1,2,3,4") == Crop(1, 2, 3, 4)
    with pytest.raises(ValueError, match="x,y,w,h"):
        Crop.parse("1,2,3")


@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_rgba_images_keep_their_channels(sample_pixels: np.ndarray, channels: int) -> None:
    if channels == 1:
        pixels = sample_pixels[:16, :16, :1]
    else:
        alpha = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))[:, :, None]
        pixels = np.concatenate([sample_pixels[:16, :16], alpha], axis=2)
    decoded = decode_image(encode_image(pixels, TINY_PRESET, quality=90))
    assert decoded.shape == (16, 16, channels)
    assert psnr(pixels, decoded) > 18.0


def test_invalid_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="expected uint8 pixels"):
        as_pixels(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="expected uint8 pixels"):
        as_pixels(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(KeyError, match="unknown preset 'slow'"):
        encode_image(np.zeros((4, 4, 3), np.uint8), "slow")
    with pytest.raises(ValueError, match="quality must be in"):
        encode_image(np.zeros((4, 4, 3), np.uint8), TINY_PRESET, quality=101)


def test_time_limit_stops_training_early(sample_pixels: np.ndarray) -> None:
    statuses = []
    preset = TINY_PRESET.__class__("long", iterations=100_000, arm_levels=0)
    encode_image(sample_pixels[:16, :16], preset, time_limit=1.0, on_status=statuses.append)
    assert statuses[-1].iteration < 100_000 and statuses[-1].progress == 1.0
    assert statuses[-1].elapsed < 3.0


def test_zero_levels_leave_the_finest_grid_uncoded(sample_pixels: np.ndarray) -> None:
    preset = dataclasses.replace(TINY_PRESET, zero_levels=1)
    data = encode_image(sample_pixels, preset)
    header = read_header(data)
    assert header.zero_flags & 1
    assert psnr(sample_pixels, decode_image(data)) > 18.0


def test_decoding_renders_what_training_reconstructs(tiny_bitstream: bytes) -> None:
    """The decoder's sampler (bands, pre-filtered rows) and the training model (whole grids,
    dense matrices) agree on the same quantized networks and latents."""
    import torch

    from inrstore.models.codec import decode_latent_state
    from inrstore.models.core.upsample import identity_prefilter
    from inrstore.models.fit.image_model import ImageModel

    header, modules, grids = decode_latent_state(tiny_bitstream)
    params = modules["synthesis"].dequantized() | modules["upsampling"].dequantized()
    assert any(
        not torch.equal(half, identity_prefilter())
        for half in modules["upsampling"].dequantized().values()
    )
    float_grids = [torch.from_numpy(grid.astype(np.float32)) for grid in grids]
    with torch.no_grad():
        model = ImageModel(header.arch, torch.device("cpu")).reconstruct(params, float_grids)
    expected = (model.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    assert np.abs(decode_image(tiny_bitstream).astype(int) - expected).max() <= 1
