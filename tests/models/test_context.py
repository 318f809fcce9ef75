"""Entropy-network inputs: the ARU's first layer per coarse cell equals the product over every
pixel's inputs; pass 2's features and the checkerboard, pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrstore.models.core.context import (
    ARM_WINDOWS,
    ARU_PASS1_INPUTS,
    CoarseContext,
    Half,
    Pass1FirstLayer,
    _aru_pass2_inputs_by_index,
    arm_neighbours_by_index,
    arm_neighbours_by_slices,
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


@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 9), (5, 2), (6, 7), (1, 1)])
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
    # Format 3 evaluates the anchors only: whole, in bands of 2 or 4 rows, into a buffer.
    anchors = expected[:, checkerboard(height, width).anchors].numpy()
    np.testing.assert_array_equal(layer.anchor_rows().numpy(), anchors)
    for band in (2, 4):
        buffer = torch.empty(16, band // 2, 2, shape[1], dtype=torch.float64)
        parts = [
            layer.anchor_rows(row, row + band, buffer).clone() for row in range(0, height, band)
        ]
        np.testing.assert_array_equal(torch.cat(parts, dim=1).numpy(), anchors)


def test_a_band_must_start_on_an_even_row() -> None:
    zeros = torch.zeros(2, 2, dtype=torch.float64)
    coarse = CoarseContext(zeros, zeros, zeros, 1, 3, 1.0)
    weight, bias = torch.zeros(ARU_PASS1_INPUTS, 4).double(), torch.zeros(4).double()
    layer = Pass1FirstLayer.build(coarse, (4, 4), weight, bias)
    with pytest.raises(ValueError, match="even row"):
        layer.rows(1, 3)
    with pytest.raises(ValueError, match="even row"):
        layer.anchor_rows(1, 3)


@pytest.mark.parametrize(("height", "width"), [(7, 9), (4, 6), (1, 1), (1, 2), (3, 1)])
@pytest.mark.parametrize("own_pass1", [False, True])
def test_pass2_features_of_the_non_anchors_pixel_by_pixel(
    height: int, width: int, own_pass1: bool
) -> None:
    """Format 3: the means of the four anchor neighbours' pass-1 outputs (zero outside);
    formats 1 and 2 (``own_pass1``): the pixel's own pass-1 outputs."""
    generator = torch.Generator().manual_seed(height * width)
    grid = torch.randint(-9, 9, (height, width), generator=generator).double()
    coarse = torch.randint(-9, 9, ((height + 1) // 2, (width + 1) // 2), generator=generator)
    everywhere = torch.randn(2, height * width, generator=generator, dtype=torch.float64)
    anchors = checkerboard(height, width).anchors

    def value(a: int, b: int) -> float:
        return float(grid[a, b]) if 0 <= a < height and 0 <= b < width else 0.0

    def pass1_at(a: int, b: int) -> list[float]:
        inside = 0 <= a < height and 0 <= b < width
        return everywhere[:, a * width + b].tolist() if inside else [0.0, 0.0]

    def pass1_features(a: int, b: int) -> list[float]:
        if own_pass1:
            return pass1_at(a, b)
        around = [pass1_at(a + dr, b + dc) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        return [sum(mu for mu, _ in around) / 4, sum(log_scale for _, log_scale in around) / 4]

    expected = [
        [
            *(value(a - 1, b), value(a + 1, b), value(a, b - 1), value(a, b + 1)),
            *pass1_features(a, b),
            float(coarse[a // 2, b // 2]),
        ]
        for a in range(height)
        for b in range(width)
        if (a + b) % 2
    ]
    pass1 = everywhere if own_pass1 else everywhere[:, anchors]
    features = aru_pass2_inputs(grid, pass1, coarse.double(), own_pass1=own_pass1)
    assert features.shape == (7, len(expected))
    np.testing.assert_allclose(features.numpy(), np.array(expected).reshape(-1, 7).T, rtol=1e-12)


@pytest.mark.parametrize(("height", "width"), [(7, 9), (4, 6), (1, 1), (1, 2)])
def test_checkerboard_lists_anchors_and_the_others_in_row_major_order(
    height: int, width: int
) -> None:
    board = checkerboard(height, width)
    flat = [(a * width + b, (a + b) % 2) for a in range(height) for b in range(width)]
    assert board.anchors.tolist() == [index for index, odd in flat if not odd]
    assert board.others.tolist() == [index for index, odd in flat if odd]
    assert checkerboard(height, width) is board


@pytest.mark.parametrize(("height", "width"), [(7, 9), (4, 6), (5, 8), (1, 1), (1, 2), (3, 2)])
@pytest.mark.parametrize("half", ["anchors", "others"])
def test_checkerboard_take_and_put_match_indexing_by_its_index_lists(
    height: int, width: int, half: Half
) -> None:
    board = checkerboard(height, width)
    index = (board.anchors if half == "anchors" else board.others).numpy()
    values = np.random.default_rng(height * width).normal(size=(2, height * width))
    taken = board.take(values, half)
    np.testing.assert_array_equal(taken, values[:, index])
    np.testing.assert_array_equal(board.take(values[0], half), values[0, index])
    # Non-contiguous input (every other column of a wider array) takes the same entries.
    strided = np.repeat(values, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(board.take(strided, half), values[:, index])
    written = np.zeros_like(values)
    board.put(written, half, taken + 1.0)
    expected = np.zeros_like(values)
    expected[:, index] = values[:, index] + 1.0
    np.testing.assert_array_equal(written, expected)


@pytest.mark.parametrize(("height", "width"), [(7, 10), (4, 6), (1, 2), (6, 2)])
@pytest.mark.parametrize("own_pass1", [False, True])
def test_pass2_features_from_slices_equal_the_gathered_ones(
    height: int, width: int, own_pass1: bool
) -> None:
    """Even widths take the slicing path; it must agree with the index lists exactly."""
    generator = torch.Generator().manual_seed(height + width)
    grid = torch.randint(-9, 9, (height, width), generator=generator).double()
    coarse = torch.randint(-9, 9, ((height + 1) // 2, width // 2), generator=generator).double()
    count = height * width if own_pass1 else len(checkerboard(height, width).anchors)
    pass1 = torch.randint(-(2**20), 2**20, (2, count), generator=generator).double()
    fast = aru_pass2_inputs(grid, pass1, coarse, own_pass1=own_pass1)
    gathered = _aru_pass2_inputs_by_index(grid, pass1, coarse, own_pass1)
    np.testing.assert_array_equal(fast.numpy(), gathered.numpy())


@pytest.mark.parametrize("own_pass1", [False, True])
def test_pass2_features_from_slices_have_the_gathered_gradients(own_pass1: bool) -> None:
    """Training differentiates through the slicing path (format 3) like the gathering one."""
    generator = torch.Generator().manual_seed(3)
    height, width = 6, 8
    count = height * width if own_pass1 else len(checkerboard(height, width).anchors)
    inputs = [
        torch.randn(height, width, generator=generator, dtype=torch.float64),
        torch.randn(2, count, generator=generator, dtype=torch.float64),
        torch.randn(height // 2, width // 2, generator=generator, dtype=torch.float64),
    ]
    weights = torch.randn(7, height * width // 2, generator=generator, dtype=torch.float64)
    gradients = []
    for features in (aru_pass2_inputs, _aru_pass2_inputs_by_index):
        leaves = [value.clone().requires_grad_() for value in inputs]
        grid, pass1, coarse = leaves
        if features is aru_pass2_inputs:
            output = features(grid, pass1, coarse, own_pass1=own_pass1)
        else:
            output = features(grid, pass1, coarse, own_pass1)
        (output * weights).sum().backward()
        gradients.append([leaf.grad for leaf in leaves])
    for fast, gathered in zip(*gradients, strict=True):
        torch.testing.assert_close(fast, gathered, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gather", [arm_neighbours_by_slices, arm_neighbours_by_index])
@pytest.mark.parametrize("neighbours", sorted(ARM_WINDOWS))
@pytest.mark.parametrize("shape", [(5, 7), (1, 4), (6, 1)])
def test_arm_neighbours_are_each_pixels_causal_neighbours_zero_outside(
    gather, neighbours: int, shape: tuple[int, int]
) -> None:
    """Both ways (slices on a CPU, one gather on a GPU) give the same features and gradients."""
    window = ARM_WINDOWS[neighbours]
    height, width = shape
    grid = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    padded = torch.nn.functional.pad(grid, (window.radius, window.radius, window.rows, 0))
    features = gather(padded, window)
    assert features.shape == (len(window.offsets), height * width)
    values = grid.detach()
    for pixel in range(height * width):
        row, col = divmod(pixel, width)
        expected = [
            float(values[row + dr, col + dc]) if row + dr >= 0 and 0 <= col + dc < width else 0.0
            for dr, dc in window.offsets
        ]
        assert features[:, pixel].tolist() == expected
    # Each latent's gradient counts the pixels that read it as a neighbour.
    features.sum().backward()
    readers = torch.zeros(shape, dtype=torch.float64)
    for dr, dc in window.offsets:
        # The latent at (r, c) is read by the pixel at (r - dr, c - dc).
        rows, cols = slice(max(0, dr), height + min(0, dr)), slice(max(0, dc), width + min(0, dc))
        readers[rows, cols] += 1
    assert torch.equal(grid.grad, readers)
