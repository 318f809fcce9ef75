"""The synthesis kinds: shapes, start, and how far each output pixel reads."""

from __future__ import annotations

import pytest
import torch

from inrstore.models.core.architecture import REFINE_HIDDEN, Architecture, image_architecture
from inrstore.models.core.mlp import mlp_forward
from inrstore.models.core.synthesis import PREFIX, SYNTHESIS_KINDS, synthesize
from inrstore.models.fit.image_model import init_parameters


def _random_params(arch: Architecture, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(shape, generator=generator) * 0.3
        for name, shape in arch.synthesis.parameter_shapes().items()
    }


@pytest.mark.parametrize("kind", SYNTHESIS_KINDS)
def test_an_output_pixel_reads_only_its_margin(kind: str) -> None:
    arch = image_architecture(32, 32, 3, 0, compact_synthesis=kind)
    shape = arch.synthesis
    params = _random_params(arch, 1)
    latents = torch.randn(shape.latents, 24, 24, generator=torch.Generator().manual_seed(2))
    moved = latents.clone()
    moved[:, 12, 12] += 1.0
    changed = (synthesize(shape, params, moved) - synthesize(shape, params, latents)).abs()
    rows, cols = torch.nonzero(changed.amax(dim=0) > 0, as_tuple=True)
    reach = max((rows - 12).abs().max(), (cols - 12).abs().max())
    assert reach == shape.margin == (2 if kind == "refine" else 1)


def test_the_refine_synthesis_starts_as_its_rectified_mlp() -> None:
    arch = image_architecture(32, 32, 3, 0, compact_synthesis="refine")
    shape = arch.synthesis
    params = init_parameters(arch, torch.Generator().manual_seed(0))
    assert shape.head.widths == (arch.levels, REFINE_HIDDEN, 3)
    assert set(params) >= {f"{PREFIX}refine0.w", f"{PREFIX}refine1.b"}
    latents = torch.randn(shape.latents, 8, 8, generator=torch.Generator().manual_seed(3))
    flat = latents.reshape(shape.latents, -1)
    mlp = torch.relu(mlp_forward(shape.head, params, PREFIX + "head.", flat)).reshape(3, 8, 8)
    torch.testing.assert_close(synthesize(shape, params, latents), mlp)
    assert shape.macs < image_architecture(32, 32, 3, 0).synthesis.macs


def test_unknown_synthesis_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="synthesis_kind must be one of mixed, refine, not 'hop'"):
        Architecture(32, 32, 3, 4, 0, synthesis_kind="hop")


def test_only_small_images_get_the_compact_synthesis() -> None:
    small = image_architecture(256, 256, 3, 2, 0, True, True, "refine")
    large = image_architecture(512, 768, 3, 2, 0, True, True, "refine")
    assert (small.synthesis_kind, small.head_hidden) == ("refine", REFINE_HIDDEN)
    assert (large.synthesis_kind, large.head_hidden) == ("mixed", 24)
