"""A mean-PSNR target for ``add``: the controller's steps, and shards that follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from inrstore.store import Store
from inrstore.store.psnr_target import DB_PER_QUALITY, MAX_CATCH_UP_DB, PsnrTarget

from .conftest import QUICK


def test_the_first_shard_takes_the_given_quality_and_the_next_steers_by_the_default_slope() -> None:
    target = PsnrTarget(30.0, quality=50.0)
    assert target.next_quality(4) == 50.0
    target.observe(50.0, [29.0, 29.5, 28.5, 29.0])  # 1 dB below: the next shard asks for 31
    assert target.next_quality(4) == pytest.approx(50.0 + (30.0 + MAX_CATCH_UP_DB - 29.0) / 0.15)
    assert DB_PER_QUALITY == 0.15


def test_a_lagging_mean_is_made_up_by_the_next_shard_in_proportion_to_its_size() -> None:
    target = PsnrTarget(30.0)
    target.observe(50.0, [29.8] * 4)  # 0.2 dB short over 4 members
    wanted_of_8 = 30.0 + 0.2 * 4 / 8
    assert target.next_quality(8) == pytest.approx(50.0 + (wanted_of_8 - 29.8) / DB_PER_QUALITY)


def test_two_shards_at_different_qualities_measure_the_slope() -> None:
    target = PsnrTarget(31.0)
    target.observe(50.0, [29.0])
    target.observe(60.0, [31.0])  # 0.2 dB per quality point; mean 30, 1 dB short
    assert target.next_quality(2) == pytest.approx(60.0 + (32.0 - 31.0) / 0.2)
    falling = PsnrTarget(31.0)
    falling.observe(50.0, [31.0])
    falling.observe(60.0, [30.0])  # a noisy fall: the default slope, not a negative one
    assert falling.next_quality(1) == pytest.approx(60.0 + (32.0 - 30.0) / DB_PER_QUALITY)


def test_qualities_stay_in_range_and_targets_are_checked() -> None:
    target = PsnrTarget(60.0)
    target.observe(90.0, [40.0])
    assert target.next_quality(1) == 100.0
    with pytest.raises(ValueError, match=r"target PSNR must be in \[15, 60\] dB, not 70"):
        PsnrTarget(70.0)


def test_add_with_a_psnr_target_encodes_later_shards_at_the_quality_it_steers_to(
    tmp_path: Path, cifar_samples: Path
) -> None:
    paths = sorted(cifar_samples.glob("*.png"))[:4]
    with Store.open(tmp_path / "store", create=True) as store:
        store.add(paths, preset=QUICK, shard_size=2, sharing="shared", quality=40, psnr=60)
        qualities = [summary.quality for summary in store.shards()]
        assert qualities == [40.0, 100.0]  # far below 60 dB: the second shard at the top
        with pytest.raises(ValueError, match="target PSNR"):
            store.add(paths, preset=QUICK, psnr=10)
