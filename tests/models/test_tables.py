"""The table and window codings: their arithmetic, round trips and costs against each other."""

from __future__ import annotations

import constriction
import numpy as np
import pytest

from inrstore.models.codec import fixed_entropy_model
from inrstore.models.core.architecture import Architecture
from inrstore.models.entropy.coding import (
    LAPLACE_CODING,
    TABLE_CODING,
    WINDOW_CODING,
    CodingError,
    decode_latents,
    encode_latents,
)
from inrstore.models.entropy.laplace import SCALE_TABLE
from inrstore.models.entropy.tables import (
    OFFSET_LIMIT,
    WINDOW,
    bin_probabilities,
    exp_negative,
    read_symbols,
    read_window,
    table_keys,
    write_symbols,
    write_window,
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


def _edge_cases() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symbols, means and log scales at the edges of every range, in the coder's fixed point."""
    rng = np.random.default_rng(5)
    count = 20_000
    symbols = rng.integers(-64, 64, count)
    symbols[:128] = np.arange(-64, 64)
    # Means beyond the symbol range (clamped), log scales beyond the table (clamped), in the
    # coder's fixed point (1/256).
    mu = np.floor(rng.uniform(-70, 70, count) * 256)
    log_scale = np.floor(rng.uniform(-5, 5, count) * 256)
    mu[:128], log_scale[:128] = -64 * 256, -5 * 256  # the far end of the sharpest table
    return symbols, mu, log_scale


def test_symbols_round_trip_at_the_edges_of_every_range() -> None:
    symbols, mu, log_scale = _edge_cases()
    encoder = constriction.stream.queue.RangeEncoder()
    write_symbols(encoder, symbols, mu, log_scale)
    decoder = constriction.stream.queue.RangeDecoder(encoder.get_compressed())
    assert np.array_equal(read_symbols(decoder, mu, log_scale), symbols)


def test_window_coding_round_trips_escapes_at_the_edges_of_every_range() -> None:
    symbols, mu, log_scale = _edge_cases()
    base, keys = table_keys(mu, log_scale)
    assert np.sum(np.abs(symbols - base) > WINDOW) > 10_000  # most symbols escape here
    encoder = constriction.stream.queue.RangeEncoder()
    write_window(encoder, symbols, mu, log_scale)
    write_window(encoder, symbols[:0], mu[:0], log_scale[:0])  # an empty pass writes nothing
    decoder = constriction.stream.queue.RangeDecoder(encoder.get_compressed())
    assert np.array_equal(read_window([decoder], base[None], keys[None])[0], symbols)


def test_window_coding_reports_damaged_data() -> None:
    arch = Architecture(32, 32, 3, levels=4, arm_levels=0)
    model = fixed_entropy_model(arch, random_modules(arch, seed=6), prior_index=20)
    payload, flags = encode_latents(model, random_grids(arch, seed=7), WINDOW_CODING)
    with pytest.raises(CodingError, match="latent payload does not decode"):
        decode_latents(model, payload[: len(payload) // 2 // 4 * 4], flags, WINDOW_CODING)


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


def test_window_coding_costs_what_the_tables_cost() -> None:
    """Where the symbols follow their model (escapes as rare as the model says), the window
    coding takes the tables' bytes within 0.5%: it changes how many coder calls a pass takes,
    not the model. (A symbol far outside a sharp model pays the coder's probability floor twice,
    escape and tail: random grids under random networks cost more.)"""
    rng = np.random.default_rng(11)
    count = 50_000
    mean = rng.uniform(-20, 20, count)
    log_scale = rng.uniform(-3, 3, count)
    symbols = np.clip(np.round(mean + rng.laplace(0, np.exp(log_scale))), -64, 63).astype(np.int64)
    mu, log_scale = np.floor(mean * 256), np.floor(log_scale * 256)
    assert np.sum(np.abs(symbols - table_keys(mu, log_scale)[0]) > WINDOW) > 1000
    sizes = []
    for write in (write_symbols, write_window):
        encoder = constriction.stream.queue.RangeEncoder()
        write(encoder, symbols, mu, log_scale)
        sizes.append(encoder.get_compressed().nbytes)
    assert abs(sizes[1] / sizes[0] - 1) < 0.005


def test_every_window_row_leaves_mass_for_its_escapes() -> None:
    """An escaped offset is coded under the rest of its row: every row must have some."""
    for scale_index in range(len(SCALE_TABLE)):
        rows = bin_probabilities(scale_index)
        outside = np.abs(np.arange(-OFFSET_LIMIT, OFFSET_LIMIT + 1)) > WINDOW
        assert np.all(rows[:, outside].sum(axis=1) > 0)
