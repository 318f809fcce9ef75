"""A store written by store format 2 (shard headers v1, members v3) keeps opening, verifying
and decoding to the same pixels. ``INRSTORE_REGENERATE_GOLDEN=1`` rewrites it; do that only
together with a new store format version (see docs/formats.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from inrstore.store import Store

from .conftest import QUICK

GOLDEN = Path(__file__).parent / "golden" / "store-v2"
EXPECTED = GOLDEN.with_suffix(".json")


def _digests(store: Store) -> dict[str, dict[str, str]]:
    return {
        hex_id: {
            "scale 1": hashlib.sha256(store.get(hex_id).tobytes()).hexdigest(),
            "scale 2": hashlib.sha256(store.get(hex_id, scale=2).tobytes()).hexdigest(),
        }
        for hex_id in store.ids()
    }


@pytest.mark.skipif(not os.environ.get("INRSTORE_REGENERATE_GOLDEN"), reason="regeneration only")
def test_regenerate_golden_store(cifar_samples: Path, kodak_samples: Path) -> None:
    shutil.rmtree(GOLDEN, ignore_errors=True)
    with Store.open(GOLDEN, create=True) as store:
        files = [cifar_samples / f"{i:04d}.png" for i in range(4)]
        store.add(files, preset=QUICK, shard_size=2, bases=2)
        store.add([kodak_samples / "kodim23-128.png"], preset=QUICK)
        EXPECTED.write_text(json.dumps(_digests(store), indent=2) + "\n")
    for extra in GOLDEN.iterdir():
        if extra.name != "data.mdb":
            extra.unlink()


def test_golden_store_opens_verifies_and_decodes(tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(GOLDEN, copy)
    expected = json.loads(EXPECTED.read_text())
    with Store.open(copy, readonly=True) as store:
        assert len(store.ids()) == 5 and store.stats().shards == 3
        assert store.verify() == []
        assert _digests(store) == expected
