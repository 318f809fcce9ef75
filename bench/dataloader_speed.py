"""Images per second through a PyTorch DataLoader: from a store vs from PNG and JPEG files.

Usage: ``python -m inrstore.bench.dataloader_speed CIFAR_DIR --out FILE.json [--limit N]
[--repeats R]``: each rate is the median of ``R`` runs of three epochs.
The store is filled by ``add`` with the ``fast`` preset's settings (widths, finest-grid
rule, shards of 128) cut to 30 training steps (read speed does not depend on how long the
encoder trained) and shared networks, which ``add --preset fast`` chooses for CIFAR shards
(a 30-step run alone would keep each image's own networks). Every loader decodes to float32
``(C, H, W)`` tensors in [0, 1]; the store is read by random access (:class:`StoreDataset`)
and shard by shard (:class:`ShardStream`).
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from inrstore.bench.run import write_report
from inrstore.datasets import scan_images
from inrstore.models.fit.presets import preset
from inrstore.store import ShardStream, Store, StoreDataset


class FileDataset(Dataset):
    """Images decoded with Pillow from files."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as image:
            pixels = np.array(image.convert("RGB"))  # writable: torch warns on read-only arrays
        return torch.from_numpy(pixels).permute(2, 0, 1).float().div(255.0), 0


def images_per_second(dataset: Dataset, workers: int, epochs: int = 3) -> float:
    """Images per second over ``epochs`` epochs (each starts its workers afresh)."""
    loader = DataLoader(dataset, batch_size=64, num_workers=workers)
    start = time.perf_counter()
    for _ in range(epochs):
        for _batch in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def median_rate(dataset: Dataset, workers: int, repeats: int) -> float:
    """The median of ``repeats`` measurements of :func:`images_per_second`."""
    return statistics.median(images_per_second(dataset, workers) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    paths = [found.path for found in scan_images(args.folder).images][: args.limit]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        jpegs = []
        for path in paths:
            buffer = io.BytesIO()
            Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=90)
            jpegs.append(root / f"{path.stem}.jpg")
            jpegs[-1].write_bytes(buffer.getvalue())
        with Store.open(root / "store", create=True) as store:
            store.add(paths, preset=replace(preset("fast"), iterations=30), sharing="shared")
        datasets = {  # made afresh per measurement: one LMDB handle per process at a time
            "store": lambda: StoreDataset(root / "store"),
            "store shard stream": lambda: ShardStream(root / "store"),
            "PNG files": lambda: FileDataset(paths),
            "JPEG files": lambda: FileDataset(jpegs),
        }
        results = {
            f"{name}, {workers} workers": median_rate(dataset(), workers, args.repeats)
            for workers in (0, args.workers)
            for name, dataset in datasets.items()
        }
    report = {
        "images": len(paths),
        "unit": "images per second",
        "measure": f"median of {args.repeats} runs of 3 epochs, each epoch starting its workers",
        "results": results,
    }
    write_report(args.out, report)
    for name, rate in results.items():
        print(f"{name:28s} {rate:10.1f} images/s")


if __name__ == "__main__":
    main()
