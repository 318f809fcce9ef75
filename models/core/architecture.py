"""Everything the decoder must know to rebuild the networks: sizes and widths."""

from __future__ import annotations

import math
from dataclasses import dataclass

from inrstore.models.core.context import ARM_WINDOWS, ArmWindow, arm_shape, aru_shapes
from inrstore.models.core.mlp import MLPShape
from inrstore.models.core.synthesis import (
    SYNTHESIS_KINDS,
    MixedSynthesis,
    RefineSynthesis,
    SynthesisShape,
)
from inrstore.models.core.upsample import PREFILTER_HALF, prefilter_name

MAX_LEVELS = 7


def levels_for(height: int, width: int) -> int:
    """Number of latent grids for an image: 7 for Kodak-sized images, fewer for small ones.

    The coarsest grid keeps at least about 4 cells on the short side.
    """
    return max(1, min(MAX_LEVELS, int(math.log2(min(height, width))) - 1))


def grid_shape(height: int, width: int, level: int) -> tuple[int, int]:
    """Shape of grid ``level``: ``(ceil(H / 2**level), ceil(W / 2**level))``."""
    step = 2**level
    return (-(-height // step), -(-width // step))


@dataclass(frozen=True)
class Architecture:
    """Image size, latent pyramid and network widths.

    Grid ``levels - 1`` (the coarsest) uses a fixed Laplace prior; the ``arm_levels`` finest
    grids use the pixel ARM; the grids between use the ARU.
    """

    height: int
    width: int
    channels: int
    levels: int
    arm_levels: int
    head_hidden: int = 24
    features: int = 8
    tail_hidden: int = 16
    aru_hidden: int = 16
    arm_hidden: int = 16
    arm_context: int = 12
    """Neighbours the pixel ARM reads (a key of :data:`~inrstore.models.core.context.
    ARM_WINDOWS`)."""
    prefilter: bool = False
    """Every grid but the coarsest passes through its own learned 7×7 separable pre-filter
    before the interpolation (:func:`~inrstore.models.core.upsample.prefilter_rows`; the
    ``upsampling`` module, image format 6)."""
    synthesis_kind: str = "mixed"
    """One of :data:`~inrstore.models.core.synthesis.SYNTHESIS_KINDS` (image format 7 names
    it; earlier formats and shards have the ``mixed`` one)."""

    def __post_init__(self) -> None:
        if self.channels not in (1, 3, 4):
            raise ValueError(f"channels must be 1, 3 or 4, not {self.channels}")
        if not 1 <= self.levels <= MAX_LEVELS:
            raise ValueError(f"levels must be in 1..{MAX_LEVELS}, not {self.levels}")
        if not 0 <= self.arm_levels <= self.levels - 1:
            raise ValueError(f"arm_levels must be in 0..{self.levels - 1}, not {self.arm_levels}")
        if self.arm_context not in ARM_WINDOWS:
            known = ", ".join(map(str, ARM_WINDOWS))
            raise ValueError(f"arm_context must be one of {known}, not {self.arm_context}")
        if self.synthesis_kind not in SYNTHESIS_KINDS:
            known = ", ".join(SYNTHESIS_KINDS)
            raise ValueError(f"synthesis_kind must be one of {known}, not {self.synthesis_kind!r}")

    @property
    def synthesis(self) -> SynthesisShape:
        """The synthesis of :attr:`synthesis_kind`; ``refine`` reads ``head_hidden`` only."""
        if self.synthesis_kind == "refine":
            return RefineSynthesis(self.levels, self.channels, self.head_hidden)
        return MixedSynthesis(
            self.levels, self.channels, self.head_hidden, self.features, self.tail_hidden
        )

    @property
    def aru(self) -> tuple[MLPShape, MLPShape]:
        return aru_shapes(self.aru_hidden)

    @property
    def arm_window(self) -> ArmWindow:
        return ARM_WINDOWS[self.arm_context]

    @property
    def arm(self) -> MLPShape:
        return arm_shape(self.arm_hidden, self.arm_window)

    @property
    def aru_levels(self) -> int:
        return self.levels - 1 - self.arm_levels

    def grid_shapes(self) -> list[tuple[int, int]]:
        """Shapes of the grids, finest (level 0) first."""
        return [grid_shape(self.height, self.width, level) for level in range(self.levels)]

    def modules(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """Parameter shapes grouped by module (each module has its own quantization step)."""
        pass1, pass2 = self.aru
        modules: dict[str, dict[str, tuple[int, ...]]] = {}
        if self.prefilter:
            modules["upsampling"] = {
                prefilter_name(level): (PREFILTER_HALF,) for level in range(self.levels - 1)
            }
        modules["synthesis"] = self.synthesis.parameter_shapes()
        if self.aru_levels:
            modules["aru"] = pass1.parameter_shapes("aru1.") | pass2.parameter_shapes("aru2.")
        if self.arm_levels:
            modules["arm"] = self.arm.parameter_shapes("arm.")
        return modules

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for module in self.modules().values():
            shapes |= module
        return shapes


COMPACT_BELOW_PIXELS = 2**18
"""Images with fewer pixels (below 512×512) get :data:`COMPACT_WIDTHS` and, where the preset
asks for an ARM, :data:`WIDE_ARM`."""

COMPACT_WIDTHS = {"head_hidden": 16, "tail_hidden": 12, "aru_hidden": 8}
"""Narrower synthesis and ARU for small images, where the networks' bits are a large share of
the rate (≈0.2 bpp of a 256×256 image at the standard widths, ≈0.14 at these)."""

WIDE_ARM = {"arm_context": 24, "arm_hidden": 16}
"""The ARM that codes every grid below the coarsest, over 24 neighbours, in place of the
MARM split (ARU above, 12-neighbour ARM on the finest grids); format 5 in
``bench/HISTORY.md``."""


def is_compact(height: int, width: int) -> bool:
    """Whether an image is under :data:`COMPACT_BELOW_PIXELS` pixels (see there)."""
    return height * width < COMPACT_BELOW_PIXELS


REFINE_HIDDEN = 40
"""Hidden width of the ``refine`` synthesis (Cool-chic 5's "hop" decoder's)."""


def image_architecture(
    height: int,
    width: int,
    channels: int,
    arm_levels: int,
    zero_levels: int = 0,
    wide_arm: bool = False,
    prefilter: bool = False,
    compact_synthesis: str = "mixed",
    network_pixels: int | None = None,
) -> Architecture:
    """The architecture of one image: :func:`levels_for` its size, ``arm_levels`` clipped to
    the grids below the coarsest, compact widths below :data:`COMPACT_BELOW_PIXELS` pixels.

    ``network_pixels`` (default ``height × width``) is the count of pixels whose rate pays
    for the networks: a shard's networks are shared by all its members' pixels, so the
    compact widths, wide ARM and compact synthesis go by that count, not by one image's.

    With ``wide_arm``, and below :data:`COMPACT_BELOW_PIXELS` pixels whenever ``arm_levels``
    asks for an ARM, :data:`WIDE_ARM` codes every grid below the coarsest: small images reach
    their presets' plateau well within budget, so its cost per iteration does not count
    there; on larger ones it costs iterations and decode time, which ``default``'s budgets
    and decoder targets do not have.

    When the ``zero_levels`` finest grids (held at zero, not coded) include every ARM grid,
    the image has no ARM at all, so its weights are neither trained nor stored. ``prefilter``
    gives every grid but the coarsest its learned pre-filter (:attr:`Architecture.prefilter`);
    ``compact_synthesis`` names the synthesis of images under :data:`COMPACT_BELOW_PIXELS`
    pixels (:attr:`Architecture.synthesis_kind`; the ``refine`` one is :data:`REFINE_HIDDEN`
    wide); larger ones have the ``mixed`` one.
    """
    levels = levels_for(height, width)
    compact = (height * width if network_pixels is None else network_pixels) < COMPACT_BELOW_PIXELS
    settings = dict(COMPACT_WIDTHS) if compact else {}
    if wide_arm or (compact and arm_levels):
        arm_levels = levels - 1
        settings |= WIDE_ARM
    arm_levels = min(arm_levels, levels - 1) if arm_levels > zero_levels else 0
    synthesis_kind = compact_synthesis if compact else "mixed"
    if synthesis_kind == "refine":
        settings["head_hidden"] = REFINE_HIDDEN
    return Architecture(
        height,
        width,
        channels,
        levels,
        arm_levels,
        **settings,
        prefilter=prefilter,
        synthesis_kind=synthesis_kind,
    )
