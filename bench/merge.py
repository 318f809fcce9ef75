"""Merge ``inrstore bench`` result folders that measured disjoint sets of images.

A long sweep (``default`` on all 24 Kodak images takes 4.7 hours) can be run as several
smaller ``inrstore bench`` runs over disjoint folders with the same codecs and qualities.
Each run's JSON holds per-quality means over its images; the merged curve is their mean
weighted by each run's image count (``bd-rate.json``'s ``"images"``), which is the
per-quality mean over all the images, as one run over them would have written it. BD-rates
and the plot are then computed from the merged curves. Runs that name their images
(``"image_names"``, written by ``inrstore bench`` since it learnt to) must not share any;
older runs hold only a count, so for them disjointness is the caller's word (the merged
``image_names`` is then null).

A rerun of some images at some qualities (``--replace RERUN``, e.g. after a change that
affects only those points) replaces those images' points at those qualities, codec by codec
(only the codecs ``--replace-codecs`` names, when given), before the merge; the runs it
replaces into must hold per-image curves of every image they measured.

Usage::

    python -m inrstore.bench.merge RUN1 RUN2 ... --anchor webp --out MERGED \
        [--replace RERUN ...] [--replace-codecs CODEC,...]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inrstore.bench.report import Curve, write_comparison
from inrstore.bench.run import CURVE_KEYS, curve_from_rows, write_report

AVERAGED_KEYS = tuple(key for key, _ in CURVE_KEYS)
"""The CompressAI keys that hold per-quality means over images."""


class MergeError(ValueError):
    """The result folders cannot be merged (missing files, mismatched codecs or qualities)."""


@dataclass(frozen=True)
class BenchRun:
    """One ``inrstore bench`` result folder: its image count and each codec's JSON."""

    folder: Path
    images: int
    image_names: tuple[str, ...] | None
    """The images' names, or None for a run written before the names were recorded."""
    reports: dict[str, dict]
    """Codec name → its CompressAI JSON (``name``, ``description``, ``results``)."""

    def image_curves(self, codec: str) -> dict[str, Curve]:
        """``codec``'s curve of each image the run names: its JSON's ``per_image`` or, for a
        run of one named image, its ``results``; empty when the run has neither."""
        report = self.reports[codec]
        if "per_image" in report:
            return report["per_image"]
        if self.images == 1 and self.image_names:
            return {self.image_names[0]: report["results"]}
        return {}


def load_run(folder: str | Path) -> BenchRun:
    """Read ``folder/bd-rate.json`` (for the image count) and every ``<codec>.json`` in it."""
    folder = Path(folder)
    summary = _read_json(folder / "bd-rate.json")
    try:
        images = int(summary["images"])
    except (KeyError, TypeError, ValueError) as err:
        raise MergeError(f"{folder}: bd-rate.json has no image count ({err})") from None
    names = summary.get("image_names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != images
        or not all(isinstance(name, str) for name in names)
    ):
        raise MergeError(f"{folder}: bd-rate.json's image_names are not {images} names")
    reports = {}
    for path in sorted(folder.glob("*.json")):
        if path.name != "bd-rate.json":
            report = _read_json(path)
            try:
                curves = [report["results"], *report.get("per_image", {}).values()]
                lengths = {len(c[key]) for c in curves for key in (*AVERAGED_KEYS, "quality")}
                reports[report["name"]] = report
            except (KeyError, TypeError, AttributeError) as err:
                raise MergeError(f"{path}: not a CompressAI result ({err!r} missing)") from None
            if len(lengths) != 1:
                raise MergeError(f"{path}: its result lists differ in length")
    if images < 1 or not reports:
        raise MergeError(f"{folder}: no codec results")
    return BenchRun(folder, images, None if names is None else tuple(names), reports)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MergeError(f"{path}: unreadable ({err})") from None


def merge_curves(parts: Sequence[tuple[Curve, int]]) -> dict[str, list[float]]:
    """Per-quality means over all images of curves measured on disjoint image sets.

    Args:
        parts: ``(curve, number of images)`` pairs; every curve has the same ``"quality"``
            values (in any order).

    Returns:
        A curve with the same keys, each value the image-weighted mean, ordered by bpp.
    """
    qualities = sorted(parts[0][0]["quality"])
    for curve, _ in parts:
        if sorted(curve["quality"]) != qualities:
            raise MergeError(f"qualities differ: {qualities} and {sorted(curve['quality'])}")
    total = sum(count for _, count in parts)
    rows = [{"quality": quality} | dict.fromkeys(AVERAGED_KEYS, 0.0) for quality in qualities]
    for curve, count in parts:
        for index, quality in enumerate(curve["quality"]):
            row = rows[qualities.index(quality)]
            for key in AVERAGED_KEYS:
                row[key] += count * curve[key][index] / total
    return curve_from_rows(rows)


def replace_points(
    runs: Sequence[BenchRun], rerun: BenchRun, codecs: Sequence[str] | None = None
) -> list[BenchRun]:
    """``runs`` with the points of ``rerun`` (images it names, at its qualities, for each of
    its codecs, or of those of ``codecs`` it holds) put in place of the same images' points;
    each changed run's ``results`` become the per-quality means of its per-image curves."""
    owners = {name: index for index, run in enumerate(runs) for name in run.image_names or ()}
    chosen = [codec for codec in rerun.reports if codecs is None or codec in codecs]
    if not chosen:
        raise MergeError(f"{rerun.folder} holds none of the codecs {', '.join(codecs or ())}")
    edited: dict[tuple[int, str], dict[str, Curve]] = {}  # (run, codec) → its image curves
    for codec in chosen:
        curves = rerun.image_curves(codec)
        if not curves:
            raise MergeError(f"{rerun.folder} does not name the images it measured")
        for image, new in curves.items():
            if image not in owners:
                raise MergeError(f"{rerun.folder}: {image} is in none of the runs")
            key = (owners[image], codec)
            if key not in edited:
                edited[key] = _per_image_curves(runs[owners[image]], codec)
            edited[key][image] = _with_points(edited[key][image], new, f"{rerun.folder}: {image}")
    reports = [dict(run.reports) for run in runs]
    for (index, codec), per_image in edited.items():
        results = merge_curves([(curve, 1) for curve in per_image.values()])
        reports[index][codec] = reports[index][codec] | {"per_image": per_image, "results": results}
    return [
        BenchRun(run.folder, run.images, run.image_names, report)
        for run, report in zip(runs, reports, strict=True)
    ]


def _per_image_curves(run: BenchRun, codec: str) -> dict[str, Curve]:
    """A copy of ``run``'s per-image curves of ``codec``, which must cover all its images."""
    if codec not in run.reports:
        raise MergeError(f"{run.folder} has no {codec} results")
    per_image = run.image_curves(codec)
    if len(per_image) != run.images:
        raise MergeError(f"{run.folder}: {codec} lacks per-image curves of its images")
    return dict(per_image)


def _with_points(curve: Curve, new: Curve, what: str) -> dict[str, list[float]]:
    """``curve`` with its points at ``new``'s qualities taken from ``new``."""
    rows = {
        quality: {key: curve[key][index] for key in AVERAGED_KEYS} | {"quality": quality}
        for index, quality in enumerate(curve["quality"])
    }
    for index, quality in enumerate(new["quality"]):
        if quality not in rows:
            raise MergeError(f"{what} was rerun at quality {quality:g}, which it lacks")
        rows[quality] |= {key: new[key][index] for key in AVERAGED_KEYS}
    return curve_from_rows(list(rows.values()))


def merge_runs(
    runs: Sequence[BenchRun],
    anchor: str,
    out: str | Path,
    reruns: Sequence[BenchRun] = (),
    replace_codecs: Sequence[str] | None = None,
) -> dict[str, float]:
    """Write the merged JSON of every codec, ``bd-rate.json`` and ``rd-psnr.png`` to ``out``.

    Every run must hold the same codecs; ``reruns``' points (of ``replace_codecs`` only, when
    given) replace those they remeasured (:func:`replace_points`). Returns the BD-rates
    (PSNR) against ``anchor``.
    """
    if not runs:
        raise MergeError("no result folders to merge")
    for rerun in reruns:
        runs = replace_points(runs, rerun, replace_codecs)
    codecs = list(runs[0].reports)
    for run in runs[1:]:
        if sorted(run.reports) != sorted(codecs):
            raise MergeError(
                f"{run.folder} holds codecs {sorted(run.reports)}, "
                f"{runs[0].folder} holds {sorted(codecs)}"
            )
    if anchor not in codecs:
        raise MergeError(f"anchor {anchor!r} is not among the codecs {codecs}")
    names = _disjoint_names(runs)
    total = sum(run.images for run in runs)
    sources = [f"{run.folder.name} ({run.images} images)" for run in runs]
    sources += [f"{rerun.folder.name} (replacing points)" for rerun in reruns]
    curves = {}
    image_curves = {}
    for name in codecs:
        parts = [(run.reports[name]["results"], run.images) for run in runs]
        curves[name] = merge_curves(parts)
        image_curves[name] = {
            image: curve for run in runs for image, curve in run.image_curves(name).items()
        }
        description = runs[0].reports[name]["description"].split(";")[0]
        report = {
            "name": name,
            "description": f"{description}; {total} images in {len(runs)} runs "
            f"({', '.join(sources)}); means per quality",
            "results": curves[name],
            "per_image": image_curves[name],
        }
        write_report(Path(out) / f"{name}.json", report)
    title = f"{total} images merged from {len(runs)} runs"
    summary = write_comparison(
        curves,
        anchor,
        out,
        title,
        image_curves,
        images=total,
        image_names=names,
        merged_from=sources,
    )
    return summary["bd_rate_psnr"]


def _disjoint_names(runs: Sequence[BenchRun]) -> list[str] | None:
    """All runs' image names, after checking that no folder is given twice and no image is
    in two runs; None when some run does not name its images."""
    folders: dict[Path, Path] = {}
    owner: dict[str, Path] = {}
    for run in runs:
        key = run.folder.resolve()
        if key in folders:
            raise MergeError(f"{run.folder} is given twice (as {folders[key]})")
        folders[key] = run.folder
        for name in run.image_names or ():
            if name in owner:
                raise MergeError(f"{name} is in both {owner[name]} and {run.folder}")
            owner[name] = run.folder
    if any(run.image_names is None for run in runs):
        return None
    return list(owner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="inrstore bench result folders")
    parser.add_argument("--anchor", required=True, help="codec the BD-rates are measured against")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged results")
    parser.add_argument(
        "--replace",
        type=Path,
        action="append",
        default=[],
        help="a rerun folder whose points replace the same images' points (repeatable)",
    )
    parser.add_argument(
        "--replace-codecs",
        help="comma-separated codecs whose points the reruns replace (default: all they hold)",
    )
    args = parser.parse_args()
    try:
        runs = [load_run(folder) for folder in args.folders]
        reruns = [load_run(folder) for folder in args.replace]
        codecs = args.replace_codecs.split(",") if args.replace_codecs else None
        bd_rates = merge_runs(runs, args.anchor, args.out, reruns, codecs)
    except MergeError as err:
        parser.exit(1, f"error: {err}\n")
    for name, rate in bd_rates.items():
        print(f"{name:24s} {rate:+.1f}% vs {args.anchor}")


if __name__ == "__main__":
    main()
