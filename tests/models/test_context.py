"""The ARU's first layer, taken per coarse cell, equals the product over every pixel's inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrstore.models.core.context import (
    ARU_PASS1_INPUTS,
    CoarseContext,
    aru_pass1_first_layer,
)


def _pixel_features(coarse: CoarseContext, height: int, width: int) -> torch.Tensor:
    """The 14 pass-1 inputs of every pixel, one pixel at a time: ``(14, h*w)``."""
    values, hc, wc = coarse.values, *coarse.values.shape
    columns = []
    for a in range(height):
        for b in range(width):
            pa, pb = a // 2, b // 2
            neighbourhood = [
                float(values[pa + dr, pb + dc]) if 0 <= pa + dr < hc and 0 <= pb + dc < wc else 0.0
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
            ]
            position = [(256 * a // height - 128) * coarse.unit / 256]
            position.append((256 * b // width - 128) * coarse.unit / 256)
            level = (512 * coarse.level // coarse.levels) * coarse.unit / 256
            parent = [float(coarse.mu[pa, pb]), float(coarse.log_scale[pa, pb])]
            columns.append(neighbourhood + parent + position + [level])
    return torch.tensor(columns, dtype=torch.float64).T


@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 9), (5, 2), (1, 1)])
def test_first_layer_per_coarse_cell_is_exact(height: int, width: int) -> None:
    generator = torch.Generator().manual_seed(height * width)
    shape = ((height + 1) // 2, (width + 1) // 2)
    unit = 256.0

    def integers(*size: int, bound: int = 64) -> torch.Tensor:
        return torch.randint(-bound, bound, size, generator=generator).double() * unit

    coarse = CoarseContext(integers(*shape), integers(*shape), integers(*shape), 2, 7, unit)
    weight = torch.randint(-(2**15), 2**15, (ARU_PASS1_INPUTS, 16), generator=generator)
    bias = integers(16, bound=2**15)
    result = aru_pass1_first_layer(coarse, (height, width), weight.double(), bias)
    expected = weight.double().T @ _pixel_features(coarse, height, width) + bias[:, None]
    np.testing.assert_array_equal(result.numpy(), expected.numpy())
