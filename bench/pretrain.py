"""Rebuild the encoder's warm-start weights (:mod:`inrstore.models.fit.warm_start`).

Usage: ``python -m inrstore.bench.pretrain CIFAR_FOLDER [--out models/fit/initial_weights.npz]
[--report bench/results/pretrain/pretrain.json]``. For each architecture the presets use on 256×256
crops and on Kodak-sized (768×512) images, tiles equal-sized images of CIFAR_FOLDER (the
CIFAR-10 test sample; never the Kodak images the benchmarks measure) into a mosaic of that
size, trains the ``fast`` recipe on it for a fixed number of iterations at each of
:data:`QUALITIES` and stores the trained networks (the encoder starts from the set nearest its
λ). Each architecture's mosaic uses images the others do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inrstore.bench.run import load_bench_images, write_report
from inrstore.models.core.architecture import image_architecture
from inrstore.models.fit.presets import preset, quality_to_lambda
from inrstore.models.fit.train import fit_image
from inrstore.models.fit.warm_start import WEIGHTS_PATH, save_sets


@dataclass(frozen=True)
class Target:
    """One stored set: mosaic size, ARM grids, finest grids held at zero, iterations."""

    height: int
    width: int
    arm_levels: int
    zero_levels: int
    iterations: int


TARGETS = (
    Target(256, 256, 0, 1, 1500),
    Target(512, 768, 0, 0, 800),
    Target(512, 768, 1, 0, 800),
)
"""``fast`` on crops drops the finest grid; on whole images both ``fast`` and ``default``
usually keep it. No set holds the ARM of ``default`` and ``best`` on crops and of ``best``
everywhere (24 neighbours on every grid, :data:`~inrstore.models.core.architecture.WIDE_ARM`):
it starts from random weights and their synthesis from the set of its widths."""

QUALITIES = (25.0, 50.0, 75.0)


def mosaic(tiles: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Tile equal-sized ``(h, w, 3)`` images row by row into ``(height, width, 3)``; needs
    ``ceil(height/h) × ceil(width/w)`` tiles, the last row and column cropped."""
    tile_height, tile_width = tiles[0].shape[:2]
    rows, cols = math.ceil(height / tile_height), math.ceil(width / tile_width)
    if len(tiles) < rows * cols:
        raise ValueError(f"a {height}×{width} mosaic needs {rows * cols} tiles, {len(tiles)} given")
    lines = [np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(lines, axis=0)[:height, :width])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--report", type=Path, default=Path("bench/results/pretrain/pretrain.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, _ = load_bench_images(args.folder)
    tile_shape = images[0].pixels.shape
    tiles = [image.pixels for image in images if image.pixels.shape == tile_shape]
    fast = dataclasses.replace(preset("fast"), crop_seconds=None, warm_start=False)
    sets, rows, used = [], [], 0
    for target in TARGETS:
        count = math.ceil(target.height / tile_shape[0]) * math.ceil(target.width / tile_shape[1])
        pixels = mosaic(tiles[used : used + count], target.height, target.width)
        used += count
        arch = image_architecture(*pixels.shape, target.arm_levels, target.zero_levels)
        recipe = dataclasses.replace(fast, iterations=target.iterations, arm_levels=arch.arm_levels)
        for quality in QUALITIES:
            lam = quality_to_lambda(quality)
            start = time.perf_counter()
            fitted = fit_image(pixels, arch, recipe, lam, zero_levels=target.zero_levels)
            seconds = time.perf_counter() - start
            sets.append((fitted.params, target.zero_levels, lam))
            row = dataclasses.asdict(target) | {"quality": quality, "tiles": count}
            rows.append(row | {"seconds": seconds})
            print(f"{target} at quality {quality:g}: {seconds:.0f} s", flush=True)
    save_sets(sets, args.out)
    report = {
        "source": str(args.folder),
        "threads": args.threads,
        "sets": rows,
    }
    write_report(args.report, report)


if __name__ == "__main__":
    main()
