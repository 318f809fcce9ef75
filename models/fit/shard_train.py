"""Joint training of a shard: shared weight bases, per-member coefficients and latents.

Loss of a step: ``(Σ_i P_i MSE_i + λ Σ_i bits_i) / Σ_i P_i`` over the members of the step
(``P_i`` pixels, ``bits_i`` the latent rate), i.e. the shard's squared error per pixel plus λ
times its bpp. Members of equal size form a group whose forward pass is one
:func:`torch.func.vmap` call (no Python loop over images); a step takes a mini-batch of at
most ``batch_size`` members from every group, so memory stays bounded for 1000-image shards.
The schedule (learning rate, soft-rounding temperature, noise, hard phase) is the single-image
recipe of :mod:`inrstore.models.fit.train`, advanced per step.
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
from inrstore.models.fit.image_model import ImageModel, init_parameters, to_unit
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.train import TrainingStatus, schedule

BASIS_SPREAD = 0.1
"""Bases start as one shared initialization plus this fraction of independent ones."""


@dataclass(frozen=True)
class ShardSettings:
    """``bases`` K (1: plain weight sharing, coefficients fixed to 1); ``batch_size``: members
    per size group in a step; ``steps_per_member``: how many steps train each member (the
    preset's iterations by default); ``warm_fraction``: share of the schedule run when the
    bases start from an earlier shard's."""

    bases: int = 4
    batch_size: int = 64
    steps_per_member: int | None = None
    warm_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.bases < 1:
            raise ValueError(f"bases must be at least 1, not {self.bases}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")


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


@dataclass
class _Group:
    """Members of one size: their indices, targets ``(n, H, W, C)`` and per-level grids."""

    members: list[int]
    arch: Architecture
    targets: torch.Tensor
    grids: list[torch.Tensor]

    @property
    def pixels(self) -> int:
        """Pixels of one member."""
        return self.arch.height * self.arch.width

    def __post_init__(self) -> None:
        self.loss = _group_loss(self.arch)


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
    count, k = len(images), settings.bases
    groups = _groups(images, template, torch_device)
    bases = _initial_bases(template, k, generator) if warm_bases is None else warm_bases
    bases = {name: value.to(torch_device).clone().requires_grad_() for name, value in bases.items()}
    coefficients = None
    if k > 1:
        noise = torch.randn(count, k, generator=generator) * (BASIS_SPREAD / k)
        coefficients = {
            module: (torch.full((count, k), 1.0 / k) + noise).to(torch_device).requires_grad_()
            for module in template.modules()
        }
    priors = torch.zeros(count, device=torch_device, requires_grad=True)
    network_tensors = [*bases.values(), priors, *(coefficients or {}).values()]
    latents = [grid for group in groups for grid in group.grids]
    optimizer = torch.optim.Adam(
        [
            {"params": network_tensors, "base": preset.learning_rate},
            {"params": latents, "base": preset.latent_learning_rate},
        ]
    )
    batches_per_pass = max(math.ceil(len(g.members) / settings.batch_size) for g in groups)
    steps = (settings.steps_per_member or preset.iterations) * batches_per_pass
    if warm_bases is not None:
        steps = max(1, round(steps * settings.warm_fraction))
        time_limit = None if time_limit is None else time_limit * settings.warm_fraction
    start = time.perf_counter()
    step_index, progress = 0, 0.0
    while progress < 1.0:
        step = schedule(preset, progress)
        step.apply(optimizer)
        error_sum, bits_sum, pixels = 0.0, 0.0, 0
        for group in groups:
            chosen = _batch(len(group.members), settings.batch_size, generator)
            members = torch.as_tensor([group.members[i] for i in chosen], device=torch_device)
            params = _mixed(template, bases, coefficients, members)
            grids = tuple(step.quantize(grid[chosen]) for grid in group.grids)
            targets = group.targets[chosen]
            errors, bits = group.loss(params, grids, priors[members], targets)
            error_sum = error_sum + errors.sum() * group.pixels
            bits_sum = bits_sum + bits.sum()
            pixels += len(chosen) * group.pixels
        loss = (error_sum + lam * bits_sum) / pixels
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for group in groups:
                for grid in group.grids:
                    grid.clamp_(-60.0, 60.0)
        step_index += 1
        elapsed = time.perf_counter() - start
        progress = step_index / steps
        if time_limit is not None:
            progress = max(progress, elapsed / time_limit)
        if on_status is not None and (step_index % status_every == 0 or progress >= 1.0):
            mse = float(error_sum.detach()) / pixels
            on_status(
                TrainingStatus(
                    iteration=step_index,
                    iterations=steps,
                    progress=min(progress, 1.0),
                    loss=loss.item(),
                    psnr=-10.0 * math.log10(max(mse, 1e-12)),
                    bpp=float(bits_sum.detach()) / pixels,
                    elapsed=elapsed,
                )
            )
    member_grids: list[list[torch.Tensor]] = [[] for _ in range(count)]
    for group in groups:
        for position, member in enumerate(group.members):
            member_grids[member] = [grid[position].detach().cpu() for grid in group.grids]
    return FittedShard(
        template=template,
        bases={name: value.detach().cpu() for name, value in bases.items()},
        coefficients=None
        if coefficients is None
        else {module: value.detach().cpu() for module, value in coefficients.items()},
        grids=member_grids,
        prior_log_scales=priors.detach().cpu(),
        lam=lam,
        steps=step_index,
        seconds=time.perf_counter() - start,
    )


def _groups(images: list[np.ndarray], template: Architecture, device) -> list[_Group]:
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, pixels in enumerate(images):
        by_size.setdefault(pixels.shape[:2], []).append(index)
    groups = []
    for (height, width), members in by_size.items():
        arch = member_arch(template, height, width)
        targets = torch.stack([to_unit(images[i], device) for i in members])
        grids = [
            torch.zeros((len(members), *shape), device=device, requires_grad=True)
            for shape in arch.grid_shapes()
        ]
        groups.append(_Group(members, arch, targets, grids))
    return groups


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


def _batch(size: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    if size <= batch_size:
        return torch.arange(size)
    return torch.randperm(size, generator=generator)[:batch_size]


def _mixed(template, bases, coefficients, members: torch.Tensor) -> dict[str, torch.Tensor]:
    """Parameters of the chosen members, each ``(n, *shape)``."""
    params: dict[str, torch.Tensor] = {}
    for module, shapes in template.modules().items():
        if coefficients is None:
            alpha = _ones(len(members), members.device)
        else:
            alpha = coefficients[module][members]
        params |= mix_float(bases, alpha, list(shapes))
    return params


def _group_loss(arch: Architecture):
    """Batched ``(params, grids, priors, targets) → (MSE (n,), latent bits (n,))``."""
    model = ImageModel(arch, torch.device("cpu"))

    def one(params, grids, prior, target):
        grids = list(grids)
        error = torch.mean((model.reconstruct(params, grids) - target) ** 2)
        return error, model.latent_bits(params, grids, prior)

    return vmap(one)
