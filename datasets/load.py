"""Loading one image (or a batch) into an 8-bit ``H×W×C`` array with C in {1, 3, 4}.

Mode policy: L, RGB and RGBA are kept as they are; every other Pillow mode is converted to
the nearest of those and the conversion is recorded in :attr:`LoadedImage.conversion`.
EXIF orientation is applied. The pixel count is checked against a limit from the header,
before any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inrstore.datasets.errors import (
    CorruptImageError,
    EmptyFileError,
    ImageError,
    ImageTooLargeError,
    UnreadableFileError,
    UnsupportedFormatError,
)
from inrstore.datasets.scan import FoundImage

DEFAULT_MAX_PIXELS = 100_000_000
"""Default refusal threshold in pixels (100 Mpx)."""

_KEPT_MODES = {"L": 1, "RGB": 3, "RGBA": 4}
_TO_RGBA = {"LA", "La", "PA", "RGBa"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
_SIGNED_SAMPLES = 2
"""TIFF's SampleFormat value for two's-complement integers (tag 339; 1, the default, is
unsigned)."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image.

    Attributes:
        pixels: ``uint8`` array of shape ``(H, W, C)``, C in {1, 3, 4}.
        path: the file it came from.
        name: a display name (relative path within a scanned folder, else the file name).
        source_mode: the Pillow mode of the file.
        conversion: ``"<from> -> <to>"`` plus details when the mode was converted, else None.
    """

    pixels: np.ndarray
    path: Path
    name: str
    source_mode: str
    conversion: str | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


_MODES_BY_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}


def to_pil_image(pixels: np.ndarray) -> Image.Image:
    """``uint8 (H, W, C)`` with C in {1, 3, 4} → a Pillow image in mode L, RGB or RGBA."""
    channels = pixels.shape[2]
    return Image.fromarray(
        pixels[:, :, 0] if channels == 1 else pixels, _MODES_BY_CHANNELS[channels]
    )


def pixel_sha256(pixels: np.ndarray) -> str:
    """Hex SHA-256 of an image's shape and pixel bytes (independent of the file encoding)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha256(repr(tuple(pixels.shape)).encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def load_image(
    path: str | Path, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode ``path``; raise a subclass of :class:`ImageError` on any problem."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UnreadableFileError(path, err.strerror or "cannot be read") from None
    if not path.is_file():
        raise UnreadableFileError(path, "not a regular file")
    if size == 0:
        raise EmptyFileError(path, "empty file (0 bytes)")
    return _load(path, path, name, max_pixels)


def load_image_bytes(
    data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode an image file's ``data`` (its errors name ``name``) with the checks of
    :func:`load_image`."""
    if not data:
        raise EmptyFileError(name, "empty file (0 bytes)")
    return _load(io.BytesIO(data), Path(name), name, max_pixels)


def _load(source, path: Path, name: str | None, max_pixels: int) -> LoadedImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _open_checked(source, path, max_pixels)
            with image:
                pixels, conversion = _decode(path, image)
                source_mode = image.mode
    except ImageError:
        raise
    except OSError as err:
        raise UnreadableFileError(path, err.strerror or str(err)) from None
    return LoadedImage(
        pixels=pixels,
        path=path,
        name=name if name is not None else path.name,
        source_mode=source_mode,
        conversion=conversion,
    )


def _open_checked(source, path: Path, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(source)
    except UnidentifiedImageError:
        raise UnsupportedFormatError(path, "not a recognised image format") from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            path, f"header declares more pixels than the limit of {max_pixels} px"
        ) from None
    except (SyntaxError, ValueError, EOFError) as err:
        raise CorruptImageError(path, f"damaged header ({err})") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLargeError(
            path, f"{width}x{height} = {width * height} px exceeds the limit of {max_pixels} px"
        )
    if width == 0 or height == 0:
        image.close()
        raise CorruptImageError(path, f"empty image ({width}x{height})")
    return image


def _decode(path: Path, image: Image.Image) -> tuple[np.ndarray, str | None]:
    try:
        image.seek(0)
        image.load()
        oriented = ImageOps.exif_transpose(image)
        return _to_kept_mode(oriented, _signed_samples(image))
    except MemoryError:
        raise ImageTooLargeError(path, "not enough memory to decode") from None
    except Exception as err:  # Pillow's decoders raise many types for damaged data.
        raise CorruptImageError(path, f"damaged or truncated image data ({err})") from None


def _signed_samples(image: Image.Image) -> bool:
    """Whether a TIFF's SampleFormat tag says its integers are signed."""
    formats = getattr(image, "tag_v2", {}).get(339, (1,))
    return (formats[0] if isinstance(formats, tuple) else formats) == _SIGNED_SAMPLES


def _to_kept_mode(image: Image.Image, signed: bool = False) -> tuple[np.ndarray, str | None]:
    mode = image.mode
    if mode in _KEPT_MODES:
        return _as_hwc(np.asarray(image, dtype=np.uint8)), None
    if mode in _SIXTEEN_BIT:
        wide = np.asarray(image).astype(np.int64)
        narrow = ((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8)
        return _as_hwc(narrow), f"{mode} -> L (16-bit values scaled to 8 bits)"
    if mode == "I":
        narrow = _thirty_two_to_eight(np.asarray(image, dtype=np.int32), signed)
        return _as_hwc(narrow), "I -> L (32-bit values scaled to 8 bits)"
    if mode == "F":
        narrow = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return _as_hwc(narrow), "F -> L (float values rounded and clipped to 0..255)"
    if mode == "1":
        target = "L"
    elif mode in _TO_RGBA or (mode == "P" and "transparency" in image.info):
        target = "RGBA"
    else:
        target = "RGB"
    converted = image.convert(target)
    return _as_hwc(np.asarray(converted, dtype=np.uint8)), f"{mode} -> {target}"


def _thirty_two_to_eight(values: np.ndarray, signed: bool) -> np.ndarray:
    """Pillow's mode ``I`` (``int32`` values) → ``uint8``: the full unsigned 32-bit range,
    or with ``signed`` the full signed range, scaled to 0..255."""
    unsigned = values.astype(np.int64) + 2**31 if signed else values.view(np.uint32)
    return ((unsigned.astype(np.int64) + 2**23) >> 24).clip(0, 255).astype(np.uint8)


def _as_hwc(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)


@dataclass
class ImageBatch:
    """Iterate over good images; problems are collected in :attr:`failures`.

    ``failures`` holds ``(path, reason)`` for every file that could not be loaded, in the
    order met. It is complete once iteration has finished.
    """

    sources: Iterable[str | Path | FoundImage]
    max_pixels: int = DEFAULT_MAX_PIXELS
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[LoadedImage]:
        for source in self.sources:
            path, name = (
                (source.path, source.name)
                if isinstance(source, FoundImage)
                else (Path(source), None)
            )
            try:
                yield load_image(path, name=name, max_pixels=self.max_pixels)
            except ImageError as err:
                self.failures.append((err.path, err.reason))
