"""Encoder presets (effort and decoder complexity) and the quality → λ mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PresetName = Literal["fast", "default", "best"]


@dataclass(frozen=True)
class Preset:
    """How hard the encoder works and which entropy model the decoder runs.

    ``arm_levels`` is the number of finest grids coded with the pixel ARM (the rest use the
    ARU); 0 is the all-ARU model, the fastest to decode. On images under 512×512 pixels any
    ARM codes every grid below the coarsest, over 24 neighbours
    (:data:`~inrstore.models.core.architecture.WIDE_ARM`).
    """

    name: str
    iterations: int
    arm_levels: int
    wide_arm: bool = False
    """Code every grid below the coarsest with the 24-neighbour ARM
    (:data:`~inrstore.models.core.architecture.WIDE_ARM`) on images of any size. Single images
    only: shards keep ``arm_levels`` grids of the 12-neighbour ARM."""
    zero_levels: int = 0
    """Finest grids held at zero: not trained, flagged in the bitstream and not coded. Each
    iteration skips their entropy model and gradients (1.75× faster on a Kodak image)."""
    prefilter: bool = False
    """Give every grid but the coarsest a learned pre-filter
    (:attr:`~inrstore.models.core.architecture.Architecture.prefilter`; single images only).
    ``best`` has them: on the kodim23 crop at quality 50 (its 300 s, one thread, two runs side
    by side, D + λR from the bitstream) they measured −5.4%, −4.6% and −2.8% (seeds 0–2), and
    −1.8% on the whole kodim23 (614 s, seed 0); ``default`` does not, at +2.2% and +0.2% on
    the crop in its 114 s."""
    compact_synthesis: str = "mixed"
    """The synthesis's kind (:data:`~inrstore.models.core.synthesis.SYNTHESIS_KINDS`) on single
    images under 512×512 pixels (:data:`~inrstore.models.core.architecture.
    COMPACT_BELOW_PIXELS`); larger images and shards have the ``mixed`` one. ``best`` has the
    ``refine`` one: on the kodim23 crop at quality 50 (its 300 s, the finest grid kept, one
    thread, two runs side by side, D + λR from the bitstream) it measured −2.1% and −2.5%
    (seeds 0 and 1) against ``mixed``. On whole Kodak images at quality 50 (its 614 s, the same
    method, seed 0), together with :attr:`compact_keeps_finest_grid`, it measured +0.8%
    (kodim23: 36.11 dB at 0.293 bpp, 5.375e-4, against 35.60 dB at 0.258 bpp, 5.332e-4) and
    +2.2% (kodim20, whose finest grid is kept either way: 34.43 dB at 0.346 bpp, 7.065e-4,
    against 34.85 dB at 0.364 bpp, 6.911e-4), in about 1 600 iterations; hence small images
    only."""
    compact_keeps_finest_grid: bool = False
    """Keep the finest grid of images under 512×512 pixels whatever
    :attr:`finest_grid_bpp`'s test says (see :data:`PRESETS`)."""
    compact_candidates: int = 1
    """Seeds encoded at once for an image under 512×512 pixels on the CPU, the bitstream of
    least D + λR kept (:mod:`~inrstore.models.fit.candidates`; at most one per torch
    thread). ``best`` has two: on 256×256 Kodak crops at quality 50 (its 300 s, one thread
    per seed, D + λR from the bitstream) seeds 0 and 1 measured 7.370e-4 and 6.954e-4
    (kodim23), 7.047e-4 and 7.318e-4 (kodim20), 1.8253e-3 and 1.8280e-3 (kodim05): the pair
    gains the spread between seeds where there is one, at no cost in wall time where there
    is a thread for each."""
    finest_grid_bpp: float | None = None
    """When set, the finest grid is also dropped for images whose half-resolution version is
    already good enough at this λ (see :func:`~inrstore.models.fit.finest_grid.zero_levels_for`);
    the value is the rate in bits per pixel that grid is assumed to cost."""
    crop_seconds: float | None = None
    """Time budget for a 256×256 image (None: iterations only); see :meth:`time_budget`."""
    warm_start: bool = True
    """Start the networks from weights trained offline on other images
    (:mod:`~inrstore.models.fit.warm_start`) where a stored set fits the architecture."""
    learning_rate: float = 1e-2
    """Adam's initial learning rate for randomly initialised networks (and the prior's
    scale). In the soft phase every group's rate follows a half cosine from its initial value
    to ``learning_rate_floor``."""
    warm_learning_rate: float | None = None
    """Initial learning rate for networks that start from a stored set (None: as
    ``learning_rate``)."""
    latent_learning_rate: float = 2e-1
    learning_rate_floor: float = 1e-2
    """Every group's learning rate at the end of the soft phase."""
    final_learning_rate: float = 1e-3
    """Every group's learning rate in the hard phase."""
    coarse_phases: tuple[float, ...] = ()
    """Progress (see :func:`~inrstore.models.fit.train.fit_image`) at which training leaves
    each coarser scale, ascending: ``(0.3,)`` trains on the half-resolution image (2×2 block
    means, grids from level 1 up) until 30% of the progress, ``(0.15, 0.3)`` on the
    quarter-resolution one until 15%, then at half resolution until 30%. An iteration at
    scale 2**-n costs about 4**-n, so the coarse grids and the networks take shape in many
    more iterations before the full-resolution phase refines them and trains the finest
    grid."""
    hard_fraction: float = 0.1
    """Share of the iterations trained with hard rounding (straight-through) at the end.
    ``best`` has 0.05: on the kodim23 crop at quality 50 (4 000 iterations, one thread, two
    runs side by side, D + λR from the bitstream) it measured −1.0%, −2.3%, −0.3% and −2.2%
    against 0.1 at seeds 0 to 3, and −1.6% on the whole kodim23 (its 614 s, seed 0); no hard
    phase measured +0.0% and −0.9% at seeds 0 and 1, and a quarter +8% (``bench/HISTORY.md``)."""
    weight_deadzones: tuple[float, ...] = ()
    """Dead zones, each in (0, 0.5), tried when rounding each network tensor after its step is
    chosen (:func:`~inrstore.models.fit.network_quantization.quantize_networks`; the decoder
    does not see them). ``best`` tries 0.1, 0.2 and 0.3: on two of its fits of the kodim23
    crop at quality 50 (seeds 0 and 1, its 300 s) they lowered the bitstream's D + λR by 0.40%
    and 0.21% (16 and 4 bytes fewer, +0.02 dB) for 0.4 s; on a whole Kodak image they add
    1.3 s (``fast``) to 1.8 s (``best``) to the quantization (kodim05, two threads), where
    the networks are a small share of the rate, so ``fast`` and ``default`` do without."""
    temperature_start: float = 0.5
    temperature_end: float = 0.1
    noise_start: float = 0.4
    noise_end: float = 0.1
    """Std of the Gaussian quantization noise, annealed linearly like the temperature."""
    network_rate_in_loss: bool = True
    """Add λ × the networks' estimated rate per pixel of the whole image
    (:func:`~inrstore.models.fit.network_rate.network_bits`) to the training loss of a single
    image (a shard's loss counts its members' latents only). Measured against leaving it out
    (paired runs at the presets' time budgets, one thread, D + λR from the bitstream): the
    kodim23 crop at qualities 25 / 50 / 75, ``fast`` −6.2%, −2.7%, −1.9% and ``default``
    −4.6%, −5.0%, −1.9%; ``fast`` on six whole Kodak images, mean −3.9% at quality 50 and
    −3.1% at 25 (from +2.0% on kodim01 to −7.6%); starting it only at 30% of the progress
    helped the two busiest images and hurt the rest (``bench/HISTORY.md``)."""
    gradient_clip: float | None = 0.01
    """Largest global L2 norm of a step's gradients (networks and latents together, as in
    Cool-chic's training loop); larger ones are scaled down to it before Adam's step. None:
    no clipping.

    The gradients' norm falls about a hundredfold during training (kodim23 crop, quality 50,
    ``fast``: median 0.06 over the first 30 iterations, 0.006 over iterations 90–200, 0.0004
    at the end). Unclipped, the first steps' large gradients fill Adam's second-moment
    estimate, which forgets them only over about 1/(1 − β₂) = 1000 steps, so the later steps
    shrink with it. Clipping at 0.01 acts mostly on the first few dozen steps and on spikes;
    see :data:`PRESETS` for what it measured."""

    def __post_init__(self) -> None:
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive or None, not {self.gradient_clip}")
        if not all(0.0 < zone < 0.5 for zone in self.weight_deadzones):
            raise ValueError(f"weight_deadzones must lie in (0, 0.5), not {self.weight_deadzones}")

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
        iterations=2000,
        arm_levels=0,
        crop_seconds=26.0,
        learning_rate=2e-2,
        warm_learning_rate=1e-2,
        latent_learning_rate=0.4,
        finest_grid_bpp=1.5,
        coarse_phases=(0.3,),
    ),
    "default": Preset(
        "default",
        iterations=10000,
        arm_levels=1,
        crop_seconds=114.0,
        finest_grid_bpp=1.5,
        learning_rate_floor=1e-3,
        final_learning_rate=1e-4,
    ),
    "best": Preset(
        "best",
        iterations=10000,
        arm_levels=2,
        wide_arm=True,
        prefilter=True,
        compact_synthesis="refine",
        compact_keeps_finest_grid=True,
        compact_candidates=2,
        crop_seconds=300.0,
        hard_fraction=0.05,
        weight_deadzones=(0.1, 0.2, 0.3),
        finest_grid_bpp=0.6,
        learning_rate_floor=1e-3,
        final_learning_rate=1e-4,
    ),
}
"""Every preset stops at its time budget or its iteration cap, whichever comes first. ``best``
(the 24-neighbour ARM on every grid below the coarsest) gets 300 s on a 256×256 image, under
the 337 s Cool-chic 5 takes for that crop, and keeps the finest grid of images under
512×512 pixels, dropping it on larger ones where the λ test says it does not pay (below).
Its budget came in together with that rule, when it had two ARM grids;
against its earlier 10 000 iterations with the finest grid always kept (488–538 s), on the
kodim23 crop in ``inrstore bench`` on machines of the same speed, D + λR (bitstream) went
2.577e-3 → 2.512e-3, 8.825e-4 → 8.425e-4 and 3.005e-4 → 2.961e-4 at qualities 25 / 50 / 75
(−2.5%, −4.5%, −1.5%) in 267, 248 and 300 s: at 25 and 50 the finest grid was dropped, and the
cap came before the budget.

``default`` and ``best`` let every learning rate fall to 1e-3 at the end of the soft phase and
hold 1e-4 in the hard phase: with the floor at 1e-2, longer training ended worse (kodim23 crop,
quality 50, all grids kept, one thread, fixed iterations, D + λR from the bitstream: 9.70e-4
after 3000 iterations, 1.077e-3 after 6000; the latents' rate rose from 0.46 to 0.58 bpp), and
the lower floor gave 8.86e-4 after 6000 (0.39 bpp of latents, +0.47 dB). For ``default`` (its
time budget, one thread, two runs at a time, D + λR from the bitstream) the floor of 1e-3
measured −7.0%, −2.0% and −3.3% against 1e-2 on the kodim23 crop at qualities 25 / 50 / 75 and
−0.6% on the whole kodim05 at quality 50; a floor of 1e-4 measured +2.1% and +1.9% against 1e-3
at qualities 25 and 50. ``fast`` keeps 1e-2 and 1e-3: in the same test the lower ones measured
−0.0%, −0.1% and +2.2% on the crop and +1.8% on kodim05. ``fast`` gets only a few hundred
iterations, so it learns twice as fast (on the kodim23 crop at quality 20 this gave +1 dB at
+4% rate over the default rates), except for warm-started networks, which stay at 1e-2 (the
soft phase's floor) so that Adam's first steps (each about one learning rate per weight) do not
undo the warm start. Before gradient clipping (below) they started at 5e-3 (150 iterations on
kodim23 and kodim05 at quality 50: D + λR 4–6% lower than starting them at 2e-2); clipping
tames the first steps, and 1e-2 then measured 3.3–3.6% lower than 5e-3 on the kodim23 crop (350
iterations, qualities 25 / 50 / 75, the finest grid as ``fast`` chooses) and 1.4% lower on the
whole kodim05 (200 iterations, quality 50); 2e-2 measured 2.7% lower at quality 50 on the crop.
All three presets drop the finest grid of images whose half-resolution version is already good
enough at their λ (error below 1.5 λ, ``best`` below 0.6 λ and only on images of 512×512
pixels and more; see
:func:`~inrstore.models.fit.finest_grid.zero_levels_for`); on the kodim23 crop this took
``default``'s BD-rate against JPEG from +9.7% to +4.4%. The factor 1.5 was chosen with
``fast``'s few hundred iterations; ``best``'s thousands make the grid pay sooner: on the whole
kodim11 at quality 50 (half-resolution error 1.37 λ; its 614 s budget, one thread, two runs
side by side, seed 0, D + λR from the bitstream) dropping it gave 31.49 dB at 0.479 bpp,
1.188e-3, keeping it 33.08 dB at 0.571 bpp, 1.063e-3 (−10.5%); on kodim10 at quality 50
(0.71 λ; the same test) 34.55 dB at 0.307 bpp, 6.579e-4 dropped, 35.38 dB at 0.348 bpp,
6.373e-4 kept (−3.1%); on kodim03 at quality 50 (0.52 λ) 35.23 dB at 0.253 bpp, 5.535e-4
dropped, 36.00 dB at 0.311 bpp, 5.623e-4 kept (+1.6%). Hence 0.6 for ``best`` (format 5).
Images under 512×512 pixels keep the grid in ``best`` since format 7: on the kodim23 crop at
quality 50 (0.41 λ; 300 s, the same test) keeping it measured 7.344e-4 (36.04 dB at
0.486 bpp) and 7.344e-4 (36.10 dB at 0.489 bpp) at seeds 0 and 1 against 7.476e-4 and
7.575e-4 dropped (−1.8%, −3.0%) with the ``mixed`` synthesis, and 7.191e-4 and 7.161e-4
against 7.641e-4 and 7.962e-4 with the ``refine`` one (−5.9%, −10.1%; the runs with the grid
dropped and the ``refine`` synthesis are the ninth session's, the same method).
``fast`` used to drop it also below an error of 1.5e-3 (28.2 dB), which its budget rarely
reached before the half-resolution phase; with that phase, keeping the grid at quality 75
lowered D + λR by 17% (kodim23) and 38% (kodim09), and changed it by +1% and −2% at quality
50 (single runs, 93 s, one thread).

``fast`` spends the first 30% of its budget at half resolution. On whole Kodak images at
quality 50 (single runs, one thread each, two at a time, a 93 s budget) D + λR fell by 15%
(kodim23), 9% (kodim05) and 6% (kodim01, share 0.3 or 0.5), and on kodim05 by 5% at
quality 25 and 9% at quality 75; a share of 0.7 left kodim05 too few full-resolution
iterations (D + λR +53%), and a quarter-resolution phase before it (to 10% or 15%) changed
kodim05 by under 1% and kodim23 by −4%. On the 256×256 crop, where ``fast`` already gets
about a thousand iterations, it gained 2%, and ``default`` (kodim05, 234 s; the crop)
changed by under 1%, so ``default`` keeps the full resolution throughout. The
iteration caps (``fast`` 2000, ``default`` 10 000) are high enough that the time budget
decides on a 256×256 image too (``default`` used to reach its old cap of 3000 in about 100 s
of its 114 s on the kodim23 crop, with one thread).

Every preset clips the gradients' global norm at 0.01 (:attr:`Preset.gradient_clip`), single
images and shards alike. D + λR without → with clipping, fixed iteration counts, one thread,
single runs (the kodim23 256×256 crop with all grids kept unless said; rate from the
quantized networks and the entropy model's estimate of the latents, which matched the
bitstream to 0.1% here): ``fast``, 300 iterations, 3.58e-3 → 3.10e-3 at quality 25,
1.249e-3 → 1.099e-3 at 50, 5.33e-4 → 4.45e-4 at 75; ``fast``, 1000 iterations, 9.78e-4 →
9.61e-4 (bitstream); ``default``, 1000 iterations, 1.017e-3 → 9.69e-4; the whole kodim05,
``fast``, 200 iterations, 2.206e-3 → 2.150e-3; a shard of 32 CIFAR-10 images (K = 4,
quality 60, bitstream bytes) 3.11e-3 → 2.76e-3 after 300 steps and 2.66e-3 → 2.49e-3 after
1000. Limits from 0.001 to 0.03 gave 1.09e-3 to 1.13e-3 (quality 50, 300 iterations), 0.1
gave 1.17e-3. Adam's β₂ = 0.9 instead of clipping helped as much after 300 iterations
(1.08e-3) but hurt after 1000 (1.02e-3)."""

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
