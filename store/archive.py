"""The ``Store`` facade: add, get, list, inspect, remove, verify, export and compact.

Only the codec's public functions touch images (``encode_image`` / ``decode_image``); LMDB
is reached through :mod:`inrstore.store.env`; bytes through :mod:`inrstore.store.records`.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from inrstore.datasets import DEFAULT_MAX_PIXELS, ImageError, load_image, scan_images
from inrstore.datasets.load import pixel_sha256, to_pil_image
from inrstore.datasets.scan import FoundImage
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.codec import Crop, decode_image, encode_image
from inrstore.models.metrics import psnr
from inrstore.store import ids
from inrstore.store.env import StoreEnv
from inrstore.store.errors import CorruptRecordError, StoreError
from inrstore.store.records import (
    MemberRecord,
    ShardRecord,
    pack_member,
    pack_shard,
    unpack_member,
    unpack_shard,
)
from inrstore.store.sharding import group_into_shards, size_class

_NEXT_SHARD = b"next_shard"


@dataclass(frozen=True)
class AddProgress:
    """Reported while adding: ``stage`` is ``"scan"``, ``"encode"`` or ``"commit"``."""

    stage: str
    done: int
    total: int
    shard: int = 0
    shards: int = 0
    name: str = ""
    training: object | None = None


@dataclass
class AddReport:
    """What an ``add`` did: ids added, names skipped as duplicates, files that failed."""

    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    shards: int = 0


@dataclass(frozen=True)
class MemberInfo:
    """What ``ls`` and ``info`` show of a member."""

    hex_id: str
    name: str
    height: int
    width: int
    channels: int
    stored_bytes: int
    original_bytes: int
    psnr: float
    shard: int
    label: int | None
    conversion: str

    @property
    def bpp(self) -> float:
        return self.stored_bytes * 8 / (self.height * self.width)


@dataclass(frozen=True)
class StoreStats:
    images: int
    shards: int
    stored_bytes: int
    original_bytes: int
    pixels: int
    disk_bytes: int

    @property
    def bpp(self) -> float:
        return self.stored_bytes * 8 / self.pixels if self.pixels else 0.0

    @property
    def ratio(self) -> float:
        return self.original_bytes / self.stored_bytes if self.stored_bytes else 0.0


@dataclass
class _Pending:
    found: FoundImage
    hex_id: str
    height: int
    width: int
    original_bytes: int
    label: int | None


def _info(record: MemberRecord) -> MemberInfo:
    return MemberInfo(
        record.hex_id, record.name, record.height, record.width, record.channels,
        len(record.bitstream), record.original_bytes, record.psnr, record.shard, record.label,
        record.conversion,
    )  # fmt: skip


def read_labels(path: Path) -> dict[str, int]:
    """``file,label`` rows (a header row is skipped) → {file name: label}."""
    labels: dict[str, int] = {}
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) >= 2 and row[1].strip().lstrip("-").isdigit():
                labels[row[0].strip()] = int(row[1])
    return labels


class Store:
    """An inrstore archive. Use :meth:`open`; close it, or use it as a context manager."""

    def __init__(self, env: StoreEnv) -> None:
        self._env = env

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, create: bool = False) -> Store:
        return cls(StoreEnv.open(path, readonly=readonly, create=create))

    @property
    def path(self) -> Path:
        return self._env.path

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------

    def resolve(self, ident: str) -> str:
        with self._env.read() as txn:
            return ids.resolve(txn, self._env.dbs["members"], self._env.dbs["by_name"], ident)

    def _member(self, txn, hex_id: str) -> MemberRecord:
        raw = txn.get(hex_id.encode(), db=self._env.dbs["members"])
        if raw is None:
            raise StoreError(f"member {ids.short(hex_id)} vanished")
        try:
            return unpack_member(raw)
        except CorruptRecordError as err:
            raise CorruptRecordError(f"{ids.short(hex_id)}: {err}") from None

    def _record(self, ident: str) -> MemberRecord:
        with self._env.read() as txn:
            hex_id = ids.resolve(txn, self._env.dbs["members"], self._env.dbs["by_name"], ident)
            return self._member(txn, hex_id)

    def ids(self) -> list[str]:
        """Full hex ids of every member, sorted."""
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._env.dbs["members"])
            return [key.decode() for key in cursor.iternext(keys=True, values=False)]

    def info(self, ident: str) -> MemberInfo:
        return _info(self._record(ident))

    def members(self) -> Iterator[MemberInfo | tuple[str, str]]:
        """Every member's info, or ``(hex id, reason)`` for a damaged record."""
        with self._env.read() as txn:
            for key, raw in txn.cursor(db=self._env.dbs["members"]):
                try:
                    yield _info(unpack_member(raw))
                except CorruptRecordError as err:
                    yield key.decode(), str(err)

    def get(self, ident: str, scale: float = 1.0, crop: Crop | None = None) -> np.ndarray:
        """Decode one member (``uint8 (H', W', C)``); reads its record and its shard's only."""
        record = self._record(ident)
        try:
            return decode_image(record.bitstream, scale, crop)
        except BitstreamError as err:
            raise CorruptRecordError(f"{ids.short(record.hex_id)}: {err}") from None

    def stats(self) -> StoreStats:
        images = stored = original = pixels = 0
        for info in self.members():
            if isinstance(info, MemberInfo):
                images += 1
                stored += info.stored_bytes
                original += info.original_bytes
                pixels += info.height * info.width
        with self._env.read() as txn:
            shards = txn.stat(self._env.dbs["shards"])["entries"]
        return StoreStats(images, shards, stored, original, pixels, self._env.disk_bytes())

    # -- adding -------------------------------------------------------------------------

    def add(
        self,
        paths: Iterable[str | Path],
        *,
        preset: object = "fast",
        quality: float = 50.0,
        shard_size: int | None = None,
        device: str = "cpu",
        labels: dict[str, int] | None = None,
        label_from_folder: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        on_progress: Callable[[AddProgress], None] | None = None,
    ) -> AddReport:
        """Scan, skip duplicates, group into shards, encode, commit shard by shard.

        Each shard is committed in one write transaction, so an interrupted ``add`` loses at
        most the shard in progress and running it again finishes the job. Labels come from
        ``labels`` ({file name: label}) or, with ``label_from_folder``, from the index of the
        member's first folder among the sorted folder names.
        """
        report = AddReport()
        notify = on_progress or (lambda progress: None)
        scan = scan_images(list(paths))
        report.failures.extend(scan.problems)
        folder_labels = _folder_labels(scan.images) if label_from_folder else {}
        pending: list[_Pending] = []
        seen: set[str] = set()
        with self._env.read() as txn:
            for index, found in enumerate(scan.images):
                notify(AddProgress("scan", index + 1, len(scan.images), name=found.name))
                try:
                    image = load_image(found.path, name=found.name, max_pixels=max_pixels)
                except ImageError as err:
                    report.failures.append((err.path, err.reason))
                    continue
                hex_id = pixel_sha256(image.pixels)
                if hex_id in seen or txn.get(hex_id.encode(), db=self._env.dbs["members"]):
                    report.duplicates.append(found.name)
                    continue
                seen.add(hex_id)
                label = (labels or {}).get(found.name, (labels or {}).get(found.path.name))
                if label is None:
                    label = folder_labels.get(found.name)
                pending.append(
                    _Pending(found, hex_id, image.height, image.width,
                             found.path.stat().st_size, label)
                )  # fmt: skip
        classes = [size_class(p.height, p.width) for p in pending]
        shards = group_into_shards(pending, classes, shard_size)
        done = 0
        for number, shard in enumerate(shards, start=1):
            records = []
            for item in shard:
                notify(
                    AddProgress("encode", done, len(pending), number, len(shards), item.found.name)
                )
                record = self._encode(item, preset, quality, device, notify, done, len(pending),
                                      number, len(shards))  # fmt: skip
                if record is None:
                    report.failures.append((item.found.path, "changed or vanished during add"))
                else:
                    records.append(record)
                done += 1
            notify(AddProgress("commit", done, len(pending), number, len(shards)))
            report.added.extend(self._commit(records, preset, quality))
            report.shards += 1
        return report

    def _encode(self, item, preset, quality, device, notify, done, total, shard, shards):
        try:
            image = load_image(item.found.path, name=item.found.name)
        except ImageError:
            return None
        if pixel_sha256(image.pixels) != item.hex_id:
            return None

        def training(status) -> None:
            notify(AddProgress("encode", done, total, shard, shards, item.found.name, status))

        bitstream = encode_image(image.pixels, preset, quality, device=device, on_status=training)
        decoded = decode_image(bitstream)
        return MemberRecord(
            content_id=bytes.fromhex(item.hex_id),
            decoded_id=bytes.fromhex(pixel_sha256(decoded)),
            shard=0,
            height=image.height,
            width=image.width,
            channels=image.channels,
            original_bytes=item.original_bytes,
            psnr=min(psnr(image.pixels, decoded), 999.0),
            label=item.label,
            name=item.found.name,
            conversion=image.conversion or "",
            bitstream=bitstream,
        )

    def _commit(self, records: list[MemberRecord], preset: object, quality: float) -> list[str]:
        """Write one shard and its members atomically; skip members added meanwhile."""
        dbs = self._env.dbs
        added: list[str] = []
        with self._env.write() as txn:
            fresh = [r for r in records if txn.get(r.hex_id.encode(), db=dbs["members"]) is None]
            if not fresh:
                return added
            raw = txn.get(_NEXT_SHARD, db=dbs["meta"])
            number = struct.unpack(">Q", raw)[0] if raw else 1
            txn.put(_NEXT_SHARD, struct.pack(">Q", number + 1), db=dbs["meta"])
            preset_name = preset if isinstance(preset, str) else getattr(preset, "name", "custom")
            shard = ShardRecord(
                number, int(time.time()), preset_name[:255], quality,
                tuple(r.content_id for r in fresh),
            )  # fmt: skip
            txn.put(struct.pack(">Q", number), pack_shard(shard), db=dbs["shards"])
            for record in fresh:
                stored = MemberRecord(**{**record.__dict__, "shard": number})
                txn.put(record.hex_id.encode(), pack_member(stored), db=dbs["members"])
                txn.put(record.name.encode(), record.hex_id.encode(), db=dbs["by_name"])
                added.append(record.hex_id)
        return added

    # -- removing, checking, exporting ------------------------------------------------------

    def remove(self, idents: Iterable[str]) -> list[str]:
        """Remove members (all resolved first); a shard left empty is removed too."""
        dbs = self._env.dbs
        with self._env.write() as txn:
            targets = {ids.resolve(txn, dbs["members"], dbs["by_name"], i) for i in idents}
            for hex_id in sorted(targets):
                raw = txn.get(hex_id.encode(), db=dbs["members"])
                try:
                    record = unpack_member(raw)
                except CorruptRecordError:
                    record = None
                txn.delete(hex_id.encode(), db=dbs["members"])
                if record is None:
                    continue
                txn.delete(record.name.encode(), hex_id.encode(), db=dbs["by_name"])
                key = struct.pack(">Q", record.shard)
                shard_raw = txn.get(key, db=dbs["shards"])
                if shard_raw is None:
                    continue
                shard = unpack_shard(shard_raw)
                remaining = tuple(m for m in shard.members if m != record.content_id)
                if remaining:
                    updated = ShardRecord(**{**shard.__dict__, "members": remaining})
                    txn.put(key, pack_shard(updated), db=dbs["shards"])
                else:
                    txn.delete(key, db=dbs["shards"])
        return sorted(targets)

    def verify(
        self, *, quick: bool = False, on_member: Callable[[str], None] | None = None
    ) -> list[tuple[str, str]]:
        """Check every record's checksum and (unless ``quick``) that it decodes to the very
        pixels it decoded to when added. Returns ``(short id, problem)`` for each failure."""
        failures = []
        for hex_id in self.ids():
            if on_member is not None:
                on_member(hex_id)
            try:
                with self._env.read() as txn:
                    record = self._member(txn, hex_id)
                if not quick:
                    decoded = decode_image(record.bitstream)
                    if pixel_sha256(decoded) != record.decoded_id.hex():
                        failures.append((ids.short(hex_id), "decodes to different pixels"))
            except (CorruptRecordError, BitstreamError) as err:
                failures.append(
                    (ids.short(hex_id), str(err).removeprefix(ids.short(hex_id) + ": "))
                )
        return failures

    def export(
        self, directory: str | Path, *, on_member: Callable[[str], None] | None = None
    ) -> list[Path]:
        """Decode every member to PNG under its original relative name inside ``directory``
        (a name that would escape it, or repeat, gets the member's short id instead)."""
        root = Path(directory).resolve()
        root.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        used: set[Path] = set()
        for hex_id in self.ids():
            if on_member is not None:
                on_member(hex_id)
            record = self._record(hex_id)
            target = _safe_target(root, record.name, hex_id, used)
            target.parent.mkdir(parents=True, exist_ok=True)
            to_pil_image(decode_image(record.bitstream)).save(target)
            used.add(target)
            written.append(target)
        return written

    def compact(self) -> tuple[int, int]:
        """Rewrite the store without free pages; returns disk bytes (before, after).

        Needs exclusive use: no other process may have the store open.
        """
        before = self._env.disk_bytes()
        path = self.path
        staging = path.with_name(path.name + ".compacting")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        self._env.copy_compacted(staging)
        self._env.close()
        retired = path.with_name(path.name + ".old")
        os.replace(path, retired)
        os.replace(staging, path)
        shutil.rmtree(retired)
        self._env = StoreEnv.open(path)
        return before, self._env.disk_bytes()


def _folder_labels(images: list[FoundImage]) -> dict[str, int]:
    folders = sorted({PurePosixPath(i.name).parts[0] for i in images if "/" in i.name})
    index = {folder: number for number, folder in enumerate(folders)}
    return {i.name: index[PurePosixPath(i.name).parts[0]] for i in images if "/" in i.name}


def _safe_target(root: Path, name: str, hex_id: str, used: set[Path]) -> Path:
    relative = PurePosixPath(name).with_suffix(".png")
    candidate = (root / Path(*relative.parts)).resolve() if relative.parts else root
    escapes = relative.is_absolute() or ".." in relative.parts or not candidate.is_relative_to(root)
    if escapes or candidate == root or candidate in used:
        candidate = root / f"{ids.short(hex_id)}.png"
    return candidate
