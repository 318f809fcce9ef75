"""``inrstore bench``: rate-distortion sweeps of codecs on a folder of images."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from inrstore.bench.codecs import CODEC_NAMES, MissingCodecError, get_codec
from inrstore.bench.report import write_comparison
from inrstore.bench.run import load_bench_images, sweep, write_json, write_report
from inrstore.bench.store_bench import (
    FILE_CODECS,
    StoreBenchSettings,
    merge_store_reports,
    run_store_bench,
)
from inrstore.cli.console import check_device, console, fail, problems_table, progress_bar
from inrstore.models.fit.presets import DEFAULT_QUALITY, PRESETS
from inrstore.models.shard_codec import SHARING_MODES


def bench(
    folder: Annotated[Path, typer.Argument(help="Folder of test images (scanned recursively).")],
    codecs: Annotated[
        str, typer.Option(help=f"Comma-separated codecs among: {', '.join(CODEC_NAMES)}.")
    ] = "jpeg,webp,avif",
    anchor: Annotated[str, typer.Option(help="Codec that BD-rates are measured against.")] = "jpeg",
    out: Annotated[Path, typer.Option(help="Folder for the JSON results and the plot.")] = Path(
        "bench/results/latest"
    ),
    crop: Annotated[
        int | None, typer.Option(min=8, help="Centre-crop every image to CROP×CROP pixels.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images.")] = None,
    qualities: Annotated[
        str | None, typer.Option(help="Comma-separated qualities replacing each codec's sweep.")
    ] = None,
    device: Annotated[
        str, typer.Option(help="Where inrstore's codecs encode: cpu or cuda (decoding: CPU).")
    ] = "cpu",
    jobs: Annotated[int, typer.Option(min=1, help="Encodes run at once, in worker processes.")] = 1,
    time_limit: Annotated[
        float | None,
        typer.Option(min=1, help="Seconds each inrstore encode may train (default: presets')."),
    ] = None,
) -> None:
    """Sweep each codec's quality over FOLDER; write JSON per codec, a plot and BD-rates.

    Every image is encoded and decoded at every quality; PSNR and MS-SSIM are per image on
    8-bit RGB, then averaged per quality (CompressAI convention); bpp counts the full file.
    """
    names = [name.strip() for name in codecs.split(",") if name.strip()]
    if anchor not in names:
        raise fail(f"--anchor {anchor!r} must be one of the benchmarked codecs ({codecs})", 2)
    check_device(device)
    try:
        chosen = [get_codec(name, device, time_limit) for name in names]
    except (KeyError, MissingCodecError) as err:
        raise fail(str(err).strip("'\""), 2) from None
    if not folder.is_dir():
        raise fail(f"{folder}: not a folder", 2)
    try:
        sweep_qualities = [float(q) for q in qualities.split(",")] if qualities else None
    except ValueError:
        raise fail(
            f"--qualities must be numbers separated by commas, not {qualities!r}", 2
        ) from None
    images, problems = load_bench_images(folder, crop=crop, limit=limit)
    if problems:
        console.print(problems_table(problems, "Skipped files"))
    if not images:
        raise fail(f"{folder}: no readable images", 1)

    curves: dict[str, dict[str, list[float]]] = {}
    image_curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    with progress_bar() as progress:
        for codec in chosen:
            chosen_qualities = sweep_qualities or codec.qualities
            total = len(chosen_qualities) * len(images)
            task = progress.add_task(codec.name, total=total, status="")

            def advance(point, task=task) -> None:
                status = f"q={point.quality:g} {point.bpp:.3f} bpp {point.psnr:.2f} dB"
                progress.update(task, advance=1, status=status)

            result = sweep(
                codec,
                images,
                qualities=chosen_qualities,
                on_point=advance,
                jobs=jobs,
            )
            report = write_json(result, out)
            curves[codec.name] = report["results"]
            image_curves[codec.name] = report["per_image"]

    title = f"{folder.name}: {len(images)} images" + (f", {crop}px centre crop" if crop else "")
    names = [image.name for image in images]
    summary = write_comparison(
        curves, anchor, out, title, image_curves, images=len(images), image_names=names, crop=crop
    )
    console.print(_summary_table(curves, summary["bd_rate_psnr"], anchor, title))
    if len(images) > 1:
        console.print(_per_image_table(summary["bd_rate_psnr_per_image"], anchor))
    console.print(f"results written to {out}/")


def _percent(rate: float) -> str:
    return "n/a (no overlap)" if math.isnan(rate) else f"{rate:+.1f}%"


def _per_image_table(rates: dict[str, dict[str, float]], anchor: str) -> Table:
    """One row per image: each other codec's BD-rate against ``anchor`` on that image."""
    table = Table(title=f"BD-rate vs {anchor}, per image", title_justify="left")
    codecs = [name for name in next(iter(rates.values())) if name != anchor]
    table.add_column("image")
    for name in codecs:
        table.add_column(name, justify="right")
    for image, by_codec in rates.items():
        table.add_row(image, *(_percent(by_codec[name]) for name in codecs))
    return table


def _summary_table(curves: dict, bd_rates: dict[str, float], anchor: str, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("codec", "bpp range", "PSNR range (dB)", "encode ms", "decode ms"):
        table.add_column(column, justify="left" if column == "codec" else "right")
    table.add_column(f"BD-rate vs {anchor}", justify="right")
    for name, curve in curves.items():
        table.add_row(
            name,
            f"{min(curve['bpp']):.3f}–{max(curve['bpp']):.3f}",
            f"{min(curve['psnr-rgb']):.2f}–{max(curve['psnr-rgb']):.2f}",
            f"{1000 * sum(curve['encoding_time']) / len(curve['bpp']):.1f}",
            f"{1000 * sum(curve['decoding_time']) / len(curve['bpp']):.1f}",
            _percent(bd_rates[name]),
        )
    return table


def bench_store(
    folder: Annotated[Path, typer.Argument(help="Folder of images to add (scanned recursively).")],
    out: Annotated[Path, typer.Option(help="Folder for store.json.")] = Path(
        "bench/results/latest-store"
    ),
    preset: Annotated[str, typer.Option(help=f"add's preset: {', '.join(PRESETS)}.")] = "fast",
    quality: Annotated[float, typer.Option(min=0, max=100)] = DEFAULT_QUALITY,
    shard_size: Annotated[int | None, typer.Option(min=1, help="add's --shard-size.")] = None,
    bases: Annotated[int | None, typer.Option(min=1, help="add's --bases.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="add's --workers.")] = 1,
    sharing: Annotated[str, typer.Option(help="add's --sharing.")] = "auto",
    singles: Annotated[
        bool, typer.Option(help="Also encode each image alone (inrstore encode) to compare.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images.")] = None,
    keep_store: Annotated[
        Path | None, typer.Option(help="Build the store here and keep it (default: temporary).")
    ] = None,
) -> None:
    """What `inrstore add` stores against JPEG, WebP and AVIF files at each image's PSNR.

    Adds FOLDER into a fresh store, then per image: stored bytes (record + share of its shard
    header), PSNR, `get` milliseconds, and the bytes of each file codec at that PSNR (its
    quality bisected, bytes interpolated). Writes OUT/store.json and prints the totals.
    """
    if preset not in PRESETS:
        raise fail(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", 2)
    if not folder.is_dir():
        raise fail(f"{folder}: not a folder", 2)
    if keep_store is not None and keep_store.exists():
        raise fail(f"{keep_store}: already exists; the benchmark needs a fresh store", 2)
    if sharing not in SHARING_MODES:
        raise fail(f"unknown sharing {sharing!r}; use {', '.join(SHARING_MODES)}", 2)
    settings = StoreBenchSettings(
        preset, quality, shard_size, bases, workers, limit, sharing, singles
    )
    with console.status("adding") as status:
        report = run_store_bench(
            folder, settings, store_path=keep_store, on_progress=lambda m: status.update(m)
        )
    write_report(out / "store.json", report, report["settings"])
    console.print(_store_table(report))
    console.print(f"results written to {out}/store.json")


def bench_store_merge(
    runs: Annotated[list[Path], typer.Argument(help="Folders holding store.json of each run.")],
    out: Annotated[Path, typer.Option(help="Folder for the merged store.json.")],
) -> None:
    """Merge `bench-store` runs over disjoint images with the same settings into one report
    (each run's commit, date and machine kept under "runs")."""
    reports = []
    for run in runs:
        try:
            reports.append(json.loads((run / "store.json").read_text()))
        except (OSError, ValueError) as err:
            raise fail(f"{run}/store.json: cannot read ({err})", 2) from None
    try:
        merged = merge_store_reports(reports)
    except KeyError as err:
        raise fail(f"cannot merge: a run is not a bench-store report (no {err})", 2) from None
    except ValueError as err:
        raise fail(f"cannot merge: {err}", 2) from None
    write_report(out / "store.json", merged, merged["settings"])
    console.print(_store_table(merged))
    console.print(f"results written to {out}/store.json")


def _store_table(report: dict) -> Table:
    totals = report["totals"]
    cpu = report.get("encode_cpu_seconds_per_image")
    title = (
        f"{report['description']}: {totals['images']} images, mean {totals['mean_psnr']:.2f} dB; "
        f"encode {report['encode_seconds_per_image']:.1f} s per image"
        + ("" if cpu is None else f" ({cpu:.1f} s of CPU)")
        + f" (budget {report['budget_seconds_per_image']:.1f} s), "
        f"get {report['get_ms_median']:.1f} ms"
    )
    table = Table(title=title, title_justify="left")
    for column in ("files", "images at equal PSNR", "store bytes", "file bytes", "store / files"):
        table.add_column(column, justify="left" if column == "files" else "right")
    for name in (*FILE_CODECS, "single"):
        if name not in totals:
            continue
        codec = totals[name]
        ratio = "n/a" if codec["ratio"] is None else f"{codec['ratio']:.2f}×"
        table.add_row(
            name, str(codec["images"]), f"{codec['stored_bytes']:.0f}",
            f"{codec['file_bytes']:.0f}", ratio,
        )  # fmt: skip
    return table
