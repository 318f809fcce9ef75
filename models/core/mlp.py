"""Per-pixel multilayer perceptrons with functional parameters, in float and in fixed point.

Parameters live in a flat ``dict[str, Tensor]`` keyed ``"<prefix>w<i>"`` (shape
``(fan_in, fan_out)``) and ``"<prefix>b<i>"`` (shape ``(fan_out,)``), so that they can come
from an ``nn.ParameterDict`` (one image) or from a mixture of weight bases (a shard).

The fixed-point path computes the same network on integers with no rounding anywhere but in
explicit floor shifts. Integers are held in float64 and kept below 2**53 in magnitude, so every
sum is exact whatever the summation order of the BLAS library, thread count or machine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Params = Mapping[str, torch.Tensor]

FRACTION_BITS = 8
"""Fractional bits of activations in the fixed-point path (values are multiples of 1/256)."""

ACTIVATION_LIMIT = 2.0**22
"""Hidden activations are clamped to ±2**22 (±16384.0): with weights below 2**15 and fan-in
below 2**15, every accumulator stays under 2**52, exact in float64."""

WEIGHT_LIMIT = 2**15
"""Quantized weights are integers in [-2**15, 2**15 - 1]."""


@dataclass(frozen=True)
class MLPShape:
    """Layer widths ``(in, hidden..., out)``; ReLU between layers, none after the last."""

    widths: tuple[int, ...]

    def parameter_shapes(self, prefix: str) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (fan_in, fan_out) in enumerate(zip(self.widths[:-1], self.widths[1:], strict=True)):
            shapes[f"{prefix}w{i}"] = (fan_in, fan_out)
            shapes[f"{prefix}b{i}"] = (fan_out,)
        return shapes

    @property
    def macs(self) -> int:
        """Multiply-accumulates per evaluated position."""
        return sum(a * b for a, b in zip(self.widths[:-1], self.widths[1:], strict=True))


def mlp_forward(
    shape: MLPShape, params: Params, prefix: str, x: torch.Tensor, start: int = 0
) -> torch.Tensor:
    """Float forward, channels first. ``x``: ``(in, N)`` → ``(out, N)``, or a batch of
    members ``(B, in, N)`` → ``(B, out, N)`` with ``params`` stacked (``(B, in, out)`` weights,
    ``(B, out)`` biases; each member's outputs bit for bit those of its own forward).

    Channels first keeps every matrix product a small matrix times a long contiguous one,
    forward and backward; on a CPU that is 2-3× faster than ``(N, in) @ (in, out)``, whose
    weight gradient multiplies two long transposed operands. ``start`` > 0 skips the first
    layers: ``x`` is then the (activated) input of layer ``start``.
    """
    layers = len(shape.widths) - 1
    for i in range(start, layers):
        weight, bias = params[f"{prefix}w{i}"], params[f"{prefix}b{i}"]
        if x.dim() == 3:  # a batch: every tensor has a leading member dimension
            x = torch.baddbmm(bias[..., None], weight.transpose(1, 2), x)
        else:
            x = torch.addmm(bias[:, None], weight.T, x)
        if i < layers - 1:
            x = torch.relu_(x)
    return x


@dataclass(frozen=True)
class FixedLayer:
    """One quantized layer: integer ``weight`` ``(fan_in, fan_out)`` at step ``2**-exponent``
    and ``bias`` ``(fan_out,)`` at step ``2**-bias_exponent`` (float64 arrays holding
    integers; both may carry a leading member dimension, one layer of several members).

    Both exponents in [0, 16] keep every accumulator exact: its finest unit is
    ``2**-max(exponent, bias_exponent - FRACTION_BITS)``, and in that unit, with inputs below
    2**22, weights below 2**15 and a fan-in below 2**7 (the entropy networks' widths are at
    most 64), the products' sum stays below 2**52 and the bias below 2**39."""

    weight: np.ndarray
    bias: np.ndarray
    exponent: int
    bias_exponent: int

    @functools.cached_property
    def scaled_weight(self) -> np.ndarray:
        """``weightᵀ × 2**-exponent``, ``(fan_out, fan_in)``: a power-of-two scaling, so every
        product with an integer input is exact and the accumulator needs no rescaling."""
        return scaled_weight(self.weight, self.exponent)

    @functools.cached_property
    def scaled_bias(self) -> np.ndarray:
        """``bias`` in the accumulator's unit: ``bias × 2**(FRACTION_BITS - bias_exponent)``,
        ``(fan_out, 1)``."""
        return scaled_bias(self.bias, self.bias_exponent)


def scaled_weight(weight: np.ndarray, exponent: int) -> np.ndarray:
    """:attr:`FixedLayer.scaled_weight` of ``weight`` ``(..., fan_in, fan_out)``: ``(...,
    fan_out, fan_in)``, any leading dimensions (a batch of members)."""
    return np.ascontiguousarray(np.swapaxes(weight, -1, -2)) * 2.0**-exponent


def scaled_bias(bias: np.ndarray, bias_exponent: int) -> np.ndarray:
    """:attr:`FixedLayer.scaled_bias` of ``bias`` ``(..., fan_out)``: ``(..., fan_out, 1)``."""
    return (bias * 2.0 ** (FRACTION_BITS - bias_exponent))[..., None]


def fixed_layers(
    shape: MLPShape, integers: Params, prefix: str, exponent_of: Callable[[str], int]
) -> list[FixedLayer]:
    """The layers of an MLP whose parameter ``name`` holds integers at step
    ``2**-exponent_of(name)``."""
    return [
        FixedLayer(
            integers[f"{prefix}w{i}"].numpy().astype(np.float64),
            integers[f"{prefix}b{i}"].numpy().astype(np.float64),
            exponent_of(f"{prefix}w{i}"),
            exponent_of(f"{prefix}b{i}"),
        )
        for i in range(len(shape.widths) - 1)
    ]


def exact_product(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``weight @ x`` for float64 arrays of integers small enough that every sum is exact.

    Large products go to torch's BLAS rather than numpy's, so that one thread pool serves the
    whole decoder: numpy's OpenBLAS threads and torch's spin against each other between calls
    (on 2 cores a 2-thread decode of kodim23 took 0.86 s instead of 0.21 s). Small ones (an
    ARM wavefront) stay in numpy, whose per-call cost is lower.
    """
    if x.shape[1] < 1024:
        return weight @ x
    return (torch.from_numpy(weight) @ torch.from_numpy(x)).numpy()


FORWARD_BLOCK = 8192
"""Columns per block of :func:`fixed_forward`: one block's activations (16 × 8192 float64,
1 MiB) stay in the CPU's cache through every layer, about 2× faster than whole-array layers."""


def fixed_forward(
    layers: Sequence[FixedLayer], x: np.ndarray, *, pending: bool = False
) -> np.ndarray:
    """Fixed-point forward, bit-exact on every machine.

    ``x``: ``(in, N)`` float64 integers with :data:`FRACTION_BITS` fractional bits, or, with
    ``pending``, the accumulator of an earlier hidden layer still to be activated (in place).
    Returns ``(out, N)`` float64 integers with the same fractional bits. Columns are
    independent, so they run in blocks of :data:`FORWARD_BLOCK`.
    """
    count, last = x.shape[1], len(layers) - 1
    output = np.empty((layers[-1].weight.shape[1] if layers else x.shape[0], count))
    for start in range(0, count, FORWARD_BLOCK):
        block = x[:, start : start + FORWARD_BLOCK]
        if pending:
            block = fixed_activation(block, last=not layers)
        for i, layer in enumerate(layers):
            accumulator = exact_product(layer.scaled_weight, block)
            accumulator += layer.scaled_bias
            block = fixed_activation(accumulator, last=i == last)
        output[:, start : start + FORWARD_BLOCK] = block
    return output


def fixed_activation(accumulator: np.ndarray, last: bool) -> np.ndarray:
    """Floor an accumulator (in activation units) in place and clamp it: to
    ``[0, ACTIVATION_LIMIT]`` (ReLU) for hidden layers, to ``±ACTIVATION_LIMIT`` for the last."""
    np.floor(accumulator, out=accumulator)
    return np.clip(
        accumulator, -ACTIVATION_LIMIT if last else 0.0, ACTIVATION_LIMIT, out=accumulator
    )
