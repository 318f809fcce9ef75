"""The fixed-point MLP is exact integer arithmetic, whatever the BLAS does."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inrstore.models.core import mlp
from inrstore.models.core.mlp import (
    ACTIVATION_LIMIT,
    FRACTION_BITS,
    WEIGHT_LIMIT,
    FixedLayer,
    exact_product,
    fixed_forward,
)


def _reference(layers: list[FixedLayer], x: np.ndarray) -> np.ndarray:
    """The same network in Python integers (arbitrary precision, exact floor division)."""
    rows = [[int(v) for v in row] for row in x]
    for i, layer in enumerate(layers):
        weight = layer.weight.astype(np.int64).tolist()
        bias = layer.bias.astype(np.int64).tolist()
        low = 0 if i < len(layers) - 1 else -int(ACTIVATION_LIMIT)
        # Everything in units of 2**-unit, then one exact floor shift.
        unit = max(layer.exponent, layer.bias_exponent)
        out = []
        for row in rows:
            values = []
            for j in range(len(bias)):
                acc = sum(row[k] * weight[k][j] for k in range(len(row)))
                acc <<= unit - layer.exponent
                acc += bias[j] << (FRACTION_BITS + unit - layer.bias_exponent)
                values.append(min(max(acc >> unit, low), int(ACTIVATION_LIMIT)))
            out.append(values)
        rows = out
    return np.array(rows, dtype=np.float64)


@pytest.mark.parametrize("block", [7, 8192])
def test_fixed_forward_matches_exact_integer_arithmetic(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mlp, "FORWARD_BLOCK", block)
    rng = np.random.default_rng(0)
    widths = (14, 16, 16, 2)
    layers = [
        FixedLayer(
            rng.integers(-WEIGHT_LIMIT, WEIGHT_LIMIT, (a, b)).astype(np.float64),
            rng.integers(-WEIGHT_LIMIT, WEIGHT_LIMIT, b).astype(np.float64),
            exponent=int(rng.integers(0, 17)),
            bias_exponent=int(rng.integers(0, 17)),
        )
        for a, b in itertools.pairwise(widths)
    ]
    x = rng.integers(-64 * 256, 64 * 256, (300, widths[0])).astype(np.float64)
    result = fixed_forward(layers, x.T)
    np.testing.assert_array_equal(result, _reference(layers, x).T)
    # Position order (and so any blocking of the matrix product) does not change a value.
    order = rng.permutation(len(x))
    np.testing.assert_array_equal(fixed_forward(layers, x[order].T), result[:, order])
    # A pending accumulator is activated first, as if the first layer had been run here.
    accumulator = layers[0].scaled_weight @ x.T + layers[0].scaled_bias
    np.testing.assert_array_equal(fixed_forward(layers[1:], accumulator, pending=True), result)


@pytest.mark.parametrize("columns", [10, 5000])
def test_exact_product_equals_integer_matrix_product(columns: int) -> None:
    rng = np.random.default_rng(columns)
    weight = rng.integers(-WEIGHT_LIMIT, WEIGHT_LIMIT, (16, 16))
    x = rng.integers(-(2**22), 2**22, (16, columns))
    result = exact_product(weight.astype(np.float64), x.astype(np.float64))
    np.testing.assert_array_equal(result, (weight @ x).astype(np.float64))


@pytest.mark.parametrize(("exponent", "bias_exponent"), [(0, 16), (16, 0), (16, 16)])
def test_fixed_forward_is_exact_at_the_bounds_of_weights_inputs_and_exponents(
    exponent: int, bias_exponent: int
) -> None:
    rng = np.random.default_rng(exponent)
    widths = (64, 64, 2)
    extremes = np.array([-WEIGHT_LIMIT, WEIGHT_LIMIT - 1], dtype=np.float64)
    layers = [
        FixedLayer(rng.choice(extremes, (a, b)), rng.choice(extremes, b), exponent, bias_exponent)
        for a, b in itertools.pairwise(widths)
    ]
    x = rng.choice(np.array([-ACTIVATION_LIMIT, ACTIVATION_LIMIT]), (50, widths[0]))
    np.testing.assert_array_equal(fixed_forward(layers, x.T), _reference(layers, x).T)
