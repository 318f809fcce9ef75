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
from inrstore.store import Store
from inrstore.store.archive import read_labels


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
    assert report["encode_cpu_seconds_per_image"] > 0
    assert "store / files" in outcome.output and "s of CPU" in outcome.output
    labels = read_labels(cifar_samples / "labels.csv")
    with Store.open(tmp_path / "kept", readonly=True) as kept:
        stored = {info.name: info.label for info in kept.members()}
    assert len(stored) == 4 and stored == {name: labels[name] for name in stored}
    again = CliRunner().invoke(app, ["bench-store", str(cifar_samples), "--keep-store",
                                     str(tmp_path / "kept"), "--out", str(out)])  # fmt: skip
    assert again.exit_code == 2 and "already exists" in again.output


def _run(folder: Path, names: list[str], preset: str = "default", seconds: float = 10.0) -> Path:
    rows = [
        {"name": name, "stored_bytes": 100.0 + i, "psnr": 30.0 + i, "get_ms": 5.0 + i,
         "jpeg_bytes": 200.0, "webp_bytes": 150.0, "avif_bytes": None}
        for i, name in enumerate(names)
    ]  # fmt: skip
    report = {
        "name": "store", "description": f"run of {len(names)}", "images": rows,
        "encode_seconds_per_image": seconds, "budget_seconds_per_image": 9.0,
        "get_ms_median": 0.0, "shards": 1, "failures": [], "commit": f"c{len(names)}",
        "settings": {"preset": preset, "quality": 50.0, "shard_size": None, "bases": None,
                     "sharing": "auto", "singles": False},
    }  # fmt: skip
    folder.mkdir()
    (folder / "store.json").write_text(json.dumps(report))
    return folder


def test_bench_store_merge_joins_disjoint_runs_as_one_run(tmp_path: Path) -> None:
    first = _run(tmp_path / "a", ["x.png"], seconds=10.0)
    second = _run(tmp_path / "b", ["y.png", "z.png"], seconds=40.0)
    out = tmp_path / "merged"
    outcome = CliRunner().invoke(
        app, ["bench-store-merge", str(first), str(second), "--out", str(out)]
    )
    assert outcome.exit_code == 0, outcome.output
    merged = json.loads((out / "store.json").read_text())
    totals = merged["totals"]
    assert totals["images"] == 3 and totals["stored_bytes"] == 100 + 100 + 101
    assert totals["jpeg"]["ratio"] == pytest.approx(301 / 600)
    assert totals["avif"] == {"images": 0, "file_bytes": 0, "stored_bytes": 0, "ratio": None}
    assert merged["encode_seconds_per_image"] == pytest.approx((10 + 2 * 40) / 3)
    assert merged["encode_cpu_seconds_per_image"] is None  # the runs did not measure it
    assert merged["get_ms_median"] == 5.0 and merged["shards"] == 2
    assert [(r["commit"], r["images"]) for r in merged["runs"]] == [("c1", 1), ("c2", 2)]


@pytest.mark.parametrize(
    ("names", "preset", "message"),
    [(["x.png"], "default", "runs share images (x.png)"),
     (["w.png"], "best", "runs differ in preset")],
)  # fmt: skip
def test_bench_store_merge_refuses_runs_that_do_not_fit(
    tmp_path: Path, names: list[str], preset: str, message: str
) -> None:
    first = _run(tmp_path / "a", ["x.png"])
    second = _run(tmp_path / "b", names, preset)
    outcome = CliRunner().invoke(
        app, ["bench-store-merge", str(first), str(second), "--out", str(tmp_path / "m")]
    )
    assert outcome.exit_code == 2 and message in outcome.output
    (second / "store.json").write_text("{}")
    broken = CliRunner().invoke(
        app, ["bench-store-merge", str(first), str(second), "--out", str(tmp_path / "m")]
    )
    assert broken.exit_code == 2 and "not a bench-store report" in broken.output
