"""The LMDB environment of a store: the only module that imports ``lmdb``.

A store is one LMDB environment directory with these named databases:

- ``meta``: ``format`` → store format version (u32), ``next_shard`` → next shard number (u64),
  ``members:`` + shard number (u64) → the shard's member count (u32);
- ``shards``: shard number (u64) → shard record (its members);
- ``headers``: shard number (u64) → the shard codec's header (the weight bases, with its own
  magic, version and checksum), apart from the member list so that a ``get`` reads no more
  than it decodes;
- ``members``: content id (64 hex ASCII bytes) → member record;
- ``by_name``: original relative name (UTF-8) → content id, duplicates allowed;
- format 3: ``frames``, ``by_time``, ``staging`` and ``tokens`` (:mod:`~inrstore.store.frames`).
  A format-2 store opens read-only as it is, and gains them (becoming format 3) in one
  transaction when first opened for writing.

Creation is atomic: the five databases and the format record are written in one transaction,
and an environment left without them (a process killed, or a disk that filled, while LMDB
created its file) is recognised as a store not yet created, which ``create`` initialises.

Concurrency: every open takes a shared ``flock`` on ``inrstore.lock`` in the folder and holds
it until closed; :meth:`StoreEnv.exclusive` (``compact``) needs the only one. Writers that
are open together are serialised by LMDB: a second writer *waits* until the first commits.
Readers run concurrently (MVCC). The memory map is reserved at 1 TiB, which costs nothing on
64-bit Linux.

LMDB reads pages through the map and trusts them: before opening, the meta page is checked
against the file's size (:func:`~inrstore.store.lmdb_pages.check_meta`); any ``lmdb.Error``
after opening becomes a one-line :class:`StoreDamagedError`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb

from inrstore.store.errors import (
    NotAStoreError,
    StoreBusyError,
    StoreDamagedError,
    StoreError,
    StoreNotFoundError,
    StoreVersionError,
)
from inrstore.store.lmdb_pages import PageDamage, check_meta

STORE_FORMAT_VERSION = 3
OLDEST_STORE_FORMAT = 2
MAP_SIZE = 1 << 40
CORE_DATABASES = ("meta", "shards", "headers", "members", "by_name")
FRAME_DATABASES = ("frames", "by_time", "staging", "tokens")
"""Format 3's tables for frames pushed to a gateway (:mod:`~inrstore.store.frames`)."""
DATABASES = CORE_DATABASES + FRAME_DATABASES
VERSION_KEY = b"format"
LOCK_FILE = "inrstore.lock"
LOCK_WAIT_SECONDS = 10.0
"""How long an open waits for a running ``compact`` to finish before it reports busy."""
MIN_FREE_BYTES = 1 << 20
"""Free space a new store needs (LMDB's first pages, the first shard's commit)."""
_ENV_FILES = ("data.mdb", "lock.mdb", LOCK_FILE)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _no_space(path: Path) -> str:
    return f"no space left on device: {free_bytes(path)} bytes free where {path} lives"


class _Lock:
    """A ``flock`` on the store's lock file: shared while open, exclusive for compaction."""

    def __init__(self, path: Path) -> None:
        self.path, self.fd = path, None
        try:
            self.fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            with contextlib.suppress(OSError):  # a read-only folder: lock if the file is there
                self.fd = os.open(path / LOCK_FILE, os.O_RDONLY)

    def shared(self) -> None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while self.fd is not None and not self._try(fcntl.LOCK_SH):
            if time.monotonic() > deadline:
                self.close()
                raise StoreBusyError(f"{self.path}: store is busy (being compacted); try again")
            time.sleep(0.05)

    def exclusive(self) -> None:
        if self.fd is not None and not self._try(fcntl.LOCK_EX):
            raise StoreBusyError(
                f"{self.path}: store is busy: another process has it open (compact needs "
                "exclusive use; wait for it to finish)"
            )

    def downgrade(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_SH)

    def _try(self, kind: int) -> bool:
        try:
            fcntl.flock(self.fd, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class StoreEnv:
    """An open environment and handles of its databases."""

    def __init__(self, path: Path, env: lmdb.Environment, readonly: bool, lock: _Lock) -> None:
        self.path, self.env, self.readonly, self._lock = path, env, readonly, lock
        self.dbs: dict[str, object] = {}

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
        blank = _blank_file(path)
        if blank and any(p.name not in _ENV_FILES for p in path.iterdir()):
            raise NotAStoreError(f"{path}: not an inrstore store (no data.mdb)")
        if not (path / "data.mdb").exists() and not create:
            raise StoreNotFoundError(f"{path}: no store here (create one with 'inrstore add')")
        if blank and create and not readonly and free_bytes(path) < MIN_FREE_BYTES:
            raise StoreError(_no_space(path))
        if not blank:
            _check_file(path)
        lock = _Lock(path)
        lock.shared()
        try:
            env = lmdb.open(
                str(path), map_size=MAP_SIZE, max_dbs=len(DATABASES),
                readonly=readonly or (blank and not create), create=create, max_readers=512,
            )  # fmt: skip
        except lmdb.Error as err:
            lock.close()
            if blank:
                raise StoreNotFoundError(_interrupted(path)) from None
            raise NotAStoreError(f"{path}: not a readable store ({err})") from None
        store = cls(path, env, readonly, lock)
        try:
            store._open_databases(create)
        except (lmdb.Error, StoreError) as err:
            store.close()
            if isinstance(err, StoreError):
                raise
            if isinstance(err, lmdb.DiskError) or _disk_full(err):
                raise StoreError(_no_space(path)) from None
            raise NotAStoreError(f"{path}: not an inrstore store ({err})") from None
        return store

    def _open_databases(self, create: bool) -> None:
        """Open the five databases and check the format; initialise a blank environment."""
        with self.env.begin() as txn:
            names = {bytes(key) for key, _ in txn.cursor()}
        wanted = {name.encode() for name in DATABASES}
        if {name.encode() for name in CORE_DATABASES} <= names:
            present = [name for name in DATABASES if name.encode() in names]
            self.dbs = {name: self._db(name, None, create=False) for name in present}
            with self.env.begin(db=self.dbs["meta"]) as txn:
                raw = txn.get(VERSION_KEY)
            if raw is not None:
                if self._check_version(raw) < STORE_FORMAT_VERSION and not self.readonly:
                    self._upgrade()
                return
        if not self._blank(names & wanted):
            raise NotAStoreError(f"{self.path}: not an inrstore store (no format version)")
        if not create or self.readonly:
            raise StoreNotFoundError(_interrupted(self.path))
        with self.env.begin(write=True) as txn:
            self.dbs = {name: self._db(name, txn, create=True) for name in DATABASES}
            txn.put(VERSION_KEY, struct.pack(">I", STORE_FORMAT_VERSION), db=self.dbs["meta"])

    def _upgrade(self) -> None:
        """Format 2 → 3: add the frame tables and the new version in one transaction."""
        with self.env.begin(write=True) as txn:
            for name in FRAME_DATABASES:
                self.dbs[name] = self._db(name, txn, create=True)
            txn.put(VERSION_KEY, struct.pack(">I", STORE_FORMAT_VERSION), db=self.dbs["meta"])

    def _db(self, name: str, txn, create: bool):
        return self.env.open_db(name.encode(), txn=txn, dupsort=name == "by_name", create=create)

    def _blank(self, present: set[bytes]) -> bool:
        """Whether every named database that exists is empty (creation was interrupted)."""
        for name in present:
            db = self._db(name.decode(), None, create=False)
            with self.env.begin(db=db) as txn:
                if txn.stat(db)["entries"]:
                    return False
        return True

    def _check_version(self, raw: bytes) -> int:
        if len(raw) != 4:
            raise NotAStoreError(f"{self.path}: not an inrstore store (damaged format record)")
        (version,) = struct.unpack(">I", raw)
        if version > STORE_FORMAT_VERSION:
            raise StoreVersionError(
                f"{self.path}: store format {version} is newer than this inrstore "
                f"(reads {STORE_FORMAT_VERSION}); upgrade inrstore"
            )
        if version < OLDEST_STORE_FORMAT:
            raise StoreVersionError(
                f"{self.path}: store format {version} predates shared-basis shards (this "
                f"inrstore reads {OLDEST_STORE_FORMAT}–{STORE_FORMAT_VERSION}); export it with "
                "the inrstore that wrote it and add the images again"
            )
        return version

    @contextlib.contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A read-only snapshot; LMDB's errors inside it become :class:`StoreDamagedError`."""
        try:
            try:
                txn = self.env.begin()
            except lmdb.MapResizedError:
                self.env.set_mapsize(0)
                txn = self.env.begin()
            try:
                yield txn
            finally:
                txn.abort()
        except lmdb.Error as err:
            raise StoreDamagedError(_damaged(self.path, err)) from None

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
        except (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.BadTxnError) as err:
            raise StoreDamagedError(_damaged(self.path, err)) from None
        except lmdb.Error as err:
            if _disk_full(err) or free_bytes(self.path) < MIN_FREE_BYTES:
                raise StoreError(f"{_no_space(self.path)}; nothing was changed") from None
            raise StoreError(f"{self.path}: write failed, nothing was changed ({err})") from None

    def exclusive(self) -> None:
        """Make sure no other process has the store open (raises :class:`StoreBusyError`)."""
        self._lock.exclusive()

    def replace_compacted(self) -> None:
        """Rewrite ``data.mdb`` without free pages; needs :meth:`exclusive` first, and closes
        this environment (open the store again to go on).

        The copy is made beside the store, synced, and renamed over ``data.mdb`` (atomic: a
        crash leaves the old or the new file, both whole); the lock file of the old data is
        removed so that LMDB starts the new one afresh.
        """
        staging = self.path / ".compacting"
        if staging.exists():
            for leftover in staging.iterdir():
                leftover.unlink()
        else:
            staging.mkdir()
        try:
            self.env.copy(str(staging), compact=True)
            with open(staging / "data.mdb", "rb") as copied:
                os.fsync(copied.fileno())
        except (lmdb.Error, OSError) as err:
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
            full = getattr(err, "errno", None) == errno.ENOSPC or _disk_full(err)
            reason = _no_space(self.path) if full else str(err)
            message = f"{self.path}: compact failed, the store is unchanged ({reason})"
            raise StoreError(message) from None
        self.env.close()
        (self.path / "lock.mdb").unlink(missing_ok=True)
        os.replace(staging / "data.mdb", self.path / "data.mdb")
        staging.rmdir()
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._lock.close()

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.glob("*.mdb"))

    def close(self) -> None:
        self.env.close()
        self._lock.close()


def _blank_file(path: Path) -> bool:
    """No data yet: ``data.mdb`` absent or empty (LMDB had not written its first pages)."""
    data = path / "data.mdb"
    return not data.exists() or data.stat().st_size == 0


def _check_file(path: Path) -> None:
    try:
        check_meta(path)
    except PageDamage as err:
        if "meta page 0 is damaged" in str(err):
            raise NotAStoreError(f"{path}: not an inrstore store (data.mdb is not LMDB)") from None
        raise StoreDamagedError(f"{path}: store damaged ({err}); see 'inrstore verify'") from None
    except OSError as err:
        raise NotAStoreError(f"{path}: not a readable store ({err.strerror})") from None


def _interrupted(path: Path) -> str:
    return f"{path}: no store here yet (its creation was interrupted); 'inrstore add' creates it"


def _damaged(path: Path, err: lmdb.Error) -> str:
    return f"{path}: store damaged ({type(err).__name__}: {err}); see 'inrstore verify'"


def _disk_full(err: Exception) -> bool:
    text = str(err)
    return os.strerror(errno.ENOSPC) in text or "MDB_MAP_FULL" in text
