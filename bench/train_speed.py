"""Training speed of the single-image encoder: iterations per second by image size.

Usage: ``python -m inrstore.bench.train_speed IMAGE --out FILE.json [--threads 2]
[--device cuda]``. Trains the models of :data:`VARIANTS` (on the crop, a preset with one ARM
grid already gets the 24-neighbour ARM on every grid below the coarsest) on the 256×256 centre
crop of IMAGE and on the whole image for a fixed number of iterations (no time limit) and
reports iterations per second (the first ``warmup`` iterations are not counted). Each result
is labelled with the architecture's own ARM grid count and neighbourhood.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from inrstore.bench.run import center_crop, write_report
from inrstore.datasets import load_image
from inrstore.models.core.architecture import Architecture, image_architecture
from inrstore.models.fit.presets import Preset, quality_to_lambda
from inrstore.models.fit.train import TrainingStatus, fit_image

CROP = 256

VARIANTS = ((0, 0, False), (1, 0, False), (0, 1, False), (1, 0, True), (1, 1, True))
"""``(arm_levels, zero_levels, wide_arm)``: all-ARU (``fast``), one ARM grid (``default``),
all-ARU without the finest grid, and the 24-neighbour ARM on every grid (``best``) with and
without the finest grid."""


def iterations_per_second(
    pixels: np.ndarray,
    arch: Architecture,
    zero_levels: int,
    iterations: int,
    warmup: int,
    device: str = "cpu",
) -> float:
    """Iterations per second on ``device`` after ``warmup`` iterations, for ``arch``, with the
    ``zero_levels`` finest grids held at zero (each iteration ends in a read of its loss, so a
    GPU's queue is drained before the clock is read)."""
    stamps: dict[int, float] = {}

    def record(status: TrainingStatus) -> None:
        stamps[status.iteration] = time.perf_counter()

    preset = Preset("speed", iterations + warmup, arch.arm_levels)
    fit_image(
        pixels,
        arch,
        preset,
        quality_to_lambda(50),
        device=device,
        on_status=record,
        status_every=1,
        zero_levels=zero_levels,
    )
    return iterations / (stamps[iterations + warmup] - stamps[warmup])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pixels = load_image(args.image).pixels
    results = {}
    for label, image in (("crop 256x256", center_crop(pixels, CROP)), ("full", pixels)):
        for arm_levels, zero_levels, wide_arm in VARIANTS:
            arch = image_architecture(*image.shape, arm_levels, zero_levels, wide_arm)
            key = f"{label} {image.shape[1]}x{image.shape[0]}, arm_levels={arch.arm_levels}"
            key += f" ({arch.arm_context} neighbours)" if arch.arm_levels else ""
            key += ", finest grid dropped" if zero_levels else ""
            if key in results:  # on the crop, `default`'s ARM is already the wide one
                continue
            results[key] = iterations_per_second(
                image, arch, zero_levels, args.iterations, args.warmup, args.device
            )
            print(f"{key:45s} {results[key]:6.2f} it/s", flush=True)
    report = {
        "image": args.image.name,
        "threads": args.threads,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "statistic": f"iterations/s over {args.iterations} iterations after {args.warmup}",
        "iterations_per_second": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
