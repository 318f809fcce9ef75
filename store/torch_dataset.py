"""A map-style PyTorch ``Dataset`` that decodes images straight from a store.

Safe with ``DataLoader(num_workers > 0)``: the store is opened lazily, read-only, in each
process that reads (an LMDB environment cannot cross a fork or a pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from inrstore.store.archive import MemberInfo, Store


class StoreDataset(Dataset):
    """Items are ``(image, label)``: ``image`` float32 ``(C, H', W')`` in [0, 1] at ``scale``,
    ``label`` the stored label or -1.

    Args:
        store: path of the store.
        ids: id prefixes or names to include (default: every member, in id order).
        scale: decode scale in [1/16, 8].
    """

    def __init__(
        self, store: str | Path, ids: Sequence[str] | None = None, scale: float = 1.0
    ) -> None:
        self.path = Path(store)
        self.scale = scale
        with Store.open(self.path, readonly=True) as opened:
            self.ids = [opened.resolve(i) for i in ids] if ids is not None else opened.ids()
            labels = {
                info.hex_id: info.label for info in opened.members() if isinstance(info, MemberInfo)
            }
        self.labels = [-1 if labels.get(i) is None else labels[i] for i in self.ids]
        self._store = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._store is None:
            self._store = Store.open(self.path, readonly=True)
        pixels = self._store.get(self.ids[index], self.scale)
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255.0)
        return image, self.labels[index]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_store"] = None
        return state
