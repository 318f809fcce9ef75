"""Cross-checks of a store's tables, read in one snapshot: what ``verify`` adds to the
per-member checks.

Each problem is ``(where, what)``: ``where`` names a member (short id), a shard
(``shard N``), a name entry (``name 'x'``), a key or ``meta``. Checked:

- ``members``: every key is a 64-digit lowercase hex content id that its record repeats;
  every member's shard exists and lists it; its name entry points back at it.
- ``by_name``: every entry points at an existing member of that name.
- ``shards``: every key is a u64 that the record repeats; every listed member exists; every
  shard has a header and a member count equal to its list.
- ``headers`` and the member counts in ``meta``: none without a shard.
- ``meta``: ``next_shard`` is 8 bytes and above every shard number in use.
- frames (format 3): each staged or stored but not both, recorded, and in the time index.
"""

from __future__ import annotations

import string
import struct
from collections.abc import Iterator

from inrstore.store import ids
from inrstore.store.env import FRAME_DATABASES
from inrstore.store.errors import CorruptRecordError
from inrstore.store.records import (
    MemberRecord,
    ShardRecord,
    unpack_frame,
    unpack_member,
    unpack_shard,
)

NEXT_SHARD = b"next_shard"
COUNT_PREFIX = b"members:"
_HEX = frozenset(string.hexdigits.lower().encode())

Problem = tuple[str, str]


def count_key(number: int) -> bytes:
    """``meta`` key of a shard's member count (read by ``get`` instead of the member list)."""
    return COUNT_PREFIX + struct.pack(">Q", number)


def is_member_key(key: bytes) -> bool:
    """Whether ``key`` is a content id as the ``members`` table keys it."""
    return len(key) == 64 and set(key) <= _HEX


def shown_key(key: bytes) -> str:
    """A key for messages: its short id when it is one, else its escaped bytes."""
    return ids.short(key.decode()) if is_member_key(key) else repr(bytes(key))[:40]


def shard_number(key: bytes) -> int | None:
    return struct.unpack(">Q", key)[0] if len(key) == 8 else None


def check_tables(txn, dbs: dict) -> list[Problem]:
    """Every cross-table problem of the snapshot ``txn`` (see the module docstring)."""
    members = dict(_members(txn, dbs))
    shards = dict(_shards(txn, dbs))
    problems: list[Problem] = []
    problems += _check_members(txn, dbs, members, shards)
    problems += _check_names(txn, dbs, members)
    problems += _check_shards(txn, dbs, members, shards)
    problems += _check_meta(txn, dbs, shards)
    frame_tables = [name for name in FRAME_DATABASES if name in dbs]
    if len(frame_tables) == len(FRAME_DATABASES):
        problems += _check_frames(txn, dbs, members)
    elif frame_tables:
        missing = ", ".join(name for name in FRAME_DATABASES if name not in dbs)
        problems.append(("store", f"frame tables missing (damaged): {missing}"))
    return problems


def _members(txn, dbs) -> Iterator[tuple[bytes, MemberRecord | str]]:
    for key, raw in txn.cursor(db=dbs["members"]):
        try:
            yield bytes(key), unpack_member(raw)
        except CorruptRecordError as err:
            yield bytes(key), str(err)


def _shards(txn, dbs) -> Iterator[tuple[int | bytes, ShardRecord | str]]:
    for key, raw in txn.cursor(db=dbs["shards"]):
        number = shard_number(key)
        try:
            yield (bytes(key) if number is None else number), unpack_shard(raw)
        except CorruptRecordError as err:
            yield (bytes(key) if number is None else number), str(err)


def _check_members(txn, dbs, members, shards) -> Iterator[Problem]:
    for key, record in members.items():
        where = shown_key(key)
        if not is_member_key(key):
            yield where, "a members key that is not a content id"
            continue
        if isinstance(record, str):
            continue  # the per-member check reports the record itself
        if record.hex_id.encode() != key:
            yield where, "the record holds another content id than its key"
        shard = shards.get(record.shard)
        if shard is None:
            yield where, f"its shard {record.shard} is missing"
        elif isinstance(shard, ShardRecord) and record.content_id not in shard.members:
            yield where, f"its shard {record.shard} does not list it"
        names = txn.cursor(db=dbs["by_name"])
        found = names.set_key_dup(record.name.encode(), key)
        if not found:
            yield where, f"no name entry {record.name!r} points at it"


def _check_names(txn, dbs, members) -> Iterator[Problem]:
    for name, value in txn.cursor(db=dbs["by_name"]):
        where = f"name {bytes(name).decode(errors='replace')!r}"
        record = members.get(bytes(value))
        if record is None:
            yield where, f"points at {shown_key(bytes(value))}, which is not stored"
        elif isinstance(record, MemberRecord) and record.name.encode() != bytes(name):
            yield where, f"points at {shown_key(bytes(value))}, which is named {record.name!r}"


def _check_shards(txn, dbs, members, shards) -> Iterator[Problem]:
    for number, shard in shards.items():
        if isinstance(number, bytes):
            yield f"shards key {number!r}", "not a shard number"
            continue
        where = f"shard {number}"
        if isinstance(shard, str):
            yield where, shard
            continue
        if shard.shard != number:
            yield where, f"its record names shard {shard.shard}"
        for member in shard.members:
            if member.hex().encode() not in members:
                yield where, f"lists {ids.short(member.hex())}, which is not stored"
        key = struct.pack(">Q", number)
        if txn.get(key, db=dbs["headers"]) is None:
            yield where, "its header is missing"
        count = txn.get(count_key(number), db=dbs["meta"])
        if count is None or len(count) != 4 or struct.unpack(">I", count)[0] != len(shard.members):
            yield where, "its member count is damaged"
    for key, _ in txn.cursor(db=dbs["headers"]):
        number = shard_number(key)
        if number is None or number not in shards:
            yield f"header {shard_number(key) or bytes(key)!r}", "a header without a shard"


def _check_meta(txn, dbs, shards) -> Iterator[Problem]:
    for key, _ in txn.cursor(db=dbs["meta"]):
        if key.startswith(COUNT_PREFIX):
            number = shard_number(key[len(COUNT_PREFIX) :])
            if number is None or number not in shards:
                yield "meta", f"a member count for shard {number} that does not exist"
    raw = txn.get(NEXT_SHARD, db=dbs["meta"])
    numbers = [n for n in shards if isinstance(n, int)]
    if raw is None:
        if numbers:
            yield "meta", "the next shard number is missing"
        return
    if len(raw) != 8:
        yield "meta", "the next shard number is damaged"
    elif numbers and struct.unpack(">Q", raw)[0] <= max(numbers):
        yield "meta", f"the next shard number is not above shard {max(numbers)} (damaged)"


def _check_frames(txn, dbs, members) -> Iterator[Problem]:
    """Every frame staged or stored (not both), and listed under its two time keys."""
    indexed: set[bytes] = set()
    for key, _ in txn.cursor(db=dbs["by_time"]):
        content_id = bytes(key)[-32:].hex().encode()
        if txn.get(content_id, db=dbs["frames"]) is None:
            yield f"time index of {shown_key(content_id)}", "a frame that is not recorded"
        indexed.add(content_id)
    for key, raw in txn.cursor(db=dbs["frames"]):
        key = bytes(key)
        where = f"frame {shown_key(key)}"
        staged = txn.get(key, db=dbs["staging"]) is not None
        if staged == (key in members):
            yield where, "both staged and stored" if staged else "neither staged nor stored"
        try:
            unpack_frame(raw)
        except CorruptRecordError as err:
            yield where, str(err)
        if key not in indexed:
            yield where, "missing from the time index"
    for key, _ in txn.cursor(db=dbs["staging"]):
        if txn.get(bytes(key), db=dbs["frames"]) is None:
            yield f"staged {shown_key(bytes(key))}", "a staged frame that is not recorded"


def next_shard_number(txn, dbs) -> int:
    """The number of a new shard: above the counter and above every number in use, so that a
    damaged counter can never make a commit overwrite a shard."""
    raw = txn.get(NEXT_SHARD, db=dbs["meta"])
    counter = struct.unpack(">Q", raw)[0] if raw is not None and len(raw) == 8 else 1
    in_use = [0]
    for name in ("shards", "headers"):
        cursor = txn.cursor(db=dbs[name])
        if cursor.last():
            in_use.append(shard_number(cursor.key()) or 0)
    return max(counter, max(in_use) + 1)
