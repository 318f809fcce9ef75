"""Raw codestream sizes of baseline files: container and metadata bytes removed, data kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inrstore.bench.codecs import get_codec
from inrstore.bench.codestream import codestream_bytes, strip_jpeg_metadata
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / "cifar10" / "0001.png").convert("RGB"))


def test_stripped_jpeg_decodes_to_the_same_pixels(pixels: np.ndarray) -> None:
    data = get_codec("jpeg").encode(pixels, 50)
    stripped = strip_jpeg_metadata(data)
    assert len(stripped) < len(data) and b"JFIF" not in stripped
    assert codestream_bytes("JPEG", data) == len(stripped)
    with Image.open(io.BytesIO(stripped)) as image:
        assert np.array_equal(np.asarray(image), get_codec("jpeg").decode(data))


def test_webp_counts_its_vp8_payload(pixels: np.ndarray) -> None:
    data = get_codec("webp").encode(pixels, 50)
    assert data[12:16] == b"VP8 "
    payload = int.from_bytes(data[16:20], "little")
    assert codestream_bytes("WEBP", data) == payload == len(data) - 20 - (payload & 1)


def test_avif_counts_only_its_mdat_payload(pixels: np.ndarray) -> None:
    data = get_codec("avif").encode(pixels, 50)
    raw = codestream_bytes("AVIF", data)
    assert 0 < raw < len(data) - 200  # the ISOBMFF boxes of a small AVIF are hundreds of bytes
    assert data.find(b"mdat") + 4 + raw == len(data)  # Pillow writes mdat last


def test_unwalkable_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="not a JPEG"):
        codestream_bytes("JPEG", b"GIF89a")
    with pytest.raises(ValueError, match="not a WebP"):
        codestream_bytes("WEBP", b"RIFF0000WAVE")
    assert codestream_bytes("PNG", b"12345") == 5
