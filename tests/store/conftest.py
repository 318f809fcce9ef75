"""Stores filled with a very short training preset."""

from __future__ import annotations

import shutil
from pathlib import Path

import lmdb
import pytest

from inrstore.models.fit.presets import Preset
from inrstore.store import Store

QUICK = Preset("quick", iterations=15, arm_levels=0)


@pytest.fixture
def images(tmp_path: Path, cifar_samples: Path) -> Path:
    """A folder of six CIFAR images in two class folders."""
    folder = tmp_path / "images"
    for index, sub in (
        (0, "cats"),
        (1, "cats"),
        (2, "cats"),
        (3, "dogs"),
        (4, "dogs"),
        (5, "dogs"),
    ):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(cifar_samples / f"{index:04d}.png", folder / sub / f"{index:04d}.png")
    return folder


@pytest.fixture
def filled(tmp_path: Path, images: Path) -> Path:
    """A store holding the six images, in shards of four with shared networks."""
    path = tmp_path / "store"
    with Store.open(path, create=True) as store:
        report = store.add(
            [images], preset=QUICK, shard_size=4, label_from_folder=True, sharing="shared"
        )
    assert len(report.added) == 6 and report.shards == 2
    return path


def flip_member_byte(store: Path, hex_id: str) -> None:
    """Damage member ``hex_id``'s record in place: one flipped byte in its middle."""
    env = lmdb.open(str(store), max_dbs=5)
    members = env.open_db(b"members")
    with env.begin(write=True, db=members) as txn:
        raw = bytearray(txn.get(hex_id.encode()))
        raw[len(raw) // 2] ^= 0x40
        txn.put(hex_id.encode(), bytes(raw))
    env.close()
