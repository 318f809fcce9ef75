"""Quantized Laplace distributions: the training rate and the coder's snapped parameters."""

from __future__ import annotations

import math

import numpy as np
import torch

from inrstore.models.core.mlp import FRACTION_BITS

LATENT_MIN = -64
LATENT_MAX = 63
"""Latent symbols are integers in [LATENT_MIN, LATENT_MAX]."""

LOG_SCALE_STEPS = 16
"""Log-scales are snapped to multiples of 1/16 (natural log)."""

LOG_SCALE_MIN_INDEX = -64
LOG_SCALE_MAX_INDEX = 64
"""Scale indices: σ = exp(index / 16) for index in [-64, 64], i.e. σ ∈ [0.018, 54.6]."""

LOG_SCALE_MIN = LOG_SCALE_MIN_INDEX / LOG_SCALE_STEPS
LOG_SCALE_MAX = LOG_SCALE_MAX_INDEX / LOG_SCALE_STEPS

SCALE_TABLE = np.array(
    [
        round(math.exp(index / LOG_SCALE_STEPS) * 2**20) / 2**20
        for index in range(LOG_SCALE_MIN_INDEX, LOG_SCALE_MAX_INDEX + 1)
    ],
    dtype=np.float64,
)
"""The coder's scales, rounded to multiples of 2**-20 (part of the format: never change)."""

_MIN_PROBABILITY = 2.0**-16


def laplace_bits(values: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """−log2 P(values) under Laplace(μ, exp(log σ)) integrated over ``[v − ½, v + ½]``.

    Differentiable in all three arguments; log σ is clamped to the coder's table range.
    """
    scale = torch.exp(log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX))
    upper = _laplace_cdf(values + 0.5, mu, scale)
    lower = _laplace_cdf(values - 0.5, mu, scale)
    return -torch.log2((upper - lower).clamp_min(_MIN_PROBABILITY))


def _laplace_cdf(x: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    z = (x - mu) / scale
    tail = 0.5 * torch.exp(-z.abs())
    return torch.where(z < 0, tail, 1.0 - tail)


def snap_parameters(
    mu_fixed: np.ndarray, log_scale_fixed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point network outputs → the coder's (means, scales), exactly reproducible.

    μ keeps its 1/256 steps, clamped to the symbol range; log σ is rounded to a table index.
    """
    mu = np.clip(mu_fixed / float(2**FRACTION_BITS), LATENT_MIN, LATENT_MAX)
    return mu, SCALE_TABLE[scale_indices(log_scale_fixed) - LOG_SCALE_MIN_INDEX]


def scale_indices(log_scale_fixed: np.ndarray) -> np.ndarray:
    """Fixed-point log σ → the nearest table indices (int64, clamped to the table)."""
    one = float(2**FRACTION_BITS)
    index = np.floor((log_scale_fixed * LOG_SCALE_STEPS + one / 2) / one)
    return np.clip(index, LOG_SCALE_MIN_INDEX, LOG_SCALE_MAX_INDEX).astype(np.int64)


def log_scale_index(log_scale: float) -> int:
    """Nearest table index of a real log σ."""
    index = round(log_scale * LOG_SCALE_STEPS)
    return max(LOG_SCALE_MIN_INDEX, min(LOG_SCALE_MAX_INDEX, index))
