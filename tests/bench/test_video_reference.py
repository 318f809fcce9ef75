"""The video reference: CRF bisection and interpolation, and real HEVC/AV1 round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inrstore.bench.run import load_bench_images
from inrstore.bench.video_reference import CODECS, CrfSweep, VideoPoint, bytes_at_psnr


def _fake_codec(crf: int) -> VideoPoint:
    """PSNR 50 − crf/2 dB, bytes halving every 6 CRF steps."""
    return VideoPoint(crf, round(10_000 * 2 ** (-crf / 6)), 50 - crf / 2, 0.0)


def test_bytes_at_psnr_bisects_to_neighbouring_crfs_and_interpolates_log_linearly() -> None:
    asked: list[int] = []

    def point_at(crf: int) -> VideoPoint:
        asked.append(crf)
        return _fake_codec(crf)

    found = bytes_at_psnr(point_at, 37.25, (0, 51))  # between CRF 25 (37.5) and 26 (37.0)
    assert found is not None and found["crfs"] == [25, 26]
    above, below = _fake_codec(25).bytes, _fake_codec(26).bytes
    assert found["bytes"] == pytest.approx(math.sqrt(above * below))
    assert len(set(asked)) <= 2 + math.ceil(math.log2(51))


def test_bytes_at_psnr_is_none_outside_the_range() -> None:
    assert bytes_at_psnr(_fake_codec, 49.0, (10, 40)) is None  # CRF 10 reaches 45 dB only
    assert bytes_at_psnr(_fake_codec, 20.0, (10, 40)) is None  # CRF 40 still has 30 dB


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_a_real_video_decodes_every_frame_and_a_higher_crf_costs_fewer_bytes(
    codec, kodak_samples
) -> None:
    pytest.importorskip("av")
    images, _ = load_bench_images(kodak_samples, crop=64, limit=3)
    frames = [image.pixels for image in images]
    sweep = CrfSweep(frames, codec)
    fine, coarse = sweep(codec.crf_range[0]), sweep(codec.crf_range[1])
    assert fine.bytes > coarse.bytes > 0
    assert fine.mean_psnr > 30 and fine.mean_psnr > coarse.mean_psnr  # frames in order
    assert sweep(codec.crf_range[0]) is fine  # encoded once


def test_odd_sides_are_refused() -> None:
    frames = [np.zeros((33, 32, 3), np.uint8)]
    with pytest.raises(ValueError, match="even sides"):
        CrfSweep(frames, CODECS[0])(20)
