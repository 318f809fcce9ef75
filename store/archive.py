"""The ``Store`` facade: add, get, list, inspect, remove, verify, export and compact.

Only the shard codec's public functions touch images (through :mod:`inrstore.store.encoding`
and ``decode_member``); LMDB is reached through :mod:`inrstore.store.env`; bytes through
:mod:`inrstore.store.records`.
"""

from __future__ import annotations

import csv
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from inrstore.datasets import DEFAULT_MAX_PIXELS, ImageError, load_image, scan_images
from inrstore.datasets.load import pixel_sha256, to_pil_image
from inrstore.datasets.scan import FoundImage
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.codec import Crop
from inrstore.models.shard_codec import (
    DecodedHeader,
    decode_member,
    decode_members,
    describe_networks,
    read_shard_header,
)
from inrstore.store import ids
from inrstore.store.checks import (
    NEXT_SHARD,
    check_tables,
    count_key,
    is_member_key,
    next_shard_number,
    shown_key,
)
from inrstore.store.encoding import (
    EncodedRecords,
    EncodeSettings,
    PendingImage,
    ShardJob,
    encode_job,
)
from inrstore.store.engines import make_engine
from inrstore.store.env import StoreEnv
from inrstore.store.errors import CorruptRecordError, StoreDamagedError, StoreError
from inrstore.store.frames import Frames
from inrstore.store.frames import forget as forget_frame
from inrstore.store.lmdb_pages import PageDamage, walk_pages
from inrstore.store.psnr_target import PsnrTarget
from inrstore.store.records import (
    MemberRecord,
    ShardRecord,
    pack_member,
    pack_shard,
    unpack_member,
    unpack_shard,
)
from inrstore.store.sharding import folder_of, group_into_shards, shard_class

PIXELS_DIFFER = (
    "bytes intact, but decodes to different pixels than when added "
    "(float rounding of the synthesis differs on this machine or version)"
)
"""What ``verify`` reports when checksums pass and only the pixel hash differs: the latents
decode exactly everywhere, the float synthesis may round a pixel differently."""

WARM_SEARCH_SHARDS = 256
"""How many of the latest shards ``latest_header(folder)`` looks through."""

MAX_NAME_BYTES = 250
"""Longest file-name component export writes (255 on common filesystems, less ``.png``)."""
MAX_PATH_BYTES = 3000

HEADER_CACHE_SIZE = 32
"""Decoded shard headers kept per open store (least recently used dropped first)."""


@dataclass(frozen=True)
class AddProgress:
    """Reported while adding: ``stage`` is ``"scan"``, ``"encode"`` or ``"commit"``.

    ``done`` of ``total`` images are committed; while shard ``shard`` (of ``shards``, holding
    ``shard_size`` images) trains, ``training`` is its latest
    :class:`~inrstore.models.fit.train.TrainingStatus`.
    """

    stage: str
    done: int
    total: int
    shard: int = 0
    shards: int = 0
    name: str = ""
    training: object | None = None
    shard_size: int = 0

    @property
    def images_done(self) -> float:
        """Committed images plus the trained share of the shard in progress."""
        progress = getattr(self.training, "progress", 0.0)
        return self.done + progress * self.shard_size


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
    header_share: float = 0.0
    """The member's share of its shard header: header bytes / members in the shard."""

    @property
    def bpp(self) -> float:
        """Effective bits per pixel: own record plus header share."""
        return (self.stored_bytes + self.header_share) * 8 / (self.height * self.width)


@dataclass(frozen=True)
class ShardSummary:
    """Totals of one shard: its header, its members' own records, their pixels and PSNR, and
    the quality it was encoded at (NaN where its record is damaged)."""

    shard: int
    members: int
    header_bytes: int
    member_bytes: int
    pixels: int
    mean_psnr: float
    quality: float
    networks: str
    """What the members share (:func:`~inrstore.models.shard_codec.describe_networks`)."""

    @property
    def bpp(self) -> float:
        return (self.header_bytes + self.member_bytes) * 8 / self.pixels


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


def _info(record: MemberRecord, header_share: float) -> MemberInfo:
    return MemberInfo(
        record.hex_id, record.name, record.height, record.width, record.channels,
        len(record.bitstream), record.original_bytes, record.psnr, record.shard, record.label,
        record.conversion, header_share,
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
        self._headers: OrderedDict[int, DecodedHeader] = OrderedDict()
        self._headers_lock = threading.Lock()

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

    def _shard(self, txn, number: int) -> ShardRecord:
        raw = txn.get(struct.pack(">Q", number), db=self._env.dbs["shards"])
        if raw is None:
            raise CorruptRecordError(f"shard {number} is missing")
        try:
            return unpack_shard(raw)
        except CorruptRecordError as err:
            raise CorruptRecordError(f"shard {number}: {err}") from None

    def _header(self, txn, number: int) -> bytes:
        header = txn.get(struct.pack(">Q", number), db=self._env.dbs["headers"])
        if header is None:
            raise CorruptRecordError(f"the header of shard {number} is missing")
        return header

    def _header_share(self, txn, number: int, header_bytes: int) -> float:
        """Header bytes per member of shard ``number``, from its 4-byte member count."""
        raw_count = txn.get(count_key(number), db=self._env.dbs["meta"])
        if raw_count is None or len(raw_count) != 4 or raw_count == bytes(4):
            raise CorruptRecordError(f"the member count of shard {number} is damaged")
        return header_bytes / struct.unpack(">I", raw_count)[0]

    def _header_shares(self, txn) -> dict[int, float]:
        """Shard number → header bytes per member, for every shard with a readable count
        (reads the headers and counts, not the member lists)."""
        shares = {}
        for key, header in txn.cursor(db=self._env.dbs["headers"]):
            number = struct.unpack(">Q", key)[0]
            try:
                shares[number] = self._header_share(txn, number, len(header))
            except CorruptRecordError:
                continue
        return shares

    def ids(self) -> list[str]:
        """Full hex ids of every member, sorted."""
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._env.dbs["members"])
            keys = cursor.iternext(keys=True, values=False)
            return [key.decode() for key in keys if is_member_key(key)]

    def has(self, hex_id: str) -> bool:
        """Whether a member with this full id is stored."""
        with self._env.read() as txn:
            return txn.get(hex_id.encode(), db=self._env.dbs["members"]) is not None

    @property
    def frames(self) -> Frames:
        """The frames a gateway staged and stored (:mod:`~inrstore.store.frames`)."""
        return Frames(self)

    def info(self, ident: str) -> MemberInfo:
        return self.read(ident, decode=False)[1]

    def members(self) -> Iterator[MemberInfo | tuple[str, str]]:
        """Every member's info, or ``(hex id, reason)`` for a damaged record."""
        with self._env.read() as txn:
            shares = self._header_shares(txn)
            for key, raw in txn.cursor(db=self._env.dbs["members"]):
                if not is_member_key(key):
                    yield shown_key(key), "a members key that is not a content id"
                    continue
                try:
                    record = unpack_member(raw)
                except CorruptRecordError as err:
                    yield key.decode(), str(err)
                    continue
                yield _info(record, shares.get(record.shard, 0.0))

    def shards(self) -> list[ShardSummary]:
        """Per-shard totals (readable members only), by shard number."""
        by_shard: dict[int, list[MemberInfo]] = {}
        for info in self.members():
            if isinstance(info, MemberInfo):
                by_shard.setdefault(info.shard, []).append(info)
        summaries = []
        with self._env.read() as txn:
            for number, infos in sorted(by_shard.items()):
                try:
                    networks = describe_networks(self._header(txn, number))
                except (BitstreamError, CorruptRecordError):
                    networks = "unreadable header"
                try:
                    quality = self._shard(txn, number).quality
                except CorruptRecordError:
                    quality = float("nan")
                summaries.append(
                    ShardSummary(
                        shard=number,
                        members=len(infos),
                        header_bytes=round(sum(i.header_share for i in infos)),
                        member_bytes=sum(i.stored_bytes for i in infos),
                        pixels=sum(i.height * i.width for i in infos),
                        mean_psnr=sum(i.psnr for i in infos) / len(infos),
                        quality=quality,
                        networks=networks,
                    )
                )
        return summaries

    def get(self, ident: str, scale: float = 1.0, crop: Crop | None = None) -> np.ndarray:
        """Decode one member (``uint8 (H', W', C)``); reads its record and its shard's only."""
        return self.read(ident, scale, crop)[0]

    def read(
        self, ident: str, scale: float = 1.0, crop: Crop | None = None, *, decode: bool = True
    ) -> tuple[np.ndarray | None, MemberInfo]:
        """A member's pixels (None unless ``decode``) and info, from one read transaction."""
        with self._env.read() as txn:
            hex_id = ids.resolve(txn, self._env.dbs["members"], self._env.dbs["by_name"], ident)
            record = self._member(txn, hex_id)
            header_bytes = self._header(txn, record.shard)
            info = _info(record, self._header_share(txn, record.shard, len(header_bytes)))
            if not decode:
                return None, info
            return self._decode(hex_id, record, header_bytes, scale, crop), info

    def get_many(self, idents: Iterable[str], scale: float = 1.0) -> list[np.ndarray]:
        """Decode several members (``uint8 (H', W', C)`` each, in order) in one read
        transaction: the members of each shard together
        (:func:`~inrstore.models.shard_codec.decode_members`)."""
        idents = list(idents)
        with self._env.read() as txn:
            by_shard: dict[int, list[tuple[int, str, MemberRecord]]] = {}
            for position, ident in enumerate(idents):
                hex_id = ids.resolve(txn, self._env.dbs["members"], self._env.dbs["by_name"], ident)
                record = self._member(txn, hex_id)
                by_shard.setdefault(record.shard, []).append((position, hex_id, record))
            pixels: list[np.ndarray | None] = [None] * len(idents)
            for number, members in by_shard.items():
                header_bytes = self._header(txn, number)
                try:
                    header = self._decoded_header(number, header_bytes)
                    bitstreams = [record.bitstream for _, _, record in members]
                    decoded = decode_members(header, bitstreams, scale)
                except BitstreamError:  # name the damaged member
                    decoded = [
                        self._decode(hex_id, record, header_bytes, scale, None)
                        for _, hex_id, record in members
                    ]
                for (position, _, _), image in zip(members, decoded, strict=True):
                    pixels[position] = image
            return pixels

    def _decode(
        self,
        hex_id: str,
        record: MemberRecord,
        header_bytes: bytes,
        scale: float,
        crop: Crop | None,
    ) -> np.ndarray:
        try:
            header = self._decoded_header(record.shard, header_bytes)
            return decode_member(header, record.bitstream, scale, crop)
        except BitstreamError as err:
            raise CorruptRecordError(f"{ids.short(hex_id)}: {err}") from None

    def _decoded_header(self, number: int, header: bytes) -> DecodedHeader:
        """The parsed header of shard ``number``, from the LRU cache when there."""
        with self._headers_lock:  # a server decodes in several threads
            cached = self._headers.get(number)
        if cached is None:
            cached = read_shard_header(header)
        with self._headers_lock:
            self._headers[number] = cached
            self._headers.move_to_end(number)
            if len(self._headers) > HEADER_CACHE_SIZE:
                self._headers.popitem(last=False)
        return cached

    def stats(self) -> StoreStats:
        images = stored = original = pixels = 0
        for info in self.members():
            if isinstance(info, MemberInfo):
                images += 1
                stored += info.stored_bytes + info.header_share
                original += info.original_bytes
                pixels += info.height * info.width
        with self._env.read() as txn:
            shards = txn.stat(self._env.dbs["shards"])["entries"]
        return StoreStats(images, shards, round(stored), original, pixels, self._env.disk_bytes())

    def latest_header(self, folder: str | None = None) -> bytes | None:
        """The shared header of the most recent shard (a warm start); with ``folder``, of
        the most recent of the latest :data:`WARM_SEARCH_SHARDS` shards whose first member
        is named inside it (a camera's own), else None."""
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._env.dbs["headers"])
            if not cursor.last():
                return None
            if folder is None:
                return bytes(cursor.value())
            for _ in range(WARM_SEARCH_SHARDS):
                (number,) = struct.unpack(">Q", cursor.key())
                try:
                    first = self._member(txn, self._shard(txn, number).members[0].hex())
                except (CorruptRecordError, StoreError, IndexError):
                    first = None
                if first is not None and folder_of(first.name) == folder:
                    return bytes(cursor.value())
                if not cursor.prev():
                    return None
        return None

    # -- adding -------------------------------------------------------------------------

    def add(
        self,
        paths: Iterable[str | Path],
        *,
        preset: object = "fast",
        quality: float = 50.0,
        shard_size: int | None = None,
        bases: int | None = None,
        sharing: str = "auto",
        device: str = "cpu",
        workers: int = 1,
        engine: object = "local",
        ray_address: str | None = None,
        warm_start: bool = True,
        labels: dict[str, int] | None = None,
        label_from_folder: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        psnr: float | None = None,
        on_progress: Callable[[AddProgress], None] | None = None,
    ) -> AddReport:
        """Scan, skip duplicates, group into shards, encode, commit shard by shard.

        Each shard is committed in one write transaction, so an interrupted ``add`` loses at
        most the shards in progress and running it again finishes the job. ``bases`` is K
        (default :data:`~inrstore.store.encoding.DEFAULT_BASES`, clipped to the shard size)
        where the members share networks; ``sharing`` says whether they do
        (:func:`~inrstore.models.shard_codec.encode_shard`).
        With ``warm_start`` a new shard's bases start from the latest shard's when their
        networks match. ``workers`` > 1 encodes that many shards at once in worker processes
        (each with an equal share of the CPU threads) while this process commits;
        ``engine="ray"`` encodes them as tasks on the Ray cluster at ``ray_address``
        (:mod:`~inrstore.store.engines`). Labels come
        from ``labels`` ({file name: label}) or, with ``label_from_folder``, from the index of
        the member's first folder among the sorted folder names. With ``psnr`` (dB) the
        first shard is encoded at ``quality`` and each later one at the quality that steers
        the mean PSNR of the members stored towards ``psnr``
        (:class:`~inrstore.store.psnr_target.PsnrTarget`); each shard records its own.
        """
        target = None if psnr is None else PsnrTarget(psnr, quality)
        report = AddReport()
        notify = on_progress or (lambda progress: None)
        scan = scan_images(list(paths))
        report.failures.extend(scan.problems)
        pending = self._pending(scan.images, report, labels, label_from_folder, max_pixels, notify)
        classes = [shard_class(p.name, p.height, p.width, p.channels, sharing) for p in pending]
        shards = group_into_shards(pending, classes, shard_size)
        settings = EncodeSettings(preset, quality, bases, device, sharing)
        warm = self.latest_header() if warm_start else None
        progress = _AddCounter(notify, len(pending), len(shards))

        def job(shard: list[PendingImage]) -> ShardJob:
            chosen = settings
            if target is not None:
                chosen = replace(settings, quality=target.next_quality(len(shard)))
            if warm_start and sharing == "latents":
                return ShardJob(shard, chosen, self._warm_header(shard, sharing))
            return ShardJob(shard, chosen, warm)

        def commit(number: int, encoded: EncodedRecords) -> None:
            nonlocal warm
            report.failures.extend(encoded.failures)
            report.added.extend(self._commit(encoded, preset))
            if target is not None:
                target.observe(encoded.quality, [record.psnr for record in encoded.records])
            report.shards += 1
            progress.committed(number, len(encoded.records) + len(encoded.failures))
            if warm_start and encoded.header:
                warm = encoded.header

        chosen = make_engine(engine, workers, ray_address, device)
        numbered = list(enumerate(shards, start=1))
        for number, encoded in chosen.run(
            numbered,
            job,
            lambda number, shard: progress.encoding(number, shard[0].name),
            progress.training,
        ):
            commit(number, encoded)
        return report

    def _pending(self, found, report, labels, label_from_folder, max_pixels, notify):
        """New images among ``found`` (loaded once to hash; duplicates and failures noted)."""
        folder_labels = _folder_labels(found) if label_from_folder else {}
        pending: list[PendingImage] = []
        seen: set[str] = set()
        with self._env.read() as txn:
            for index, item in enumerate(found):
                notify(AddProgress("scan", index + 1, len(found), name=item.name))
                try:
                    image = load_image(item.path, name=item.name, max_pixels=max_pixels)
                except ImageError as err:
                    report.failures.append((err.path, err.reason))
                    continue
                hex_id = pixel_sha256(image.pixels)
                if hex_id in seen or txn.get(hex_id.encode(), db=self._env.dbs["members"]):
                    report.duplicates.append(item.name)
                    continue
                seen.add(hex_id)
                label = (labels or {}).get(item.name, (labels or {}).get(item.path.name))
                if label is None:
                    label = folder_labels.get(item.name)
                pending.append(
                    PendingImage(
                        item.path,
                        item.name,
                        hex_id,
                        image.height,
                        image.width,
                        image.channels,
                        item.path.stat().st_size,
                        label,
                    )
                )
        return pending

    def add_staged(
        self,
        hex_ids: Iterable[str],
        *,
        preset: object = "fast",
        quality: float = 50.0,
        bases: int | None = None,
        sharing: str = "auto",
        device: str = "cpu",
        warm_start: bool = True,
        on_status: Callable | None = None,
    ) -> list[str]:
        """Encode staged frames as one shard per class of :func:`~inrstore.store.sharding.
        shard_class` (small and large frames apart; with ``sharing="latents"``, one per frame
        size) and commit each in one transaction that also removes them from staging (a frame
        deleted meanwhile is left out); returns the ids stored. With ``sharing="latents"`` a
        shard starts from the latest shard of the same source."""
        pending = []
        for hex_id in hex_ids:
            data = self.frames.staged_bytes(hex_id)
            if data is None:
                continue
            info = self.frames.info(hex_id)
            name = f"{info.source}/{hex_id[:12]}"
            pending.append(PendingImage(Path(name), name, hex_id, info.height, info.width,
                                        info.channels, len(data), None, data))  # fmt: skip
        settings = EncodeSettings(preset, quality, bases, device, sharing)
        classes = [shard_class(p.name, p.height, p.width, p.channels, sharing) for p in pending]
        stored = []
        for part in group_into_shards(pending, classes, max(1, len(pending))):
            warm = self._warm_header(part, sharing) if warm_start else None
            encoded = encode_job(ShardJob(part, settings, warm), on_status)
            stored += self._commit(encoded, preset, unstage=True)
        return stored

    def _warm_header(self, shard: list[PendingImage], sharing: str) -> bytes | None:
        """What a new shard starts from: the latest shard's header, or with shared latents
        the latest of its own folder's (a camera's frames start from that camera's)."""
        return self.latest_header(folder_of(shard[0].name) if sharing == "latents" else None)

    def _commit(
        self, encoded: EncodedRecords, preset: object, *, unstage: bool = False
    ) -> list[str]:
        """Write one shard and its members atomically; skip members added meanwhile. With
        ``unstage``, the members are staged frames: only those still staged are written, and
        they leave staging in the same transaction."""
        dbs = self._env.dbs
        added: list[str] = []
        with self._env.write() as txn:
            records = encoded.records
            if unstage:
                records = [r for r in records if txn.pop(r.hex_id.encode(), db=dbs["staging"])]
            fresh = [r for r in records if txn.get(r.hex_id.encode(), db=dbs["members"]) is None]
            if not fresh:
                return added
            number = next_shard_number(txn, dbs)
            txn.put(NEXT_SHARD, struct.pack(">Q", number + 1), db=dbs["meta"])
            preset_name = preset if isinstance(preset, str) else getattr(preset, "name", "custom")
            shard = ShardRecord(
                number, int(time.time()), preset_name[:255], encoded.quality,
                tuple(r.content_id for r in fresh),
            )  # fmt: skip
            key = struct.pack(">Q", number)
            new_shard = txn.put(key, pack_shard(shard), db=dbs["shards"], overwrite=False)
            if not (new_shard and txn.put(key, encoded.header, db=dbs["headers"], overwrite=False)):
                raise StoreDamagedError(f"{self.path}: shard {number} is in use; nothing written")
            txn.put(count_key(number), struct.pack(">I", len(fresh)), db=dbs["meta"])
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
                forget_frame(txn, dbs, hex_id.encode())
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
                    count = struct.pack(">I", len(remaining))
                    txn.put(count_key(record.shard), count, db=dbs["meta"])
                else:
                    txn.delete(key, db=dbs["shards"])
                    txn.delete(key, db=dbs["headers"])
                    txn.delete(count_key(record.shard), db=dbs["meta"])
        return sorted(targets)

    def verify(
        self, *, quick: bool = False, on_member: Callable[[str], None] | None = None
    ) -> list[tuple[str, str]]:
        """Check the store and return ``(where, problem)`` for each failure.

        First the LMDB structure, page by page through ``pread`` (damage found there is the
        only failure returned: the memory map is not touched); then the tables against each
        other (:func:`~inrstore.store.checks.check_tables`); then every member's record and
        shard header (checksums, structure) and, unless ``quick``, that it decodes to the
        very pixels it decoded to when added.
        """
        try:
            walk_pages(self.path)
        except PageDamage as err:
            return [("store", f"LMDB structure damaged: {err}")]
        try:
            with self._env.read() as txn:
                failures = check_tables(txn, self._env.dbs)
        except StoreDamagedError as err:
            return [("store", str(err))]
        for hex_id in self.ids():
            if on_member is not None:
                on_member(hex_id)
            problem = self._member_problem(hex_id, quick)
            if problem is not None:
                failures.append((ids.short(hex_id), problem))
        return failures

    def _member_problem(self, hex_id: str, quick: bool) -> str | None:
        try:
            with self._env.read() as txn:
                record = self._member(txn, hex_id)
                self._shard(txn, record.shard)
                self._decoded_header(record.shard, self._header(txn, record.shard))
            if not quick:
                decoded, _ = self.read(hex_id)
                if pixel_sha256(decoded) != record.decoded_id.hex():
                    return PIXELS_DIFFER
        except (CorruptRecordError, BitstreamError, ValueError) as err:
            return str(err).removeprefix(ids.short(hex_id) + ": ")
        return None

    def export(
        self,
        directory: str | Path,
        *,
        on_member: Callable[[str], None] | None = None,
        on_problem: Callable[[str, str], None] | None = None,
    ) -> list[Path]:
        """Decode every member to PNG under its original relative name inside ``directory``.

        A name that would escape the folder, repeat, or that the filesystem cannot hold
        (empty, ``.``, a NUL byte, a component over 255 bytes) gets the member's short id
        instead; a member that cannot be decoded is skipped. Both are reported through
        ``on_problem(short id, message)`` and the export goes on.
        """
        try:
            walk_pages(self.path)
        except PageDamage as err:
            message = f"{self.path}: store damaged ({err}); see 'inrstore verify'"
            raise StoreDamagedError(message) from None
        report = on_problem or (lambda ident, message: None)
        root = Path(directory).resolve()
        root.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        used: set[Path] = set()
        for hex_id in self.ids():
            if on_member is not None:
                on_member(hex_id)
            try:
                pixels, info = self.read(hex_id)
            except (CorruptRecordError, BitstreamError, ValueError) as err:
                report(ids.short(hex_id), f"not exported: {err}")
                continue
            target, refused = _safe_target(root, info.name, hex_id, used)
            if refused:
                report(ids.short(hex_id), f"name {info.name!r} {refused}; saved as {target.name}")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                to_pil_image(pixels).save(target)
            except (OSError, ValueError) as err:
                target = root / f"{ids.short(hex_id)}.png"
                report(ids.short(hex_id), f"cannot be written ({err}); saved as {target.name}")
                to_pil_image(pixels).save(target)
            used.add(target)
            written.append(target)
        return written

    def compact(self) -> tuple[int, int]:
        """Rewrite the store without free pages; returns disk bytes (before, after).

        Needs exclusive use: raises :class:`~inrstore.store.errors.StoreBusyError` while
        another process has the store open (an ``add``, a reader, a server).
        """
        self._env.exclusive()
        before = self._env.disk_bytes()
        path = self.path
        self._env.replace_compacted()
        self._headers.clear()
        self._env = StoreEnv.open(path)
        return before, self._env.disk_bytes()


def _folder_labels(images: list[FoundImage]) -> dict[str, int]:
    folders = sorted({PurePosixPath(i.name).parts[0] for i in images if "/" in i.name})
    index = {folder: number for number, folder in enumerate(folders)}
    return {i.name: index[PurePosixPath(i.name).parts[0]] for i in images if "/" in i.name}


def _safe_target(root: Path, name: str, hex_id: str, used: set[Path]) -> tuple[Path, str]:
    """Where to export a member named ``name``: under its name inside ``root`` when that is
    a usable, new path there, else ``root / <short id>.png`` with the reason (else "")."""
    fallback = root / f"{ids.short(hex_id)}.png"
    parts = PurePosixPath(name).parts
    usable = (
        parts
        and not PurePosixPath(name).is_absolute()
        and all(p not in (".", "..") and "\x00" not in p for p in parts)
        and all(len(p.encode()) <= MAX_NAME_BYTES for p in parts)
        and len(name.encode()) <= MAX_PATH_BYTES
    )
    if not usable:
        return fallback, "cannot be a file name"
    relative = PurePosixPath(*parts[:-1], PurePosixPath(parts[-1]).stem + ".png")
    candidate = (root / Path(*relative.parts)).resolve()
    if not candidate.is_relative_to(root) or candidate == root:
        return fallback, "would leave the export folder"
    if candidate in used:
        return fallback, "is taken by another member"
    return candidate, ""


class _AddCounter:
    """Turns shard events into :class:`AddProgress` reports."""

    def __init__(self, notify: Callable[[AddProgress], None], total: int, shards: int) -> None:
        self.notify, self.total, self.shards, self.done = notify, total, shards, 0

    def encoding(self, number: int, name: str) -> None:
        self.notify(AddProgress("encode", self.done, self.total, number, self.shards, name))

    def training(self, number: int, shard: list[PendingImage]) -> Callable:
        def report(status) -> None:
            self.notify(
                AddProgress(
                    "encode",
                    self.done,
                    self.total,
                    number,
                    self.shards,
                    shard[0].name,
                    status,
                    len(shard),
                )
            )

        return report

    def committed(self, number: int, images: int) -> None:
        self.done += images
        self.notify(AddProgress("commit", self.done, self.total, number, self.shards))
