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
    StoreError,
    StoreNotFoundError,
    StoreVersionError,
    UnknownIdError,
)

__all__ = [
    "AddProgress",
    "AddReport",
    "AmbiguousIdError",
    "CorruptRecordError",
    "MemberInfo",
    "NotAStoreError",
    "ShardSummary",
    "Store",
    "StoreError",
    "StoreNotFoundError",
    "StoreStats",
    "StoreVersionError",
    "UnknownIdError",
]
