"""Crashes and concurrency: kill -9 during add, readers while a writer commits."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inrstore.store import Store

_ADD = """
import sys
from inrstore.models.fit.presets import Preset
from inrstore.store import Store
with Store.open(sys.argv[1], create=True) as store:
    store.add([sys.argv[2]], preset=Preset("quick", 15, 0), shard_size=2)
"""


@pytest.fixture
def eight_images(tmp_path: Path, cifar_samples: Path) -> Path:
    folder = tmp_path / "eight"
    folder.mkdir()
    for index in range(8):
        shutil.copy(cifar_samples / f"{index:04d}.png", folder / f"{index:04d}.png")
    return folder


def _start_add(store: Path, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _ADD, str(store), str(folder)])


def _snapshot(path: Path) -> dict[str, bytes]:
    """Each member's decoded pixels; also checks that shards are whole."""
    with Store.open(path, readonly=True) as store:
        decoded = {hex_id: store.get(hex_id).tobytes() for hex_id in store.ids()}
        shards = {info.shard for info in store.members()}
        assert len(decoded) == 2 * len(shards), "a partial shard is visible"
        assert store.verify(quick=True) == []
    return decoded


def test_kill_during_add_loses_only_the_shard_in_progress(
    tmp_path: Path, eight_images: Path
) -> None:
    store = tmp_path / "store"
    rng = np.random.default_rng(0)
    before: dict[str, bytes] = {}
    for _ in range(3):
        process = _start_add(store, eight_images)
        time.sleep(float(rng.uniform(1.0, 4.0)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if not (store / "data.mdb").exists():
            continue
        after = _snapshot(store)
        for hex_id, pixels in before.items():
            assert after[hex_id] == pixels, "a committed member changed"
        before = after
    completion = _start_add(store, eight_images)
    assert completion.wait(timeout=120) == 0
    final = _snapshot(store)
    assert len(final) == 8
    assert all(final[hex_id] == pixels for hex_id, pixels in before.items())


def test_readers_keep_decoding_while_a_writer_adds(tmp_path: Path, eight_images: Path) -> None:
    store = tmp_path / "store"
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(eight_images / "0000.png", first)
    assert _start_add(store, first).wait(timeout=60) == 0
    writer = _start_add(store, eight_images)
    reads = 0
    with Store.open(store, readonly=True) as reader:
        while writer.poll() is None:
            for hex_id in reader.ids():
                assert reader.get(hex_id).shape == (32, 32, 3)
                reads += 1
        assert writer.returncode == 0
        assert len(reader.ids()) == 8  # new snapshots see the writer's commits
    assert reads > 0
