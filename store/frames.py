"""Frames pushed to a gateway: staged durably on arrival, encoded into shards later.

A frame is staged in one committed transaction (its original bytes in ``staging``, its
:class:`~inrstore.store.records.FrameRecord` in ``frames``, two keys in ``by_time``) before
anyone is told it arrived; the shard that encodes it is committed in one transaction that
also removes it from ``staging``. So at any moment a frame is either staged or stored, never
both, never lost. Identical frames are one frame (the content id).

``by_time`` keys, for newest-first listings with a cursor:

- ``T`` + captured ms (u64, offset by 2^63) + content id (32 bytes): every frame;
- ``S`` + source (UTF-8) + ``0x00`` + the same: one source's frames.

Tokens: ``tokens`` maps the SHA-256 of a token to its scope (``read`` or ``write``); the token
itself is shown once, when created, and never stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inrstore.datasets import DEFAULT_MAX_PIXELS
from inrstore.datasets.load import load_image_bytes, pixel_sha256
from inrstore.store.checks import is_member_key
from inrstore.store.env import FRAME_DATABASES
from inrstore.store.errors import (
    CorruptRecordError,
    StoreDamagedError,
    StoreError,
    UnknownIdError,
)
from inrstore.store.records import (
    FrameRecord,
    TokenRecord,
    pack_frame,
    pack_staged,
    pack_token,
    unpack_frame,
    unpack_member,
    unpack_staged,
    unpack_token,
)

if TYPE_CHECKING:
    from inrstore.store.archive import Store

SOURCE_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A camera id: 1–64 letters, digits, dots, dashes and underscores."""
_OFFSET = 1 << 63
_TIME = struct.Struct(">Q")


@dataclass(frozen=True)
class FrameInfo:
    """One frame as listed: ``state`` is ``staged`` or ``stored``; ``bytes`` are the staged
    file's, or the stored record's plus its share of the shard header. Times in Unix seconds."""

    id: str
    source: str
    captured_at: float
    received_at: float
    width: int
    height: int
    channels: int
    state: str
    bytes: float

    def to_json(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class Staged:
    """The outcome of :meth:`Frames.stage`: the frame's id, and whether it was new."""

    id: str
    created: bool


def check_source(source: str) -> str:
    if not SOURCE_PATTERN.fullmatch(source or ""):
        raise ValueError(f"source must be 1-64 letters, digits, '.', '-' or '_', not {source!r}")
    return source


def _time_key(milliseconds: int, content_id: bytes) -> bytes:
    return _TIME.pack(milliseconds + _OFFSET) + content_id


def _index_keys(record: FrameRecord, content_id: bytes) -> tuple[bytes, bytes]:
    stamp = _time_key(record.captured_ms, content_id)
    return b"T" + stamp, b"S" + record.source.encode() + b"\x00" + stamp


class Frames:
    """The frame tables of one open store (format 3)."""

    def __init__(self, store: Store) -> None:
        self.store, self.env = store, store._env

    def _dbs(self) -> dict:
        present = [name for name in FRAME_DATABASES if name in self.env.dbs]
        if not present:
            raise StoreError(f"{self.env.path}: a format-2 store; open it for writing once")
        if len(present) < len(FRAME_DATABASES):
            raise StoreDamagedError(f"{self.env.path}: store damaged (frame tables missing)")
        return self.env.dbs

    # -- ingestion --------------------------------------------------------------------------

    def stage(
        self,
        data: bytes,
        source: str,
        captured_at: float | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Staged:
        """Validate an image file's bytes and stage them, committed before returning.

        Raises :class:`~inrstore.datasets.ImageError` for bytes that are not a usable image and
        ``ValueError`` for a bad source or time; nothing is staged then.
        """
        check_source(source)
        now_ms = round(time.time() * 1000)
        captured_ms = now_ms if captured_at is None else round(captured_at * 1000)
        if not -_OFFSET < captured_ms < _OFFSET:
            raise ValueError(f"captured_at {captured_at} is out of range")
        image = load_image_bytes(data, f"{source} frame", max_pixels=max_pixels)
        hex_id = pixel_sha256(image.pixels)
        key = hex_id.encode()
        record = FrameRecord(source, captured_ms, now_ms, image.width, image.height,
                             image.channels, len(data))  # fmt: skip
        dbs = self._dbs()
        with self.env.write() as txn:
            if txn.get(key, db=dbs["members"]) or txn.get(key, db=dbs["staging"]):
                return Staged(hex_id, False)
            txn.put(key, pack_staged(data), db=dbs["staging"])
            txn.put(key, pack_frame(record), db=dbs["frames"])
            for index_key in _index_keys(record, bytes.fromhex(hex_id)):
                txn.put(index_key, b"", db=dbs["by_time"])
        return Staged(hex_id, True)

    def staged(self) -> dict[str, list[tuple[str, float]]]:
        """Staged frames by source: ``(id, received_at)``, oldest received first (then by
        capture time)."""
        by_source: dict[str, list[tuple[str, float]]] = {}
        dbs = self._dbs()
        with self.env.read() as txn:
            for key, _ in txn.cursor(db=dbs["staging"]):
                record = unpack_frame(txn.get(key, db=dbs["frames"]) or b"")
                order = (record.received_ms, record.captured_ms, bytes(key).decode())
                by_source.setdefault(record.source, []).append(order)
        return {
            source: [(hex_id, received / 1000) for received, _, hex_id in sorted(frames)]
            for source, frames in by_source.items()
        }

    def due(self, shard_frames: int, shard_seconds: float, now: float | None = None) -> list:
        """Batches of staged ids ready to encode, per source: ``shard_frames`` of them when
        that many wait, or all of a source's once its oldest has waited ``shard_seconds``."""
        now = time.time() if now is None else now
        batches = []
        for frames in self.staged().values():
            while len(frames) >= shard_frames:
                batches.append([hex_id for hex_id, _ in frames[:shard_frames]])
                frames = frames[shard_frames:]
            if frames and now - frames[0][1] >= shard_seconds:
                batches.append([hex_id for hex_id, _ in frames])
        return batches

    def staged_bytes(self, hex_id: str) -> bytes | None:
        """The original file of a staged frame (None once it is stored or gone)."""
        with self.env.read() as txn:
            raw = txn.get(hex_id.encode(), db=self._dbs()["staging"])
            return None if raw is None else unpack_staged(raw)

    # -- reading ----------------------------------------------------------------------------

    def info(self, hex_id: str) -> FrameInfo:
        """A frame by its full id; :class:`UnknownIdError` when there is none."""
        with self.env.read() as txn:
            found = self._info(txn, hex_id.encode(), None)
        if found is None:
            raise UnknownIdError(f"no frame with id {hex_id!r}")
        return found

    def _info(self, txn, key: bytes, shares: dict | None) -> FrameInfo | None:
        dbs = self._dbs()
        raw = txn.get(key, db=dbs["frames"])
        if raw is None:
            return None
        record = unpack_frame(raw)
        staged = txn.get(key, db=dbs["staging"])
        if staged is not None:
            state, size = "staged", float(record.original_bytes)
        else:
            member = txn.get(key, db=dbs["members"])
            if member is None:
                return None
            state, size = "stored", self._stored_bytes(txn, unpack_member(member), shares)
        seconds = record.captured_ms / 1000, record.received_ms / 1000
        return FrameInfo(key.decode(), record.source, *seconds, record.width, record.height,
                         record.channels, state, size)  # fmt: skip

    def _stored_bytes(self, txn, member, shares: dict | None) -> float:
        if shares is None:
            shares = {}
        if member.shard not in shares:
            header = self.store._header(txn, member.shard)
            shares[member.shard] = self.store._header_share(txn, member.shard, len(header))
        return len(member.bitstream) + shares[member.shard]

    def list(
        self,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[FrameInfo], str | None]:
        """Frames newest first (by capture time), optionally of one source and in a time range
        (Unix seconds, inclusive); ``cursor`` continues a listing. Returns the page and the
        cursor of the next one (None at the end)."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        prefix = b"T" if source is None else b"S" + check_source(source).encode() + b"\x00"
        if cursor is not None:
            try:
                upper = prefix + bytes.fromhex(cursor)
            except ValueError:
                raise ValueError(f"invalid cursor {cursor!r}") from None
        else:
            newest = _OFFSET - 1 if until is None else round(until * 1000)
            upper = prefix + _time_key(newest, b"\xff" * 32) + b"\xff"
        oldest = None if since is None else _TIME.pack(round(since * 1000) + _OFFSET)
        keys: list[bytes] = []
        with self.env.read() as txn:
            index = txn.cursor(db=self._dbs()["by_time"])
            positioned = index.prev() if index.set_range(upper) else index.last()
            while positioned and len(keys) <= limit:
                key = bytes(index.key())
                stamp = key[len(prefix) :]
                if not key.startswith(prefix) or (oldest is not None and stamp[:8] < oldest):
                    break
                keys.append(key)
                positioned = index.prev()
            shares: dict = {}
            page = [self._info(txn, key[-32:].hex().encode(), shares) for key in keys[:limit]]
        following = keys[limit - 1][len(prefix) :].hex() if len(keys) > limit else None
        return [info for info in page if info is not None], following

    # -- removing ---------------------------------------------------------------------------

    def delete(self, hex_id: str) -> bool:
        """Remove a frame, staged or stored (a shard left empty goes too); False if absent."""
        dbs = self._dbs()
        key = hex_id.encode()
        with self.env.write() as txn:
            if not forget(txn, dbs, key):
                return False
        if is_member_key(key) and self.store.has(hex_id):
            self.store.remove([hex_id])
        return True

    def apply_retention(
        self,
        retain_days: float | None,
        max_bytes: int | None,
        now: float | None = None,
        *,
        per_source: bool = False,
    ) -> list[str]:
        """Remove the oldest frames (by capture time) until every frame is younger than
        ``retain_days`` and the frames take at most ``max_bytes``, over all sources or, with
        ``per_source``, each source on its own; returns the ids removed."""
        if retain_days is None and max_bytes is None:
            return []
        now = time.time() if now is None else now
        frames = self._all_oldest_first()
        if not per_source:
            return self._retain(frames, retain_days, max_bytes, now)
        sources = sorted({info.source for info in frames})
        return [removed for source in sources for removed in self._retain(
            [f for f in frames if f.source == source], retain_days, max_bytes, now)]  # fmt: skip

    def _retain(self, frames: list[FrameInfo], retain_days, max_bytes, now) -> list[str]:
        total = sum(info.bytes for info in frames)
        removed = []
        for info in frames:
            too_old = retain_days is not None and info.captured_at < now - retain_days * 86400
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                break
            if self.delete(info.id):
                removed.append(info.id)
                total -= info.bytes
        return removed

    def _all_oldest_first(self) -> list[FrameInfo]:
        with self.env.read() as txn:
            shares: dict = {}
            infos = []
            for key, _ in txn.cursor(db=self._dbs()["by_time"]):
                if bytes(key).startswith(b"T"):
                    info = self._info(txn, bytes(key)[-32:].hex().encode(), shares)
                    if info is not None:
                        infos.append(info)
        return infos

    def stats(self) -> dict:
        """Frames staged and stored, their bytes, the oldest staged frame's wait (seconds)."""
        frames = self._all_oldest_first()
        staged = [f for f in frames if f.state == "staged"]
        stored = [f for f in frames if f.state == "stored"]
        oldest = min((f.received_at for f in staged), default=None)
        return {
            "frames_staged": len(staged),
            "frames_stored": len(stored),
            "bytes_staged": sum(f.bytes for f in staged),
            "bytes_stored": round(sum(f.bytes for f in stored)),
            "backlog_seconds": 0.0 if oldest is None else max(0.0, time.time() - oldest),
            "sources": sorted({f.source for f in frames}),
        }

    # -- tokens -----------------------------------------------------------------------------

    def create_token(self, scope: str, label: str = "") -> str:
        """A new random token of ``scope`` (``read`` or ``write``); only its hash is kept."""
        if scope not in ("read", "write"):
            raise ValueError(f"scope must be read or write, not {scope!r}")
        token = secrets.token_urlsafe(32)
        record = TokenRecord(scope, int(time.time()), label[:255])
        with self.env.write() as txn:
            txn.put(_token_key(token), pack_token(record), db=self._dbs()["tokens"])
        return token

    def token_scope(self, token: str) -> str | None:
        """The scope of ``token``, or None for an unknown (or damaged) one."""
        with self.env.read() as txn:
            raw = txn.get(_token_key(token), db=self._dbs()["tokens"])
        if raw is None:
            return None
        try:
            return unpack_token(raw).scope
        except CorruptRecordError:
            return None


def forget(txn, dbs: dict, key: bytes) -> bool:
    """Delete a frame's record, staged bytes and time keys in ``txn`` (a store without frame
    tables has none); False when there was no such frame."""
    raw = txn.get(key, db=dbs["frames"]) if all(n in dbs for n in FRAME_DATABASES) else None
    if raw is None:
        return False
    txn.delete(key, db=dbs["frames"])
    txn.delete(key, db=dbs["staging"])
    for index_key in _index_keys(unpack_frame(raw), bytes.fromhex(key.decode())):
        txn.delete(index_key, db=dbs["by_time"])
    return True


def _token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
