"""Latent and parameter coding: exact round trips for every mix of ARU and ARM grids."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from inrstore.models.bitstream.parameters import (
    decode_parameters,
    encode_parameters,
    parameter_bits,
    scale_code,
)
from inrstore.models.codec import fixed_entropy_model
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.entropy.coding import CODINGS, decode_latents, encode_latents
from inrstore.models.entropy.laplace import LOG_SCALE_STEPS, SCALE_TABLE
from inrstore.models.fit.image_model import ImageModel

from .conftest import random_grids, random_modules


@pytest.mark.parametrize(("height", "width", "levels", "arm_levels", "arm_context"), [
    (16, 16, 3, 0, 12), (13, 21, 4, 1, 12), (24, 17, 4, 3, 12), (9, 9, 1, 0, 12),
    (13, 21, 4, 1, 24), (24, 17, 4, 3, 24),
])  # fmt: skip
@pytest.mark.parametrize("coding", CODINGS)
def test_latents_round_trip(
    height: int, width: int, levels: int, arm_levels: int, arm_context: int, coding: int
) -> None:
    arch = Architecture(height, width, 3, levels, arm_levels, arm_context=arm_context)
    model = fixed_entropy_model(arch, random_modules(arch, seed=levels), prior_index=20)
    grids = random_grids(arch, seed=height)
    payload, zero_flags = encode_latents(model, grids, coding)
    assert zero_flags == 0
    decoded = decode_latents(model, payload, zero_flags, coding)
    for original, result in zip(grids, decoded, strict=True):
        np.testing.assert_array_equal(result, original)


def test_zero_grids_are_flagged_and_cost_nothing() -> None:
    arch = Architecture(20, 20, 3, 4, 1)
    model = fixed_entropy_model(arch, random_modules(arch, seed=1), prior_index=0)
    grids = random_grids(arch, seed=2)
    grids[0][:] = 0
    grids[2][:] = 0
    payload, zero_flags = encode_latents(model, grids)
    assert zero_flags == 0b101
    decoded = decode_latents(model, payload, zero_flags)
    for original, result in zip(grids, decoded, strict=True):
        np.testing.assert_array_equal(result, original)
    everything_zero, flags = encode_latents(model, [np.zeros_like(g) for g in grids])
    assert flags == 0b1111 and len(everything_zero) <= 4


def test_out_of_range_latents_are_refused() -> None:
    arch = Architecture(8, 8, 1, 2, 0)
    model = fixed_entropy_model(arch, random_modules(arch, seed=3), prior_index=0)
    grids = random_grids(arch, seed=4)
    grids[1][0, 0] = 64
    with pytest.raises(ValueError, match=r"latent symbols must lie in \[-64, 63\]"):
        encode_latents(model, grids)


def test_parameters_round_trip_and_size_estimate() -> None:
    rng = np.random.default_rng(0)
    modules = [np.round(rng.laplace(0, s, n)).astype(np.int64) for s, n in ((40, 900), (3, 200))]
    codes = [scale_code(m) for m in modules]
    payload = encode_parameters(list(zip(modules, codes, strict=True)))
    decoded = decode_parameters(payload, [(len(m), c) for m, c in zip(modules, codes, strict=True)])
    for original, result in zip(modules, decoded, strict=True):
        np.testing.assert_array_equal(result, original)
    estimate = sum(parameter_bits(m, c) for m, c in zip(modules, codes, strict=True))
    assert abs(len(payload) * 8 - estimate) < 0.03 * estimate + 64


def test_scale_table_is_positive_increasing_and_stable() -> None:
    assert np.all(SCALE_TABLE > 0) and np.all(np.diff(SCALE_TABLE) > 0)
    assert SCALE_TABLE[64] == 1.0  # index 0: σ = exp(0)
    # Part of format version 1: a change here makes old bitstreams undecodable.
    assert hashlib.sha256(SCALE_TABLE.tobytes()).hexdigest() == (
        "0d76d2c7f3ee2ad7fed40bb7503546f639d449e1051bbd294c001935bdb40636"
    )


@pytest.mark.parametrize(("arm_levels", "arm_context"), [(0, 12), (1, 12), (3, 24)])
def test_training_rate_estimate_matches_the_coded_size(arm_levels: int, arm_context: int) -> None:
    """The float entropy model that training differentiates (pass 2 at the non-anchors merged
    into pass 1's map) predicts the coder's payload within a few percent: the coder adds its
    (μ, σ) snapping and a little overhead, never much more."""
    arch = Architecture(24, 40, 3, 4, arm_levels, arm_context=arm_context)
    generator = torch.Generator().manual_seed(7)
    modules = {
        name: QuantizedModule.quantize(
            {k: torch.randn(shape, generator=generator) * 0.1 for k, shape in shapes.items()}, 8
        )
        for name, shapes in arch.modules().items()
    }
    grids = random_grids(arch, seed=8)
    payload, _ = encode_latents(fixed_entropy_model(arch, modules, prior_index=20), grids)
    params = {
        name: value for module in modules.values() for name, value in module.dequantized().items()
    }
    latents = [torch.tensor(grid, dtype=torch.float32) for grid in grids]
    estimate = ImageModel(arch, torch.device("cpu")).latent_bits(
        params, latents, torch.tensor(20 / LOG_SCALE_STEPS)
    )
    assert 1.0 <= len(payload) * 8 / float(estimate) <= 1.04
