"""How new images are grouped into shards.

Policy: images are sorted into size classes (``small``: at most 64×64 pixels, like CIFAR;
``large``: everything else), keeping scan order within a class; each class is cut into shards
of ``shard_size`` images (default 128 for small images, 8 for large ones). Until shards share
weight bases, a shard is the unit of atomic commit: an interrupted ``add`` loses at most the
shard it was encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

SMALL_PIXELS = 64 * 64
DEFAULT_SHARD_SIZES = {"small": 128, "large": 8}

T = TypeVar("T")


def size_class(height: int, width: int) -> str:
    return "small" if height * width <= SMALL_PIXELS else "large"


def group_into_shards(
    items: Sequence[T], classes: Sequence[str], shard_size: int | None = None
) -> list[list[T]]:
    """Cut ``items`` (with their size ``classes``) into shards, class by class."""
    shards: list[list[T]] = []
    for name in ("small", "large"):
        members = [item for item, cls in zip(items, classes, strict=True) if cls == name]
        size = shard_size or DEFAULT_SHARD_SIZES[name]
        shards.extend(members[i : i + size] for i in range(0, len(members), size))
    return shards
