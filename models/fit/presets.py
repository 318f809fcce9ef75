"""Encoder presets (effort and decoder complexity) and the quality → λ mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PresetName = Literal["fast", "default", "best"]


@dataclass(frozen=True)
class Preset:
    """How hard the encoder works and which entropy model the decoder runs.

    ``arm_levels`` is the number of finest grids coded with the pixel ARM (the rest use the
    ARU); 0 is the all-ARU model, the fastest to decode.
    """

    name: str
    iterations: int
    arm_levels: int
    crop_seconds: float | None = None
    """Time budget for a 256×256 image (None: iterations only); see :meth:`time_budget`."""
    learning_rate: float = 1e-2
    latent_learning_rate: float = 2e-1
    final_learning_rate: float = 1e-3
    hard_fraction: float = 0.1
    """Share of the iterations trained with hard rounding (straight-through) at the end."""
    temperature_start: float = 0.5
    temperature_end: float = 0.1
    noise_start: float = 0.4
    noise_end: float = 0.1
    """Std of the Gaussian quantization noise, annealed linearly like the temperature."""

    def time_budget(self, pixels: int) -> float | None:
        """Seconds for an image of ``pixels`` pixels: ``crop_seconds × (pixels / 256²)^0.4``.

        The exponent gives a 768×512 Kodak image 2.05× the budget of a 256×256 crop (fast:
        26 s → 53 s; default: 114 s → 234 s) and a 32×32 image 0.19× of it. Network
        quantization and entropy coding (a few seconds) come on top.
        """
        if self.crop_seconds is None:
            return None
        return self.crop_seconds * (pixels / 65536) ** 0.4


PRESETS: dict[str, Preset] = {
    "fast": Preset(
        "fast",
        iterations=1000,
        arm_levels=0,
        crop_seconds=26.0,
        learning_rate=2e-2,
        latent_learning_rate=0.4,
    ),
    "default": Preset("default", iterations=3000, arm_levels=1, crop_seconds=114.0),
    "best": Preset("best", iterations=10000, arm_levels=2),
}
"""``fast`` and ``default`` stop at their time budget on a CPU; ``best`` runs all its
iterations (meant for a GPU, or for patience). ``fast`` gets only a few hundred iterations,
so it learns twice as fast (on the kodim23 crop at quality 20 this gave +1 dB at +4% rate
over the default rates)."""

QUALITY_MIN, QUALITY_MAX = 0.0, 100.0
DEFAULT_QUALITY = 50.0


def preset(name: str) -> Preset:
    """The preset called ``name``; ``KeyError`` naming the known presets otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def quality_to_lambda(quality: float) -> float:
    """Rate weight λ for a quality in [0, 100]: 10**(-1.5 - 3 q/100).

    The loss is MSE (on [0, 1] pixel values) + λ · bpp; quality 50 gives λ = 1e-3 (about
    0.5 bpp on Kodak in Cool-chic), 0 gives 3e-2, 100 gives 3e-5.
    """
    if not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise ValueError(f"quality must be in [{QUALITY_MIN:g}, {QUALITY_MAX:g}], not {quality}")
    return 10.0 ** (-1.5 - 3.0 * quality / 100.0)
