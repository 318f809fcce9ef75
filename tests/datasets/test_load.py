"""The loader on good, odd and hostile files: each case has one expected outcome."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inrstore.datasets import (
    CorruptImageError,
    EmptyFileError,
    ImageBatch,
    ImageTooLargeError,
    UnreadableFileError,
    UnsupportedFormatError,
    load_image,
    scan_images,
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_rgb_png_round_trips_exactly(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = _save(Image.fromarray(pixels), tmp_path / "a.png")
    loaded = load_image(path)
    assert loaded.pixels.shape == (20, 30, 3)
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert loaded.conversion is None and loaded.source_mode == "RGB"
    assert loaded.name == "a.png"


def test_truncated_png_is_corrupt(tmp_path: Path, kodak_samples: Path) -> None:
    data = (kodak_samples / "kodim01-128.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError) as err:
        load_image(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "truncated" in err.value.reason


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    path.write_bytes(b"")
    with pytest.raises(EmptyFileError, match=r"zero\.png: empty file \(0 bytes\)"):
        load_image(path)


def test_text_file_named_png_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(UnsupportedFormatError, match="not a recognised image format"):
        load_image(path)


def test_header_claiming_huge_dimensions_is_refused_before_decoding(tmp_path: Path) -> None:
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="limit of 100000000 px"):
        load_image(path)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (64, 64)), tmp_path / "small.png")
    with pytest.raises(ImageTooLargeError, match=r"64x64 = 4096 px exceeds the limit of 4000 px"):
        load_image(path, max_pixels=4000)
    assert load_image(path, max_pixels=4096).pixels.shape == (64, 64, 1 + 2)


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    wide = np.array([[0, 128, 257, 65535], [32896, 1000, 65407, 65408]], dtype=np.uint16)
    path = _save(Image.fromarray(wide), tmp_path / "deep.png")
    loaded = load_image(path)
    assert loaded.pixels.shape == (2, 4, 1)
    expected = (wide.astype(np.int64) + 128) // 257
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], expected)
    assert loaded.conversion is not None and loaded.conversion.endswith(
        "-> L (16-bit values scaled to 8 bits)"
    )


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red ink-wise
    path = _save(cmyk, tmp_path / "print.jpg", quality=95)
    loaded = load_image(path)
    assert loaded.source_mode == "CMYK"
    assert loaded.conversion == "CMYK -> RGB"
    assert loaded.pixels.shape == (16, 16, 3)
    red, green, blue = loaded.pixels[8, 8].astype(int)
    assert red > 240 and green < 15 and blue < 15


def test_palette_png_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    palette_image = Image.new("P", (4, 2))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    path = _save(palette_image, tmp_path / "pal.png", transparency=1)
    loaded = load_image(path)
    assert loaded.conversion == "P -> RGBA"
    assert loaded.pixels.shape == (2, 4, 4)
    np.testing.assert_array_equal(loaded.pixels[0, 0], [255, 0, 0, 255])
    assert loaded.pixels[0, 1, 3] == 0  # index 1 is the transparent entry


def test_palette_png_without_transparency_becomes_rgb(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (8, 8), (10, 200, 30)).convert("P"), tmp_path / "pal.png")
    loaded = load_image(path)
    assert loaded.conversion == "P -> RGB" and loaded.pixels.shape == (8, 8, 3)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)  # left half red
    stored[:, 16:] = (0, 0, 255)  # right half blue
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    path = _save(image, tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.pixels.shape == (32, 16, 3)
    top, bottom = loaded.pixels[4, 8].astype(int), loaded.pixels[28, 8].astype(int)
    assert top[0] > 200 and top[2] < 50  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_grayscale_keeps_one_channel(tmp_path: Path) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    loaded = load_image(_save(Image.fromarray(grey), tmp_path / "g.png"))
    assert loaded.pixels.shape == (6, 8, 1) and loaded.conversion is None
    np.testing.assert_array_equal(loaded.pixels[:, :, 0], grey)


def test_rgba_keeps_four_channels(tmp_path: Path) -> None:
    rgba = np.random.default_rng(1).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    loaded = load_image(_save(Image.fromarray(rgba), tmp_path / "a.png"))
    assert loaded.pixels.shape == (5, 7, 4) and loaded.conversion is None
    np.testing.assert_array_equal(loaded.pixels, rgba)


@pytest.mark.parametrize(
    ("mode", "expected_channels", "conversion"),
    [
        ("LA", 4, "LA -> RGBA"),
        ("1", 1, "1 -> L"),
        ("F", 1, "F -> L (float values rounded and clipped to 0..255)"),
    ],
)
def test_other_modes_convert_to_nearest(
    tmp_path: Path, mode: str, expected_channels: int, conversion: str
) -> None:
    image = Image.new(mode, (6, 4))
    loaded = load_image(_save(image, tmp_path / "x.tiff"))
    assert loaded.pixels.shape == (4, 6, expected_channels)
    assert loaded.conversion == conversion


def test_gif_takes_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = load_image(path)
    assert loaded.pixels.shape == (8, 8, 3)
    np.testing.assert_array_equal(loaded.pixels[0, 0], [255, 0, 0])


def test_missing_file_and_folder_are_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="No such file"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(UnreadableFileError, match="not a regular file"):
        load_image(tmp_path)


def test_batch_yields_good_images_and_reports_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    _save(Image.new("RGB", (8, 8), (1, 2, 3)), folder / "a_good.png")
    _save(Image.new("L", (4, 4), 9), folder / "b_good.bmp")
    (folder / "c_empty.png").write_bytes(b"")
    (folder / "d_text.jpg").write_text("hello")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    (folder / "e_cut.png").write_bytes(buffer.getvalue()[:60])
    (folder / "notes.txt").write_text("ignored: not an image suffix")

    batch = ImageBatch(scan_images(folder).images)
    good = list(batch)
    assert [image.name for image in good] == ["a_good.png", "b_good.bmp"]
    assert [path.name for path, _ in batch.failures] == ["c_empty.png", "d_text.jpg", "e_cut.png"]
    reasons = dict((path.name, reason) for path, reason in batch.failures)
    assert reasons["c_empty.png"] == "empty file (0 bytes)"
    assert reasons["d_text.jpg"] == "not a recognised image format"
    assert "truncated" in reasons["e_cut.png"] or "damaged" in reasons["e_cut.png"]
