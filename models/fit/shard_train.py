"""Joint training of a shard: shared weight bases, per-member coefficients and latents.

Loss of a step: ``(Σ_i P_i MSE_i + λ Σ_i bits_i) / Σ_i P_i`` over the members of the step
(``P_i`` pixels, ``bits_i`` the latent rate): squared error per pixel plus λ times bpp.

Members of equal size are cut into *chunks* of at most ``batch_pixels`` pixels (at least one
member). A chunk's forward pass is one :func:`torch.func.vmap` call (no Python loop over
images), and a step trains one chunk, visiting the chunks in turn, so memory stays bounded for
1000-image shards. Each chunk owns its members' latents, coefficients and prior scales and its
own Adam state, which therefore moves only when the chunk is trained; the bases have one Adam
state updated at every step. The schedule (learning rate, soft-rounding temperature, noise,
hard phase) is the single-image recipe of :mod:`inrstore.models.fit.train`, spread over
``iterations × chunks`` steps so that every member sees the preset's iterations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.func import vmap

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mixture import mix_float
from inrstore.models.fit.allocator import keep_freed_memory
from inrstore.models.fit.image_model import ImageModel, init_parameters, to_unit
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.train import TrainingStatus, clip_gradients, schedule

BASIS_SPREAD = 0.1
"""Bases start as one shared initialization plus this fraction of independent ones."""


@dataclass(frozen=True)
class ShardSettings:
    """``bases`` K (1: plain weight sharing, coefficients fixed to 1); ``batch_pixels``: the
    most pixels a training step evaluates; ``warm_fraction``: share of the schedule run when the
    bases start from an earlier shard's."""

    bases: int = 4
    batch_pixels: int = 1 << 20
    warm_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.bases < 1:
            raise ValueError(f"bases must be at least 1, not {self.bases}")
        if self.batch_pixels < 1:
            raise ValueError(f"batch_pixels must be at least 1, not {self.batch_pixels}")


@dataclass
class FittedShard:
    """A trained (not yet quantized) shard, on the CPU.

    ``bases``: name → ``(K, *shape)``; ``coefficients``: module → ``(N, K)``, or None for
    plain sharing; ``grids[i]``: member i's grids, finest first; ``prior_log_scales``: ``(N,)``.
    """

    template: Architecture
    bases: dict[str, torch.Tensor]
    coefficients: dict[str, torch.Tensor] | None
    grids: list[list[torch.Tensor]]
    prior_log_scales: torch.Tensor
    lam: float
    steps: int
    seconds: float

    def member_parameters(self, index: int) -> dict[str, torch.Tensor]:
        """Float network parameters of member ``index``."""
        params: dict[str, torch.Tensor] = {}
        for module, shapes in self.template.modules().items():
            alpha = self.coefficients[module][index : index + 1] if self.coefficients else None
            params |= mix_float(self.bases, _ones(1) if alpha is None else alpha, list(shapes))
        return {name: value[0] for name, value in params.items()}


def member_arch(template: Architecture, height: int, width: int) -> Architecture:
    """The architecture of a member: the shard's networks at the member's size."""
    return replace(template, height=height, width=width)


def _ones(count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.ones(count, 1, device=device)


class _Chunk:
    """Members of one size trained together: targets ``(n, H, W, C)``, grids per level
    ``(n, h_l, w_l)``, coefficients per module ``(n, K)`` (None: plain sharing), priors ``(n,)``
    and the Adam state of all of these."""

    def __init__(self, members, arch, targets, coefficients, preset: Preset, device) -> None:
        self.members, self.arch, self.targets = members, arch, targets
        self.grids = [
            torch.zeros((len(members), *shape), device=device, requires_grad=True)
            for shape in arch.grid_shapes()
        ]
        self.coefficients = coefficients
        self.priors = torch.zeros(len(members), device=device, requires_grad=True)
        own_networks = [self.priors, *(coefficients or {}).values()]
        self.optimizer = torch.optim.Adam(
            [
                {"params": own_networks, "base": preset.learning_rate},
                {"params": self.grids, "base": preset.latent_learning_rate},
            ]
        )
        self.loss = _group_loss(arch)

    @property
    def pixels(self) -> int:
        """Pixels of one member."""
        return self.arch.height * self.arch.width


def fit_shard(
    images: list[np.ndarray],
    template: Architecture,
    preset: Preset,
    lam: float,
    settings: ShardSettings,
    *,
    device: str = "cpu",
    time_limit: float | None = None,
    seed: int = 0,
    warm_bases: dict[str, torch.Tensor] | None = None,
    on_status: Callable[[TrainingStatus], None] | None = None,
    status_every: int = 10,
) -> FittedShard:
    """Train a shard on ``images`` (``uint8 (H, W, C)`` each, channels of ``template``).

    ``warm_bases`` (name → ``(K, *shape)``) start the bases from an earlier shard's and run
    ``settings.warm_fraction`` of the schedule.
    """
    torch_device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    keep_freed_memory()
    k = settings.bases
    bases = _initial_bases(template, k, generator) if warm_bases is None else warm_bases
    bases = {name: value.to(torch_device).clone().requires_grad_() for name, value in bases.items()}
    shared = torch.optim.Adam([{"params": list(bases.values()), "base": preset.learning_rate}])
    chunks = _chunks(images, template, k, settings.batch_pixels, preset, generator, torch_device)
    steps = preset.iterations * len(chunks)
    if warm_bases is not None:
        steps = max(1, round(steps * settings.warm_fraction))
        time_limit = None if time_limit is None else time_limit * settings.warm_fraction
    start = time.perf_counter()
    step_index, progress = 0, 0.0
    while progress < 1.0:
        step = schedule(preset, progress)
        chunk = chunks[step_index % len(chunks)]
        step.apply(shared)
        step.apply(chunk.optimizer)
        alpha = chunk.coefficients
        params = {}
        for module, shapes in template.modules().items():
            mixing = _ones(len(chunk.members), torch_device) if alpha is None else alpha[module]
            params |= mix_float(bases, mixing, list(shapes))
        grids = tuple(step.quantize(grid) for grid in chunk.grids)
        errors, bits = chunk.loss(params, grids, chunk.priors, chunk.targets)
        pixels = len(chunk.members) * chunk.pixels
        loss = (errors.sum() * chunk.pixels + lam * bits.sum()) / pixels
        shared.zero_grad(set_to_none=True)
        chunk.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(preset, shared, chunk.optimizer)
        shared.step()
        chunk.optimizer.step()
        with torch.no_grad():
            for grid in chunk.grids:
                grid.clamp_(-60.0, 60.0)
        step_index += 1
        elapsed = time.perf_counter() - start
        progress = step_index / steps
        if time_limit is not None:
            progress = max(progress, elapsed / time_limit)
        if on_status is not None and (step_index % status_every == 0 or progress >= 1.0):
            mse = float(errors.detach().mean())
            on_status(
                TrainingStatus(
                    iteration=step_index,
                    iterations=steps,
                    progress=min(progress, 1.0),
                    loss=loss.item(),
                    psnr=-10.0 * math.log10(max(mse, 1e-12)),
                    bpp=float(bits.detach().sum()) / pixels,
                    elapsed=elapsed,
                )
            )
    return _fitted(template, bases, chunks, len(images), lam, step_index, start)


def _fitted(template, bases, chunks, count, lam, steps, start) -> FittedShard:
    """Gather the chunks' members back into image order."""
    grids: list[list[torch.Tensor]] = [[] for _ in range(count)]
    priors = torch.zeros(count)
    coefficients = None
    if chunks[0].coefficients is not None:
        k = next(iter(chunks[0].coefficients.values())).shape[1]
        coefficients = {module: torch.zeros(count, k) for module in chunks[0].coefficients}
    for chunk in chunks:
        index = torch.as_tensor(chunk.members)
        for position, member in enumerate(chunk.members):
            grids[member] = [grid[position].detach().cpu() for grid in chunk.grids]
        priors[index] = chunk.priors.detach().cpu()
        if coefficients is not None:
            for module, values in chunk.coefficients.items():
                coefficients[module][index] = values.detach().cpu()
    return FittedShard(
        template=template,
        bases={name: value.detach().cpu() for name, value in bases.items()},
        coefficients=coefficients,
        grids=grids,
        prior_log_scales=priors,
        lam=lam,
        steps=steps,
        seconds=time.perf_counter() - start,
    )


def _chunks(images, template, k, batch_pixels, preset, generator, device) -> list[_Chunk]:
    """Members grouped by size (first appearance order), each group cut into chunks."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, pixels in enumerate(images):
        by_size.setdefault(pixels.shape[:2], []).append(index)
    chunks = []
    for (height, width), members in by_size.items():
        arch = member_arch(template, height, width)
        size = max(1, batch_pixels // (height * width))
        for first in range(0, len(members), size):
            part = members[first : first + size]
            coefficients = None
            if k > 1:
                noise = torch.randn(len(part), k, generator=generator) * (BASIS_SPREAD / k)
                start = (torch.full((len(part), k), 1.0 / k) + noise).to(device)
                coefficients = {
                    module: start.clone().requires_grad_() for module in template.modules()
                }
            targets = torch.stack([to_unit(images[i], device) for i in part])
            chunks.append(_Chunk(part, arch, targets, coefficients, preset, device))
    return chunks


def _initial_bases(
    template: Architecture, k: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """``(K, *shape)``: the single-image initialization shared, plus a spread per basis."""
    shared = init_parameters(template, generator)
    spreads = [init_parameters(template, generator) for _ in range(k)]
    return {
        name: torch.stack([value + BASIS_SPREAD * spread[name] for spread in spreads])
        if k > 1
        else value[None]
        for name, value in shared.items()
    }


def _group_loss(arch: Architecture):
    """Batched ``(params, grids, priors, targets) → (MSE (n,), latent bits (n,))``."""
    model = ImageModel(arch, torch.device("cpu"))

    def one(params, grids, prior, target):
        grids = list(grids)
        error = torch.mean((model.reconstruct(params, grids) - target) ** 2)
        return error, model.latent_bits(params, grids, prior)

    return vmap(one)
