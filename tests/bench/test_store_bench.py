"""The store benchmark: bytes of files at a PSNR, and the report of a tiny ``add``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from inrstore.bench.codecs import get_codec
from inrstore.bench.store_bench import bytes_at_psnr
from inrstore.cli.app import app
from inrstore.models.fit import presets
from inrstore.models.metrics import psnr


@pytest.fixture
def photo(kodak_samples: Path) -> np.ndarray:
    return np.asarray(Image.open(kodak_samples / "kodim23-128.png").convert("RGB"))


def test_bytes_at_a_codecs_own_psnr_are_its_bytes(photo: np.ndarray) -> None:
    jpeg = get_codec("jpeg")
    data = jpeg.encode(photo, 60)
    target = psnr(photo, jpeg.decode(data))
    assert bytes_at_psnr(jpeg, photo, target) == pytest.approx(len(data), rel=1e-9)


def test_bytes_between_two_qualities_are_interpolated(photo: np.ndarray) -> None:
    webp = get_codec("webp")
    low, high = webp.encode(photo, 40), webp.encode(photo, 41)
    psnr_low, psnr_high = psnr(photo, webp.decode(low)), psnr(photo, webp.decode(high))
    if psnr_high <= psnr_low:
        pytest.skip("WebP's quality 41 is not above 40 on this image")
    middle = bytes_at_psnr(webp, photo, (psnr_low + psnr_high) / 2)
    assert middle == pytest.approx((len(low) + len(high)) / 2, rel=1e-9)


def test_a_psnr_no_quality_reaches_has_no_bytes(photo: np.ndarray) -> None:
    assert bytes_at_psnr(get_codec("jpeg"), photo, 80.0) is None


def test_bench_store_reports_every_image_and_the_ratios(
    tmp_path: Path, cifar_samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(presets.PRESETS, "fast", presets.Preset("fast", 10, arm_levels=0))
    out = tmp_path / "out"
    outcome = CliRunner().invoke(
        app, ["bench-store", str(cifar_samples), "--limit", "4", "--shard-size", "2",
              "--out", str(out), "--keep-store", str(tmp_path / "kept")],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    report = json.loads((out / "store.json").read_text())
    assert report["totals"]["images"] == 4 and report["shards"] == 2
    assert report["settings"]["preset"] == "fast" and "commit" in report
    for row in report["images"]:
        assert row["stored_bytes"] > 0 and row["jpeg_bytes"] > 0 and row["get_ms"] > 0
    jpeg = report["totals"]["jpeg"]
    assert jpeg["ratio"] == pytest.approx(jpeg["stored_bytes"] / jpeg["file_bytes"])
    assert "store / files" in outcome.output
    again = CliRunner().invoke(app, ["bench-store", str(cifar_samples), "--keep-store",
                                     str(tmp_path / "kept"), "--out", str(out)])  # fmt: skip
    assert again.exit_code == 2 and "already exists" in again.output
