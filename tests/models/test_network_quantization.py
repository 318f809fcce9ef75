"""Each parameter tensor at its own step: the search, and bitstreams that carry it."""

from __future__ import annotations

import numpy as np
import torch

from inrstore.models.bitstream.image_format import MAX_TENSOR_EXPONENT
from inrstore.models.codec import decode_latent_state, write_bitstream
from inrstore.models.core.architecture import Architecture
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.fit.network_quantization import refine_tensors

from .conftest import random_grids, random_modules


def test_refinement_moves_each_tensor_to_its_cheapest_step_and_never_raises_the_cost() -> None:
    generator = torch.Generator().manual_seed(0)
    floats = {name: torch.randn(4, 3, generator=generator) for name in ("a", "b", "c", "d")}
    best = {"a": 5, "b": 8, "c": 11, "d": 0}

    def cost(module: QuantizedModule) -> float:
        # Separable and convex in each exponent; it also checks that the integers follow.
        for name, value in floats.items():
            step = 2.0 ** -module.exponent_of(name)
            expected = torch.round(value.double() / step).long()
            assert torch.equal(module.integers[name], expected)
        return sum((module.exponent_of(name) - best[name]) ** 2 for name in floats)

    start = QuantizedModule.quantize(floats, 8)
    refined = refine_tensors(start, floats, cost)
    assert {name: refined.exponent_of(name) for name in floats} == best
    assert cost(refined) == 0 < cost(start)


def test_dead_zones_round_magnitudes_down_below_their_threshold() -> None:
    values = {"w": torch.tensor([-2.75, -1.65, -0.55, 0.55, 0.65, 1.65, 2.5, 0.0])}
    nearest = QuantizedModule.quantize(values, 0).integers["w"]
    assert nearest.tolist() == [-3, -2, -1, 1, 1, 2, 2, 0]
    zoned = QuantizedModule.quantize(values, 0, deadzone=0.2).integers["w"]
    assert zoned.tolist() == [-3, -1, 0, 0, 0, 1, 2, 0]


def test_dead_zone_search_keeps_the_cheapest_rounding_of_each_tensor() -> None:
    generator = torch.Generator().manual_seed(1)
    floats = {name: torch.randn(64, generator=generator) for name in ("a", "b")}
    start = QuantizedModule.quantize(floats, 3)

    def cost(module: QuantizedModule) -> float:
        # Tensor a pays for its integers' magnitudes, so the widest dead zone wins there; b
        # pays for its error only, so it keeps nearest rounding. Both keep their step.
        error = torch.sum((module.dequantized()["b"] - floats["b"]) ** 2)
        moved = sum(module.exponent_of(name) != 3 for name in floats)
        return float(module.integers["a"].abs().sum() + error + 1e6 * moved)

    nearest = refine_tensors(start, floats, cost)
    assert all(torch.equal(nearest.integers[n], start.integers[n]) for n in floats)
    chosen = refine_tensors(start, floats, cost, (0.1, 0.3, 0.2))
    widest = QuantizedModule.quantize(floats, 3, deadzone=0.3).integers
    assert torch.equal(chosen.integers["a"], widest["a"])
    assert chosen.integers["a"].abs().sum() < start.integers["a"].abs().sum()
    assert torch.equal(chosen.integers["b"], start.integers["b"])
    assert chosen.exponent_of("a") == chosen.exponent_of("b") == 3
    assert cost(chosen) < cost(start)


def test_tensors_at_their_own_steps_survive_the_bitstream_exactly() -> None:
    arch = Architecture(24, 40, 3, 4, 1)
    modules = random_modules(arch, seed=3)
    rng = np.random.default_rng(4)
    mixed = {}
    for name, module in modules.items():
        steps = {k: int(rng.integers(0, MAX_TENSOR_EXPONENT + 1)) for k in module.integers}
        steps[next(iter(steps))] = MAX_TENSOR_EXPONENT
        floats = module.dequantized()
        for tensor, exponent in steps.items():
            module = module.requantized(tensor, floats[tensor], exponent)
        mixed[name] = module
    grids = random_grids(arch, seed=5)
    header, decoded, decoded_grids = decode_latent_state(write_bitstream(arch, mixed, 20, grids))
    for name, module in mixed.items():
        for tensor, integers in module.integers.items():
            assert torch.equal(decoded[name].integers[tensor], integers)
            assert decoded[name].exponent_of(tensor) == module.exponent_of(tensor)
            assert header.tensors[tensor].exponent == module.exponent_of(tensor)
    for grid, decoded_grid in zip(grids, decoded_grids, strict=True):
        np.testing.assert_array_equal(decoded_grid, grid)
