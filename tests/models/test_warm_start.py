"""Warm-start weights: shipped for the presets' architectures, matched exactly, used by the
trainer only when the preset asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inrstore.models.core.architecture import Architecture, image_architecture
from inrstore.models.fit.image_model import init_parameters
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.train import FittedImage, fit_image, start_networks
from inrstore.models.fit.warm_start import save_sets, stored_sets, warm_start_parameters

SHIPPED_ARCHITECTURES = [
    # (height, width, arm_levels, zero_levels): crops and Kodak images, both orientations.
    (256, 256, 0, 1),
    (512, 768, 0, 0),
    (768, 512, 0, 1),
    (512, 768, 1, 0),
]


def test_the_package_ships_weight_sets_for_several_rates() -> None:
    sets = stored_sets()
    assert len(sets) >= 4
    assert all({"zero_levels", "lambda"} <= set(weights) for weights in sets)
    assert len({float(weights["lambda"]) for weights in sets}) >= 3


@pytest.mark.parametrize(("height", "width", "arm_levels", "zero_levels"), SHIPPED_ARCHITECTURES)
def test_shipped_sets_cover_the_presets_architectures(
    height: int, width: int, arm_levels: int, zero_levels: int
) -> None:
    arch = image_architecture(height, width, 3, arm_levels, zero_levels)
    weights = warm_start_parameters(arch, zero_levels, 1e-3)
    shapes = arch.parameter_shapes()
    assert set(weights) == set(shapes)
    for name, shape in shapes.items():
        assert weights[name].shape == shape and weights[name].dtype == torch.float32
        assert torch.isfinite(weights[name]).all()
    # Trained, not the random draw: the synthesis moved away from its initialisation.
    random = init_parameters(arch, torch.Generator().manual_seed(0))
    assert not torch.equal(weights["syn.head.w0"], random["syn.head.w0"])
    # Low and high rates start from different sets.
    high_rate = warm_start_parameters(arch, zero_levels, 3e-5)
    assert not torch.equal(weights["syn.head.w0"], high_rate["syn.head.w0"])


def test_modules_without_a_matching_set_start_from_the_random_draw() -> None:
    small = image_architecture(32, 32, 3, 0)
    grey = image_architecture(256, 256, 1, 0, 1)
    for arch, zero_levels in [(small, 0), (grey, 1)]:
        weights = warm_start_parameters(arch, zero_levels, 1e-3)
        assert not any(name.startswith("syn.") for name in weights)
    # The wide ARM of `best` has no stored set; the synthesis comes from the whole-image sets.
    wide = image_architecture(512, 768, 3, 2, wide_arm=True)
    weights = warm_start_parameters(wide, 0, 1e-3)
    assert set(weights) == set(wide.modules()["synthesis"])
    plain = warm_start_parameters(image_architecture(512, 768, 3, 0), 0, 1e-3)
    assert all(torch.equal(weights[name], plain[name]) for name in weights)


def _random_set(arch, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=generator) for n, s in arch.parameter_shapes().items()}


def _assert_same(chosen: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(chosen) == set(expected)
    assert all(torch.equal(chosen[name], value) for name, value in expected.items())


def test_sets_round_trip_and_the_same_zero_levels_win(tmp_path: Path) -> None:
    arch = image_architecture(64, 64, 3, 0)
    first, second = _random_set(arch, 1), _random_set(arch, 2)
    other = _random_set(image_architecture(64, 64, 3, 1), 3)
    path = tmp_path / "weights.npz"
    save_sets([(other, 0, 1e-3), (first, 0, 1e-3), (second, 1, 1e-3)], path)
    with np.load(path, allow_pickle=False) as archive:
        assert {"0/zero_levels", "0/lambda"} <= set(archive.files)
    for zero_levels, expected in ((0, first), (1, second), (2, first)):
        _assert_same(warm_start_parameters(arch, zero_levels, 1e-3, path), expected)
    assert warm_start_parameters(arch, 0, 1e-3, tmp_path / "absent.npz") == {}


def test_the_set_nearest_in_log_lambda_wins(tmp_path: Path) -> None:
    arch = image_architecture(64, 64, 3, 0)
    low, middle, high = (_random_set(arch, seed) for seed in (1, 2, 3))
    path = tmp_path / "weights.npz"
    save_sets([(middle, 0, 1e-3), (low, 0, 1e-4), (high, 0, 1e-2), (low, 1, 2e-3)], path)
    for lam, expected in ((3e-5, low), (2.9e-4, low), (3.5e-4, middle), (4e-3, high)):
        _assert_same(warm_start_parameters(arch, 0, lam, path), expected)
    # The same zero levels come before a closer λ.
    _assert_same(warm_start_parameters(arch, 0, 2e-3, path), middle)


def _one_step(**recipe) -> tuple[Architecture, FittedImage]:
    """One training step on random 256×256 pixels (finest grid dropped, latents frozen)."""
    pixels = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    arch = image_architecture(256, 256, 3, 0, 1)
    preset = Preset(
        "one-step",
        iterations=1,
        arm_levels=0,
        latent_learning_rate=0.0,
        final_learning_rate=0.0,
        **recipe,
    )
    return arch, fit_image(pixels, arch, preset, 1e-3, zero_levels=1)


@pytest.mark.parametrize("warm", [True, False])
def test_training_starts_from_the_stored_set_when_asked(warm: bool) -> None:
    arch, fitted = _one_step(warm_start=warm, learning_rate=0.0)
    expected = (
        warm_start_parameters(arch, 1, 1e-3)
        if warm
        else init_parameters(arch, torch.Generator().manual_seed(0))
    )
    assert all(torch.equal(fitted.params[name], value) for name, value in expected.items())


@pytest.mark.parametrize("warm_learning_rate", [0.0, None])
def test_warm_started_networks_learn_at_their_own_rate(warm_learning_rate: float | None) -> None:
    arch, fitted = _one_step(learning_rate=0.5, warm_learning_rate=warm_learning_rate)
    stored = warm_start_parameters(arch, 1, 1e-3)
    unchanged = torch.equal(fitted.params["syn.head.w0"], stored["syn.head.w0"])
    assert unchanged == (warm_learning_rate == 0.0)


def test_given_networks_start_the_modules_whose_shapes_they_match() -> None:
    arch = image_architecture(512, 768, 3, 1)
    generator = torch.Generator().manual_seed(0)
    given = {name: torch.full(shape, 0.25) for name, shape in arch.parameter_shapes().items()}
    given["arm.w0"] = torch.zeros(3, 3)  # another ARM's shape: the module is not taken
    start, _ = start_networks(arch, Preset("t", 1, 1), 1e-3, 0, generator, given)
    stored = warm_start_parameters(arch, 0, 1e-3)
    for name in arch.modules()["synthesis"]:
        assert torch.equal(start[name], given[name])
    for name in arch.modules()["arm"]:
        assert torch.equal(start[name], stored[name])
