"""One interface for every codec the benchmark compares: encode to bytes, decode to pixels.

Traditional codecs run through Pillow (and its JPEG XL and HEIF plugins, from the ``bench``
extra) in their strong settings: JPEG optimised Huffman tables, WebP method 6, AVIF speed 4
at 4:4:4, JPEG XL effort 7, HEIC (HEVC intra, the stand-in for BPG) at 4:4:4.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from PIL import Image


class Codec(Protocol):
    """A lossy codec swept over ``qualities`` (larger means more bits)."""

    name: str
    description: str
    qualities: Sequence[float]

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        """Compress ``uint8`` pixels of shape ``(H, W, 3)``."""
        ...

    def decode(self, data: bytes) -> np.ndarray:
        """Return ``uint8`` pixels of shape ``(H, W, 3)``."""
        ...


@dataclass(frozen=True)
class PillowCodec:
    """A codec that Pillow writes as ``pillow_format`` with options derived from quality."""

    name: str
    description: str
    pillow_format: str
    qualities: Sequence[float]
    options: Callable[[float], dict]
    """Pillow's save options for a quality; picklable (a module-level function or
    :class:`QualityOptions`) so that the codec can encode in worker processes."""
    register_plugin: Callable[[], None] | None = None
    """Loads the Pillow plugin that writes ``pillow_format``, once per process."""

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        if self.register_plugin is not None:  # also in a worker process
            self.register_plugin()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=self.pillow_format, **self.options(quality))
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class InrstoreCodec:
    """inrstore itself: one preset, swept over quality; sizes are whole bitstreams."""

    preset: str
    qualities: Sequence[float] = (25.0, 50.0, 75.0)
    device: str = "cpu"
    """Where the encoder trains (``cpu`` or ``cuda``); decoding is always on the CPU."""
    time_limit: float | None = None
    """Seconds each encode may train (None: the preset's budget for the image's size)."""

    @property
    def name(self) -> str:
        return f"inrstore-{self.preset}"

    @property
    def description(self) -> str:
        limit = "" if self.time_limit is None else f", training limited to {self.time_limit:g} s"
        return (
            f"inrstore, preset {self.preset} (encoded on {self.device}{limit}, decoded on the "
            "CPU), whole bitstream incl. network weights"
        )

    def encode(self, pixels: np.ndarray, quality: float) -> bytes:
        from inrstore.models.codec import encode_image

        return encode_image(
            pixels, self.preset, quality, device=self.device, time_limit=self.time_limit
        )

    def decode(self, data: bytes) -> np.ndarray:
        from inrstore.models.codec import decode_image

        return decode_image(data)


class MissingCodecError(RuntimeError):
    """A codec's library is not installed."""


@functools.cache
def _register_jxl() -> None:
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)
    except ImportError:
        raise MissingCodecError(
            "jxl needs pillow-jxl-plugin: pip install 'inrstore[bench]'"
        ) from None


@functools.cache
def _register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:
        raise MissingCodecError("heic needs pillow-heif: pip install 'inrstore[bench]'") from None
    pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class QualityOptions:
    """Save options ``{"quality": int(q)}`` plus fixed ones (``settings``: name/value pairs)."""

    settings: tuple[tuple[str, object], ...]

    def __call__(self, quality: float) -> dict:
        return {"quality": int(quality), **dict(self.settings)}


_RGB_BITS = 24.0


def _jpeg2000_options(bpp: float) -> dict:
    """OpenJPEG's rate-controlled 9/7 wavelet at ``bpp`` bits per pixel."""
    return {
        "quality_mode": "rates",
        "quality_layers": [_RGB_BITS / bpp],
        "irreversible": True,
        "mct": 1,
    }


_CODECS: dict[str, Codec] = {
    "jpeg": PillowCodec(
        "jpeg", "JPEG 4:2:0, optimised (Pillow)", "JPEG",
        (2, 5, 10, 20, 35, 50, 70, 85, 90),
        QualityOptions((("optimize", True), ("subsampling", 2))),
    ),
    "jpeg444": PillowCodec(
        "jpeg444", "JPEG 4:4:4, optimised (Pillow)", "JPEG",
        (2, 5, 10, 20, 35, 50, 70, 85, 90),
        QualityOptions((("optimize", True), ("subsampling", 0))),
    ),
    "webp": PillowCodec(
        "webp", "WebP method 6 (Pillow)", "WEBP",
        (0, 10, 25, 40, 55, 70, 80, 90), QualityOptions((("method", 6),)),
    ),
    "avif": PillowCodec(
        "avif", "AVIF speed 4, 4:4:4 (Pillow)", "AVIF",
        (5, 15, 25, 35, 45, 55, 65, 75, 85),
        QualityOptions((("speed", 4), ("subsampling", "4:4:4"))),
    ),
    "jxl": PillowCodec(
        "jxl", "JPEG XL effort 7 (pillow-jxl-plugin)", "JXL",
        (1, 5, 15, 30, 45, 60, 75, 85, 92), QualityOptions((("effort", 7),)),
        _register_jxl,
    ),
    "jpeg2000": PillowCodec(
        "jpeg2000", "JPEG 2000, 9/7 wavelet, rate-controlled (OpenJPEG)", "JPEG2000",
        (0.1, 0.15, 0.25, 0.4, 0.6, 0.9, 1.3, 2.0),
        _jpeg2000_options,
    ),
    "heic": PillowCodec(
        "heic", "HEIC (HEVC intra, BPG stand-in), 4:4:4 (pillow-heif)", "HEIF",
        (5, 12, 20, 28, 36, 44, 52, 60), QualityOptions((("chroma", 444),)),
        _register_heif,
    ),
} | {f"inrstore-{p}": InrstoreCodec(p) for p in ("fast", "default", "best")}  # fmt: skip

CODEC_NAMES = tuple(_CODECS)


def get_codec(name: str, device: str = "cpu", time_limit: float | None = None) -> Codec:
    """The codec registered as ``name``, its plugin loaded; inrstore's codecs encode on
    ``device`` and train for at most ``time_limit`` seconds when given (the others run on
    the CPU).

    Raises ``KeyError`` naming the known codecs, or :class:`MissingCodecError`.
    """
    try:
        codec = _CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(CODEC_NAMES)}") from None
    register_plugin = getattr(codec, "register_plugin", None)
    if register_plugin is not None:
        register_plugin()
    if isinstance(codec, InrstoreCodec):
        return replace(codec, device=device, time_limit=time_limit)
    return codec
