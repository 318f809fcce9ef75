"""Content ids: the SHA-256 of an image's shape and pixels, shown as a short hex prefix.

Any unique prefix (at least 4 hex digits) or the original relative file name resolves to a
member; ambiguous or unknown ids raise errors that list the candidates.
"""

from __future__ import annotations

import string

from inrstore.store.errors import AmbiguousIdError, UnknownIdError

SHORT_ID = 12
MIN_PREFIX = 4
FULL_ID = 64
"""Hex digits of a whole id (SHA-256)."""
_HEX = set(string.hexdigits.lower())


def short(hex_id: str) -> str:
    return hex_id[:SHORT_ID]


def resolve(txn, members_db, names_db, ident: str) -> str:
    """The full hex id named by ``ident`` (a prefix of an id, or a stored name)."""
    key = ident.encode()
    if (
        len(ident) == FULL_ID
        and txn.get(key, db=members_db) is not None
        and txn.get(key, db=names_db) is None
    ):
        return ident  # a whole id that no name shadows: unique, no scan needed
    candidates: set[str] = set()
    name_cursor = txn.cursor(db=names_db)
    if name_cursor.set_key(key):
        candidates.update(value.decode() for value in name_cursor.iternext_dup())
    lowered = ident.lower()
    if not candidates and len(lowered) >= MIN_PREFIX and set(lowered) <= _HEX:
        cursor = txn.cursor(db=members_db)
        if cursor.set_range(lowered.encode()):
            for key in cursor.iternext(keys=True, values=False):
                if not key.startswith(lowered.encode()):
                    break
                candidates.add(key.decode())
                if len(candidates) > 10:
                    break
    if not candidates:
        raise UnknownIdError(f"no image with id or name {ident!r}")
    if len(candidates) > 1:
        listed = ", ".join(short(c) for c in sorted(candidates)[:10])
        raise AmbiguousIdError(f"{ident!r} is ambiguous: it matches {listed}")
    return candidates.pop()
