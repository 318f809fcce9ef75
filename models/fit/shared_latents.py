"""Latent grids a shard's members share: member i's synthesis reads ``S + R_i``, where the
shared grids ``S`` are coded once (in the shard header) and each member codes only its
residual ``R_i``.

Both are trained by the one driver (:func:`~inrstore.models.fit.train.train`): ``S`` with
the networks' Adam state (it changes at every step, like them), its estimated bits spread
over the pixels of all members like the networks'. Where the members agree (the background
of a fixed camera) the rate pushes the content into ``S``, whose bits count once; a residual
that stays zero costs almost nothing under the member's own entropy model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.fit.image_model import ImageModel


def with_shared(own: list, shared) -> list:
    """A member's grids (finest first, tensors or arrays) as its synthesis reads them: with
    the shared latents ``shared`` (every level) added, or as they are when ``shared`` is
    empty."""
    if not shared:
        return own
    return [mine + common for mine, common in zip(own, shared, strict=True)]


@dataclass
class FittedLatents:
    """Trained (not yet quantized) shared grids, on the CPU: ``grids`` finest first
    (``(h_l, w_l)`` each, the ``zero_levels`` finest held at zero) and the coarsest grid's
    prior log scale."""

    grids: list[torch.Tensor]
    prior_log_scale: torch.Tensor
    zero_levels: int


class SharedLatents:
    """The shared grids of members of one size (``arch``), their finest ``zero_levels``
    held at zero."""

    def __init__(
        self,
        arch: Architecture,
        zero_levels: int,
        device: torch.device,
        start: list[torch.Tensor] | None = None,
    ) -> None:
        self.arch, self.zero_levels = arch, zero_levels
        shapes = arch.grid_shapes()
        self.zeros = [torch.zeros(shape, device=device) for shape in shapes[:zero_levels]]
        self.grids = [
            (torch.zeros(shape) if start is None else start[level].float())
            .to(device)
            .requires_grad_()
            for level, shape in enumerate(shapes)
            if level >= zero_levels
        ]
        self.prior = torch.zeros((), device=device, requires_grad=True)
        self.model = ImageModel(arch, device)

    def parameter_groups(self, network_rate: float, latent_rate: float) -> list[dict]:
        """Adam parameter groups: the grids at the latents' learning rate, the prior scale at
        the networks'."""
        return [
            {"params": self.grids, "base": latent_rate},
            {"params": [self.prior], "base": network_rate},
        ]

    def quantized(self, quantize) -> list[torch.Tensor]:
        """Every level, finest first, the trained ones through ``quantize`` (the step's
        rounding proxy)."""
        return self.zeros + [quantize(grid) for grid in self.grids]

    def bits(self, params: dict[str, torch.Tensor], quantized: list[torch.Tensor], finest: int):
        """Estimated bits of the quantized grids from level ``max(finest, zero_levels)`` up,
        under the shared networks ``params`` (a scalar)."""
        return self.model.latent_bits(params, quantized, self.prior, max(finest, self.zero_levels))

    def clamp_(self, bound: float) -> None:
        with torch.no_grad():
            for grid in self.grids:
                grid.clamp_(-bound, bound)

    def fitted(self) -> FittedLatents:
        return FittedLatents(
            [grid.detach().cpu() for grid in self.zeros + self.grids],
            self.prior.detach().cpu(),
            self.zero_levels,
        )
