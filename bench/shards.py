"""Shard benchmarks: shared-basis shards against single-image encodes and per-file codecs.

Usage::

    python -m inrstore.bench.shards FOLDER --out DIR [--limit N] [--downscale F]
        [--configs single,1x1,16x4,128x4] [--qualities 40,60,80] [--preset fast]
        [--seconds-per-image S] [--baselines jpeg,webp,avif,jxl] [--anchors webp,webp-raw]

A config ``SxK`` cuts the images (scan order) into shards of ``S`` members with ``K`` bases
(``SxKw``: every shard after the first warm-starts from the previous one's bases, and trains
for half the time); ``single`` encodes each image alone with the single-image codec. Every
config gets the same training time per image (``--seconds-per-image``, default the preset's
budget per image; a shard of S images trains for the sum). A member's bytes are its record
plus its share of the header (header bytes / S). Baselines are per-file codecs in their
strong settings, counted whole (``jpeg``) and as raw codestreams without container
(``jpeg-raw``). Writes one
CompressAI-schema JSON per curve, ``report.json`` (BD-rates against each anchor, encode time
per config) and ``rd.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from inrstore.bench.codecs import get_codec
from inrstore.bench.codestream import codestream_bytes
from inrstore.bench.report import bd_rate_table, plot_rd
from inrstore.bench.run import (
    BenchImage,
    CodecResult,
    ImagePoint,
    load_bench_images,
    sweep,
    write_json,
    write_report,
)
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.fit.presets import preset as find_preset
from inrstore.models.metrics import bpp, ms_ssim, psnr
from inrstore.models.shard_codec import decode_member, encode_shard, read_shard_header


@dataclass(frozen=True)
class ShardConfig:
    """Shards of ``size`` images with ``bases`` K; ``warm``: each shard after the first starts
    from the previous shard's bases."""

    size: int
    bases: int
    warm: bool = False


def parse_config(text: str) -> ShardConfig | None:
    """``"SxK"`` (``"SxKw"`` warm-started) → :class:`ShardConfig`; ``"single"`` → None."""
    if text == "single":
        return None
    size, _, bases = text.removesuffix("w").partition("x")
    return ShardConfig(int(size), int(bases), text.endswith("w"))


def downscaled(images: list[BenchImage], factor: int) -> list[BenchImage]:
    """Each image reduced ``factor`` times on each side (Lanczos)."""
    if factor == 1:
        return images
    result = []
    for image in images:
        height, width = image.pixels.shape[:2]
        small = Image.fromarray(image.pixels).resize(
            (width // factor, height // factor), Image.Resampling.LANCZOS
        )
        result.append(BenchImage(image.name, np.asarray(small)))
    return result


def _point(image: BenchImage, quality, num_bytes: float, decoded, encode_s, decode_s):
    height, width = image.pixels.shape[:2]
    return ImagePoint(
        image=image.name,
        quality=quality,
        num_bytes=round(num_bytes),
        bpp=bpp(num_bytes, height, width),
        psnr=psnr(image.pixels, decoded),
        ms_ssim=ms_ssim(image.pixels, decoded),
        encoding_time=encode_s,
        decoding_time=decode_s,
    )


def config_sweep(
    config: str,
    images: Sequence[BenchImage],
    qualities: Sequence[float],
    preset_name: str,
    seconds_per_image: float | None,
    on_done: Callable[[str], None],
) -> CodecResult:
    """Every image at every quality under one config (see the module docstring)."""
    chosen = find_preset(preset_name)
    shape = parse_config(config)
    result = CodecResult(
        f"inrstore-{config}",
        f"inrstore {preset_name}, "
        + (
            "single-image codec"
            if shape is None
            else f"shards of {shape.size}, K={shape.bases}"
            + (", warm-started" if shape.warm else "")
        ),
    )
    size = 1 if shape is None else shape.size
    for quality in qualities:
        previous = None
        for start in range(0, len(images), size):
            group = images[start : start + size]
            limit = None
            if seconds_per_image is not None:
                limit = seconds_per_image * len(group)
            began = time.perf_counter()
            if shape is None:
                data = encode_image(group[0].pixels, chosen, quality, time_limit=limit)
                encode_seconds = time.perf_counter() - began
                decoded, decode_seconds = _timed(decode_image, data)
                result.points.append(
                    _point(group[0], quality, len(data), decoded, encode_seconds, decode_seconds)
                )
            else:
                encoded = encode_shard(
                    [image.pixels for image in group], chosen, quality, bases=shape.bases,
                    time_limit=limit, warm_start=previous if shape.warm else None, sharing="shared",
                )  # fmt: skip
                previous = encoded.header
                encode_seconds = time.perf_counter() - began
                header = read_shard_header(encoded.header)
                for image, member in zip(group, encoded.members, strict=True):
                    decoded, decode_seconds = _timed(decode_member, header, member)
                    own = len(member) + len(encoded.header) / len(group)
                    result.points.append(
                        _point(image, quality, own, decoded, encode_seconds / len(group),
                               decode_seconds)
                    )  # fmt: skip
            on_done(f"{config} q{quality:g} images {start + len(group)}/{len(images)}")
    return result


def _timed(run: Callable[..., np.ndarray], *args) -> tuple[np.ndarray, float]:
    began = time.perf_counter()
    value = run(*args)
    return value, time.perf_counter() - began


def raw_variant(name: str) -> tuple[str, Callable[[bytes], int]]:
    """The baseline's raw-codestream curve name and byte counter."""
    codec = get_codec(name)
    return f"{name}-raw", lambda data: codestream_bytes(codec.pillow_format, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--downscale", type=int, default=1)
    parser.add_argument("--configs", default="single,1x1,16x4")
    parser.add_argument("--qualities", default="40,60,80")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--seconds-per-image", type=float)
    parser.add_argument("--baselines", default="jpeg,webp,avif,jxl")
    parser.add_argument("--anchors", default="webp,webp-raw")
    args = parser.parse_args()
    images, problems = load_bench_images(args.folder, limit=args.limit)
    images = downscaled(images, args.downscale)
    qualities = [float(q) for q in args.qualities.split(",")]
    curves, encode_seconds = {}, {}
    for name in filter(None, args.baselines.split(",")):
        for curve_name, counter in ((name, len), raw_variant(name)):
            result = replace(sweep(get_codec(name), images, byte_counter=counter), name=curve_name)
            curves[curve_name] = write_json(result, args.out)["results"]
        print(f"{name}: done", flush=True)
    for config in args.configs.split(","):
        result = config_sweep(
            config, images, qualities, args.preset, args.seconds_per_image,
            lambda message: print(message, flush=True),
        )  # fmt: skip
        curves[result.name] = write_json(result, args.out)["results"]
        encode_seconds[result.name] = sum(p.encoding_time for p in result.points)
    report = {
        "images": len(images),
        "image_size": list(images[0].pixels.shape) if images else None,
        "problems": [f"{path}: {reason}" for path, reason in problems],
        "qualities": qualities,
        "preset": args.preset,
        "seconds_per_image": args.seconds_per_image,
        "encode_seconds_total": encode_seconds,
        "bd_rate_percent": {
            anchor: bd_rate_table(curves, anchor)
            for anchor in args.anchors.split(",")
            if anchor in curves
        },
        "mean_psnr": {k: statistics.fmean(c["psnr-rgb"]) for k, c in curves.items()},
    }
    write_report(args.out / "report.json", report)
    plot_rd(curves, args.out / "rd.png", f"{args.folder.name}: shards vs per-file codecs")
    for anchor, table in report["bd_rate_percent"].items():
        for name, value in table.items():
            if not math.isnan(value):
                print(f"BD-rate vs {anchor}: {name} {value:+.1f}%")


if __name__ == "__main__":
    main()
