"""Quantizing a trained shard: its bases by the one network quantizer
(:func:`~inrstore.models.fit.network_quantization.quantize_modules`: per-tensor steps and
dead zones), each module's coefficient step by D + λR.

The cost of a trial is the shard's ``Σ P_i MSE_i + λ (latent bits + coefficient bits +
basis bits)``, the members' integer weights mixed exactly as the decoder will mix them,
estimated on a sample of members (at most :data:`SAMPLE_MEMBERS` members,
:data:`SAMPLE_PIXELS` pixels) and scaled to the whole shard. A module's bases are searched
with the coefficients held fine (:data:`SEARCH_COEFFICIENT_EXPONENT`), then its coefficient
exponent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from inrstore.models.bitstream.parameters import parameter_bits, scale_code
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mixture import member_modules, mix_integers
from inrstore.models.core.mlp import WEIGHT_LIMIT
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.entropy.laplace import LATENT_MAX, LATENT_MIN, log_scale_index
from inrstore.models.fit.image_model import ImageModel, to_unit
from inrstore.models.fit.network_quantization import module_bits, quantize_modules, round_latents
from inrstore.models.fit.shard_train import FittedShard, member_arch
from inrstore.models.fit.shared_latents import with_shared

COEFFICIENT_EXPONENTS = range(2, 13)
SEARCH_COEFFICIENT_EXPONENT = 12
"""Coefficient exponent held while the basis steps are searched."""
SAMPLE_MEMBERS = 32
SAMPLE_PIXELS = 1 << 18
DISTORTION_MODULES = ("upsampling", "synthesis")
"""Modules that change the pixels (the others change the latents' bits)."""


@dataclass
class QuantizedShard:
    """Integer bases ``(K, *shape)`` per module, per-member integer coefficients ``(K,)`` per
    module (None for plain sharing), prior scale indices, zeroed finest grids and integer
    grids (finest first) per member."""

    template: Architecture
    bases: dict[str, QuantizedModule]
    coefficient_exponents: dict[str, int] | None
    coefficients: list[dict[str, np.ndarray]] | None
    prior_indices: list[int]
    grids: list[list[np.ndarray]]
    shared: QuantizedLatents | None = None

    @property
    def basis_count(self) -> int:
        """K, the number of bases."""
        return next(iter(self.bases["synthesis"].integers.values())).shape[0]

    def folded(self) -> QuantizedShard | None:
        """The shard with its shared latents added to every member's grids (the same
        pixels, nothing shared); None without shared latents or where a sum leaves the
        symbol range."""
        if self.shared is None:
            return None
        grids = [with_shared(member, self.shared.grids) for member in self.grids]
        if any(g.min() < LATENT_MIN or g.max() > LATENT_MAX for member in grids for g in member):
            return None
        return replace(self, grids=grids, shared=None)

    def member_modules(self, index: int) -> dict[str, QuantizedModule]:
        """Member ``index``'s quantized networks, mixed in integers."""
        return member_modules(
            self.bases,
            None if self.coefficients is None else self.coefficients[index],
            self.coefficient_exponents,
        )


@dataclass(frozen=True)
class QuantizedLatents:
    """Shared latent grids as integers (finest first) and their prior's scale index."""

    grids: list[np.ndarray]
    prior_index: int


def quantize_coefficients(alpha: torch.Tensor, exponent: int) -> np.ndarray:
    """Float coefficients → integers at step ``2**-exponent`` (same shape)."""
    scaled = torch.round(alpha.double() * 2.0**exponent)
    return scaled.clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT - 1).long().numpy()


@dataclass
class _Sample:
    """A member in the cost estimate (``weight``: how many members it stands for), or the
    shared latents (``target`` None: bits only, counted once). ``shared``: the rounded shared
    grids its synthesis adds to its own (empty when there are none)."""

    index: int
    model: ImageModel
    target: torch.Tensor | None
    grids: list[torch.Tensor]
    prior: torch.Tensor
    zero_levels: int
    params: dict[str, torch.Tensor]
    weight: float
    shared: list[torch.Tensor]

    def cost(self, module: str, params, lam: float) -> float:
        """Squared error × pixels for a module that changes the pixels; λ × latent bits for
        an entropy module."""
        if module in DISTORTION_MODULES:
            if self.target is None:
                return 0.0
            seen = with_shared(self.grids, self.shared)
            error = torch.mean((self.model.reconstruct(params, seen) - self.target) ** 2)
            return float(error) * self.target.shape[1] * self.target.shape[2]
        return lam * float(self.model.latent_bits(params, self.grids, self.prior, self.zero_levels))


class _ShardCosts:
    """The shard's D + λR of trial bases (:class:`~inrstore.models.fit.
    network_quantization.ModuleCosts`); choosing a module's coefficient exponent when its
    bases are accepted."""

    def __init__(self, fitted: FittedShard, images: list[np.ndarray]) -> None:
        self.fitted = fitted
        chosen = _sample_indices(images)
        shared = [] if fitted.shared is None else round_latents(fitted.shared.grids)
        self.samples = [
            _Sample(
                index,
                _model(fitted, images[index]),
                to_unit(images[index]),
                round_latents(fitted.grids[index]),
                fitted.prior_log_scales[index],
                fitted.zero_levels[index],
                fitted.member_parameters(index),
                len(images) / len(chosen),
                shared,
            )
            for index in chosen
        ]
        if fitted.shared is not None:
            self.samples.append(
                _Sample(
                    0,
                    _model(fitted, images[0]),
                    None,
                    shared,
                    fitted.shared.prior_log_scale,
                    fitted.shared.zero_levels,
                    fitted.member_parameters(0),
                    1.0,
                    [],
                )
            )
        self.exponents: dict[str, int] | None = None if fitted.coefficients is None else {}

    def _trial(self, module: str, basis: QuantizedModule, alpha_exponent: int) -> float:
        alpha = None if self.fitted.coefficients is None else self.fitted.coefficients[module]
        bits = module_bits(basis)
        integers = None
        if alpha is not None:
            integers = quantize_coefficients(alpha, alpha_exponent)
            bits += parameter_bits(integers, scale_code(integers))
        total = 0.0
        for sample in self.samples:
            own = None if integers is None else integers[sample.index]
            trial = sample.params | mix_integers(basis, own, alpha_exponent).dequantized()
            total += sample.weight * sample.cost(module, trial, self.fitted.lam)
        return total + self.fitted.lam * bits

    def cost(self, module: str) -> Callable[[QuantizedModule], float]:
        exponent = 0 if self.exponents is None else SEARCH_COEFFICIENT_EXPONENT
        return lambda basis: self._trial(module, basis, exponent)

    def accept(self, module: str, quantized: QuantizedModule) -> None:
        exponent = 0
        if self.exponents is not None:
            exponent = min(COEFFICIENT_EXPONENTS, key=lambda c: self._trial(module, quantized, c))
            self.exponents[module] = exponent
        for sample in self.samples:
            own = None
            if self.exponents is not None:
                alpha = self.fitted.coefficients[module][sample.index]
                own = quantize_coefficients(alpha, exponent)
            sample.params = sample.params | mix_integers(quantized, own, exponent).dequantized()


def _model(fitted: FittedShard, image: np.ndarray) -> ImageModel:
    return ImageModel(member_arch(fitted.template, *image.shape[:2]), torch.device("cpu"))


def quantize_shard(
    fitted: FittedShard, images: list[np.ndarray], deadzones: tuple[float, ...] = ()
) -> QuantizedShard:
    """Choose the steps, then quantize bases, coefficients, priors and latents."""
    costs = _ShardCosts(fitted, images)
    floats = {
        module: {name: fitted.bases[name] for name in shapes}
        for module, shapes in fitted.template.modules().items()
    }
    bases = quantize_modules(costs, floats, deadzones)
    coefficients = None
    if fitted.coefficients is not None:
        integers = {
            module: quantize_coefficients(alpha, costs.exponents[module])
            for module, alpha in fitted.coefficients.items()
        }
        coefficients = [
            {module: values[i] for module, values in integers.items()} for i in range(len(images))
        ]
    return QuantizedShard(
        template=fitted.template,
        bases=bases,
        coefficient_exponents=costs.exponents,
        coefficients=coefficients,
        prior_indices=[log_scale_index(float(p)) for p in fitted.prior_log_scales],
        grids=[_integers(member) for member in fitted.grids],
        shared=None
        if fitted.shared is None
        else QuantizedLatents(
            _integers(fitted.shared.grids), log_scale_index(float(fitted.shared.prior_log_scale))
        ),
    )


def _integers(grids: list[torch.Tensor]) -> list[np.ndarray]:
    return [grid.numpy().astype(np.int64) for grid in round_latents(grids)]


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
