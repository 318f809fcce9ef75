"""Encoder presets (effort and decoder complexity) and the quality → λ mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PresetName = Literal["fast", "default", "best"]


@dataclass(frozen=True)
class Preset:
    """How hard the encoder works and which entropy model the decoder runs.

    Each default below was chosen by a measured A/B; ``bench/HISTORY.md`` lists them.
    """

    name: str
    iterations: int
    """Iteration cap; training stops at it or at :meth:`time_budget`, whichever comes first."""
    arm_levels: int
    """Finest grids coded with the pixel ARM, the rest with the ARU (under 512×512 pixels
    any ARM codes every grid below the coarsest, over 24 neighbours)."""
    wide_arm: bool = False
    """The 24-neighbour ARM on every grid below the coarsest, at any image size."""
    zero_levels: int = 0
    """Finest grids held at zero: not trained, flagged in the bitstream, not coded."""
    prefilter: bool = False
    """A learned 7-tap pre-filter on every grid but the coarsest (format 6)."""
    compact_synthesis: str = "mixed"
    """Synthesis kind of images under 512×512 pixels (larger ones: ``mixed``; format 7)."""
    compact_keeps_finest_grid: bool = False
    """Keep the finest grid of images under 512×512 pixels whatever the λ test says."""
    compact_candidates: int = 1
    """Seeds encoded at once under 512×512 on the CPU, the least D + λR kept (``candidates``)."""
    finest_grid_bpp: float | None = None
    """Drop the finest grid when the half-resolution image's MSE is below this many λ."""
    crop_seconds: float | None = None
    """Time budget in seconds for a 256×256 image (None: iterations only)."""
    warm_start: bool = True
    """Start the networks from the offline sets (:mod:`~inrstore.models.fit.warm_start`)."""
    learning_rate: float = 1e-2
    """Adam's initial rate; every group falls by a half cosine to the floor in the soft phase."""
    warm_learning_rate: float | None = None
    """Initial rate of warm-started networks (None: :attr:`learning_rate`)."""
    latent_learning_rate: float = 2e-1
    learning_rate_floor: float = 1e-2
    final_learning_rate: float = 1e-3
    """Every group's rate in the hard phase."""
    coarse_phases: tuple[float, ...] = ()
    """Progress at which training leaves each coarser scale: ``(0.3,)`` trains at half
    resolution (grids from level 1 up) until 30%."""
    hard_fraction: float = 0.1
    """Share of the iterations trained with hard (straight-through) rounding, at the end."""
    weight_deadzones: tuple[float, ...] = ()
    """Dead zones in (0, 0.5) tried when rounding each network tensor at its step."""
    temperature_start: float = 0.5
    temperature_end: float = 0.1
    noise_start: float = 0.4
    noise_end: float = 0.1
    """Std of the Gaussian quantization noise, annealed linearly like the temperature."""
    network_rate_in_loss: bool = True
    """Add λ × the networks' estimated bits per pixel to a single image's loss."""
    gradient_clip: float | None = 0.01
    """Largest global L2 norm of a step's gradients (None: no clipping)."""

    def __post_init__(self) -> None:
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive or None, not {self.gradient_clip}")
        if not all(0.0 < zone < 0.5 for zone in self.weight_deadzones):
            raise ValueError(f"weight_deadzones must lie in (0, 0.5), not {self.weight_deadzones}")

    def network_learning_rate(self, warm: bool) -> float:
        """Adam's initial rate of networks that start from trained weights (``warm``) or
        from a random draw."""
        if warm and self.warm_learning_rate is not None:
            return self.warm_learning_rate
        return self.learning_rate

    def time_budget(self, pixels: int) -> float | None:
        """Seconds for an image of ``pixels`` pixels: ``crop_seconds × (pixels / 256²)^0.4``
        (a Kodak image gets 2.05×, a 32×32 image 0.19×; quantization and coding come on top)."""
        if self.crop_seconds is None:
            return None
        return self.crop_seconds * (pixels / 65536) ** 0.4


PRESETS: dict[str, Preset] = {
    "fast": Preset(
        "fast", iterations=2000, arm_levels=0, crop_seconds=26.0, learning_rate=2e-2,
        warm_learning_rate=1e-2, latent_learning_rate=0.4, finest_grid_bpp=1.5,
        coarse_phases=(0.3,),
    ),
    "default": Preset(
        "default", iterations=10000, arm_levels=1, crop_seconds=114.0, finest_grid_bpp=1.5,
        learning_rate_floor=1e-3, final_learning_rate=1e-4,
    ),
    "best": Preset(
        "best", iterations=10000, arm_levels=2, wide_arm=True, prefilter=True,
        compact_synthesis="refine", compact_keeps_finest_grid=True, compact_candidates=2,
        crop_seconds=300.0, hard_fraction=0.05, weight_deadzones=(0.1, 0.2, 0.3),
        finest_grid_bpp=0.6, learning_rate_floor=1e-3, final_learning_rate=1e-4,
    ),
}  # fmt: skip
"""``fast`` (all-ARU, a half-resolution phase, 26 s per 256×256 image), ``default`` (one
ARM grid, 114 s) and ``best`` (the wide ARM, pre-filters, refine synthesis and two seeds on
small images, 300 s). Budgets scale as (pixels / 256²)^0.4."""

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
