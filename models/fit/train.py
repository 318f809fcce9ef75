"""Overfitting latents and networks to images: the Cool-chic / C3 recipe, one driver for one
image and for a shard of many.

Phase 1: Adam with a cosine learning rate, latents soft-rounded with noise at a temperature
annealed from ``temperature_start`` to ``temperature_end``. Phase 2 (the last
``hard_fraction``): hard rounding with straight-through gradients at a small learning rate.
Loss of a step over a group of members: MSE (pixels in [0, 1]) + λ · (the group's latent
bits per pixel + the networks' estimated bits per pixel of all members, where the preset
puts them in the loss: :mod:`~inrstore.models.fit.network_rate`). Progress is
``max(step / steps, elapsed / time_limit)``, so a time limit compresses the schedule
instead of cutting it off.

Members are trained in *groups* (:class:`MemberGroup`): members of one size and one number
of zeroed finest grids, at most ``batch_pixels`` pixels. A group's forward pass is one
:func:`torch.func.vmap` call (a group of one is evaluated directly), and a step trains one
group, visiting them in turn, so that every member sees the preset's iterations and memory
stays bounded for 1000-image shards. Each group owns its members' latents, prior scales and
mixing coefficients and their Adam state; the networks (one set, or weight bases:
:mod:`~inrstore.models.fit.network_source`) have one Adam state updated at every step, as
have a shard's shared latents (:mod:`~inrstore.models.fit.shared_latents`), whose bits join
the rate like the networks'.

Training may start at coarser scales (:attr:`Preset.coarse_phases`): at scale 2**-n the
target is the image with its 2×2 blocks averaged n times, the model uses the grids from
level n up, and the loss is the same per pixel of that scale, for about 4**-n of the cost of
an iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import vmap

from inrstore.models.core.architecture import Architecture
from inrstore.models.fit.allocator import keep_freed_memory
from inrstore.models.fit.image_model import (
    ImageModel,
    half_resolution,
    init_parameters,
    to_unit,
)
from inrstore.models.fit.network_source import NetworkSource, SharedNetworks
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.rounding import noisy_soft_round, straight_through_round
from inrstore.models.fit.shared_latents import SharedLatents, with_shared
from inrstore.models.fit.warm_start import warm_start_parameters

LATENT_BOUND = 60.0
"""Trained latents are clamped to ±this after every step."""


@dataclass(frozen=True)
class TrainingStatus:
    """Shown by progress bars. PSNR in dB and estimated bpp of the current iterate (the
    latents' per pixel of the current scale, plus the networks' per pixel of the images where
    the preset puts them in the loss); in a coarse phase, of the images at that scale."""

    iteration: int
    iterations: int
    progress: float
    loss: float
    psnr: float
    bpp: float
    elapsed: float


@dataclass
class FittedImage:
    """A trained (not yet quantized) image model, on the CPU."""

    arch: Architecture
    params: dict[str, torch.Tensor]
    grids: list[torch.Tensor]
    prior_log_scale: torch.Tensor
    lam: float
    iterations: int
    seconds: float
    zero_levels: int = 0
    """The finest grids held at zero (see :attr:`Preset.zero_levels`)."""


class MemberGroup:
    """Members of one size and one number of zeroed finest grids, trained together.

    ``targets[n]``: the images at scale 2**-n, ``(count, C, h_n, w_n)`` in [0, 1];
    ``grids``: the trained grids, levels ``zero_levels`` and up, ``(count, h_l, w_l)`` each;
    ``priors``: ``(count,)`` log scales of the coarsest grid's prior; ``coefficients``: module
    → ``(count, K)`` mixing coefficients where the networks are bases, else None.
    """

    def __init__(
        self,
        members: list[int],
        arch: Architecture,
        targets: torch.Tensor,
        zero_levels: int,
        coefficients: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.members, self.arch, self.zero_levels = members, arch, zero_levels
        self.targets = [targets]
        device = targets.device
        count = len(members)
        shapes = arch.grid_shapes()
        self.zeros = [torch.zeros((count, *shape), device=device) for shape in shapes[:zero_levels]]
        self.grids = [
            torch.zeros((count, *shape), device=device, requires_grad=True)
            for shape in shapes[zero_levels:]
        ]
        self.priors = torch.zeros(count, device=device, requires_grad=True)
        self.coefficients = coefficients
        self.model = ImageModel(arch, device)
        self._losses: dict[tuple[int, bool], Callable] = {}

    @property
    def own_networks(self) -> list[torch.Tensor]:
        """What the group trains at the networks' rate: prior scales and coefficients."""
        return [self.priors, *(self.coefficients or {}).values()]

    @property
    def pixels(self) -> int:
        """Pixels of all the group's members at scale 1."""
        return len(self.members) * self.arch.height * self.arch.width

    def target(self, coarser: int) -> torch.Tensor:
        """The members at scale 2**-coarser (averaged once and cached)."""
        while len(self.targets) <= coarser:
            self.targets.append(_half_batch(self.targets[-1]))
        return self.targets[coarser]

    def loss(self, params, batched: bool, grids, coarser: int, finest: int, shared=()):
        """Per member ``(MSE (count,), latent bits (count,))`` of the grids ``finest`` and
        up at scale 2**-coarser; ``params`` per member ``(count, *shape)`` when ``batched``,
        one set for all otherwise. ``shared``: grids (every level, ``(h_l, w_l)``) added to
        each member's before the synthesis (:mod:`~inrstore.models.fit.shared_latents`)."""
        key = (coarser, finest, batched)
        if key not in self._losses:
            self._losses[key] = _batched_loss(self.model, coarser, finest, batched)
        return self._losses[key](
            params, tuple(grids), self.priors, self.target(coarser), tuple(shared)
        )

    def fitted_grids(self, position: int) -> list[torch.Tensor]:
        """Member ``position``'s grids, finest first, on the CPU."""
        return [grid[position].detach().cpu() for grid in self.zeros + self.grids]


def _half_batch(targets: torch.Tensor) -> torch.Tensor:
    return torch.stack([half_resolution(target) for target in targets])


def _batched_loss(model: ImageModel, coarser: int, finest: int, batched: bool) -> Callable:
    def one(params, grids, prior, target, shared):
        seen = with_shared(list(grids), shared)
        error = torch.mean((model.reconstruct(params, seen, coarser) - target) ** 2)
        return error, model.latent_bits(params, list(grids), prior, finest)

    def single(params, grids, priors, targets, shared):
        own = {name: value[0] for name, value in params.items()} if batched else params
        error, bits = one(own, [grid[0] for grid in grids], priors[0], targets[0], shared)
        return error[None], bits[None]

    def many(params, grids, priors, targets, shared):
        if grids[0].shape[0] == 1:
            return single(params, grids, priors, targets, shared)
        dims = (0 if batched else None, 0, 0, 0, None)
        return vmap(one, in_dims=dims)(params, grids, priors, targets, shared)

    return many


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`train` did: steps taken and seconds spent."""

    steps: int
    seconds: float


def train(
    groups: list[MemberGroup],
    networks: NetworkSource,
    preset: Preset,
    lam: float,
    *,
    network_learning_rate: float,
    time_limit: float | None = None,
    schedule_fraction: float = 1.0,
    on_status: Callable[[TrainingStatus], None] | None = None,
    status_every: int = 10,
    shared_latents: SharedLatents | None = None,
) -> TrainingRun:
    """Train ``groups`` and ``networks`` in place for ``iterations × len(groups)`` steps
    (times ``schedule_fraction``) or ``time_limit`` seconds (times ``schedule_fraction``),
    whichever ends first. ``shared_latents`` (members of one size, one set of networks) are
    added to every member's grids and trained with the networks, their bits in the rate."""
    shared_groups = [{"params": networks.tensors(), "base": network_learning_rate}]
    if shared_latents is not None:
        shared_groups += shared_latents.parameter_groups(
            network_learning_rate, preset.latent_learning_rate
        )
    shared = torch.optim.Adam(shared_groups)
    optimizers = [
        torch.optim.Adam(
            [
                {"params": group.own_networks, "base": network_learning_rate},
                {"params": group.grids, "base": preset.latent_learning_rate},
            ]
        )
        for group in groups
    ]
    levels = groups[0].arch.levels
    boundaries = preset.coarse_phases[-(levels - 1) :] if levels > 1 else ()
    all_pixels = sum(group.pixels for group in groups)
    steps = max(1, round(preset.iterations * len(groups) * schedule_fraction))
    if time_limit is not None:
        time_limit *= schedule_fraction
    start = time.perf_counter()
    step_index, progress = 0, 0.0
    while progress < 1.0:
        step = schedule(preset, progress)
        group = groups[step_index % len(groups)]
        optimizer = optimizers[step_index % len(groups)]
        step.apply(shared)
        step.apply(optimizer)
        coarser = sum(progress < boundary for boundary in boundaries)
        # The finest grid this step reads and codes: grids held at zero and grids finer than
        # the scale stay as they are, neither quantized nor counted.
        finest = max(group.zero_levels, coarser)
        quantized = [
            grid if level < finest else step.quantize(grid)
            for level, grid in enumerate(group.zeros + group.grids)
        ]
        params, batched = networks.for_group(group)
        added = () if shared_latents is None else shared_latents.quantized(step.quantize)
        errors, bits = group.loss(params, batched, quantized, coarser, finest, added)
        target = group.target(coarser)
        scale_pixels = target.shape[0] * target.shape[2] * target.shape[3]
        rate = bits.sum() / scale_pixels
        if preset.network_rate_in_loss:
            rate = rate + networks.bits() / all_pixels
        if shared_latents is not None:
            # Their bits per pixel of all members at this step's scale.
            scale_all = all_pixels * scale_pixels / group.pixels
            rate = rate + shared_latents.bits(params, added, coarser) / scale_all
        loss = errors.mean() + lam * rate
        shared.zero_grad(set_to_none=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(preset, shared, optimizer)
        shared.step()
        optimizer.step()
        with torch.no_grad():
            for grid in group.grids:
                grid.clamp_(-LATENT_BOUND, LATENT_BOUND)
        if shared_latents is not None:
            shared_latents.clamp_(LATENT_BOUND)
        step_index += 1
        elapsed = time.perf_counter() - start
        progress = step_index / steps
        if time_limit is not None:
            progress = max(progress, elapsed / time_limit)
        if on_status is not None and (step_index % status_every == 0 or progress >= 1.0):
            on_status(
                TrainingStatus(
                    iteration=step_index,
                    iterations=steps,
                    progress=min(progress, 1.0),
                    loss=loss.item(),
                    psnr=-10.0 * math.log10(max(errors.detach().mean().item(), 1e-12)),
                    bpp=rate.item(),
                    elapsed=elapsed,
                )
            )
    return TrainingRun(step_index, time.perf_counter() - start)


def start_networks(
    arch: Architecture,
    preset: Preset,
    lam: float,
    zero_levels: int,
    generator: torch.Generator,
    start: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], float]:
    """Initial networks of ``arch`` and their learning rate: each module from ``start``
    where it holds the module with its shapes, else from the stored weights of
    :mod:`~inrstore.models.fit.warm_start` (the set nearest ``lam``) when the preset asks for
    them and a set fits, both trained at :attr:`Preset.warm_learning_rate`; a seeded random
    draw otherwise."""
    initial = init_parameters(arch, generator)
    warm = warm_start_parameters(arch, zero_levels, lam) if preset.warm_start else {}
    for shapes in arch.modules().values():
        if start and all(name in start and start[name].shape == s for name, s in shapes.items()):
            warm |= {name: start[name].float() for name in shapes}
    return initial | warm, preset.network_learning_rate(bool(warm))


def fit_image(
    pixels: np.ndarray,
    arch: Architecture,
    preset: Preset,
    lam: float,
    *,
    device: str = "cpu",
    time_limit: float | None = None,
    seed: int = 0,
    on_status: Callable[[TrainingStatus], None] | None = None,
    status_every: int = 10,
    zero_levels: int = 0,
    start: dict[str, torch.Tensor] | None = None,
) -> FittedImage:
    """Train one image (``uint8 (H, W, C)``) with its own networks and return the float
    model; the ``zero_levels`` finest grids stay zero (see
    :mod:`~inrstore.models.fit.finest_grid`); networks start as :func:`start_networks` says."""
    torch_device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    keep_freed_memory()
    group = MemberGroup([0], arch, to_unit(pixels, torch_device)[None], zero_levels)
    initial, rate = start_networks(arch, preset, lam, zero_levels, generator, start)
    networks = SharedNetworks(arch, initial, torch_device)
    run = train(
        [group],
        networks,
        preset,
        lam,
        network_learning_rate=rate,
        time_limit=time_limit,
        on_status=on_status,
        status_every=status_every,
    )
    return FittedImage(
        arch=arch,
        params={name: value.detach().cpu() for name, value in networks.params.items()},
        grids=group.fitted_grids(0),
        prior_log_scale=group.priors[0].detach().cpu(),
        lam=lam,
        iterations=run.steps,
        seconds=run.seconds,
        zero_levels=zero_levels,
    )


def clip_gradients(preset: Preset, *optimizers: torch.optim.Optimizer) -> None:
    """Scale the gradients of everything ``optimizers`` train down to
    :attr:`Preset.gradient_clip`'s global norm, in place (nothing when the preset does not
    clip)."""
    if preset.gradient_clip is not None:
        tensors = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(tensors, preset.gradient_clip)


@dataclass(frozen=True)
class StepSchedule:
    """Learning rates, latent quantization proxy and phase at one point of training."""

    hard: bool
    learning_rate_factor: float
    temperature: float
    noise_std: float
    learning_rate_floor: float
    final_learning_rate: float

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        """Set every parameter group's ``lr`` from its ``"base"`` learning rate."""
        for group in optimizer.param_groups:
            group["lr"] = (
                self.final_learning_rate
                if self.hard
                else _cosine(group["base"], self.learning_rate_floor, self.learning_rate_factor)
            )

    def quantize(self, grid: torch.Tensor) -> torch.Tensor:
        """The training proxy of rounding: noisy soft-rounding, then straight-through."""
        if self.hard:
            return straight_through_round(grid)
        return noisy_soft_round(grid, self.temperature, self.noise_std)


def schedule(preset: Preset, progress: float) -> StepSchedule:
    """The schedule at ``progress`` in [0, 1]: cosine learning rate and linear annealing of
    temperature and noise over the soft phase, then the hard phase at the final rate."""
    soft_progress = min(1.0, progress / (1.0 - preset.hard_fraction))
    return StepSchedule(
        hard=progress >= 1.0 - preset.hard_fraction,
        learning_rate_factor=soft_progress,
        temperature=_linear(preset.temperature_start, preset.temperature_end, soft_progress),
        noise_std=_linear(preset.noise_start, preset.noise_end, soft_progress),
        learning_rate_floor=preset.learning_rate_floor,
        final_learning_rate=preset.final_learning_rate,
    )


def _linear(start: float, end: float, progress: float) -> float:
    return start + (end - start) * progress


def _cosine(start: float, end: float, progress: float) -> float:
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))
