"""The differentiable model of one image: reconstruction and latent rate from parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.entropy_model import entropy_parameters
from inrstore.models.core.mlp import Params
from inrstore.models.core.synthesis import PREFIX as SYNTHESIS_PREFIX
from inrstore.models.core.synthesis import synthesize
from inrstore.models.core.upsample import (
    PREFILTER_PREFIX,
    identity_prefilter,
    prefilter_grids,
    upsample_full,
)
from inrstore.models.entropy.laplace import laplace_bits


def to_unit(pixels: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """``uint8 (H, W, C)`` → float32 ``(C, H, W)`` in [0, 1] (channels first, like
    :meth:`ImageModel.reconstruct`)."""
    planes = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / 255.0
    return torch.from_numpy(planes).to(device)


def half_resolution(target: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` → ``(C, ceil(H/2), ceil(W/2))``: the mean of each 2×2 block (a block cut
    by the border averages the pixels it has)."""
    return F.avg_pool2d(target[None], 2, ceil_mode=True)[0]


@dataclass
class ImageModel:
    """Evaluates an architecture over the whole image at scale 1, or at a coarser power of
    two (the training views)."""

    arch: Architecture
    device: torch.device

    def reconstruct(
        self, params: Params, grids: list[torch.Tensor], coarser: int = 0
    ) -> torch.Tensor:
        """Image ``(C, H, W)`` in [0, 1] units, not clamped; or, ``coarser`` = n > 0, the
        image at scale 2**-n, ``(C, h_n, w_n)`` (grid n's shape), from the grids n and up
        sampled at the centres of its cells (of 2**n × 2**n pixel blocks), the planes of the
        n finest grids zero. ``grids[:n]`` are not read."""
        return synthesize(self.arch.synthesis, params, self.dense_latents(params, grids, coarser))

    def dense_latents(
        self, params: Params, grids: list[torch.Tensor], coarser: int = 0
    ) -> torch.Tensor:
        """The synthesis's input ``(L, h_n, w_n)`` for :meth:`reconstruct`: the grids, through
        their pre-filters where ``params`` hold them, sampled at every pixel of scale 2**-n."""
        used = prefilter_grids(grids[coarser:], params, coarser)
        latents = upsample_full(used, *used[0].shape)
        if coarser:
            skipped = latents.new_zeros((coarser, *latents.shape[1:]))
            latents = torch.cat([skipped, latents])
        return latents

    def latent_bits(
        self,
        params: Params,
        grids: list[torch.Tensor],
        prior_log_scale: torch.Tensor,
        finest: int = 0,
    ) -> torch.Tensor:
        """Estimated bits of grids ``finest … L-1`` (a scalar); the finer ones are held at
        zero, flagged and not coded."""
        parameters = entropy_parameters(self.arch, params, grids, prior_log_scale, finest)
        return sum(
            laplace_bits(grid, mu, log_scale).sum()
            for grid, (mu, log_scale) in zip(grids[finest:], parameters, strict=True)
        )


def init_parameters(arch: Architecture, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Weights uniform in ±1/√fan_in, biases zero; the entropy networks' last layers are zero,
    so they start at μ = 0, σ = 1; pre-filters start as the identity. The synthesis's weights
    start as its shape says (:meth:`~inrstore.models.core.synthesis.RefineSynthesis.
    start_bound`); a bound of 0 is a zero start, with no draw."""
    params = {}
    for name, shape in arch.parameter_shapes().items():
        if name.startswith(PREFILTER_PREFIX):
            params[name] = identity_prefilter()
            continue
        fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
        bound = 1 / fan_in**0.5
        if name.startswith(SYNTHESIS_PREFIX):
            bound = arch.synthesis.start_bound(name, fan_in)
        if len(shape) == 1 or _is_entropy_output_layer(arch, name) or bound == 0:
            params[name] = torch.zeros(shape)
            continue
        params[name] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
    return params


def _is_entropy_output_layer(arch: Architecture, name: str) -> bool:
    prefix, layer = name.split(".", 1)
    shapes = {"aru1": arch.aru[0], "aru2": arch.aru[1], "arm": arch.arm}
    if prefix not in shapes:
        return False
    return int(layer[1:]) == len(shapes[prefix].widths) - 2
