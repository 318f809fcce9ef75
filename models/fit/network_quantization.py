"""Choosing each module's quantization step by D + λR, after training.

Greedy over modules (synthesis, then the entropy networks): for each candidate exponent the
module is quantized, the cost ``MSE + λ (latent bits + parameter bits) / (H W)`` is measured
with the latents hard-rounded, and the cheapest exponent is kept.
"""

from __future__ import annotations

import numpy as np
import torch

from inrstore.models.bitstream.parameters import parameter_bits, scale_code
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.entropy.laplace import LATENT_MAX, LATENT_MIN, log_scale_index
from inrstore.models.fit.image_model import ImageModel, to_unit
from inrstore.models.fit.train import FittedImage

EXPONENTS = range(4, 17)


def round_latents(grids: list[torch.Tensor]) -> list[torch.Tensor]:
    """The latents as the decoder will see them: rounded and clamped to the symbol range."""
    return [torch.round(grid).clamp(LATENT_MIN, LATENT_MAX) for grid in grids]


def quantize_networks(
    fitted: FittedImage, pixels: np.ndarray
) -> tuple[dict[str, QuantizedModule], int]:
    """Quantized modules (by name) and the prior's scale index."""
    arch = fitted.arch
    model = ImageModel(arch, torch.device("cpu"))
    target = to_unit(pixels)
    grids = round_latents(fitted.grids)
    pixel_count = arch.height * arch.width
    current = dict(fitted.params)
    chosen: dict[str, QuantizedModule] = {}
    with torch.no_grad():
        for name, shapes in arch.modules().items():
            best = None
            for exponent in EXPONENTS:
                module = QuantizedModule.quantize({k: fitted.params[k] for k in shapes}, exponent)
                trial = current | module.dequantized()
                flat = module.flat()
                bits = parameter_bits(flat, scale_code(flat))
                if name == "synthesis":
                    error = torch.mean((model.reconstruct(trial, grids) - target) ** 2)
                    cost = float(error) + fitted.lam * bits / pixel_count
                else:
                    bits += float(
                        model.latent_bits(trial, grids, fitted.prior_log_scale, fitted.zero_levels)
                    )
                    cost = fitted.lam * bits / pixel_count
                if best is None or cost < best[0]:
                    best = (cost, module)
            chosen[name] = best[1]
            current |= best[1].dequantized()
    return chosen, log_scale_index(float(fitted.prior_log_scale))
