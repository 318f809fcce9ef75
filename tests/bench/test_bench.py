"""The traditional-codec benchmark: sweeps, JSON schema, BD-rate, plot and CLI errors."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from inrstore.bench.codecs import CODEC_NAMES, get_codec
from inrstore.bench.report import bd_rate
from inrstore.bench.run import load_bench_images, sweep
from inrstore.cli.app import app
from inrstore.models import codec as codec_module
from inrstore.models.bitstream.image_format import FORMAT_VERSION
from inrstore.models.codec import encode_image
from inrstore.models.fit import presets

runner = CliRunner()


def test_bd_rate_of_a_curve_at_half_the_rate_is_minus_fifty_percent() -> None:
    anchor = {"bpp": [0.25, 0.5, 1.0, 2.0], "psnr-rgb": [28.0, 31.0, 34.5, 38.0]}
    test = {"bpp": [r / 2 for r in anchor["bpp"]], "psnr-rgb": anchor["psnr-rgb"]}
    assert bd_rate(anchor, test) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(anchor, anchor) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_without_overlap_is_nan() -> None:
    anchor = {"bpp": [0.1, 0.2, 0.3, 0.4], "psnr-rgb": [20.0, 21.0, 22.0, 23.0]}
    test = {"bpp": [1.0, 2.0, 3.0, 4.0], "psnr-rgb": [40.0, 41.0, 42.0, 43.0]}
    assert math.isnan(bd_rate(anchor, test))


def test_bd_rate_of_a_curve_whose_quality_falls_is_nan() -> None:
    """A time-budgeted encoder can lose PSNR at a higher quality setting (measured: the
    Kodak ×4 single-image curve); the table then says NaN instead of crashing."""
    anchor = {"bpp": [0.1, 0.2, 0.3, 0.4], "psnr-rgb": [20.0, 25.0, 28.0, 30.0]}
    test = {"bpp": [2.30, 3.18, 3.60], "psnr-rgb": [27.57, 28.91, 28.71]}
    assert math.isnan(bd_rate(anchor, test))
    assert math.isnan(bd_rate(test, anchor))


PILLOW_CODECS = [name for name in CODEC_NAMES if not name.startswith("inrstore")]


@pytest.mark.parametrize("name", PILLOW_CODECS)
def test_every_codec_round_trips_and_more_quality_costs_more_bits(name: str, kodak_samples) -> None:
    images, problems = load_bench_images(kodak_samples, crop=64, limit=1)
    assert problems == [] and images[0].pixels.shape == (64, 64, 3)
    codec = get_codec(name)
    low, high = codec.qualities[0], codec.qualities[-1]
    result = sweep(codec, images, qualities=[low, high])
    curve = result.curve()
    assert curve["quality"] == [low, high]
    assert curve["bpp"][0] < curve["bpp"][1]
    assert curve["psnr-rgb"][0] < curve["psnr-rgb"][1]
    assert curve["psnr-rgb"][1] > 28.0


def test_inrstore_codec_reports_true_bitstream_sizes(monkeypatch, cifar_samples: Path) -> None:
    monkeypatch.setitem(presets.PRESETS, "fast", presets.Preset("fast", 30, arm_levels=0))
    images, _ = load_bench_images(cifar_samples, limit=1)
    codec = get_codec("inrstore-fast")
    result = sweep(codec, images, qualities=[50.0])
    point = result.points[0]
    data = codec.encode(images[0].pixels, 50.0)
    assert point.num_bytes == len(data) and data[:4] == b"INRS"
    assert point.bpp == pytest.approx(len(data) * 8 / (32 * 32))
    assert point.psnr > 15.0


@dataclass(frozen=True)
class PidCodec:
    """A picklable stand-in codec whose bytes say which process encoded them."""

    name: str = "pid"
    description: str = "the encoding process's id, then the quality"
    qualities: tuple[float, ...] = (1.0, 2.0)

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        return struct.pack("<iB", os.getpid(), int(quality)) + bytes(int(quality))

    def decode(self, data: bytes) -> np.ndarray:
        return np.zeros((32, 32, 3), np.uint8)


def test_sweep_with_jobs_encodes_in_worker_processes_in_order(cifar_samples: Path) -> None:
    images, _ = load_bench_images(cifar_samples, limit=2)
    seen: list[tuple[str, float]] = []
    encoders: set[int] = set()

    def size(data: bytes) -> int:
        encoders.add(struct.unpack_from("<i", data)[0])
        return len(data)

    result = sweep(
        PidCodec(),
        images,
        jobs=2,
        on_point=lambda p: seen.append((p.image, p.quality)),
        byte_counter=size,
    )
    assert seen == [(image.name, q) for q in (1.0, 2.0) for image in images]
    assert encoders and os.getpid() not in encoders
    assert [p.num_bytes for p in result.points] == [6, 6, 7, 7]
    assert all(p.encoding_time > 0 for p in result.points)


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "jpeg2000"])
def test_pillow_codecs_encode_the_same_bytes_in_worker_processes(
    name: str, cifar_samples: Path
) -> None:
    codec = get_codec(name)
    assert pickle.loads(pickle.dumps(codec)) == codec
    images, _ = load_bench_images(cifar_samples, limit=2)
    qualities = codec.qualities[2:4]
    here, workers = (sweep(codec, images, qualities=qualities, jobs=jobs).points for jobs in (1, 2))
    assert [(p.image, p.quality, p.num_bytes, p.psnr) for p in here] == [
        (p.image, p.quality, p.num_bytes, p.psnr) for p in workers
    ]


def test_inrstore_codecs_encode_on_the_device_asked_for() -> None:
    codec = get_codec("inrstore-best", "cuda")
    assert codec.device == "cuda" and "encoded on cuda" in codec.description
    assert get_codec("inrstore-best").device == "cpu"
    assert get_codec("jpeg", "cuda") is get_codec("jpeg")


def test_bench_time_limit_reaches_every_inrstore_encode(
    monkeypatch, cifar_samples: Path, tmp_path: Path
) -> None:
    limits: list[float | None] = []

    def fake_encode(pixels, preset, quality, *, device, time_limit):
        limits.append(time_limit)
        return encode_image(pixels, presets.Preset("fast", 5, arm_levels=0), quality)

    monkeypatch.setattr(codec_module, "encode_image", fake_encode)
    arguments = ["bench", str(cifar_samples), "--limit", "1", "--qualities", "50"]
    arguments += ["--codecs", "jpeg,inrstore-fast", "--out", str(tmp_path), "--time-limit", "7"]
    outcome = runner.invoke(app, arguments)
    assert outcome.exit_code == 0, outcome.output
    assert limits == [7.0]
    report = json.loads((tmp_path / "inrstore-fast.json").read_text())
    assert "training limited to 7 s" in report["description"]
    assert get_codec("inrstore-fast").time_limit is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda", "no CUDA device is available"), ("tpu", "unknown device 'tpu'")],
)
def test_bench_on_a_missing_device_fails_in_one_line(
    device: str, message: str, kodak_samples: Path, tmp_path: Path
) -> None:
    outcome = runner.invoke(
        app,
        [
            "bench",
            str(kodak_samples),
            "--codecs",
            "jpeg",
            "--device",
            device,
            "--out",
            str(tmp_path),
        ],
    )
    assert outcome.exit_code == 2
    assert message in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "jpeg.json").exists()


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown codec 'bpg'; known: jpeg"):
        get_codec("bpg")


def test_bench_command_writes_compressai_json_plot_and_bd_rates(
    tmp_path: Path, kodak_samples: Path
) -> None:
    out = tmp_path / "results"
    outcome = runner.invoke(
        app, ["bench", str(kodak_samples), "--codecs", "jpeg,webp", "--out", str(out)]
    )
    assert outcome.exit_code == 0, outcome.output
    for name in ("jpeg", "webp"):
        data = json.loads((out / f"{name}.json").read_text())
        assert data["name"] == name and "4 images" in data["description"]
        assert data["format_version"] == FORMAT_VERSION and len(data["commit"]) >= 7
        assert data["machine"]["cores"] >= 1 and data["date"].startswith("20")
        results = data["results"]
        lengths = {len(results[key]) for key in results}
        assert len(lengths) == 1 and lengths.pop() == len(get_codec(name).qualities)
        assert results["bpp"] == sorted(results["bpp"])
        assert all(t > 0 for t in results["encoding_time"] + results["decoding_time"])
        assert all(math.isnan(v) for v in results["ms-ssim-rgb"])  # 128 px: below MS-SSIM's size
        per_image = data["per_image"]
        assert sorted(per_image) == sorted(p.name for p in kodak_samples.glob("*.png"))
        for key in ("bpp", "psnr-rgb"):  # the results are the per-quality means of the images
            by_quality = [dict(zip(c["quality"], c[key], strict=True)) for c in per_image.values()]
            means = dict(zip(results["quality"], results[key], strict=True))
            for quality, mean in means.items():
                assert mean == pytest.approx(sum(c[quality] for c in by_quality) / 4, rel=1e-12)
    summary = json.loads((out / "bd-rate.json").read_text())
    assert summary["anchor"] == "jpeg" and summary["images"] == 4
    assert summary["bd_rate_psnr"]["jpeg"] == pytest.approx(0.0, abs=1e-9)
    assert summary["bd_rate_psnr"]["webp"] < 0  # WebP beats JPEG on these photographs
    per_image_rates = summary["bd_rate_psnr_per_image"]
    assert sorted(per_image_rates) == sorted(summary["image_names"])
    assert all(rates["jpeg"] == pytest.approx(0.0, abs=1e-9) for rates in per_image_rates.values())
    assert len({rates["webp"] for rates in per_image_rates.values()}) == 4
    assert (out / "rd-psnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "BD-rate" in outcome.output and "results written to" in outcome.output
    per_image_table = outcome.output.split("per image", 1)[1]
    for image, rates in per_image_rates.items():
        assert image in per_image_table and f"{rates['webp']:+.1f}%" in per_image_table


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--codecs", "jpeg,bpg"], "unknown codec 'bpg'"),
        (["--codecs", "webp", "--anchor", "jpeg"], "--anchor 'jpeg' must be one of"),
    ],
)
def test_bench_command_errors_are_one_line(
    arguments: list[str], message: str, kodak_samples: Path, tmp_path: Path
) -> None:
    outcome = runner.invoke(app, ["bench", str(kodak_samples), "--out", str(tmp_path), *arguments])
    assert outcome.exit_code == 2
    assert message in outcome.output
    assert "Traceback" not in outcome.output


def test_bench_on_a_folder_without_images_fails(tmp_path: Path) -> None:
    outcome = runner.invoke(
        app, ["bench", str(tmp_path), "--codecs", "jpeg", "--out", str(tmp_path)]
    )
    assert outcome.exit_code == 1
    assert "no readable images" in outcome.output


def test_inrstore_results_record_their_preset_settings(tmp_path: Path) -> None:
    from inrstore.bench.run import CodecResult, write_json
    from inrstore.models.fit.presets import PRESETS

    written = write_json(CodecResult("inrstore-best", "best"), tmp_path)
    assert written["settings"]["crop_seconds"] == PRESETS["best"].crop_seconds
    assert written["settings"]["weight_deadzones"] == list(PRESETS["best"].weight_deadzones)
