"""A read-only walk of an LMDB 0.9 data file through ``pread``, never through the memory map.

LMDB trusts its pages: a damaged page pointer or node size makes it read outside the file
through its map, which kills the process with SIGBUS. This module checks the structure the
way LMDB will read it, with bounded ``pread`` calls, so that damage is reported as a
:class:`PageDamage` before anything touches the map:

- :func:`check_meta`: the two meta pages (magic, version, page size) and that the newest
  one's last page lies inside the file; cheap, run on every open.
- :func:`walk_pages`: every B-tree page reachable from the newest meta (the free list, the
  main database and each named database, with sub-pages and sub-databases of duplicate keys
  and overflow pages): page numbers in range and unique, flags, pointer arrays inside the
  page, node sizes inside the page, entry counts against the database records.

Layout (LMDB 0.9, 64-bit, little-endian): a page starts with ``pgno u64 | pad u16 |
flags u16 | lower u16 | upper u16`` (an overflow page keeps ``pages u32`` in place of
lower/upper); node pointers (``u16`` offsets) follow. A node is ``lo u16 | hi u16 |
flags u16 | key size u16 | key | data``; a leaf's data size is ``lo | hi << 16``, a branch's
child is ``lo | hi << 16 | flags << 32``. A meta page holds ``magic u32 | version u32 |
address u64 | map size u64 | free db | main db | last page u64 | txnid u64``, a db record
being ``pad u32 | flags u16 | depth u16 | branch, leaf, overflow pages, entries, root u64``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
HEADER = struct.Struct("<QHHHH")
OVERFLOW_PAGES = struct.Struct("<I")
NODE = struct.Struct("<HHHH")
DB = struct.Struct("<IHHQQQQQ")
META = struct.Struct("<IIQQ")
META_TAIL = struct.Struct("<QQ")
P_INVALID = 2**64 - 1

P_BRANCH, P_LEAF, P_OVERFLOW, P_META, P_LEAF2, P_SUBP = 0x01, 0x02, 0x04, 0x08, 0x20, 0x40
F_BIGDATA, F_SUBDATA, F_DUPDATA = 0x01, 0x02, 0x04
MIN_PAGE, MAX_PAGE = 512, 65536


class PageDamage(Exception):
    """The data file's structure is damaged; the message says where."""


@dataclass(frozen=True)
class Meta:
    """The newest valid meta page: page size, last page in use, transaction id, main db."""

    page_size: int
    last_page: int
    txnid: int
    free_db: tuple
    main_db: tuple


def _pread(fd: int, size: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise PageDamage(f"{what} lies beyond the end of data.mdb")
    return data


def _read_meta(fd: int, number: int, page_size: int) -> Meta | None:
    raw = _pread(fd, HEADER.size + META.size + 2 * DB.size + META_TAIL.size,
                 number * page_size, f"meta page {number}")  # fmt: skip
    flags = HEADER.unpack_from(raw)[2]
    magic, version, _, _ = META.unpack_from(raw, HEADER.size)
    if flags & P_META == 0 or magic != MAGIC or version != DATA_VERSION:
        return None
    offset = HEADER.size + META.size
    free_db = DB.unpack_from(raw, offset)
    main_db = DB.unpack_from(raw, offset + DB.size)
    last_page, txnid = META_TAIL.unpack_from(raw, offset + 2 * DB.size)
    return Meta(page_size, last_page, txnid, free_db, main_db)


def check_meta(path: Path) -> Meta:
    """The newest valid meta page of ``path/data.mdb``, checked against the file's size."""
    fd = os.open(path / "data.mdb", os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        first = _read_meta(fd, 0, MIN_PAGE)
        if first is None:
            raise PageDamage("meta page 0 is damaged")
        page_size = first.free_db[0]
        if not MIN_PAGE <= page_size <= MAX_PAGE or page_size & (page_size - 1):
            raise PageDamage(f"meta page 0 declares an invalid page size {page_size}")
        metas = [m for m in (_read_meta(fd, n, page_size) for n in (0, 1)) if m is not None]
    finally:
        os.close(fd)
    if not metas:
        raise PageDamage("both meta pages are damaged")
    meta = max(metas, key=lambda m: m.txnid)
    if (meta.last_page + 1) * page_size > size:
        raise PageDamage(
            f"the meta page declares {meta.last_page + 1} pages but data.mdb holds "
            f"{size // page_size}"
        )
    return meta


@dataclass
class WalkReport:
    """What :func:`walk_pages` saw: pages read per kind and entries per named database."""

    pages: int = 0
    overflow_pages: int = 0
    databases: dict[bytes, int] | None = None


class _Walker:
    def __init__(self, fd: int, meta: Meta) -> None:
        self.fd, self.meta, self.psize = fd, meta, meta.page_size
        self.seen: set[int] = set()
        self.report = WalkReport(databases={})

    def page(self, number: int, what: str) -> bytes:
        if not 2 <= number <= self.meta.last_page:
            raise PageDamage(f"{what}: page number {number} is outside the file")
        if number in self.seen:
            raise PageDamage(f"{what}: page {number} is reached twice")
        self.seen.add(number)
        self.report.pages += 1
        data = _pread(self.fd, self.psize, number * self.psize, f"page {number}")
        if HEADER.unpack_from(data)[0] != number:
            raise PageDamage(f"{what}: page {number} holds another page number")
        return data

    def tree(self, db: tuple, what: str, dupsort: bool = False) -> int:
        """Walk one database; return its entry count (checked against its record)."""
        _, flags, depth, _, _, _, entries, root = db
        if root == P_INVALID:
            if entries:
                raise PageDamage(f"{what}: an empty tree declares {entries} entries")
            return 0
        counted = self.node_page(self.page(root, what), root, depth, what, dupsort=flags & 0x04)
        if counted != entries:
            raise PageDamage(f"{what}: {counted} entries found, {entries} declared")
        return counted

    def node_page(self, data: bytes, number: int, depth: int, what: str, dupsort: int) -> int:
        flags, lower, upper = HEADER.unpack_from(data)[2:]
        where = f"{what}, page {number}"
        leaf = flags & (P_BRANCH | P_LEAF) == P_LEAF
        if flags & (P_BRANCH | P_LEAF) not in (P_BRANCH, P_LEAF) or flags & P_LEAF2:
            raise PageDamage(f"{where}: unexpected page flags {flags:#x}")
        if leaf != (depth == 1) or depth < 1:
            raise PageDamage(f"{where}: the tree's depth does not match its pages")
        count = _pointer_count(lower, upper, len(data), where)
        entries = 0
        for index in range(count):
            node_flags, key_size, size, body = _node(data, index, upper, where)
            if not leaf:
                child = size | node_flags << 32
                entries += self.node_page(self.page(child, where), child, depth - 1, what, dupsort)
                continue
            entries += self.leaf_value(data, node_flags, key_size, size, body, where, dupsort)
        return entries

    def leaf_value(self, data, flags, key_size, size, body, where, dupsort) -> int:
        value_at = body + key_size
        if flags & F_BIGDATA:
            _check_room(value_at + 8, len(data), where)
            (first,) = struct.unpack_from("<Q", data, value_at)
            self.overflow(first, size, where)
            return 1
        _check_room(value_at + size, len(data), where)
        value = data[value_at : value_at + size]
        if flags & F_SUBDATA:
            if size != DB.size:
                raise PageDamage(f"{where}: a database record has {size} bytes")
            db = DB.unpack(value)
            if flags & F_DUPDATA:
                return self.tree(db, f"{where}, duplicates")
            name = data[body : body + key_size]
            self.report.databases[name] = self.tree(db, f"database {name!r}", dupsort=True)
            return 1
        if flags & F_DUPDATA:
            if not dupsort:
                raise PageDamage(f"{where}: duplicates in a database without them")
            sub_flags, lower, upper = HEADER.unpack_from(_padded(value, where))[2:]
            if sub_flags & (P_LEAF | P_SUBP) != P_LEAF | P_SUBP or sub_flags & P_LEAF2:
                raise PageDamage(f"{where}: a sub-page has flags {sub_flags:#x}")
            count = _pointer_count(lower, upper, size, where)
            for index in range(count):
                _node(value, index, upper, where)
            return count
        return 1

    def overflow(self, first: int, size: int, where: str) -> None:
        needed = -(-(size + HEADER.size) // self.psize)
        if first + needed - 1 > self.meta.last_page:
            raise PageDamage(f"{where}: an overflow value runs past the end of the file")
        data = self.page(first, where)
        flags = HEADER.unpack_from(data)[2]
        (pages,) = OVERFLOW_PAGES.unpack_from(data, 12)
        if flags & P_OVERFLOW == 0 or pages != needed:
            raise PageDamage(f"{where}: overflow page {first} does not hold the value")
        self.seen.update(range(first + 1, first + pages))
        self.report.overflow_pages += pages


def _padded(value: bytes, where: str) -> bytes:
    if len(value) < HEADER.size:
        raise PageDamage(f"{where}: a sub-page is truncated")
    return value


def _check_room(end: int, size: int, where: str) -> None:
    if end > size:
        raise PageDamage(f"{where}: a node runs past the end of its page")


def _pointer_count(lower: int, upper: int, size: int, where: str) -> int:
    if not HEADER.size <= lower <= upper <= size or (lower - HEADER.size) % 2:
        raise PageDamage(f"{where}: damaged page bounds (lower {lower}, upper {upper})")
    return (lower - HEADER.size) // 2


def _node(data: bytes, index: int, upper: int, where: str) -> tuple[int, int, int, int]:
    """``(flags, key size, lo | hi << 16, body offset)`` of node ``index``, bounds checked."""
    (offset,) = struct.unpack_from("<H", data, HEADER.size + 2 * index)
    if not upper <= offset <= len(data) - NODE.size:
        raise PageDamage(f"{where}: node pointer {index} points outside the page")
    lo, hi, flags, key_size = NODE.unpack_from(data, offset)
    _check_room(offset + NODE.size + key_size, len(data), where)
    return flags, key_size, lo | hi << 16, offset + NODE.size


def walk_pages(path: Path) -> WalkReport:
    """Check every page reachable from the newest meta page of ``path/data.mdb``."""
    meta = check_meta(path)
    fd = os.open(path / "data.mdb", os.O_RDONLY)
    try:
        walker = _Walker(fd, meta)
        walker.tree(meta.free_db, "free list")
        walker.tree(meta.main_db, "main database")
        return walker.report
    finally:
        os.close(fd)
