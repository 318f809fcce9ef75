"""Setting up a shard's training: weight bases (or one shared set of networks), per-member
coefficients and latents, trained by the one driver of :mod:`~inrstore.models.fit.train`.

Members are grouped by size and by the number of finest grids the finest-grid rule holds at
zero for them (:mod:`~inrstore.models.fit.finest_grid`, decided per member), each group cut
into chunks of at most ``batch_pixels`` pixels. The bases start from the offline warm-start
sets (:mod:`~inrstore.models.fit.warm_start`) when no earlier shard's bases are given.
Members of one size may also share latent grids (:mod:`~inrstore.models.fit.shared_latents`),
started from an earlier shard's when given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mixture import mix_float
from inrstore.models.fit.allocator import keep_freed_memory
from inrstore.models.fit.image_model import init_parameters, to_unit
from inrstore.models.fit.network_source import MixedNetworks, SharedNetworks
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.shared_latents import FittedLatents, SharedLatents
from inrstore.models.fit.train import MemberGroup, TrainingStatus, start_networks, train

BASIS_SPREAD = 0.1
"""Bases start as one shared initialization plus this fraction of independent ones."""


@dataclass(frozen=True)
class ShardSettings:
    """``bases`` K (1: plain weight sharing, coefficients fixed to 1); ``batch_pixels``: the
    most pixels a training step evaluates; ``warm_fraction``: share of the schedule run when the
    bases start from an earlier shard's (``latents_warm_fraction`` when its shared latents do
    too: a camera's later frames, whose encode, quantization included, should stay within
    half of a photo's); ``shared_latents``: the members (all of one size) also share latent
    grids (:mod:`~inrstore.models.fit.shared_latents`; needs K = 1)."""

    bases: int = 4
    batch_pixels: int = 1 << 20
    warm_fraction: float = 0.5
    latents_warm_fraction: float = 0.4
    shared_latents: bool = False

    def __post_init__(self) -> None:
        if self.bases < 1:
            raise ValueError(f"bases must be at least 1, not {self.bases}")
        if self.shared_latents and self.bases != 1:
            raise ValueError(
                f"shared latents need one set of shared networks (bases 1), not {self.bases}"
            )
        if self.batch_pixels < 1:
            raise ValueError(f"batch_pixels must be at least 1, not {self.batch_pixels}")


@dataclass
class FittedShard:
    """A trained (not yet quantized) shard, on the CPU.

    ``bases``: name → ``(K, *shape)``; ``coefficients``: module → ``(N, K)``, or None for
    plain sharing; ``grids[i]``: member i's grids, finest first (its ``zero_levels[i]``
    finest ones zero; with ``shared`` latents, its residual); ``prior_log_scales``: ``(N,)``.
    """

    template: Architecture
    bases: dict[str, torch.Tensor]
    coefficients: dict[str, torch.Tensor] | None
    grids: list[list[torch.Tensor]]
    prior_log_scales: torch.Tensor
    zero_levels: list[int]
    lam: float
    steps: int
    seconds: float
    shared: FittedLatents | None = None

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


def fit_shard(
    images: list[np.ndarray],
    template: Architecture,
    preset: Preset,
    lam: float,
    settings: ShardSettings,
    zero_levels: list[int],
    *,
    device: str = "cpu",
    time_limit: float | None = None,
    seed: int = 0,
    warm_bases: dict[str, torch.Tensor] | None = None,
    warm_latents: list[torch.Tensor] | None = None,
    on_status: Callable[[TrainingStatus], None] | None = None,
    status_every: int = 10,
) -> FittedShard:
    """Train a shard on ``images`` (``uint8 (H, W, C)`` each, channels of ``template``),
    member i with its ``zero_levels[i]`` finest grids held at zero.

    ``warm_bases`` (name → ``(K, *shape)``) start the bases from an earlier shard's and run
    ``settings.warm_fraction`` of the schedule; ``warm_latents`` (grids, finest first) start
    the shared latents, where ``settings`` asks for them.
    """
    torch_device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    keep_freed_memory()
    k = settings.bases
    common_zero_levels = max(set(zero_levels), key=zero_levels.count)
    start, rate = start_networks(template, preset, lam, common_zero_levels, generator)
    bases = _spread_bases(template, start, k, generator) if warm_bases is None else warm_bases
    if warm_bases is not None:
        rate = preset.network_learning_rate(warm=True)
    groups = _groups(
        images, template, k, zero_levels, settings.batch_pixels, generator, torch_device
    )
    if k == 1:
        networks = SharedNetworks(template, {n: v[0] for n, v in bases.items()}, torch_device)
    else:
        networks = MixedNetworks(template, bases, torch_device)
    shared = None
    if settings.shared_latents:
        sizes = {image.shape[:2] for image in images}
        if len(sizes) > 1:
            raise ValueError("shared latents need members of one size")
        arch = member_arch(template, *images[0].shape[:2])
        shared = SharedLatents(arch, min(zero_levels), torch_device, warm_latents)
    run = train(
        groups,
        networks,
        preset,
        lam,
        network_learning_rate=rate,
        time_limit=time_limit,
        schedule_fraction=_schedule_fraction(settings, warm_bases, shared, warm_latents),
        on_status=on_status,
        status_every=status_every,
        shared_latents=shared,
    )
    trained = (
        {name: value.detach()[None] for name, value in networks.params.items()}
        if k == 1
        else {name: value.detach() for name, value in networks.bases.items()}
    )
    fitted = _fitted(template, trained, groups, zero_levels, lam, run.steps, run.seconds)
    return replace(fitted, shared=None if shared is None else shared.fitted())


def _schedule_fraction(settings: ShardSettings, warm_bases, shared, warm_latents) -> float:
    if warm_bases is None:
        return 1.0
    if shared is not None and warm_latents is not None:
        return settings.latents_warm_fraction
    return settings.warm_fraction


def _fitted(template, bases, groups, zero_levels, lam, steps, seconds) -> FittedShard:
    """Gather the groups' members back into image order."""
    count = len(zero_levels)
    grids: list[list[torch.Tensor]] = [[] for _ in range(count)]
    priors = torch.zeros(count)
    coefficients = None
    if groups[0].coefficients is not None:
        k = next(iter(groups[0].coefficients.values())).shape[1]
        coefficients = {module: torch.zeros(count, k) for module in groups[0].coefficients}
    for group in groups:
        index = torch.as_tensor(group.members)
        for position, member in enumerate(group.members):
            grids[member] = group.fitted_grids(position)
        priors[index] = group.priors.detach().cpu()
        if coefficients is not None:
            for module, values in group.coefficients.items():
                coefficients[module][index] = values.detach().cpu()
    return FittedShard(
        template=template,
        bases={name: value.cpu() for name, value in bases.items()},
        coefficients=coefficients,
        grids=grids,
        prior_log_scales=priors,
        zero_levels=list(zero_levels),
        lam=lam,
        steps=steps,
        seconds=seconds,
    )


def _groups(images, template, k, zero_levels, batch_pixels, generator, device) -> list[MemberGroup]:
    """Members grouped by size and zeroed grids (first appearance order), each group cut into
    chunks of at most ``batch_pixels`` pixels (at least one member)."""
    by_kind: dict[tuple[int, int, int], list[int]] = {}
    for index, pixels in enumerate(images):
        by_kind.setdefault((*pixels.shape[:2], zero_levels[index]), []).append(index)
    groups = []
    for (height, width, zeroed), members in by_kind.items():
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
            groups.append(MemberGroup(part, arch, targets, zeroed, coefficients))
    return groups


def _spread_bases(
    template: Architecture, start: dict[str, torch.Tensor], k: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """``(K, *shape)``: the single-image start shared, plus a spread per basis."""
    if k == 1:
        return {name: value[None] for name, value in start.items()}
    spreads = [init_parameters(template, generator) for _ in range(k)]
    return {
        name: torch.stack([value + BASIS_SPREAD * spread[name] for spread in spreads])
        for name, value in start.items()
    }
