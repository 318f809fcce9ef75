"""How new images are grouped into shards.

Policy: images are sorted into classes by size (``small``: at most 64×64 pixels, like CIFAR;
``large``: everything else) and channel count (a shard's networks have one output width),
keeping scan order within a class; each class is cut into shards of ``shard_size`` images
(default 128 for small images, 8 for large ones). Classes come small before large, then by
channel count. A shard is the unit of atomic commit: an interrupted ``add`` loses at most the
shards it was encoding.
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
    items: Sequence[T], classes: Sequence[tuple[str, int]], shard_size: int | None = None
) -> list[list[T]]:
    """Cut ``items`` into shards by their ``(size class, channels)`` classes."""
    order = sorted(set(classes), key=lambda c: (list(DEFAULT_SHARD_SIZES).index(c[0]), c[1]))
    shards: list[list[T]] = []
    for key in order:
        members = [item for item, cls in zip(items, classes, strict=True) if cls == key]
        size = shard_size or DEFAULT_SHARD_SIZES[key[0]]
        shards.extend(members[i : i + size] for i in range(0, len(members), size))
    return shards
