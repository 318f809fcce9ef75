"""Store commands: ``add``, ``get``, ``ls``, ``info``, ``rm``, ``verify``, ``stats``,
``export`` and ``compact``. Each opens the store named by the global ``--store`` option."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from inrstore.cli.console import (
    check_device,
    console,
    errors,
    fail,
    parse_crop,
    problems_table,
    progress_bar,
)
from inrstore.datasets.load import to_pil_image
from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.fit.presets import DEFAULT_QUALITY, PRESETS
from inrstore.models.shard_codec import SHARING_MODES
from inrstore.store import MemberInfo, Store, StoreError
from inrstore.store.archive import read_labels
from inrstore.store.ids import short
from inrstore.store.memory_faults import guard_memory_faults
from inrstore.store.psnr_target import PSNR_RANGE

_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "jpg": "JPEG"}


@contextlib.contextmanager
def _opened(ctx: typer.Context, *, readonly: bool = True, create: bool = False) -> Iterator[Store]:
    guard_memory_faults(ctx.obj["store"])
    try:
        store = Store.open(ctx.obj["store"], readonly=readonly, create=create)
    except StoreError as err:
        raise fail(str(err)) from None
    try:
        yield store
    except (StoreError, BitstreamError) as err:
        raise fail(str(err)) from None
    finally:
        store.close()


def add(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Image files and folders (recursive).")],
    shard_size: Annotated[
        int | None,
        typer.Option(min=1, help="Images per shard (default 128 small, 8 large, 16 frames)."),
    ] = None,
    preset: Annotated[str, typer.Option(help=f"Encoder effort: {', '.join(PRESETS)}.")] = "fast",
    quality: Annotated[
        float, typer.Option(min=0, max=100, help="Quality (with --psnr: the first shard's).")
    ] = DEFAULT_QUALITY,
    psnr: Annotated[
        float | None,
        typer.Option(
            min=PSNR_RANGE[0],
            max=PSNR_RANGE[1],
            help="Mean PSNR (dB) to aim for: each later shard's quality steers towards it.",
        ),
    ] = None,
    bases: Annotated[
        int | None, typer.Option(min=1, help="Weight bases K per shard (default 4, at most N).")
    ] = None,
    sharing: Annotated[
        str,
        typer.Option(
            help="What a shard's members share: auto (networks between images of at most "
            "64x64 pixels), own (each its own networks), shared (K bases), latents (one "
            "camera's frames: networks and latent grids; shards by folder and size)."
        ),
    ] = "auto",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    workers: Annotated[
        int, typer.Option(min=1, help="Shards encoded at once, in worker processes.")
    ] = 1,
    engine: Annotated[
        str, typer.Option(help="local (this machine's processes) or ray (a Ray cluster).")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to use (default: RAY_ADDRESS, or local).")
    ] = None,
    warm_start: Annotated[
        bool, typer.Option(help="Start new shards from the latest shard's bases.")
    ] = True,
    label_csv: Annotated[
        Path | None, typer.Option(help="CSV of file,label rows (by relative name or file name).")
    ] = None,
    label_from_folder: Annotated[
        bool, typer.Option(help="Label = index of the image's top folder (sorted).")
    ] = False,
) -> None:
    """Encode new images into the store, one atomic shard at a time; skip duplicates."""
    if preset not in PRESETS:
        raise fail(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", 2)
    if sharing not in SHARING_MODES:
        raise fail(f"unknown sharing {sharing!r}; use {', '.join(SHARING_MODES)}", 2)
    if engine not in ("local", "ray"):
        raise fail(f"unknown engine {engine!r}; use local or ray", 2)
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        raise fail("--engine ray needs Ray: pip install 'inrstore[ray]'", 2)
    if engine == "local":
        check_device(device)
    try:
        labels = read_labels(label_csv) if label_csv else None
    except OSError as err:
        raise fail(f"{label_csv}: cannot read ({err.strerror})", 2) from None
    with _opened(ctx, readonly=False, create=True) as store, progress_bar() as progress:
        scan = progress.add_task("scan", total=None, status="")
        encode = progress.add_task("encode", total=None, status="", visible=False)

        def show(event) -> None:
            if event.stage == "scan":
                progress.update(scan, completed=event.done, total=event.total, status=event.name)
                return
            status = f"shard {event.shard}/{event.shards} {event.name}"
            if event.training is not None:
                t = event.training
                status += f" it {t.iteration} {t.psnr:.2f} dB {t.bpp:.3f} bpp"
            progress.update(encode, visible=True, completed=event.images_done,
                            total=event.total, status=status)  # fmt: skip

        report = store.add(
            paths, preset=preset, quality=quality, shard_size=shard_size, bases=bases,
            sharing=sharing, device=device, workers=workers, engine=engine, ray_address=ray_address,
            warm_start=warm_start, labels=labels,
            label_from_folder=label_from_folder, psnr=psnr, on_progress=show,
        )  # fmt: skip
    if report.failures:
        errors.print(problems_table(report.failures, "Files not added"))
    console.print(
        f"added {len(report.added)} images in {report.shards} shards; "
        f"{len(report.duplicates)} already stored; {len(report.failures)} failed"
    )
    if report.failures:
        raise typer.Exit(1)


def get(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(help="Id prefix or original name.")],
    scale: Annotated[float, typer.Option(min=1 / 16, max=8)] = 1.0,
    crop: Annotated[str | None, typer.Option(help="x,y,w,h in original pixels.")] = None,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="File to write, or - for stdout.")
    ] = None,
    image_format: Annotated[
        str | None, typer.Option("--format", help="png, webp or jpeg (default: from -o, else png).")
    ] = None,
) -> None:
    """Decode one image (at any scale, or a crop) to a file or stdout."""
    box = parse_crop(crop)
    with _opened(ctx) as store:
        try:
            pixels, info = store.read(ident, scale, box)
        except ValueError as err:
            raise fail(str(err), 2) from None
    target = output or f"{Path(info.name).stem}-{short(info.hex_id)}.png"
    suffix = Path(target).suffix.lower().lstrip(".") if target != "-" else ""
    name = (image_format or suffix or "png").lower()
    if name not in _FORMATS:
        raise fail(f"unknown format {name!r}; use png, webp or jpeg", 2)
    image = to_pil_image(pixels)
    if _FORMATS[name] == "JPEG" and image.mode == "RGBA":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=_FORMATS[name])
    if target == "-":
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return
    try:
        Path(target).write_bytes(buffer.getvalue())
    except OSError as err:
        raise fail(f"{target}: cannot write ({err.strerror})") from None
    errors.print(f"{target}: {pixels.shape[1]}x{pixels.shape[0]} ({short(info.hex_id)})")


def ls(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image.")] = False,
    shards: Annotated[bool, typer.Option("--shards", help="One row per shard instead.")] = False,
) -> None:
    """List the stored images (bpp counts each image's share of its shard header)."""
    if shards:
        _list_shards(ctx, as_json)
        return
    with _opened(ctx) as store:
        rows = list(store.members())
    infos = [row for row in rows if isinstance(row, MemberInfo)]
    damaged = [row for row in rows if not isinstance(row, MemberInfo)]
    if as_json:
        for row in rows:
            if isinstance(row, MemberInfo):
                print(json.dumps(row.__dict__ | {"bpp": row.bpp}))
            else:
                print(json.dumps({"hex_id": row[0], "error": row[1]}))
        _report_damage(damaged)
        return
    table = Table(title=f"{len(infos)} images", title_justify="left")
    for column in ("id", "name", "size", "ch", "bpp", "PSNR", "shard"):
        table.add_column(column, justify="right" if column not in ("id", "name") else "left")
    for info in infos:
        table.add_row(
            short(info.hex_id), info.name, f"{info.width}x{info.height}", str(info.channels),
            f"{info.bpp:.3f}", f"{info.psnr:.2f}", str(info.shard),
        )  # fmt: skip
    console.print(table)
    _report_damage(damaged)


def _report_damage(damaged: list[tuple[str, str]]) -> None:
    """Damaged rows on stderr, then exit status 1 (the same for every form of ``ls``)."""
    for hex_id, reason in damaged:
        errors.print(f"[red]damaged:[/] {short(hex_id)}: {reason}", highlight=False)
    if damaged:
        raise typer.Exit(1)


def _list_shards(ctx: typer.Context, as_json: bool) -> None:
    with _opened(ctx) as store:
        summaries = store.shards()
    if as_json:
        for summary in summaries:
            print(json.dumps(summary.__dict__ | {"bpp": summary.bpp}))
        return
    table = Table(title=f"{len(summaries)} shards", title_justify="left")
    columns = ("shard", "images", "header bytes", "member bytes", "bpp", "mean PSNR", "quality")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("networks")
    for summary in summaries:
        table.add_row(
            str(summary.shard), str(summary.members), str(summary.header_bytes),
            str(summary.member_bytes), f"{summary.bpp:.3f}", f"{summary.mean_psnr:.2f}",
            f"{summary.quality:.1f}", summary.networks,
        )  # fmt: skip
    console.print(table)


def info(ctx: typer.Context, ident: Annotated[str, typer.Argument()]) -> None:
    """Show everything recorded about one image."""
    with _opened(ctx) as store:
        member = store.info(ident)
    table = Table(show_header=False)
    for key, value in (member.__dict__ | {"bpp": round(member.bpp, 4)}).items():
        table.add_row(key, "—" if value in (None, "") else str(value))
    console.print(table)


def rm(ctx: typer.Context, idents: Annotated[list[str], typer.Argument()]) -> None:
    """Remove images (a shard whose last member goes is removed too)."""
    with _opened(ctx, readonly=False) as store:
        removed = store.remove(idents)
    console.print(f"removed {len(removed)}: {', '.join(short(r) for r in removed)}")


def verify(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option(help="Check record checksums only.")] = False,
) -> None:
    """Check every record; unless --quick, decode each image and compare with add time."""
    with _opened(ctx) as store, progress_bar() as progress:
        task = progress.add_task("verify", total=len(store.ids()), status="")
        failures = store.verify(
            quick=quick, on_member=lambda i: progress.update(task, advance=1, status=short(i))
        )
    if failures:
        table = Table(title="Damage found", title_justify="left")
        table.add_column("where")
        table.add_column("problem")
        for ident, problem in failures:
            table.add_row(ident, problem)
        errors.print(table)
        raise typer.Exit(1)
    console.print("all records are intact" + ("" if quick else " and decode as when added"))


def stats(ctx: typer.Context) -> None:
    """Totals: images, shards, bytes, bpp and the ratio to the original files."""
    with _opened(ctx) as store:
        totals = store.stats()
    table = Table(show_header=False)
    for key, value in (
        ("images", totals.images), ("shards", totals.shards),
        ("stored bytes", totals.stored_bytes), ("original file bytes", totals.original_bytes),
        ("bits per pixel", f"{totals.bpp:.3f}"), ("ratio to originals", f"{totals.ratio:.1f}x"),
        ("store on disk", totals.disk_bytes),
    ):  # fmt: skip
        table.add_row(key, str(value))
    console.print(table)


def export(ctx: typer.Context, directory: Annotated[Path, typer.Argument()]) -> None:
    """Decode every image to PNG under its original relative name inside DIRECTORY."""
    problems: list[tuple[str, str]] = []
    with _opened(ctx) as store, progress_bar() as progress:
        task = progress.add_task("export", total=len(store.ids()), status="")
        written = store.export(
            directory,
            on_member=lambda i: progress.update(task, advance=1, status=short(i)),
            on_problem=lambda ident, message: problems.append((ident, message)),
        )
    for ident, message in problems:
        errors.print(f"[yellow]warning:[/] {ident}: {message}", highlight=False)
    console.print(f"wrote {len(written)} images to {directory}")
    if any(message.startswith("not exported") for _, message in problems):
        raise typer.Exit(1)


def compact(ctx: typer.Context) -> None:
    """Reclaim the space of removed images (needs exclusive use of the store)."""
    with _opened(ctx, readonly=False) as store:
        before, after = store.compact()
    console.print(f"compacted: {before} → {after} bytes")


COMMANDS = (add, get, ls, info, rm, verify, stats, export, compact)
"""Registered on the root app by :mod:`inrstore.cli.app`."""
