"""Small architectures, random quantized networks and a tiny trained bitstream."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from inrstore.models.codec import encode_image
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.fit.presets import Preset

TINY_PRESET = Preset(
    "test", iterations=60, arm_levels=1, prefilter=True, compact_synthesis="refine"
)


def random_modules(arch: Architecture, seed: int) -> dict[str, QuantizedModule]:
    """Random float networks quantized at step 2**-8."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: QuantizedModule.quantize(
            {k: torch.randn(shape, generator=generator) * 0.5 for k, shape in shapes.items()}, 8
        )
        for name, shapes in arch.modules().items()
    }


def random_grids(arch: Architecture, seed: int) -> list[np.ndarray]:
    """Laplace-distributed integer latents in the symbol range."""
    rng = np.random.default_rng(seed)
    return [
        np.clip(np.round(rng.laplace(0, 3, shape)), -64, 63).astype(np.int64)
        for shape in arch.grid_shapes()
    ]


@pytest.fixture(scope="session")
def sample_pixels() -> np.ndarray:
    """A 32×32 CIFAR-10 photograph."""
    from tests.conftest import SAMPLES

    return np.asarray(Image.open(SAMPLES / "cifar10" / "0003.png").convert("RGB"))


@pytest.fixture(scope="session")
def tiny_bitstream(sample_pixels: np.ndarray) -> bytes:
    """The sample encoded with a very short training run (one ARM grid, the rest ARU, the
    grids' pre-filters and the ``refine`` synthesis)."""
    return encode_image(sample_pixels, TINY_PRESET, quality=80)


@pytest.fixture(scope="session")
def mixed_bitstream(sample_pixels: np.ndarray) -> bytes:
    """As :func:`tiny_bitstream`, with the ``mixed`` synthesis."""
    return encode_image(sample_pixels, replace(TINY_PRESET, compact_synthesis="mixed"), quality=80)


@pytest.fixture(params=["tiny_bitstream", "mixed_bitstream"])
def either_bitstream(request: pytest.FixtureRequest) -> bytes:
    """Each synthesis kind's bitstream in turn."""
    return request.getfixturevalue(request.param)


def assert_scale_two_and_crop(header, member: bytes) -> None:
    """A 24×40 shard member decodes to 48×80 at scale 2, and a crop to the matching block."""
    from inrstore.models.render import Crop
    from inrstore.models.shard_codec import decode_member

    full = decode_member(header, member, scale=2.0)
    assert full.shape == (48, 80, 3)
    block = decode_member(header, member, scale=2.0, crop=Crop(10, 4, 16, 12))
    assert np.array_equal(block, full[8:32, 20:52])


def moving_square_frames(count: int = 3) -> list[np.ndarray]:
    """Frames of one scene (a 24×40 Kodak crop) with a red square moving across it."""
    from tests.conftest import SAMPLES

    scene = np.asarray(Image.open(SAMPLES / "kodak" / "kodim23-128.png").convert("RGB"))
    frames = []
    for index in range(count):
        frame = np.ascontiguousarray(scene[40:64, 50:90])
        frame[6:12, 4 + 8 * index : 10 + 8 * index] = (220, 30, 30)
        frames.append(frame)
    return frames
