"""Named benchmark datasets (Kodak, the CIFAR-10 sample), verified against known checksums.

Checksums are of decoded pixels (:func:`~inrstore.datasets.load.pixel_sha256`), so a copy
re-compressed losslessly still verifies. A dataset is read from ``root`` when given, else from
``$INRSTORE_DATA/<folder>`` (``kodak`` or ``cifar10-sample``).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from inrstore.datasets.errors import DatasetError, ImageError
from inrstore.datasets.load import load_image, pixel_sha256

DATA_ENV = "INRSTORE_DATA"
KODAK_URL = "https://r0k.us/graphics/kodak/kodak/{name}"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_TEST_MEMBER = "cifar-10-batches-bin/test_batch.bin"

Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class DatasetEntry:
    """One file of a named dataset: its name, label (or None) and pixel checksum."""

    file: str
    label: int | None
    pixel_sha256: str


@dataclass(frozen=True)
class NamedDataset:
    """A verified, ordered list of image files with optional labels."""

    name: str
    root: Path
    entries: tuple[DatasetEntry, ...]

    @property
    def paths(self) -> list[Path]:
        return [self.root / entry.file for entry in self.entries]

    @property
    def labels(self) -> dict[str, int]:
        return {e.file: e.label for e in self.entries if e.label is not None}

    def verify(self) -> None:
        """Raise :class:`DatasetError` unless every file exists and matches its checksum."""
        bad = []
        for entry in self.entries:
            try:
                actual = pixel_sha256(load_image(self.root / entry.file).pixels)
            except ImageError as err:
                bad.append(f"{entry.file} ({err.reason})")
                continue
            if actual != entry.pixel_sha256:
                bad.append(f"{entry.file} (checksum mismatch)")
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise DatasetError(f"{self.name} at {self.root}: {len(bad)} bad files: {shown}")


def _manifest(filename: str) -> tuple[DatasetEntry, ...]:
    text = resources.files("inrstore.datasets").joinpath("manifests", filename).read_text()
    entries = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        label = int(fields[1]) if len(fields) == 3 else None
        entries.append(DatasetEntry(fields[0], label, fields[-1]))
    return tuple(entries)


def _resolve_root(root: str | Path | None, folder: str) -> Path:
    if root is not None:
        return Path(root)
    base = os.environ.get(DATA_ENV)
    if not base:
        raise DatasetError(f"no folder given for {folder} and ${DATA_ENV} is not set")
    return Path(base) / folder


def _open(name: str, manifest: str, folder: str, root: str | Path | None, verify: bool):
    dataset = NamedDataset(name, _resolve_root(root, folder), _manifest(manifest))
    if not dataset.root.is_dir():
        raise DatasetError(f"{name}: {dataset.root} is not a folder")
    if verify:
        dataset.verify()
    return dataset


def kodak(root: str | Path | None = None, *, verify: bool = True) -> NamedDataset:
    """The 24 Kodak images (``kodim01.png`` … ``kodim24.png``)."""
    return _open("kodak", "kodak.tsv", "kodak", root, verify)


def cifar10(root: str | Path | None = None, *, verify: bool = True) -> NamedDataset:
    """The 1000-image CIFAR-10 test-split sample (``0000.png`` … ``0999.png``), with labels."""
    return _open("cifar10", "cifar10-sample.tsv", "cifar10-sample", root, verify)


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def download_kodak(dest: str | Path, *, fetch: Fetch = _http_get) -> NamedDataset:
    """Download the Kodak images from their original site into ``dest`` and verify them."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in _manifest("kodak.tsv"):
        target = dest / entry.file
        if not target.exists():
            _write_atomic(target, fetch(KODAK_URL.format(name=entry.file)))
    return kodak(dest)


def download_cifar10(dest: str | Path, *, fetch: Fetch = _http_get) -> NamedDataset:
    """Rebuild the CIFAR-10 sample from the official binary archive (no pickle is read).

    The archive's MD5 is checked; each test image whose pixel checksum is in the sample's
    manifest is written as its sample file name, with ``labels.csv`` beside them.
    """
    dest = Path(dest)
    archive = fetch(CIFAR10_URL)
    if hashlib.md5(archive).hexdigest() != CIFAR10_MD5:
        raise DatasetError(f"cifar10: archive from {CIFAR10_URL} fails its MD5 check")
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        member = tar.extractfile(CIFAR10_TEST_MEMBER)
        if member is None:
            raise DatasetError(f"cifar10: archive lacks {CIFAR10_TEST_MEMBER}")
        records = np.frombuffer(member.read(), dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
    wanted = {e.pixel_sha256: e for e in _manifest("cifar10-sample.tsv")}
    dest.mkdir(parents=True, exist_ok=True)
    for record in records:
        pixels = record[1:].reshape(3, 32, 32).transpose(1, 2, 0)
        entry = wanted.get(pixel_sha256(pixels))
        if entry is not None:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            _write_atomic(dest / entry.file, buffer.getvalue())
    lines = ["file,label"] + [f"{e.file},{e.label}" for e in wanted.values()]
    _write_atomic(dest / "labels.csv", ("\n".join(lines) + "\n").encode())
    return cifar10(dest)


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)
