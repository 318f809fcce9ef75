"""Choosing the networks' quantization steps by D + λR, after training.

Two greedy stages with the latents hard-rounded, the cost being
``MSE + λ (latent bits + parameter bits) / (H W)`` (the pre-filters and the synthesis change
only the MSE, the entropy networks only the latents' bits; every parameter tensor is coded
with its own Laplace scale and costs its header field too):

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


def quantize_networks(
    fitted: FittedImage, pixels: np.ndarray, deadzones: tuple[float, ...] = ()
) -> tuple[dict[str, QuantizedModule], int]:
    """Quantized modules (by name, every tensor with its own step and, among nearest rounding
    and ``deadzones``, its cheapest rounding) and the prior's scale index."""
    arch = fitted.arch
    grids = round_latents(fitted.grids)
    current = dict(fitted.params)
    chosen: dict[str, QuantizedModule] = {}
    with torch.no_grad():
        target = to_unit(pixels)
        for name, shapes in arch.modules().items():
            cost = _module_cost(name, fitted, grids, target, dict(current))
            floats = {k: fitted.params[k] for k in shapes}
            module = min(
                (QuantizedModule.quantize(floats, exponent) for exponent in EXPONENTS), key=cost
            )
            chosen[name] = refine_tensors(module, floats, cost, deadzones)
            current |= chosen[name].dequantized()
    return chosen, log_scale_index(float(fitted.prior_log_scale))


def _module_cost(
    name: str,
    fitted: FittedImage,
    grids: list[torch.Tensor],
    target: torch.Tensor,
    others: dict[str, torch.Tensor],
) -> Callable[[QuantizedModule], float]:
    """D + λR of the image with module ``name`` quantized as given and the other parameters
    as in ``others`` (the modules before it already quantized). ``grids``: the rounded
    latents; ``target``: the image ``(C, H, W)`` in [0, 1]."""
    arch = fitted.arch
    model = ImageModel(arch, torch.device("cpu"))
    pixel_count = arch.height * arch.width

    # The synthesis's trials all read the same input: sample the grids once.
    dense = model.dense_latents(others, grids) if name == "synthesis" else None

    def cost(module: QuantizedModule) -> float:
        trial = others | module.dequantized()
        bits = module_bits(module)
        error = 0.0
        if name == "synthesis":
            error = float(torch.mean((synthesize(arch.synthesis, trial, dense) - target) ** 2))
        elif name == "upsampling":
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
