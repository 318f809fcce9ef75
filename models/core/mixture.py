"""Mixture parameters: a member's network weights as a linear combination of shared bases.

For every module (synthesis, ARU, ARM) a shard holds ``K`` weight bases ``B_1 … B_K`` and each
member ``i`` its coefficients ``α_i`` (``K`` per module): ``θ_i = Σ_k α_ik B_k``. ``K = 1`` with
``α ≡ 1`` is plain weight sharing.

The float path (training) mixes float tensors. The integer path (coding) mixes quantized bases
(integers at step ``2**-e``) with quantized coefficients (integers at step ``2**-c``) exactly
(every sum an integer below 2**42) and rounds the sum back to step ``2**-e`` with an explicit
shift in int64, so every machine derives the very same integer weights for a member.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from inrstore.models.core.mlp import WEIGHT_LIMIT
from inrstore.models.core.quantized import QuantizedModule, select_members


def mix_float(
    bases: dict[str, torch.Tensor],
    coefficients: torch.Tensor,
    names: list[str] | tuple[str, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-member parameters ``(N, *shape)`` from bases ``(K, *shape)`` and ``(N, K)``
    coefficients (``names``: the parameters to mix, default all)."""
    chosen = bases if names is None else {name: bases[name] for name in names}
    return {
        name: torch.einsum("nk,k...->n...", coefficients, basis) for name, basis in chosen.items()
    }


def mix_integers(
    bases: QuantizedModule, coefficients: np.ndarray | None, coefficient_exponent: int
) -> QuantizedModule:
    """One member's quantized module from quantized bases (integers ``(K, *shape)``).

    ``coefficients``: ``(K,)`` integers at step ``2**-coefficient_exponent``, or None for plain
    sharing (``K = 1``, ``α = 1``). The result is at the bases' step, rounded half up and
    clamped to the weight range; exact (|α| ≤ 2**15, |B| ≤ 2**15, K ≤ 4096).
    """
    rows = None if coefficients is None else np.asarray(coefficients)[None]
    return mix_integers_together(bases, rows, coefficient_exponent, 1).select(0)


def mix_integers_together(
    bases: QuantizedModule, coefficients: np.ndarray | None, coefficient_exponent: int, count: int
) -> QuantizedModule:
    """:func:`mix_integers` of ``count`` members at once: ``coefficients`` ``(count, K)``, or
    None for plain sharing. Returns one module whose integers carry a leading member
    dimension, ``(count, *shape)`` (plain sharing: the one basis, expanded without a copy);
    :func:`~inrstore.models.core.quantized.select_members` takes members from it."""
    if coefficients is None:
        integers = {
            name: value[0].expand(count, *value.shape[1:]) for name, value in bases.integers.items()
        }
        return QuantizedModule(bases.exponent, integers, bases.tensor_exponents)
    values = [value.numpy() for value in bases.integers.values()]
    flat = np.concatenate([value.reshape(len(value), -1) for value in values], axis=1)
    # |α|, |B| ≤ 2**15 and K ≤ 4096: every product and partial sum is an integer below 2**42,
    # exact in float64 whatever the order of the sums, so BLAS gives int64's integers.
    total = (np.asarray(coefficients, dtype=np.float64) @ flat.astype(np.float64)).astype(np.int64)
    if coefficient_exponent > 0:
        total = (total + (1 << (coefficient_exponent - 1))) >> coefficient_exponent
    total = torch.from_numpy(np.clip(total, -WEIGHT_LIMIT, WEIGHT_LIMIT - 1))
    integers, start = {}, 0
    for name, value in zip(bases.integers, values, strict=True):
        size = value[0].size
        integers[name] = total[:, start : start + size].reshape(count, *value.shape[1:])
        start += size
    return QuantizedModule(bases.exponent, integers, bases.tensor_exponents)


def member_modules(
    bases: dict[str, QuantizedModule],
    coefficients: dict[str, np.ndarray] | None,
    exponents: dict[str, int] | None,
) -> dict[str, QuantizedModule]:
    """Every module of one member from the shard's bases and the member's coefficients."""
    rows = None if coefficients is None else [coefficients]
    return select_members(members_modules(bases, rows, exponents, 1), 0)


def members_modules(
    bases: dict[str, QuantizedModule],
    coefficients: Sequence[dict[str, np.ndarray]] | None,
    exponents: dict[str, int] | None,
    count: int,
) -> dict[str, QuantizedModule]:
    """Every module of ``count`` members (``coefficients``: one dict per member, or None for
    plain sharing), each mixed for all of them at once: integers ``(count, *shape)``
    (:func:`~inrstore.models.core.quantized.select_members` takes members from them)."""
    return {
        name: mix_integers_together(
            module,
            None if coefficients is None else np.stack([own[name] for own in coefficients]),
            0 if exponents is None else exponents[name],
            count,
        )
        for name, module in bases.items()
    }
