"""How new images are grouped into shards.

Policy: images are sorted into classes by size (``small``: at most 64×64 pixels, like CIFAR;
``large``: everything else) and channel count (a shard's networks have one output width),
keeping scan order within a class; each class is cut into shards of ``shard_size`` images
(default 128 for small images, 8 for large ones). Classes come small before large, then by
channel count, then in order of first appearance. When the members share latents (frames of
a fixed camera), a class also holds one folder (one source: a camera's frames, or a gateway
source's) and one exact size, in scan (capture) order, cut into shards of
:data:`FRAME_SHARD_SIZE` by default. A shard is the unit of atomic commit: an interrupted
``add`` loses at most the shards it was encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import TypeVar

SMALL_PIXELS = 64 * 64
DEFAULT_SHARD_SIZES = {"small": 128, "large": 8}
FRAME_SHARD_SIZE = 16
"""Default shard size when members share latents."""

T = TypeVar("T")


def size_class(height: int, width: int) -> str:
    return "small" if height * width <= SMALL_PIXELS else "large"


def folder_of(name: str) -> str:
    """The folder of an image named ``name`` (a relative path; a gateway frame's source)."""
    return str(PurePath(name).parent)


def shard_class(name: str, height: int, width: int, channels: int, sharing: str) -> tuple:
    """The class of an image named ``name`` (relative path) for :func:`group_into_shards`."""
    key: tuple = (size_class(height, width), channels)
    if sharing == "latents":
        key += (folder_of(name), height, width)
    return key


def group_into_shards(
    items: Sequence[T], classes: Sequence[tuple], shard_size: int | None = None
) -> list[list[T]]:
    """Cut ``items`` into shards by their classes (:func:`shard_class`)."""
    order = sorted(
        dict.fromkeys(classes), key=lambda c: (list(DEFAULT_SHARD_SIZES).index(c[0]), c[1])
    )
    shards: list[list[T]] = []
    for key in order:
        members = [item for item, cls in zip(items, classes, strict=True) if cls == key]
        default = FRAME_SHARD_SIZE if len(key) > 2 else DEFAULT_SHARD_SIZES[key[0]]
        size = shard_size or default
        shards.extend(members[i : i + size] for i in range(0, len(members), size))
    return shards
