"""The table coding of format 2: its arithmetic, its round trip, its cost against format 1."""

from __future__ import annotations

import constriction
import numpy as np
import pytest

from inrstore.models.codec import fixed_entropy_model
from inrstore.models.core.architecture import Architecture
from inrstore.models.entropy.coding import (
    LAPLACE_CODING,
    TABLE_CODING,
    decode_latents,
    encode_latents,
)
from inrstore.models.entropy.laplace import SCALE_TABLE
from inrstore.models.entropy.tables import (
    OFFSET_LIMIT,
    bin_probabilities,
    exp_negative,
    read_symbols,
    write_symbols,
)

from .conftest import random_grids, random_modules


def test_exp_negative_matches_libm_within_a_few_ulps() -> None:
    x = np.concatenate([np.linspace(0, 60, 100_001), [1e-300, 0.5, 59.999999]])
    np.testing.assert_allclose(exp_negative(x), np.exp(-x), rtol=5e-15, atol=0)
    assert exp_negative(np.array([1e6]))[0] == exp_negative(np.array([60.0]))[0]


@pytest.mark.parametrize("scale_index", [0, 40, 64, 100, 128])
@pytest.mark.parametrize("fraction", [0, 1, 8, 15])
def test_bin_probabilities_integrate_the_laplace_density(scale_index: int, fraction: int) -> None:
    probabilities = bin_probabilities(scale_index)[fraction]
    scale, mean = SCALE_TABLE[scale_index], fraction / 16
    bounds = np.arange(-OFFSET_LIMIT, OFFSET_LIMIT + 2) - 0.5 - mean
    tail = 0.5 * np.exp(-np.abs(bounds) / scale)
    cdf = np.where(bounds < 0, tail, 1 - tail)
    np.testing.assert_allclose(probabilities, np.diff(cdf), rtol=0, atol=1e-12)
    # The most likely offset is the bin holding the mean; the mass beyond ±127 offsets (a
    # share of wide tables) is missing, never added.
    assert np.argmax(probabilities) - OFFSET_LIMIT == (fraction > 8)
    assert probabilities.min() >= 0 and probabilities.sum() <= 1 + 1e-15


def test_symbols_round_trip_at_the_edges_of_every_range() -> None:
    rng = np.random.default_rng(5)
    count = 20_000
    symbols = rng.integers(-64, 64, count)
    symbols[:128] = np.arange(-64, 64)
    # Means beyond the symbol range (clamped), log scales beyond the table (clamped), in the
    # coder's fixed point (1/256).
    mu = np.floor(rng.uniform(-70, 70, count) * 256)
    log_scale = np.floor(rng.uniform(-5, 5, count) * 256)
    mu[:128], log_scale[:128] = -64 * 256, -5 * 256  # the far end of the sharpest table
    encoder = constriction.stream.queue.RangeEncoder()
    write_symbols(encoder, symbols, mu, log_scale)
    decoder = constriction.stream.queue.RangeDecoder(encoder.get_compressed())
    assert np.array_equal(read_symbols(decoder, mu, log_scale), symbols)


@pytest.mark.parametrize("arm_levels", [0, 1])
def test_table_coding_costs_within_half_a_percent_of_per_symbol_laplace(arm_levels: int) -> None:
    """Means snapped to 1/16 instead of 1/256: a small price (0.1% measured on kodim23)."""
    arch = Architecture(96, 128, 3, levels=5, arm_levels=arm_levels)
    model = fixed_entropy_model(arch, random_modules(arch, seed=2), prior_index=20)
    grids = random_grids(arch, seed=3)
    sizes = {}
    for coding in (LAPLACE_CODING, TABLE_CODING):
        payload, flags = encode_latents(model, grids, coding)
        decoded = decode_latents(model, payload, flags, coding)
        assert all(np.array_equal(a, b) for a, b in zip(decoded, grids, strict=True))
        sizes[coding] = len(payload)
    assert abs(sizes[TABLE_CODING] / sizes[LAPLACE_CODING] - 1) < 0.005
