"""Training-time quantization of latents: soft-rounding with noise, then straight-through."""

from __future__ import annotations

import math

import torch


def soft_round(y: torch.Tensor, temperature: float) -> torch.Tensor:
    """Differentiable rounding (Agustsson & Theis): tends to ``round(y)`` as T → 0."""
    floor = torch.floor(y)
    remainder = y - floor - 0.5
    return floor + 0.5 + 0.5 * torch.tanh(remainder / temperature) / math.tanh(0.5 / temperature)


def noisy_soft_round(y: torch.Tensor, temperature: float, noise_std: float) -> torch.Tensor:
    """``s_T(s_T(y) + n)`` with Gaussian ``n`` of std ``noise_std``: the C3 training proxy."""
    noise = torch.randn_like(y) * noise_std
    return soft_round(soft_round(y, temperature) + noise, temperature)


def straight_through_round(y: torch.Tensor) -> torch.Tensor:
    """``round(y)`` forward, identity gradient backward."""
    return y + (torch.round(y) - y).detach()
