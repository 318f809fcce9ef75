"""The PyTorch datasets over a store, with worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from inrstore.store import CorruptRecordError, ShardStream, Store, StoreDataset, UnknownIdError

from .conftest import flip_member_byte


def test_dataset_items_match_store_gets(filled: Path) -> None:
    dataset = StoreDataset(filled)
    assert len(dataset) == 6
    with Store.open(filled, readonly=True) as store:  # one LMDB handle per process at a time
        expected = torch.from_numpy(store.get(dataset.ids[0])).permute(2, 0, 1).float() / 255
        expected_label = store.info(dataset.ids[0]).label
    image, label = dataset[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert torch.equal(image, expected) and label == expected_label
    assert sorted(dataset.labels) == [0, 0, 0, 1, 1, 1]


def test_subset_and_scale(filled: Path) -> None:
    dataset = StoreDataset(filled, ids=["cats/0001.png", "dogs/0004.png"], scale=0.5)
    assert len(dataset) == 2 and dataset[1][0].shape == (3, 16, 16)
    assert dataset.labels == [0, 1]


def test_dataloader_with_worker_processes(filled: Path) -> None:
    loader = DataLoader(StoreDataset(filled), batch_size=3, num_workers=2)
    batches = list(loader)
    assert [images.shape for images, _ in batches] == [(3, 3, 32, 32)] * 2
    assert sorted(torch.cat([labels for _, labels in batches]).tolist()) == [0, 0, 0, 1, 1, 1]


def _tensors_by_id(path: Path) -> dict[str, torch.Tensor]:
    dataset = StoreDataset(path)
    return {hex_id: dataset[i][0] for i, hex_id in enumerate(dataset.ids)}


def test_get_many_decodes_like_get_in_the_order_asked(filled: Path) -> None:
    with Store.open(filled, readonly=True) as store:
        wanted = [store.ids()[4], "cats/0001.png", store.ids()[0]]
        many = store.get_many(wanted)
        assert all(
            np.array_equal(a, store.get(ident)) for a, ident in zip(many, wanted, strict=True)
        )
        with pytest.raises(UnknownIdError):
            store.get_many(["ffffffff"])


def test_a_shard_stream_yields_every_member_once_shard_by_shard(filled: Path) -> None:
    expected = _tensors_by_id(filled)
    stream = ShardStream(filled, window=1, seed=3)
    shard_of = dict(zip(stream.ids, stream.shards, strict=True))
    orders = []
    for epoch in range(3):
        stream.set_epoch(epoch)
        seen = []
        for image, label in stream:
            hex_id = next(i for i, t in expected.items() if torch.equal(t, image))
            assert label == stream.labels[stream.ids.index(hex_id)]
            seen.append(hex_id)
        assert sorted(seen) == sorted(expected)
        shards = [shard_of[hex_id] for hex_id in seen]
        assert shards == sorted(shards, key=shards.index)  # one shard after the other
        orders.append(seen)
    assert len({tuple(order) for order in orders}) > 1  # epochs shuffle differently


def test_a_shard_stream_order_is_fixed_by_its_seed_and_epoch(filled: Path) -> None:
    def order(seed: int, epoch: int) -> list[float]:
        stream = ShardStream(filled, window=1, seed=seed)
        stream.set_epoch(epoch)
        return [image.sum().item() for image, _ in stream]

    first = order(5, 2)
    assert order(5, 2) == first
    assert sorted(order(6, 2)) == sorted(first)
    assert any(order(seed, 2) != first for seed in (6, 7, 8))


def test_a_shard_stream_on_several_threads_yields_what_one_thread_yields(filled: Path) -> None:
    def stream(threads: int) -> list[tuple[bytes, int]]:
        return [
            (image.numpy().tobytes(), label)
            for image, label in ShardStream(filled, window=1, seed=4, threads=threads)
        ]

    alone = stream(1)
    assert len(set(ShardStream(filled).shards)) == 2  # two windows: one decodes ahead
    assert len(alone) == 6 and stream(3) == alone
    with pytest.raises(ValueError, match="threads must be at least 1, not 0"):
        ShardStream(filled, threads=0)


def test_a_shard_stream_splits_shards_between_workers_and_transforms(filled: Path) -> None:
    stream = ShardStream(filled, transform=lambda image: image[:, :8, :8], shuffle=False)
    batches = list(DataLoader(stream, batch_size=2, num_workers=2))
    images = torch.cat([images for images, _ in batches])
    labels = torch.cat([labels for _, labels in batches])
    assert images.shape == (6, 3, 8, 8)
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    expected = sorted(t[:, :8, :8].sum().item() for t in _tensors_by_id(filled).values())
    assert sorted(image.sum().item() for image in images) == pytest.approx(expected)
    with pytest.raises(ValueError, match="window must be at least 1 shard, not 0"):
        ShardStream(filled, window=0)


@pytest.fixture
def damaged(filled: Path) -> tuple[str, list[str], list[bytes]]:
    """The store with one member's record damaged: that member, the others and their pixels."""
    with Store.open(filled) as store:
        victim, *others = store.ids()
        expected = sorted(pixels.tobytes() for pixels in store.get_many(others))
    flip_member_byte(filled, victim)
    return victim, others, expected


def test_a_damaged_member_fails_its_item_and_the_others_still_load(filled: Path, damaged) -> None:
    victim, others, _ = damaged
    dataset = StoreDataset(filled)
    with pytest.raises(CorruptRecordError, match="fails its checksum"):
        dataset[dataset.ids.index(victim)]
    assert all(dataset[dataset.ids.index(i)][0].shape == (3, 32, 32) for i in others)


def test_a_shard_stream_skips_a_damaged_member_with_a_warning(filled: Path, damaged) -> None:
    victim, _, expected = damaged
    stream = ShardStream(filled, window=2)
    with pytest.warns(RuntimeWarning, match=f"skipped a damaged member: {victim[:12]}"):
        items = list(stream)
    pixels = [(image * 255).round().to(torch.uint8).permute(1, 2, 0) for image, _ in items]
    assert sorted(p.numpy().tobytes() for p in pixels) == expected
