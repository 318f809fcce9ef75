"""Quality sweeps of one codec over a set of images, with CompressAI-schema JSON results."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from inrstore.bench.codecs import Codec
from inrstore.datasets import ImageBatch, scan_images
from inrstore.models.metrics import bpp, ms_ssim, psnr


@dataclass(frozen=True)
class BenchImage:
    """An RGB test image: ``pixels`` is ``uint8`` of shape ``(H, W, 3)``."""

    name: str
    pixels: np.ndarray


@dataclass(frozen=True)
class ImagePoint:
    """One image coded at one quality. Times are seconds, one call each."""

    image: str
    quality: float
    num_bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encoding_time: float
    decoding_time: float


CURVE_KEYS = (
    ("psnr-rgb", "psnr"),
    ("ms-ssim-rgb", "ms_ssim"),
    ("bpp", "bpp"),
    ("encoding_time", "encoding_time"),
    ("decoding_time", "decoding_time"),
)
"""CompressAI JSON key and the :class:`ImagePoint` attribute it averages."""


@dataclass
class CodecResult:
    """All points of a sweep; :meth:`curve` averages them per quality (CompressAI convention)."""

    name: str
    description: str
    points: list[ImagePoint] = field(default_factory=list)

    def curve(self) -> dict[str, list[float]]:
        """Per-quality means, ordered by increasing bpp, keyed as in CompressAI's JSON."""
        return _mean_curve(self.points)

    def image_curves(self) -> dict[str, dict[str, list[float]]]:
        """Each image's own curve (image name → CompressAI ``results``), by image name."""
        images = sorted({p.image for p in self.points})
        return {name: _mean_curve([p for p in self.points if p.image == name]) for name in images}

    def to_json(self) -> dict:
        """CompressAI's schema (``name``, ``description``, ``results``: the means over the
        images) plus ``per_image``: every image's own curve."""
        per_image = self.image_curves()
        return {
            "name": self.name,
            "description": f"{self.description}; {len(per_image)} images; means per quality",
            "results": self.curve(),
            "per_image": per_image,
        }


def _mean_curve(points: Sequence[ImagePoint]) -> dict[str, list[float]]:
    """The CompressAI ``results`` of ``points``: per quality, the mean over their images."""
    rows = []
    for quality in sorted({p.quality for p in points}):
        group = [p for p in points if p.quality == quality]
        row = {key: statistics.fmean(getattr(p, attr) for p in group) for key, attr in CURVE_KEYS}
        rows.append(row | {"quality": quality})
    return curve_from_rows(rows)


def curve_from_rows(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """CompressAI ``results`` from one ``{key: mean}`` row per quality (every key of
    :data:`CURVE_KEYS` and ``"quality"``), ordered by increasing bpp."""
    rows = sorted(rows, key=lambda row: row["bpp"])
    return {key: [row[key] for row in rows] for key in [*dict(CURVE_KEYS), "quality"]}


def load_bench_images(
    folder: str | Path, *, crop: int | None = None, limit: int | None = None
) -> tuple[list[BenchImage], list[tuple[Path, str]]]:
    """Load the images under ``folder`` as RGB (grey replicated, alpha dropped).

    ``crop`` takes the centred ``crop × crop`` square (clamped to the image); ``limit`` keeps
    the first images in scan order. Returns the images and ``(path, reason)`` failures.
    """
    scan = scan_images(folder)
    found = scan.images[:limit] if limit else scan.images
    batch = ImageBatch(found)
    images = [BenchImage(image.name, center_crop(_to_rgb(image.pixels), crop)) for image in batch]
    return images, scan.problems + batch.failures


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def center_crop(pixels: np.ndarray, size: int | None) -> np.ndarray:
    """The centred ``size × size`` square of ``pixels`` (clamped; all of it for None)."""
    if size is None:
        return pixels
    height, width = pixels.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return np.ascontiguousarray(pixels[top : top + size, left : left + size])


def sweep(
    codec: Codec,
    images: Sequence[BenchImage],
    *,
    qualities: Sequence[float] | None = None,
    on_point: Callable[[ImagePoint], None] | None = None,
    byte_counter: Callable[[bytes], int] = len,
    jobs: int = 1,
) -> CodecResult:
    """Encode and decode every image at every quality; sizes are ``byte_counter`` of the
    encoded bytes (default: all of them).

    ``jobs`` > 1 runs the encodes in that many spawned worker processes (``codec`` must then
    be picklable), each with an equal share of the CPU's threads; decoding and the metrics
    stay in this process. Points are reported in the same order either way.
    """
    result = CodecResult(codec.name, codec.description)
    tasks = [
        (image, quality)
        for quality in (qualities if qualities is not None else codec.qualities)
        for image in images
    ]
    with _encoder_pool(jobs) as pool:
        pixels = [image.pixels for image, _ in tasks]
        task_qualities = [quality for _, quality in tasks]
        run = map if pool is None else pool.map
        encodes = run(timed_encode, [codec] * len(tasks), pixels, task_qualities)
        for (image, quality), (data, encoding_time) in zip(tasks, encodes, strict=True):
            start = time.perf_counter()
            decoded = codec.decode(data)
            decoding_time = time.perf_counter() - start
            height, width = image.pixels.shape[:2]
            size = byte_counter(data)
            point = ImagePoint(
                image=image.name,
                quality=quality,
                num_bytes=size,
                bpp=bpp(size, height, width),
                psnr=psnr(image.pixels, decoded),
                ms_ssim=ms_ssim(image.pixels, decoded),
                encoding_time=encoding_time,
                decoding_time=decoding_time,
            )
            result.points.append(point)
            if on_point is not None:
                on_point(point)
    return result


def timed_encode(codec: Codec, pixels: np.ndarray, quality: float) -> tuple[bytes, float]:
    """``codec``'s bytes for ``pixels`` at ``quality`` and the seconds the encode took."""
    start = time.perf_counter()
    data = codec.encode(pixels, quality)
    return data, time.perf_counter() - start


@contextmanager
def _encoder_pool(jobs: int) -> Iterator[ProcessPoolExecutor | None]:
    if jobs <= 1:
        yield None
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        yield pool


def write_json(result: CodecResult, out_dir: str | Path) -> dict:
    """Write ``<out_dir>/<name>.json`` (CompressAI schema, with the preset's settings for an
    inrstore codec) and return what it holds."""
    from inrstore.models.fit.presets import PRESETS

    report = result.to_json()
    preset = PRESETS.get(result.name.removeprefix("inrstore-"))
    settings = dataclasses.asdict(preset) if preset is not None else {}
    return json.loads(
        write_report(Path(out_dir) / f"{result.name}.json", report, settings).read_text()
    )


def write_report(path: str | Path, report: dict, settings: dict | None = None) -> Path:
    """Write a JSON report (indented, NaN allowed), creating its folder, with the run's
    provenance (:func:`~inrstore.bench.provenance.provenance`: commit, format versions,
    machine, date, and ``settings``)."""
    from inrstore.bench.provenance import provenance

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = report | provenance(**(settings or {}))
    path.write_text(json.dumps(stamped, indent=2, allow_nan=True) + "\n")
    return path
