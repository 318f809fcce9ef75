"""Training settings: gradient clipping, the learning-rate schedule; device placement."""

from __future__ import annotations

import functools

import pytest
import torch

from inrstore.datasets import load_image
from inrstore.models.core.architecture import image_architecture
from inrstore.models.fit import network_source, train
from inrstore.models.fit.image_model import ImageModel
from inrstore.models.fit.presets import Preset
from inrstore.models.fit.train import clip_gradients, schedule


def _with_gradients(*gradients: list[float]) -> list[torch.Tensor]:
    tensors = []
    for values in gradients:
        tensor = torch.zeros(len(values), requires_grad=True)
        tensor.grad = torch.tensor(values)
        tensors.append(tensor)
    return tensors


def _optimizer(tensors: list[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.Adam([{"params": tensors[:1]}, {"params": tensors[1:]}])


def test_clipping_scales_the_global_norm_down_to_the_limit():
    tensors = _with_gradients([3.0, 0.0], [0.0, 4.0])  # global norm 5
    clip_gradients(Preset("t", 10, 0, gradient_clip=0.5), _optimizer(tensors))
    norm = torch.linalg.vector_norm(torch.cat([t.grad for t in tensors]))
    assert norm.item() == pytest.approx(0.5, rel=1e-5)
    # One factor for all tensors: the direction is kept.
    assert tensors[0].grad[0].item() / tensors[1].grad[1].item() == pytest.approx(0.75)


def test_small_gradients_and_unclipped_presets_are_left_alone():
    small = _with_gradients([0.003, 0.004])
    clip_gradients(Preset("t", 10, 0, gradient_clip=0.01), _optimizer(small))
    assert small[0].grad.tolist() == pytest.approx([0.003, 0.004])
    large = _with_gradients([30.0, 40.0])
    clip_gradients(Preset("t", 10, 0, gradient_clip=None), _optimizer(large))
    assert large[0].grad.tolist() == [30.0, 40.0]


@pytest.mark.parametrize("limit", [0.0, -1.0, float("nan")])
def test_a_non_positive_clip_is_rejected(limit):
    with pytest.raises(ValueError, match="gradient_clip must be positive"):
        Preset("t", 10, 0, gradient_clip=limit)


@pytest.mark.parametrize("zones", [(0.0,), (0.2, 0.5), (float("nan"),)])
def test_dead_zones_outside_the_open_half_unit_are_rejected(zones):
    with pytest.raises(ValueError, match="weight_deadzones must lie in"):
        Preset("t", 10, 0, weight_deadzones=zones)


def test_learning_rates_fall_by_half_cosine_to_the_floor_then_hold_the_final_rate():
    preset = Preset(
        "t", 10, 0, hard_fraction=0.2, learning_rate_floor=1e-3, final_learning_rate=1e-4
    )
    networks, latents = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam(
        [{"params": [networks], "base": 1e-2}, {"params": [latents], "base": 0.2}]
    )

    def rates(progress: float) -> list[float]:
        schedule(preset, progress).apply(optimizer)
        return [group["lr"] for group in optimizer.param_groups]

    assert rates(0.0) == pytest.approx([1e-2, 0.2])
    assert rates(0.4) == pytest.approx([(1e-2 + 1e-3) / 2, (0.2 + 1e-3) / 2])  # half the soft phase
    assert rates(0.7999) == pytest.approx([1e-3, 1e-3], rel=1e-3)
    assert rates(0.8) == [1e-4, 1e-4]
    assert schedule(preset, 0.8).hard and not schedule(preset, 0.7999).hard


def _on_meta_by_default(function):
    """``function`` run with PyTorch's default device set to 'meta'."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        torch.set_default_device("meta")
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_default_device(None)

    return wrapped


@pytest.mark.parametrize(
    ("arm_levels", "zero_levels", "wide_arm", "synthesis_kind"),
    [(0, 0, False, "mixed"), (1, 0, False, "mixed"), (1, 1, True, "mixed"), (1, 0, True, "refine")],
)
def test_training_makes_every_tensor_on_the_device_it_trains_on(
    monkeypatch, kodak_samples, arm_levels: int, zero_levels: int, wide_arm: bool, synthesis_kind
) -> None:
    """A tensor that the loss's forward pass makes without naming a device lands on the CPU,
    which breaks training on a GPU. Here, without a GPU, such a tensor lands on the 'meta'
    device instead, and mixing it with the CPU tensors being trained raises."""
    pixels = load_image(next(kodak_samples.glob("*.png"))).pixels[:40, :48]
    arch = image_architecture(
        *pixels.shape, arm_levels, zero_levels, wide_arm, True, synthesis_kind
    )
    for name in ("reconstruct", "latent_bits"):
        monkeypatch.setattr(ImageModel, name, _on_meta_by_default(getattr(ImageModel, name)))
    monkeypatch.setattr(
        network_source, "network_bits", _on_meta_by_default(network_source.network_bits)
    )
    preset = Preset("t", 3, arch.arm_levels, coarse_phases=())
    fitted = train.fit_image(pixels, arch, preset, 1e-2, zero_levels=zero_levels)
    assert fitted.iterations == 3
    assert all(grid.device.type == "cpu" for grid in fitted.grids)
