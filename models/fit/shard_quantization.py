"""Quantizing a trained shard: each module's basis step and coefficient step by D + λR.

Greedy over modules like the single image: for each candidate basis exponent (coefficients
held fine), then each coefficient exponent, the members' integer weights are mixed exactly as
the decoder will mix them and the shard's cost ``Σ P_i MSE_i + λ (latent bits + coefficient
bits + basis bits)`` is estimated on a sample of members (at most :data:`SAMPLE_MEMBERS`
members, :data:`SAMPLE_PIXELS` pixels), scaled to the whole shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inrstore.models.bitstream.parameters import parameter_bits, scale_code
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mixture import member_modules, mix_integers
from inrstore.models.core.mlp import WEIGHT_LIMIT
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.entropy.laplace import log_scale_index
from inrstore.models.fit.image_model import ImageModel, to_unit
from inrstore.models.fit.network_quantization import EXPONENTS, round_latents
from inrstore.models.fit.shard_train import FittedShard, member_arch

COEFFICIENT_EXPONENTS = range(2, 13)
SEARCH_COEFFICIENT_EXPONENT = 12
"""Coefficient exponent held while the basis exponent is searched."""
SAMPLE_MEMBERS = 32
SAMPLE_PIXELS = 1 << 18


@dataclass
class QuantizedShard:
    """Integer bases ``(K, *shape)`` per module, per-member integer coefficients ``(K,)`` per
    module (None for plain sharing), prior scale indices and integer grids (finest first)."""

    template: Architecture
    bases: dict[str, QuantizedModule]
    coefficient_exponents: dict[str, int] | None
    coefficients: list[dict[str, np.ndarray]] | None
    prior_indices: list[int]
    grids: list[list[np.ndarray]]

    @property
    def basis_count(self) -> int:
        """K, the number of bases."""
        return next(iter(self.bases["synthesis"].integers.values())).shape[0]

    def member_modules(self, index: int) -> dict[str, QuantizedModule]:
        """Member ``index``'s quantized networks, mixed in integers."""
        return member_modules(
            self.bases,
            None if self.coefficients is None else self.coefficients[index],
            self.coefficient_exponents,
        )


def quantize_coefficients(alpha: torch.Tensor, exponent: int) -> np.ndarray:
    """Float coefficients → integers at step ``2**-exponent`` (same shape)."""
    scaled = torch.round(alpha.double() * 2.0**exponent)
    return scaled.clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT - 1).long().numpy()


@dataclass
class _Sample:
    index: int
    model: ImageModel
    target: torch.Tensor
    grids: list[torch.Tensor]
    prior: torch.Tensor
    params: dict[str, torch.Tensor]


def quantize_shard(fitted: FittedShard, images: list[np.ndarray]) -> QuantizedShard:
    """Choose the steps, then quantize bases, coefficients, priors and latents."""
    count = len(images)
    samples = [
        _Sample(
            index,
            ImageModel(member_arch(fitted.template, *images[index].shape[:2]), torch.device("cpu")),
            to_unit(images[index]),
            round_latents(fitted.grids[index]),
            fitted.prior_log_scales[index],
            fitted.member_parameters(index),
        )
        for index in _sample_indices(images)
    ]
    weight = count / len(samples)
    bases: dict[str, QuantizedModule] = {}
    exponents: dict[str, int] | None = None if fitted.coefficients is None else {}
    with torch.no_grad():
        for module, shapes in fitted.template.modules().items():
            float_bases = {name: fitted.bases[name] for name in shapes}
            alpha = None if fitted.coefficients is None else fitted.coefficients[module]

            def cost(basis: QuantizedModule, alpha_exponent: int, module=module, alpha=alpha):
                flat = basis.flat()
                bits = parameter_bits(flat, scale_code(flat))
                integers = None
                if alpha is not None:
                    integers = quantize_coefficients(alpha, alpha_exponent)
                    bits += parameter_bits(integers, scale_code(integers))
                total = 0.0
                for sample in samples:
                    own = None if integers is None else integers[sample.index]
                    trial = sample.params | mix_integers(basis, own, alpha_exponent).dequantized()
                    total += weight * _sample_cost(sample, module, trial, fitted.lam)
                return total + fitted.lam * bits

            candidates = [QuantizedModule.quantize(float_bases, e) for e in EXPONENTS]
            basis = min(candidates, key=lambda b: cost(b, SEARCH_COEFFICIENT_EXPONENT))
            if exponents is not None:
                exponents[module] = min(COEFFICIENT_EXPONENTS, key=lambda c: cost(basis, c))
            bases[module] = basis
            for sample in samples:
                own = None
                if alpha is not None:
                    own = quantize_coefficients(alpha[sample.index], exponents[module])
                mixed = mix_integers(basis, own, 0 if exponents is None else exponents[module])
                sample.params = sample.params | mixed.dequantized()
    coefficients = None
    if fitted.coefficients is not None:
        integers = {
            module: quantize_coefficients(alpha, exponents[module])
            for module, alpha in fitted.coefficients.items()
        }
        coefficients = [{m: values[i] for m, values in integers.items()} for i in range(count)]
    return QuantizedShard(
        template=fitted.template,
        bases=bases,
        coefficient_exponents=exponents,
        coefficients=coefficients,
        prior_indices=[log_scale_index(float(p)) for p in fitted.prior_log_scales],
        grids=[
            [grid.numpy().astype(np.int64) for grid in round_latents(member)]
            for member in fitted.grids
        ],
    )


def _sample_indices(images: list[np.ndarray]) -> list[int]:
    """Evenly spaced members, up to the sample's member and pixel limits (at least one)."""
    count = len(images)
    stride = max(1, count // SAMPLE_MEMBERS)
    chosen, pixels = [], 0
    for index in range(0, count, stride):
        if chosen and (len(chosen) >= SAMPLE_MEMBERS or pixels >= SAMPLE_PIXELS):
            break
        chosen.append(index)
        pixels += images[index].shape[0] * images[index].shape[1]
    return chosen


def _sample_cost(sample: _Sample, module: str, params, lam: float) -> float:
    """Squared error × pixels for the synthesis; λ × latent bits for an entropy module."""
    if module == "synthesis":
        error = torch.mean((sample.model.reconstruct(params, sample.grids) - sample.target) ** 2)
        return float(error) * sample.target.shape[1] * sample.target.shape[2]
    return lam * float(sample.model.latent_bits(params, sample.grids, sample.prior))
