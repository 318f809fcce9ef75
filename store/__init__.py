"""The archive: an LMDB environment of shard and member records with random access."""

from inrstore.store.archive import (
    AddProgress,
    AddReport,
    MemberInfo,
    ShardSummary,
    Store,
    StoreStats,
)
from inrstore.store.errors import (
    AmbiguousIdError,
    CorruptRecordError,
    NotAStoreError,
    StoreBusyError,
    StoreDamagedError,
    StoreError,
    StoreNotFoundError,
    StoreVersionError,
    UnknownIdError,
)
from inrstore.store.torch_dataset import ShardStream, StoreDataset

__all__ = [
    "AddProgress",
    "AddReport",
    "AmbiguousIdError",
    "CorruptRecordError",
    "MemberInfo",
    "NotAStoreError",
    "ShardStream",
    "ShardSummary",
    "Store",
    "StoreBusyError",
    "StoreDamagedError",
    "StoreDataset",
    "StoreError",
    "StoreNotFoundError",
    "StoreStats",
    "StoreVersionError",
    "UnknownIdError",
]
