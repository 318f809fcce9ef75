"""BD-rates between rate-distortion curves and the rate-distortion plot."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inrstore.bench.run import write_report

Curve = Mapping[str, list[float]]
"""CompressAI ``results`` dict: at least ``"bpp"`` and ``"psnr-rgb"``, ordered by bpp."""


def bd_rate(anchor: Curve, test: Curve, metric: str = "psnr-rgb") -> float:
    """Bjøntegaard delta rate of ``test`` against ``anchor`` in percent (Akima interpolation).

    Negative means ``test`` needs fewer bits for the same quality. NaN when the curves do not
    overlap enough in quality, or are not monotonic, for the measure to be defined.
    """
    import bjontegaard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = bjontegaard.bd_rate(
                anchor["bpp"],
                anchor[metric],
                test["bpp"],
                test[metric],
                method="akima",
                require_matching_points=False,
            )
        except (AssertionError, ValueError):  # quality not strictly rising with rate
            return math.nan
    return float(value) if value is not None else math.nan


def bd_rate_table(curves: Mapping[str, Curve], anchor: str) -> dict[str, float]:
    """BD-rate (PSNR) of every curve against ``curves[anchor]``, the anchor itself included."""
    return {name: bd_rate(curves[anchor], curve) for name, curve in curves.items()}


def plot_rd(curves: Mapping[str, Curve], path: str | Path, title: str) -> Path:
    """Plot PSNR against bpp for every curve into a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5), dpi=120)
    for name, curve in curves.items():
        axis.plot(curve["bpp"], curve["psnr-rgb"], marker="o", markersize=3, label=name)
    axis.set_xlabel("bits per pixel")
    axis.set_ylabel("PSNR (dB, RGB)")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def write_comparison(
    curves: Mapping[str, Curve],
    anchor: str,
    out: str | Path,
    title: str,
    image_curves: Mapping[str, Mapping[str, Curve]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Write ``out/rd-psnr.png`` and ``out/bd-rate.json`` (the anchor, ``fields``, and every
    curve's BD-rate against the anchor's, ``bd_rate_psnr``); returns what ``bd-rate.json``
    holds.

    ``image_curves`` (codec → image name → curve) adds ``bd_rate_psnr_per_image``: for every
    image that every codec measured, each codec's BD-rate against the anchor on that image.
    """
    bd_rates = bd_rate_table(curves, anchor)
    report = {"anchor": anchor, **fields, "bd_rate_psnr": bd_rates}
    if image_curves:
        images = set.intersection(*(set(image_curves.get(name, {})) for name in curves))
        report["bd_rate_psnr_per_image"] = {
            image: bd_rate_table({name: image_curves[name][image] for name in curves}, anchor)
            for image in sorted(images)
        }
    plot_rd(curves, Path(out) / "rd-psnr.png", title)
    write_report(Path(out) / "bd-rate.json", report)
    return report
