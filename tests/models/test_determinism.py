"""Decodability everywhere: thread counts, fresh processes, and a committed golden bitstream."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inrstore.models.bitstream.image_format import FORMAT_VERSION
from inrstore.models.codec import decode_image, decode_latent_state, encode_image, read_header

from .conftest import TINY_PRESET

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = "INRSTORE_REGENERATE_GOLDEN"

_DECODE_SCRIPT = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[2]))
from inrstore.models.codec import decode_image, decode_latent_state
data = open(sys.argv[1], "rb").read()
_, _, grids = decode_latent_state(data)
print(hashlib.sha256(b"".join(g.astype("int64").tobytes() for g in grids)).hexdigest())
print(hashlib.sha256(decode_image(data).tobytes()).hexdigest())
print(sorted(m for m in sys.modules if m.startswith("inrstore.models.fit")))
"""

_ENCODE_SCRIPT = """
import sys, numpy as np, torch
torch.set_num_threads(2)
from PIL import Image
from inrstore.models.codec import encode_image
from inrstore.models.fit.presets import Preset
pixels = np.asarray(Image.open(sys.argv[1]).convert("RGB"))[:24, :24]
open(sys.argv[2], "wb").write(encode_image(pixels, Preset("t", 40, 1), quality=70))
"""


def _digests(data: bytes) -> tuple[str, str]:
    _, _, grids = decode_latent_state(data)
    latents = hashlib.sha256(b"".join(g.astype("int64").tobytes() for g in grids)).hexdigest()
    return latents, hashlib.sha256(decode_image(data).tobytes()).hexdigest()


def _decode_elsewhere(path: Path, threads: int) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _DECODE_SCRIPT, str(path), str(threads)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.split("\n")[:3]


def test_two_thread_encode_decodes_identically_in_a_one_thread_process(tmp_path: Path) -> None:
    from tests.conftest import SAMPLES

    path = tmp_path / "image.inr"
    subprocess.run(
        [sys.executable, "-c", _ENCODE_SCRIPT, str(SAMPLES / "cifar10" / "0005.png"), str(path)],
        check=True,
    )
    latents, pixels = _digests(path.read_bytes())
    assert _decode_elsewhere(path, 1) == [latents, pixels, "[]"]


@pytest.mark.parametrize("version", range(1, FORMAT_VERSION + 1))
def test_golden_bitstreams_of_every_version_still_decode(version: int) -> None:
    bitstream, expected = GOLDEN / f"tiny-v{version}.inr", GOLDEN / f"tiny-v{version}.json"
    if os.environ.get(REGENERATE) and version == FORMAT_VERSION:
        pixels = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
        rgb = np.stack([pixels, pixels.T, 255 - pixels], axis=2)
        data = encode_image(rgb, TINY_PRESET, quality=60)
        bitstream.write_bytes(data)
        latents, decoded = _digests(data)
        expected.write_text(json.dumps({"latents": latents, "pixels": decoded}, indent=2) + "\n")
        pytest.skip("golden bitstream regenerated")
    data = bitstream.read_bytes()
    assert read_header(data).version == version
    digests = json.loads(expected.read_text())
    latents, pixels = _digests(data)
    assert latents == digests["latents"], "format change: bump FORMAT_VERSION and migrate"
    assert pixels == digests["pixels"]


def test_decoding_imports_no_training_code() -> None:
    assert _decode_elsewhere(GOLDEN / "tiny-v1.inr", 1)[2] == "[]"


def test_a_bitstream_encoded_on_a_gpu_decodes_here_to_the_latents_decoded_there() -> None:
    """Encoded on CUDA and decoded on that machine's CPU (other torch, other processor); the
    latents must come out the same here. Pixels may differ between machines by float
    rounding, so they are not compared."""
    data = (GOLDEN / "cuda-v5.inr").read_bytes()
    expected = json.loads((GOLDEN / "cuda-v5.json").read_text())
    _, _, grids = decode_latent_state(data)
    latents = hashlib.sha256(b"".join(np.ascontiguousarray(g).tobytes() for g in grids))
    assert latents.hexdigest() == expected["latents_float64_sha256_decoded_there"]
    assert decode_image(data).shape == (256, 256, 3)
