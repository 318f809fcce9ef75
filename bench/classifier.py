"""A small classifier trained on images read from a store against the same one trained on the
PNG files: test accuracy (on the PNG test images) and seconds per training epoch.

Usage: ``python -m inrstore.bench.classifier CIFAR_DIR --store STORE --out FILE.json
[--epochs 8] [--seed 0]``. ``CIFAR_DIR`` holds PNG files and a ``labels.csv``
(``file,label`` rows); ``STORE`` is filled from it with ``add --preset fast`` (the labels
recorded) unless it exists. The first 80% of the files (by name) train, the rest test. Both
runs start from the same weights and see their images in the same seeded order per epoch;
the store's are read through a ``DataLoader`` over :class:`~inrstore.store.ShardStream`,
the files' over Pillow, so an epoch's time includes reading and decoding.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from inrstore.bench.run import write_report
from inrstore.store import ShardStream, Store
from inrstore.store.archive import read_labels


@dataclass(frozen=True)
class ClassifierSettings:
    """One comparison: epochs, batch size, Adam's learning rate, the seed, the train share."""

    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    train_fraction: float = 0.8
    workers: int = 0


class LabelledFiles(Dataset):
    """``(image float32 (3, H, W) in [0, 1], label)`` from image files."""

    def __init__(self, paths: list[Path], labels: list[int]) -> None:
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as image:
            pixels = np.array(image.convert("RGB"))
        return torch.from_numpy(pixels).permute(2, 0, 1).float().div(255.0), self.labels[index]


def small_cnn(classes: int = 10) -> nn.Module:
    """Two 3×3 convolution blocks and a linear layer, for 32×32 RGB images."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, classes),
    )  # fmt: skip


def train(
    loader: DataLoader,
    settings: ClassifierSettings,
    set_epoch: Callable[[int], None] | None = None,
) -> tuple[nn.Module, list[float]]:
    """The CNN trained from seed ``settings.seed`` and the seconds of each epoch."""
    torch.manual_seed(settings.seed)
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    seconds = []
    for epoch in range(settings.epochs):
        if set_epoch is not None:
            set_epoch(epoch)
        started = time.perf_counter()
        for images, labels in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - started)
    return model, seconds


def accuracy(model: nn.Module, dataset: Dataset) -> float:
    """Share of ``dataset``'s images whose label the model ranks first."""
    model.eval()
    right = 0
    with torch.no_grad():
        for images, labels in DataLoader(dataset, batch_size=256):
            right += int((model(images).argmax(dim=1) == labels).sum())
    return right / len(dataset)


def compare(folder: Path, store_path: Path, settings: ClassifierSettings) -> dict:
    """Train on the store's images and on the files, test both on the test files."""
    labels = read_labels(folder / "labels.csv")
    paths = sorted(p for p in folder.glob("*.png") if p.name in labels)
    if not store_path.exists():
        with Store.open(store_path, create=True) as store:
            store.add(paths, preset="fast", labels=labels)
    cut = int(len(paths) * settings.train_fraction)
    train_paths, test_paths = paths[:cut], paths[cut:]
    test = LabelledFiles(test_paths, [labels[p.name] for p in test_paths])
    order = torch.Generator().manual_seed(settings.seed)
    files = DataLoader(
        LabelledFiles(train_paths, [labels[p.name] for p in train_paths]),
        batch_size=settings.batch_size, shuffle=True, generator=order,
        num_workers=settings.workers,
    )  # fmt: skip
    stream = ShardStream(store_path, ids=[p.name for p in train_paths], seed=settings.seed)
    from_store = DataLoader(stream, batch_size=settings.batch_size, num_workers=settings.workers)
    results = {}
    for name, loader, set_epoch in (
        ("PNG files", files, None),
        ("store", from_store, stream.set_epoch),
    ):
        model, seconds = train(loader, settings, set_epoch)
        results[name] = {
            "test_accuracy": accuracy(model, test),
            "epoch_seconds": float(np.median(seconds)),
        }
    return {
        "name": "classifier",
        "description": f"a small CNN trained from {folder.name}'s files and from a store of them",
        "train_images": len(train_paths),
        "test_images": len(test_paths),
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=ClassifierSettings.epochs)
    parser.add_argument("--seed", type=int, default=ClassifierSettings.seed)
    args = parser.parse_args()
    settings = ClassifierSettings(epochs=args.epochs, seed=args.seed)
    report = compare(args.folder, args.store, settings)
    write_report(args.out, report, asdict(settings))
    for name, row in report["results"].items():
        accuracy_share, seconds = row["test_accuracy"], row["epoch_seconds"]
        print(f"{name:10s} accuracy {accuracy_share:.3f}, {seconds:.2f} s per epoch")


if __name__ == "__main__":
    main()
