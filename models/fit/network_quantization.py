"""Choosing the networks' quantization steps by D + λR, after training.

One quantizer (:func:`quantize_modules`) for a single image's networks and a shard's weight
bases; what differs is the cost (:class:`ModuleCosts`): for one image
``MSE + λ (latent bits + parameter bits) / (H W)`` with the latents hard-rounded, for a
shard the same summed over sampled members (:mod:`~inrstore.models.fit.shard_quantization`).
The pre-filters and the synthesis change only the MSE, the entropy networks only the latents'
bits; every parameter tensor is coded with its own Laplace scale and costs its header field
too. Three greedy stages:

1. each module (pre-filters, synthesis, then the entropy networks) at one step: every exponent of
   :data:`EXPONENTS` is tried and the cheapest kept;
2. each tensor on its own (format 4), :data:`SWEEPS` passes in order: from its module's
   exponent, one step coarser while that lowers the cost, else one step finer while that
   does;
3. where the preset names dead zones (:attr:`~inrstore.models.fit.presets.Preset.
   weight_deadzones`), each tensor at its step rounded with each of them (magnitudes rounded
   down unless their fraction reaches 0.5 + the dead zone) where that lowers the cost. The
   decoder does not know the difference.

What stages 2 and 3 measured: ``bench/HISTORY.md`` (formats 4 and the dead zones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from inrstore.models.bitstream.image_format import (
    MAX_TENSOR_EXPONENT,
    MAX_TENSOR_SCALE_CODE,
)
from inrstore.models.bitstream.parameters import parameter_bits, scale_code
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.core.synthesis import synthesize
from inrstore.models.entropy.laplace import LATENT_MAX, LATENT_MIN, log_scale_index
from inrstore.models.fit.image_model import ImageModel, to_unit
from inrstore.models.fit.train import FittedImage

EXPONENTS = range(4, 17)
SWEEPS = 1
TENSOR_HEADER_BITS = 16
"""A tensor's step and scale field in the header (format 4)."""


def round_latents(grids: list[torch.Tensor]) -> list[torch.Tensor]:
    """The latents as the decoder will see them: rounded and clamped to the symbol range."""
    return [torch.round(grid).clamp(LATENT_MIN, LATENT_MAX) for grid in grids]


def module_bits(module: QuantizedModule) -> float:
    """Estimated coded size of a module in bits: each tensor under its own Laplace scale,
    plus its header field."""
    bits = 0.0
    for value in module.integers.values():
        flat = value.reshape(-1).numpy()
        bits += parameter_bits(flat, scale_code(flat, MAX_TENSOR_SCALE_CODE)) + TENSOR_HEADER_BITS
    return bits


class ModuleCosts(Protocol):
    """D + λR of trial quantizations, one module at a time, for :func:`quantize_modules`."""

    def cost(self, module: str) -> Callable[[QuantizedModule], float]:
        """The cost of ``module`` quantized as given, the modules accepted so far as they
        were accepted and the later ones in float."""
        ...

    def accept(self, module: str, quantized: QuantizedModule) -> None:
        """Hold ``module`` at ``quantized`` for the modules that follow."""
        ...


def quantize_modules(
    costs: ModuleCosts,
    floats: dict[str, dict[str, torch.Tensor]],
    deadzones: tuple[float, ...] = (),
) -> dict[str, QuantizedModule]:
    """Quantize every module of ``floats`` (module → tensors by name, in coding order): the
    cheapest of :data:`EXPONENTS` for the whole module, then each tensor's own step and
    rounding (:func:`refine_tensors`). The one network quantizer of single images and of
    shards' bases."""
    chosen: dict[str, QuantizedModule] = {}
    with torch.no_grad():
        for name, tensors in floats.items():
            cost = costs.cost(name)
            module = min(
                (QuantizedModule.quantize(tensors, exponent) for exponent in EXPONENTS), key=cost
            )
            chosen[name] = refine_tensors(module, tensors, cost, deadzones)
            costs.accept(name, chosen[name])
    return chosen


def quantize_networks(
    fitted: FittedImage, pixels: np.ndarray, deadzones: tuple[float, ...] = ()
) -> tuple[dict[str, QuantizedModule], int]:
    """Quantized modules of one image (by name, every tensor with its own step and, among
    nearest rounding and ``deadzones``, its cheapest rounding) and the prior's scale index."""
    floats = {
        name: {key: fitted.params[key] for key in shapes}
        for name, shapes in fitted.arch.modules().items()
    }
    modules = quantize_modules(_ImageCosts(fitted, pixels), floats, deadzones)
    return modules, log_scale_index(float(fitted.prior_log_scale))


class _ImageCosts:
    """D + λR of one image: ``MSE + λ (latent bits + parameter bits) / (H W)``."""

    def __init__(self, fitted: FittedImage, pixels: np.ndarray) -> None:
        self.fitted = fitted
        self.grids = round_latents(fitted.grids)
        self.target = to_unit(pixels)
        self.current = dict(fitted.params)
        self.model = ImageModel(fitted.arch, torch.device("cpu"))

    def accept(self, module: str, quantized: QuantizedModule) -> None:
        self.current |= quantized.dequantized()

    def cost(self, module: str) -> Callable[[QuantizedModule], float]:
        fitted, model, grids, target = self.fitted, self.model, self.grids, self.target
        arch = fitted.arch
        others = dict(self.current)
        pixel_count = arch.height * arch.width
        # The synthesis's trials all read the same input: sample the grids once.
        dense = model.dense_latents(others, grids) if module == "synthesis" else None

        def cost(trial_module: QuantizedModule) -> float:
            trial = others | trial_module.dequantized()
            bits = module_bits(trial_module)
            error = 0.0
            if module == "synthesis":
                error = float(torch.mean((synthesize(arch.synthesis, trial, dense) - target) ** 2))
            elif module == "upsampling":
                error = float(torch.mean((model.reconstruct(trial, grids) - target) ** 2))
            else:
                bits += float(
                    model.latent_bits(trial, grids, fitted.prior_log_scale, fitted.zero_levels)
                )
            return error + fitted.lam * bits / pixel_count

        return cost


def refine_tensors(
    module: QuantizedModule,
    floats: dict[str, torch.Tensor],
    cost: Callable[[QuantizedModule], float],
    deadzones: tuple[float, ...] = (),
) -> QuantizedModule:
    """Give each tensor its own step: :data:`SWEEPS` passes of coordinate descent over the
    exponents in [0, :data:`MAX_TENSOR_EXPONENT`]; then round each at its step with the dead
    zone in ``deadzones`` (each in (0, 0.5)) that lowers ``cost`` most, if one does."""
    module = QuantizedModule.with_tensor_steps(
        module.integers, dict.fromkeys(floats, module.exponent)
    )
    best = cost(module)
    for _ in range(SWEEPS):
        for name, value in floats.items():
            for direction in (-1, 1):
                moved = False
                exponent = module.exponent_of(name) + direction
                while 0 <= exponent <= MAX_TENSOR_EXPONENT:
                    trial = module.requantized(name, value, exponent)
                    trial_cost = cost(trial)
                    if trial_cost >= best:
                        break
                    module, best, moved = trial, trial_cost, True
                    exponent += direction
                if moved:
                    break
    for name, value in floats.items():
        exponent = module.exponent_of(name)
        for deadzone in deadzones:
            trial = module.requantized(name, value, exponent, deadzone)
            trial_cost = cost(trial)
            if trial_cost < best:
                module, best = trial, trial_cost
    return module
