"""PyTorch datasets that decode images straight from a store.

:class:`StoreDataset` is map-style (random access by index, one member decoded per item);
:class:`ShardStream` is iterable and reads shard by shard in shuffled order, decoding a
shard's members together. Both are safe with ``DataLoader(num_workers > 0)``: the store is
opened lazily, read-only, in each process that reads (an LMDB environment cannot cross a
fork or a pickle).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from inrstore.store.archive import MemberInfo, Store
from inrstore.store.errors import CorruptRecordError

Transform = Callable[[torch.Tensor], torch.Tensor]


class _StoreReader:
    """The members to read (ids, labels, shards) and a store handle opened on first use."""

    def __init__(
        self,
        store: str | Path,
        ids: Sequence[str] | None = None,
        scale: float = 1.0,
        transform: Transform | None = None,
    ) -> None:
        self.path = Path(store)
        self.scale = scale
        self.transform = transform
        with Store.open(self.path, readonly=True) as opened:
            self.ids = [opened.resolve(i) for i in ids] if ids is not None else opened.ids()
            infos = {info.hex_id: info for info in opened.members() if isinstance(info, MemberInfo)}
        known = [infos.get(i) for i in self.ids]  # a damaged record fails when it is read
        self.labels = [-1 if info is None or info.label is None else info.label for info in known]
        self.shards = [-1 if info is None else info.shard for info in known]
        self._store: Store | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def _opened(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.path, readonly=True)
        return self._store

    def _item(self, image: torch.Tensor, index: int) -> tuple[torch.Tensor, int]:
        """The item of member ``index`` from its image (see :func:`as_tensors`)."""
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_store"] = None
        return state


class StoreDataset(_StoreReader, Dataset):
    """Items are ``(image, label)``: ``image`` float32 ``(C, H', W')`` in [0, 1] at ``scale``
    (then ``transform``, if given), ``label`` the stored label or -1.

    Args:
        store: path of the store.
        ids: id prefixes or names to include (default: every member, in id order).
        scale: decode scale in [1/16, 8].
        transform: applied to each image tensor.
    """

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        pixels = self._opened().get(self.ids[index], self.scale)
        return self._item(as_tensors([pixels])[0], index)


class ShardStream(_StoreReader, IterableDataset):
    """The members of a store as a stream of ``(image, label)`` (as :class:`StoreDataset`'s),
    read shard by shard: each epoch shuffles the shards, deals them to the DataLoader's
    workers in turn, decodes ``window`` shards at a time (:meth:`Store.get_many`) and yields
    their members shuffled together. Every member comes once per epoch; a damaged one is
    skipped with a ``RuntimeWarning`` that names it.

    In the main process (``num_workers=0``) the shards are decoded on ``threads`` threads, the
    next window's while the current one is consumed (the decoder spends much of its time in
    numpy and torch, which release the GIL on large arrays); each runs torch on one thread of
    its own (the caller's thread count is left alone), so that they do not oversubscribe the
    cores. In a worker on one thread: the workers are the parallelism there.

    Args:
        store, ids, scale, transform: as :class:`StoreDataset`'s.
        shuffle: shuffle shards and members (False: shards and members in id order).
        window: shards whose members are shuffled together.
        seed: the shuffles' seed; :meth:`set_epoch` varies them per epoch.
        threads: decoding threads in the main process (default: torch's intra-op threads).
    """

    def __init__(
        self,
        store: str | Path,
        ids: Sequence[str] | None = None,
        scale: float = 1.0,
        transform: Transform | None = None,
        *,
        shuffle: bool = True,
        window: int = 2,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 shard, not {window}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        super().__init__(store, ids, scale, transform)
        self.shuffle, self.window, self.seed, self.epoch = shuffle, window, seed, 0
        self.threads = threads

    def set_epoch(self, epoch: int) -> None:
        """Shuffle differently in epoch ``epoch`` (call before iterating, as with a
        ``DistributedSampler``)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        members: dict[int, list[int]] = {}
        for index, shard in enumerate(self.shards):
            members.setdefault(shard, []).append(index)
        order = sorted(members)
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        worker = get_worker_info()
        if worker is not None:
            order = order[worker.id :: worker.num_workers]
        windows = [
            [members[shard] for shard in order[start : start + self.window]]
            for start in range(0, len(order), self.window)
        ]
        threads = 1 if worker is not None else self.threads or torch.get_num_threads()
        self._opened()  # once, before the threads read it
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            ahead = [pool.submit(self._decoded, shard) for shard in windows[0]] if windows else []
            for following in [*windows[1:], None]:
                current = ahead
                if following is not None:  # the next window decodes while this one is read
                    ahead = [pool.submit(self._decoded, shard) for shard in following]
                items = [item for future in current for item in future.result()]
                if self.shuffle:
                    rng.shuffle(items)
                for index, image in items:
                    yield self._item(image, index)

    def _decoded(self, indices: list[int]) -> list[tuple[int, torch.Tensor]]:
        """``(index, image)`` of the members at ``indices`` (:func:`as_tensors`), decoded
        together; where one is damaged, each alone, and a damaged one skipped with a
        ``RuntimeWarning`` naming it (an iterable dataset that raised would end the epoch)."""
        store = self._opened()
        try:
            decoded = store.get_many([self.ids[i] for i in indices], self.scale)
            return list(zip(indices, as_tensors(decoded), strict=True))
        except CorruptRecordError:
            pass
        found = []
        for index in indices:
            try:
                found.append((index, store.get(self.ids[index], self.scale)))
            except CorruptRecordError as err:
                warnings.warn(f"skipped a damaged member: {err}", RuntimeWarning, stacklevel=3)
        images = as_tensors([pixels for _, pixels in found])
        return [(index, image) for (index, _), image in zip(found, images, strict=True)]


def as_tensors(images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """``uint8 (H, W, C)`` images as float32 ``(C, H, W)`` tensors in [0, 1]; images of one
    size are converted in one pass (views of one ``(B, C, H, W)`` tensor)."""
    if len(images) > 1 and all(image.shape == images[0].shape for image in images):
        return list(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0))
    return [torch.from_numpy(image).permute(2, 0, 1).float().div(255.0) for image in images]
