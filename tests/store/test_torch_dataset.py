"""The PyTorch Dataset over a store, with worker processes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from inrstore.store import Store, StoreDataset


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
