"""Overfitting latents and networks to one image: the Cool-chic / C3 recipe.

Phase 1: Adam with a cosine learning rate, latents soft-rounded with noise at a temperature
annealed from ``temperature_start`` to ``temperature_end``. Phase 2 (the last
``hard_fraction``): hard rounding with straight-through gradients at a small learning rate.
Loss: MSE (pixels in [0, 1]) + λ · estimated bpp of the latents (and, where the preset asks,
of the networks: :mod:`~inrstore.models.fit.network_rate`). Progress is
``max(iteration / iterations, elapsed / time_limit)``, so a time limit compresses the
schedule instead of cutting it off.

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

from inrstore.models.core.architecture import Architecture
from inrstore.models.fit.allocator import keep_freed_memory
from inrstore.models.fit.image_model import (
    ImageModel,
    half_resolution,
    init_parameters,
    to_unit,
)
from inrstore.models.fit.network_rate import network_bits
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.rounding import noisy_soft_round, straight_through_round
from inrstore.models.fit.warm_start import warm_start_parameters


@dataclass(frozen=True)
class TrainingStatus:
    """Shown by progress bars. PSNR in dB and estimated bpp of the current iterate (the
    latents' per pixel of the current scale, plus the networks' per pixel of the image where
    the preset puts them in the loss); in a coarse phase, of the image at that scale."""

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
) -> FittedImage:
    """Train on ``pixels`` (``uint8 (H, W, C)``) and return the float model; the
    ``zero_levels`` finest grids stay zero (see :mod:`~inrstore.models.fit.finest_grid`).
    Networks start from the stored weights of :mod:`~inrstore.models.fit.warm_start` (the set
    nearest ``lam``, trained at :attr:`Preset.warm_learning_rate`) when the preset asks for
    them and a set fits ``arch``, from a seeded random draw otherwise."""
    torch_device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    keep_freed_memory()
    target = to_unit(pixels, torch_device)
    model = ImageModel(arch, torch_device)
    initial = init_parameters(arch, generator)
    warm = warm_start_parameters(arch, zero_levels, lam) if preset.warm_start else {}
    initial |= warm
    network_learning_rate = preset.learning_rate
    if warm and preset.warm_learning_rate is not None:
        network_learning_rate = preset.warm_learning_rate
    params = {name: value.to(torch_device).requires_grad_() for name, value in initial.items()}
    shapes = arch.grid_shapes()
    zeros = [torch.zeros(shape, device=torch_device) for shape in shapes[:zero_levels]]
    grids = [
        torch.zeros(shape, device=torch_device, requires_grad=True)
        for shape in shapes[zero_levels:]
    ]
    prior_log_scale = torch.zeros((), device=torch_device, requires_grad=True)
    optimizer = torch.optim.Adam(
        [
            {"params": [*params.values(), prior_log_scale], "base": network_learning_rate},
            {"params": grids, "base": preset.latent_learning_rate},
        ]
    )
    # Progress at which training leaves each coarser scale, and the targets at every scale.
    boundaries = preset.coarse_phases[-(arch.levels - 1) :] if arch.levels > 1 else ()
    targets = [target]
    for _ in boundaries:
        targets.append(half_resolution(targets[-1]))
    image_pixels = pixels.shape[0] * pixels.shape[1]
    start = time.perf_counter()
    iteration = 0
    progress = 0.0
    while progress < 1.0:
        step = schedule(preset, progress)
        step.apply(optimizer)
        coarser = sum(progress < boundary for boundary in boundaries)
        # The finest grid this step reads and codes: grids held at zero and grids finer than
        # the scale stay as they are, neither quantized nor counted.
        finest = max(zero_levels, coarser)
        quantized = [
            grid if level < finest else step.quantize(grid)
            for level, grid in enumerate(zeros + grids)
        ]
        reconstruction = model.reconstruct(params, quantized, coarser)
        phase_target = targets[coarser]
        distortion = torch.mean((reconstruction - phase_target) ** 2)
        bits = model.latent_bits(params, quantized, prior_log_scale, finest)
        pixel_count = phase_target.shape[1] * phase_target.shape[2]
        rate = bits / pixel_count
        if preset.network_rate_in_loss:
            rate = rate + network_bits(arch, params) / image_pixels
        loss = distortion + lam * rate
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(preset, optimizer)
        optimizer.step()
        with torch.no_grad():
            for grid in grids:
                grid.clamp_(-60.0, 60.0)
        iteration += 1
        elapsed = time.perf_counter() - start
        progress = iteration / preset.iterations
        if time_limit is not None:
            progress = max(progress, elapsed / time_limit)
        if on_status is not None and (iteration % status_every == 0 or progress >= 1.0):
            on_status(
                TrainingStatus(
                    iteration=iteration,
                    iterations=preset.iterations,
                    progress=min(progress, 1.0),
                    loss=loss.item(),
                    psnr=-10.0 * math.log10(max(distortion.item(), 1e-12)),
                    bpp=rate.item(),
                    elapsed=elapsed,
                )
            )
    return FittedImage(
        arch=arch,
        params={name: value.detach().cpu() for name, value in params.items()},
        grids=[grid.detach().cpu() for grid in zeros + grids],
        prior_log_scale=prior_log_scale.detach().cpu(),
        lam=lam,
        iterations=iteration,
        seconds=time.perf_counter() - start,
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
