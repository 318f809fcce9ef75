"""``inrstore encode`` / ``decode`` through the CLI: round trips, scales, crops, errors (and
the ``--device`` check that ``add`` shares)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from inrstore.cli.app import app
from inrstore.models.fit import presets

runner = CliRunner()


@pytest.fixture
def quick_presets(monkeypatch) -> None:
    monkeypatch.setitem(presets.PRESETS, "fast", presets.Preset("fast", 30, arm_levels=1))


@pytest.fixture
def encoded(tmp_path: Path, cifar_samples: Path, quick_presets) -> Path:
    target = tmp_path / "image.inr"
    outcome = runner.invoke(
        app, ["encode", str(cifar_samples / "0001.png"), str(target), "--preset", "fast"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "bytes" in outcome.output and "dB" in outcome.output
    return target


@pytest.mark.parametrize(
    ("arguments", "size"),
    [
        ([], (32, 32)),
        (["--scale", "2"], (64, 64)),
        (["--scale", "0.5", "--crop", "0,0,16,8"], (8, 4)),
    ],
)
def test_decode_writes_images_of_the_asked_size(
    encoded: Path, tmp_path: Path, arguments: list[str], size: tuple[int, int]
) -> None:
    target = tmp_path / "out.png"
    outcome = runner.invoke(app, ["decode", str(encoded), str(target), *arguments])
    assert outcome.exit_code == 0, outcome.output
    with Image.open(target) as image:
        assert image.size == size and image.mode == "RGB"


def test_decode_of_damaged_bytes_is_one_line(encoded: Path, tmp_path: Path) -> None:
    data = bytearray(encoded.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged = tmp_path / "damaged.inr"
    damaged.write_bytes(bytes(data))
    outcome = runner.invoke(app, ["decode", str(damaged), str(tmp_path / "x.png")])
    assert outcome.exit_code == 1
    assert "checksum mismatch" in outcome.output and "Traceback" not in outcome.output


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--crop", "1,2,3"], 2, "crop must be x,y,w,h"),
        (["--crop", "20,20,20,20"], 2, "exceeds the 32x32 image"),
        (["--scale", "20"], 2, "Invalid value"),
    ],
)
def test_decode_argument_errors(
    encoded: Path, tmp_path: Path, arguments: list[str], code: int, message: str
) -> None:
    outcome = runner.invoke(app, ["decode", str(encoded), str(tmp_path / "x.png"), *arguments])
    assert outcome.exit_code == code
    assert message in outcome.output


def test_encode_errors(tmp_path: Path, quick_presets) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    outcome = runner.invoke(app, ["encode", str(text), str(tmp_path / "x.inr")])
    assert outcome.exit_code == 1 and "not a recognised image format" in outcome.output
    image = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    outcome = runner.invoke(
        app, ["encode", str(image), str(tmp_path / "x.inr"), "--preset", "slow"]
    )
    assert outcome.exit_code == 2 and "unknown preset 'slow'" in outcome.output
    missing = runner.invoke(app, ["decode", str(tmp_path / "absent.inr"), str(tmp_path / "x.png")])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_a_failed_encoder_process_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args, **kwargs) -> bytes:
        raise ChildProcessError("an encoder process ended with exit code -9")

    monkeypatch.setattr("inrstore.cli.codec.encode_image", killed)
    image = tmp_path / "ok.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    outcome = runner.invoke(app, ["encode", str(image), str(tmp_path / "x.inr")])
    assert outcome.exit_code == 1
    assert "error: an encoder process ended with exit code -9" in outcome.output
    assert "Traceback" not in outcome.output
    assert not (tmp_path / "x.inr").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize(
    ("command", "device", "message"),
    [
        ("encode", "tpu", "unknown device 'tpu'; use cpu or cuda"),
        ("encode", "cuda", "no CUDA device is available"),
        ("add", "cuda", "no CUDA device is available"),
    ],
)
def test_a_missing_device_is_refused_in_one_line_before_any_work(
    tmp_path: Path, cifar_samples: Path, command: str, device: str, message: str
) -> None:
    store = tmp_path / "store"
    source = cifar_samples / "0001.png"
    arguments = {
        "encode": ["encode", str(source), str(tmp_path / "x.inr")],
        "add": ["--store", str(store), "add", str(cifar_samples)],
    }[command]
    outcome = runner.invoke(app, [*arguments, "--device", device])
    assert outcome.exit_code == 2
    assert message in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "x.inr").exists() and not store.exists()
