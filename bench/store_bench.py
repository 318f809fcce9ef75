"""What a user saves with ``inrstore add`` against a folder of files at the same PSNR.

:func:`run_store_bench` adds a folder into a fresh store with the given preset, quality, shard
size and bases, then reports per image its stored bytes (its own record's bitstream plus its
share of the shard header), its PSNR, the milliseconds of ``Store.get``, and the bytes of a
JPEG (optimised 4:2:0), WebP (method 6) and AVIF (speed 4, 4:4:4) file of the same image at
that same PSNR: each codec's integer quality is bisected to the two neighbours around the
image's PSNR and the bytes interpolated linearly in PSNR between them. An image whose PSNR a
codec does not reach at quality 100 has no bytes for it (``None``) and is left out of that
codec's totals. RGB images only (others are listed as not compared). A ``labels.csv`` in the
folder (``file,label`` rows) is recorded as ``add --labels`` records it, so a kept store can
feed a training loop. Encode cost is reported as wall seconds and as CPU seconds (this
process's and its children's, every core) per image.

:func:`merge_store_reports` joins runs over disjoint sets of images with the same settings
(a long preset run in parts), as one run over all of them would have reported them.

With ``singles``, each image is also encoded alone by ``inrstore encode`` with the same
preset and quality (the single-image codec the store must match): its bytes, PSNR and
seconds, and its bytes carried to the stored image's PSNR along WebP's curve (the single's
bytes × WebP's bytes at the stored PSNR / WebP's bytes at the single's PSNR, a first-order
correction for the two encodes' slightly different PSNRs).
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inrstore.bench.codecs import Codec, get_codec
from inrstore.datasets import ImageError, load_image, scan_images
from inrstore.datasets.load import pixel_sha256
from inrstore.models.codec import decode_image, encode_image
from inrstore.models.fit.presets import preset as find_preset
from inrstore.models.metrics import psnr
from inrstore.store import MemberInfo, Store
from inrstore.store.archive import read_labels

FILE_CODECS = ("jpeg", "webp", "avif")
QUALITY_RANGE = (1, 100)


@dataclass(frozen=True)
class StoreBenchSettings:
    """How the folder is added: ``add``'s own options."""

    preset: str = "fast"
    quality: float = 50.0
    shard_size: int | None = None
    bases: int | None = None
    workers: int = 1
    limit: int | None = None
    sharing: str = "auto"
    singles: bool = False


def bytes_at_psnr(codec: Codec, pixels: np.ndarray, target: float) -> float | None:
    """Bytes of ``codec``'s file of ``pixels`` at PSNR ``target`` (interpolated between the
    two integer qualities around it); None when even quality 100 stays below it."""
    points: dict[int, tuple[int, float]] = {}

    def point(quality: int) -> tuple[int, float]:
        if quality not in points:
            data = codec.encode(pixels, quality)
            points[quality] = (len(data), psnr(pixels, codec.decode(data)))
        return points[quality]

    low, high = QUALITY_RANGE
    if point(low)[1] >= target and point(high)[1] >= target:
        return float(point(low)[0])
    found = bracket_psnr(point, target, low, high)
    if found is None:
        return None
    (bytes_low, psnr_low), (bytes_high, psnr_high) = point(found[0]), point(found[1])
    share = (target - psnr_low) / (psnr_high - psnr_low)
    return bytes_low + share * (bytes_high - bytes_low)


def bracket_psnr(
    point: Callable[[int], tuple[int, float]], target: float, worst: int, best: int
) -> tuple[int, int] | None:
    """Neighbouring integer settings ``(below, reached)``, one step apart, with PSNR(below) <
    ``target`` ≤ PSNR(reached), bisected between ``worst`` and ``best`` (PSNR rises from
    ``worst`` to ``best``, in either numeric order; ``point(s)`` is setting ``s``'s (bytes,
    PSNR)). None when ``best`` stays below ``target`` or ``worst`` already reaches it."""
    if point(best)[1] < target or point(worst)[1] >= target:
        return None
    while abs(best - worst) > 1:  # invariant: PSNR(worst) < target <= PSNR(best)
        middle = (worst + best) // 2
        if point(middle)[1] >= target:
            best = middle
        else:
            worst = middle
    return worst, best


def run_store_bench(
    folder: Path,
    settings: StoreBenchSettings,
    *,
    codecs: tuple[str, ...] = FILE_CODECS,
    store_path: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """Add ``folder`` into a store (``store_path``, else a temporary one) and compare every
    stored image with files of each of ``codecs`` at its PSNR; returns the report."""
    notify = on_progress or (lambda message: None)
    found = scan_images(folder)
    paths = [image.path for image in found.images][: settings.limit]
    labels_file = folder / "labels.csv"
    labels = read_labels(labels_file) if labels_file.is_file() else None
    originals = {}
    for source in paths:
        try:
            pixels = load_image(source).pixels
        except ImageError:
            continue  # add reports it
        originals[pixel_sha256(pixels)] = pixels
    with tempfile.TemporaryDirectory(prefix="inrstore-bench-") as temporary:
        path = store_path or Path(temporary) / "store"
        with Store.open(path, create=True) as store:
            notify(f"adding {len(paths)} images")
            started, cpu_started = time.monotonic(), _cpu_seconds()
            commits = _ShardClock(started)
            added = store.add(
                paths, preset=settings.preset, quality=settings.quality,
                shard_size=settings.shard_size, bases=settings.bases, workers=settings.workers,
                sharing=settings.sharing, labels=labels, on_progress=commits,
            )  # fmt: skip
            encode_seconds = time.monotonic() - started
            encode_cpu_seconds = _cpu_seconds() - cpu_started
            infos = {info.hex_id: info for info in store.members() if isinstance(info, MemberInfo)}
            rows = []
            for hex_id in added.added:
                notify(f"comparing {infos[hex_id].name}")
                rows.append(_compare(store, infos[hex_id], originals[hex_id], codecs))
                if settings.singles:
                    notify(f"encoding {infos[hex_id].name} alone")
                    rows[-1] |= _single(originals[hex_id], rows[-1], settings)
    chosen = find_preset(settings.preset)
    budget = sum(chosen.time_budget(r["height"] * r["width"]) or 0.0 for r in rows)
    return {
        "name": "store",
        "description": f"inrstore add --preset {settings.preset} of {folder.name}",
        "images": rows,
        "totals": _totals(rows, codecs),
        "encode_seconds_per_image": encode_seconds / max(1, len(rows)),
        "encode_cpu_seconds_per_image": encode_cpu_seconds / max(1, len(rows)),
        "budget_seconds_per_image": budget / max(1, len(rows)),
        "get_ms_median": statistics.median(r["get_ms"] for r in rows) if rows else None,
        "shards": added.shards,
        "shard_seconds": commits.shards,
        "failures": [[str(p), reason] for p, reason in found.problems + added.failures],
        "settings": dataclasses.asdict(settings) | {"preset_settings": dataclasses.asdict(chosen)},
    }


def _cpu_seconds() -> float:
    """CPU seconds (user and system, every thread) of this process and its waited-for children."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


class _ShardClock:
    """``add``'s progress callback that notes each shard's images and the seconds from the
    previous commit (or the start) to its commit (its encode, with one worker)."""

    def __init__(self, started: float) -> None:
        self.last = started
        self.done = 0
        self.shards: list[dict] = []

    def __call__(self, event) -> None:
        if event.stage != "commit":
            return
        now = time.monotonic()
        self.shards.append(
            {"shard": event.shard, "images": event.done - self.done, "seconds": now - self.last}
        )
        self.last, self.done = now, event.done


def _compare(store: Store, info: MemberInfo, original: np.ndarray, codecs: tuple[str, ...]) -> dict:
    started = time.perf_counter()
    decoded = store.get(info.hex_id)
    get_ms = (time.perf_counter() - started) * 1000
    stored = info.stored_bytes + info.header_share
    quality = psnr(original, decoded)
    row = {
        "name": info.name, "height": info.height, "width": info.width, "shard": info.shard,
        "stored_bytes": stored, "bpp": stored * 8 / (info.height * info.width),
        "psnr": quality, "get_ms": get_ms,
    }  # fmt: skip
    compared = original.shape[2] == 3
    for name in codecs:
        row[f"{name}_bytes"] = (
            bytes_at_psnr(get_codec(name), original, quality) if compared else None
        )
    return row


def _single(original: np.ndarray, row: dict, settings: StoreBenchSettings) -> dict:
    """The image encoded alone by the single-image codec, and its bytes carried to the
    stored image's PSNR (see the module's docstring)."""
    started = time.perf_counter()
    data = encode_image(original, settings.preset, settings.quality)
    seconds = time.perf_counter() - started
    quality = psnr(original, decode_image(data))
    webp = get_codec("webp")
    at_single, at_stored = bytes_at_psnr(webp, original, quality), row.get("webp_bytes")
    carried = None
    if at_single and at_stored:
        carried = len(data) * at_stored / at_single
    return {
        "single_bytes": len(data), "single_psnr": quality, "single_seconds": seconds,
        "single_bytes_at_stored_psnr": carried,
    }  # fmt: skip


def _totals(rows: list[dict], codecs: tuple[str, ...]) -> dict:
    """Per codec: the store's bytes and the codec's over the images it reached, and their
    ratio (store / files: below 1 means the store is smaller)."""
    totals: dict[str, object] = {
        "images": len(rows),
        "stored_bytes": sum(r["stored_bytes"] for r in rows),
        "mean_psnr": statistics.fmean(r["psnr"] for r in rows) if rows else None,
    }
    keys = {name: f"{name}_bytes" for name in codecs} | {"single": "single_bytes_at_stored_psnr"}
    for name, key in keys.items():
        reached = [r for r in rows if r.get(key) is not None]
        if name == "single" and not reached:
            continue
        files = sum(r[key] for r in reached)
        store_part = sum(r["stored_bytes"] for r in reached)
        totals[name] = {
            "images": len(reached),
            "file_bytes": files,
            "stored_bytes": store_part,
            "ratio": store_part / files if files else None,
        }
    singles = [r["single_seconds"] for r in rows if "single_seconds" in r]
    if singles:
        totals["single_seconds_per_image"] = statistics.fmean(singles)
    return totals


MERGED_SETTINGS = ("preset", "quality", "shard_size", "bases", "sharing", "singles")
"""Settings that runs must share to be merged."""


def merge_store_reports(reports: list[dict]) -> dict:
    """One report of the images of ``reports`` (runs of :func:`run_store_bench` over disjoint
    images with equal :data:`MERGED_SETTINGS`): rows joined, totals recomputed, seconds per
    image weighted by each run's images, the median ``get`` over all rows, and each run's
    commit, date, machine and image count under ``runs``. Raises ``ValueError`` otherwise."""
    if not reports:
        raise ValueError("nothing to merge")
    first = reports[0]["settings"]
    for report in reports[1:]:
        differ = [k for k in MERGED_SETTINGS if report["settings"].get(k) != first.get(k)]
        if differ:
            raise ValueError(f"runs differ in {', '.join(differ)}: they cannot be merged")
    rows = [row for report in reports for row in report["images"]]
    names = [row["name"] for row in rows]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"runs share images ({', '.join(repeated)}): they cannot be merged")
    counts = [len(report["images"]) for report in reports]

    def weighted(key: str) -> float:
        return sum(r[key] * n for r, n in zip(reports, counts, strict=True)) / sum(counts)

    return {
        "name": "store",
        "description": " + ".join(report["description"] for report in reports),
        "images": rows,
        "totals": _totals(rows, FILE_CODECS),
        "encode_seconds_per_image": weighted("encode_seconds_per_image"),
        "encode_cpu_seconds_per_image": (
            weighted("encode_cpu_seconds_per_image")
            if all("encode_cpu_seconds_per_image" in r for r in reports)
            else None
        ),
        "budget_seconds_per_image": weighted("budget_seconds_per_image"),
        "get_ms_median": statistics.median(row["get_ms"] for row in rows),
        "shards": sum(report["shards"] for report in reports),
        "failures": [failure for report in reports for failure in report["failures"]],
        "settings": first,
        "runs": [
            {
                "commit": r.get("commit"),
                "date": r.get("date"),
                "machine": r.get("machine"),
                "images": n,
            }
            for r, n in zip(reports, counts, strict=True)
        ],
    }
