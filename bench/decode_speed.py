"""Decode time of inrstore bitstreams against Pillow's AVIF and JPEG decoders, one thread.

Usage: ``python -m inrstore.bench.decode_speed IMAGE --out FILE.json``. Decode time depends on
the architecture and the image size, not on how long the encoder trained, so each bitstream
comes from a short training run. Every figure is the median of ``repeats`` decodes of bytes
already in memory.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inrstore.bench.run import write_report
from inrstore.datasets import load_image
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.fit.presets import Preset


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pillow_bytes(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def measure(pixels: np.ndarray, repeats: int, iterations: int) -> dict:
    torch.set_num_threads(1)
    results: dict[str, float] = {}
    variants = (
        (Preset("speed", iterations, arm_levels=0), "inrstore all-ARU"),
        (
            Preset("speed", iterations, arm_levels=0, zero_levels=1),
            "inrstore all-ARU, no finest grid",
        ),
        (Preset("speed", iterations, arm_levels=1), "inrstore default (1 ARM grid)"),
        (
            Preset("speed", iterations, arm_levels=1, wide_arm=True),
            "inrstore best (24-neighbour ARM on every grid)",
        ),
        (
            Preset("speed", iterations, arm_levels=1, wide_arm=True, zero_levels=1),
            "inrstore best, no finest grid",
        ),
    )
    for preset, label in variants:
        data = encode_image(pixels, preset, quality=50)
        for scale in (1.0, 0.25):
            seconds = median_seconds(lambda d=data, s=scale: decode_image(d, s), repeats)
            results[f"{label}, scale {scale:g}"] = seconds
    avif = pillow_bytes(pixels, "AVIF", quality=50, speed=4, subsampling="4:4:4")
    jpeg = pillow_bytes(pixels, "JPEG", quality=50, optimize=True)
    results["Pillow AVIF"] = median_seconds(lambda: pillow_decode(avif), repeats)
    results["Pillow JPEG"] = median_seconds(lambda: pillow_decode(jpeg), repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    pixels = load_image(args.image).pixels
    results = measure(pixels, args.repeats, args.iterations)
    height, width = pixels.shape[:2]
    report = {
        "image": args.image.name,
        "size": [width, height],
        "threads": 1,
        "statistic": f"median of {args.repeats} decodes, seconds",
        "seconds": results,
        "ratio_to_avif": {k: v / results["Pillow AVIF"] for k, v in results.items()},
        "ratio_to_jpeg": {k: v / results["Pillow JPEG"] for k, v in results.items()},
    }
    write_report(args.out, report)
    for name, seconds in results.items():
        print(f"{name:40s} {1000 * seconds:8.1f} ms")


if __name__ == "__main__":
    main()
