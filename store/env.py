"""The LMDB environment of a store: the only module that imports ``lmdb``.

A store is one LMDB environment directory with five named databases:

- ``meta``: ``format`` → store format version (u32), ``next_shard`` → next shard number (u64),
  ``members:`` + shard number (u64) → the shard's member count (u32);
- ``shards``: shard number (u64) → shard record (its members);
- ``headers``: shard number (u64) → the shard codec's header (the weight bases, with its own
  magic, version and checksum), apart from the member list so that a ``get`` reads no more
  than it decodes;
- ``members``: content id (64 hex ASCII bytes) → member record;
- ``by_name``: original relative name (UTF-8) → content id, duplicates allowed.

One writer at a time: LMDB serialises write transactions across processes, so a second
writer *waits* until the first commits (each ``add`` holds the write lock only while it
commits a finished shard). Any number of readers run concurrently (MVCC). The memory map is
reserved at 1 TiB, which costs nothing on 64-bit Linux.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path

import lmdb

from inrstore.store.errors import (
    NotAStoreError,
    StoreError,
    StoreNotFoundError,
    StoreVersionError,
)

STORE_FORMAT_VERSION = 2
MAP_SIZE = 1 << 40
DATABASES = ("meta", "shards", "headers", "members", "by_name")
_VERSION_KEY = b"format"


class StoreEnv:
    """An open environment and handles of its databases."""

    def __init__(self, path: Path, env: lmdb.Environment, readonly: bool) -> None:
        self.path, self.env, self.readonly = path, env, readonly
        self.dbs = {
            name: env.open_db(name.encode(), dupsort=name == "by_name", create=not readonly)
            for name in DATABASES
        }

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, create: bool = False) -> StoreEnv:
        """Open (or with ``create``, initialise) the store at ``path``."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise StoreNotFoundError(f"{path}: no store here (create one with 'inrstore add')")
            path.mkdir(parents=True)
        if not path.is_dir():
            raise NotAStoreError(f"{path}: not a store (not a folder)")
        is_new = not (path / "data.mdb").exists()
        if is_new and (not create or any(path.iterdir())):
            raise NotAStoreError(f"{path}: not an inrstore store (no data.mdb)")
        try:
            env = lmdb.open(
                str(path), map_size=MAP_SIZE, max_dbs=len(DATABASES), readonly=readonly,
                create=is_new, max_readers=512,
            )  # fmt: skip
        except lmdb.Error as err:
            raise NotAStoreError(f"{path}: not a readable store ({err})") from None
        try:
            store = cls(path, env, readonly)
            store._check_version(is_new)
        except (lmdb.Error, StoreError) as err:
            env.close()
            if isinstance(err, StoreError):
                raise
            raise NotAStoreError(f"{path}: not an inrstore store ({err})") from None
        return store

    def _check_version(self, is_new: bool) -> None:
        with self.env.begin(db=self.dbs["meta"], write=is_new) as txn:
            if is_new:
                txn.put(_VERSION_KEY, struct.pack(">I", STORE_FORMAT_VERSION))
                return
            raw = txn.get(_VERSION_KEY)
        if raw is None or len(raw) != 4:
            raise NotAStoreError(f"{self.path}: not an inrstore store (no format version)")
        (version,) = struct.unpack(">I", raw)
        if version > STORE_FORMAT_VERSION:
            raise StoreVersionError(
                f"{self.path}: store format {version} is newer than this inrstore "
                f"(reads {STORE_FORMAT_VERSION}); upgrade inrstore"
            )
        if version < STORE_FORMAT_VERSION:
            raise StoreVersionError(
                f"{self.path}: store format {version} predates shared-basis shards (this "
                f"inrstore reads {STORE_FORMAT_VERSION}); export it with the inrstore that wrote "
                "it and add the images again"
            )

    @contextlib.contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A read-only snapshot."""
        try:
            txn = self.env.begin()
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            txn = self.env.begin()
        try:
            yield txn
        finally:
            txn.abort()

    @contextlib.contextmanager
    def write(self) -> Iterator[lmdb.Transaction]:
        """One atomic write transaction: committed on success, aborted on any error."""
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError:
            raise StoreError(f"{self.path}: the store's map is full") from None
        except lmdb.Error as err:
            raise StoreError(f"{self.path}: write failed, nothing was changed ({err})") from None

    def copy_compacted(self, target: Path) -> None:
        self.env.copy(str(target), compact=True)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.glob("*.mdb"))

    def close(self) -> None:
        self.env.close()
