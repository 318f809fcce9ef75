"""Entropy-network inputs: the ARU's first layer per coarse cell equals the product over every
pixel's inputs; pass 2's features and the checkerboard, pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrstore.models.core.context import (
    ARU_PASS1_INPUTS,
    CoarseContext,
    Pass1FirstLayer,
    aru_pass2_inputs,
    checkerboard,
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
    layer = Pass1FirstLayer.build(coarse, (height, width), weight.double(), bias)
    expected = weight.double().T @ _pixel_features(coarse, height, width) + bias[:, None]
    np.testing.assert_array_equal(layer.rows().numpy(), expected.numpy())
    bands = [layer.rows(start, start + 2) for start in range(0, height, 2)]
    np.testing.assert_array_equal(torch.cat(bands, dim=1).numpy(), expected.numpy())


def test_a_band_must_start_on_an_even_row() -> None:
    zeros = torch.zeros(2, 2, dtype=torch.float64)
    coarse = CoarseContext(zeros, zeros, zeros, 1, 3, 1.0)
    weight, bias = torch.zeros(ARU_PASS1_INPUTS, 4).double(), torch.zeros(4).double()
    layer = Pass1FirstLayer.build(coarse, (4, 4), weight, bias)
    with pytest.raises(ValueError, match="even row"):
        layer.rows(1, 3)


@pytest.mark.parametrize(("height", "width"), [(7, 9), (4, 6), (1, 1), (1, 2), (3, 1)])
def test_pass2_features_of_the_non_anchors_pixel_by_pixel(height: int, width: int) -> None:
    generator = torch.Generator().manual_seed(height * width)
    grid = torch.randint(-9, 9, (height, width), generator=generator).double()
    coarse = torch.randint(-9, 9, ((height + 1) // 2, (width + 1) // 2), generator=generator)
    pass1 = torch.randn(2, height * width, generator=generator, dtype=torch.float64)

    def value(a: int, b: int) -> float:
        return float(grid[a, b]) if 0 <= a < height and 0 <= b < width else 0.0

    expected = [
        [
            *(value(a - 1, b), value(a + 1, b), value(a, b - 1), value(a, b + 1)),
            *pass1[:, a * width + b].tolist(),
            float(coarse[a // 2, b // 2]),
        ]
        for a in range(height)
        for b in range(width)
        if (a + b) % 2
    ]
    features = aru_pass2_inputs(grid, pass1, coarse.double())
    assert features.shape == (7, len(expected))
    np.testing.assert_array_equal(features.numpy(), np.array(expected).reshape(-1, 7).T)


@pytest.mark.parametrize(("height", "width"), [(7, 9), (4, 6), (1, 1), (1, 2)])
def test_checkerboard_lists_anchors_and_the_others_in_row_major_order(
    height: int, width: int
) -> None:
    board = checkerboard(height, width)
    flat = [(a * width + b, (a + b) % 2) for a in range(height) for b in range(width)]
    assert board.anchors.tolist() == [index for index, odd in flat if not odd]
    assert board.others.tolist() == [index for index, odd in flat if odd]
    assert checkerboard(height, width) is board
