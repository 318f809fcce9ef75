"""Encoding one shard of pending images into records: the unit of work of ``add``.

A :class:`ShardJob` holds only paths, ids and settings (it pickles), so ``add --workers N``
can run :func:`encode_job` in worker processes while the parent commits what comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inrstore.datasets import ImageError, load_image
from inrstore.datasets.load import load_image_bytes, pixel_sha256
from inrstore.models.metrics import psnr
from inrstore.models.shard_codec import decode_member, encode_shard, read_shard_header
from inrstore.store.records import MemberRecord


@dataclass(frozen=True)
class PendingImage:
    """A new image found by the scan: where it is and what it will be stored as."""

    path: Path
    name: str
    hex_id: str
    height: int
    width: int
    channels: int
    original_bytes: int
    label: int | None
    data: bytes | None = None
    """The file's bytes when they are not read from ``path`` (a staged frame)."""


@dataclass(frozen=True)
class EncodeSettings:
    """How ``add`` encodes: preset name (or a Preset), quality, bases K (None: default),
    device and what a shard's members share
    (:data:`~inrstore.models.shard_codec.SHARING_MODES`)."""

    preset: object = "fast"
    quality: float = 50.0
    bases: int | None = None
    device: str = "cpu"
    sharing: str = "auto"


DEFAULT_BASES = 4
"""K when not given, clipped to the shard's size (see the README's shard measurements)."""


@dataclass
class ShardJob:
    """One shard to encode; ``warm_start`` is an earlier shard header (or None)."""

    images: list[PendingImage]
    settings: EncodeSettings
    warm_start: bytes | None = None


@dataclass
class EncodedRecords:
    """What a job produced: the shard header, member records (shard number not yet set),
    files that changed or vanished since the scan, training time and quality."""

    header: bytes
    records: list[MemberRecord] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    quality: float = 0.0
    """The quality the records were encoded at."""


def encode_job(job: ShardJob, on_status: Callable | None = None) -> EncodedRecords:
    """Load, check, encode and decode back every image of ``job``."""
    loaded, kept, failures = [], [], []
    for item in job.images:
        try:
            if item.data is not None:
                image = load_image_bytes(item.data, item.name)
            else:
                image = load_image(item.path, name=item.name)
        except ImageError as err:
            failures.append((item.path, err.reason))
            continue
        if pixel_sha256(image.pixels) != item.hex_id:
            failures.append((item.path, "changed during add"))
            continue
        loaded.append(image)
        kept.append(item)
    if not loaded:
        return EncodedRecords(b"", failures=failures)
    settings = job.settings
    encoded = encode_shard(
        [image.pixels for image in loaded],
        settings.preset,
        settings.quality,
        bases=settings.bases or DEFAULT_BASES,
        sharing=settings.sharing,
        device=settings.device,
        warm_start=job.warm_start,
        on_status=on_status,
    )
    header = read_shard_header(encoded.header)
    records = []
    for item, image, member in zip(kept, loaded, encoded.members, strict=True):
        decoded = decode_member(header, member)
        records.append(
            MemberRecord(
                content_id=bytes.fromhex(item.hex_id),
                decoded_id=bytes.fromhex(pixel_sha256(decoded)),
                shard=0,
                height=image.height,
                width=image.width,
                channels=image.channels,
                original_bytes=item.original_bytes,
                psnr=min(psnr(image.pixels, decoded), 999.0),
                label=item.label,
                name=item.name,
                conversion=image.conversion or "",
                bitstream=member,
            )
        )
    return EncodedRecords(encoded.header, records, failures, encoded.seconds, settings.quality)


def encode_job_in_worker(job: ShardJob, threads: int) -> EncodedRecords:
    """:func:`encode_job` in a worker process with ``threads`` torch threads (0: torch's
    default)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    return encode_job(job)
