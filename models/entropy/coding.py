"""Coding the latent grids with the fixed-point MARM model and constriction's range coder.

Order (the decoder's, which the encoder follows symbol for symbol): coarsest grid under its
fixed prior; each ARU grid in two passes, anchors then non-anchors; each ARM grid one call per
wavefront (anti-diagonal ``(radius + 1) r + c`` of its
:class:`~inrstore.models.core.context.ArmWindow`). A grid of zeros is flagged and not
coded. All (μ, σ) come from :mod:`inrstore.models.core.mlp`'s exact integer arithmetic.

Three codings, named by the format version that introduced them:
:data:`LAPLACE_CODING` codes every symbol with a ``QuantizedLaplace`` of mean (1/256 steps)
and snapped scale; :data:`TABLE_CODING` codes the coarsest grid and the ARU passes with the
cached tables of :mod:`~inrstore.models.entropy.tables` (one call per table) and keeps the
``QuantizedLaplace`` for ARM wavefronts, whose few symbols would split into as many calls;
:data:`ANCHOR_PASS1_CODING` codes like tables but runs ARU pass 1 at the anchors only, pass 2
reading the means of the four anchor neighbours' pass-1 (μ, log σ) instead of its own pixel's
(see :func:`~inrstore.models.core.context.aru_pass2_inputs`): half of pass 1's work;
:data:`WINDOW_CODING` computes as :data:`ANCHOR_PASS1_CODING` and codes the coarsest grid and
each ARU pass in one call with :mod:`~inrstore.models.entropy.tables`' window coding.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.context import (
    ArmWindow,
    CoarseContext,
    Pass1FirstLayer,
    arm_coarse_inputs,
    arm_inputs,
    aru_pass2_inputs,
    checkerboard,
)
from inrstore.models.core.mlp import FORWARD_BLOCK, FRACTION_BITS, FixedLayer, fixed_forward
from inrstore.models.entropy.laplace import (
    LATENT_MAX,
    LATENT_MIN,
    LOG_SCALE_STEPS,
    snap_parameters,
)
from inrstore.models.entropy.tables import (
    read_symbols,
    read_window,
    table_keys,
    write_symbols,
    write_window,
)

UNIT = float(2**FRACTION_BITS)
_MODEL = constriction.stream.model.QuantizedLaplace(LATENT_MIN, LATENT_MAX)

LAPLACE_CODING = 1
TABLE_CODING = 2
ANCHOR_PASS1_CODING = 3
WINDOW_CODING = 4
CODINGS = (LAPLACE_CODING, TABLE_CODING, ANCHOR_PASS1_CODING, WINDOW_CODING)
LATEST_CODING = WINDOW_CODING
"""What the encoder writes: the model :mod:`~inrstore.models.core.entropy_model` trains."""


class CodingError(ValueError):
    """The latent payload does not decode (damaged bytes or a symbol out of range)."""


@dataclass(frozen=True)
class FixedEntropyModel:
    """The quantized entropy networks of one image and its prior's scale index."""

    arch: Architecture
    aru_pass1: list[FixedLayer]
    aru_pass2: list[FixedLayer]
    arm: list[FixedLayer]
    prior_index: int

    def prior(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point (μ, log σ) of the coarsest grid."""
        log_scale = self.prior_index * UNIT / LOG_SCALE_STEPS
        return np.zeros(shape), np.full(shape, log_scale)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))


def _context(model, coarse, coarse_mu, coarse_log_scale, level) -> CoarseContext:
    """The coarser grid (integers) and its fixed-point (μ, log σ) as the builders want them."""
    return CoarseContext(
        _tensor(coarse * UNIT),
        _tensor(coarse_mu),
        _tensor(coarse_log_scale),
        level,
        model.arch.levels,
        UNIT,
    )


def _aru_pass1(model, context: CoarseContext, shape, coding: int) -> np.ndarray:
    """Fixed-point pass-1 (μ, log σ): at the anchors, ``(2, na)``, or, for codings before
    :data:`ANCHOR_PASS1_CODING`, at every pixel, ``(2, h*w)``; a band of rows at a time so
    that the first layer's output stays in the cache."""
    first, *rest = model.aru_pass1
    weight, bias = _tensor(first.scaled_weight.T), _tensor(first.scaled_bias[:, 0])
    layer = Pass1FirstLayer.build(context, shape, weight, bias)
    height, width = shape
    anchors_only = coding >= ANCHOR_PASS1_CODING
    # About FORWARD_BLOCK outputs per band: twice the rows when only the anchors are computed.
    per_row = -(-width // 2) if anchors_only else width
    band = max(2, FORWARD_BLOCK // per_row // 2 * 2)
    hidden, _, coarse_width = layer.per_cell.shape
    if anchors_only:
        buffer = torch.empty(hidden, band // 2, 2, coarse_width, dtype=torch.float64)
        first_layer = layer.anchor_rows
    else:
        buffer = torch.empty(hidden, band // 2, 2, 2 * coarse_width, dtype=torch.float64)
        first_layer = layer.rows
    return np.concatenate(
        [
            fixed_forward(rest, first_layer(start, start + band, buffer).numpy(), pending=True)
            for start in range(0, height, band)
        ],
        axis=1,
    )


def _aru_pass2(model, grid, pass1, coarse, coding: int) -> np.ndarray:
    """Fixed-point pass-2 (μ, log σ) at the non-anchors, ``(2, no)`` in row-major order, from
    :func:`_aru_pass1`'s output. ``grid`` needs correct values at anchors only."""
    inputs = aru_pass2_inputs(
        _tensor(grid * UNIT),
        _tensor(pass1),
        _tensor(coarse * UNIT),
        own_pass1=coding < ANCHOR_PASS1_CODING,
    )
    return fixed_forward(model.aru_pass2, inputs.numpy())


def _aru_level(
    model, context: CoarseContext, grid, coarse, coding: int, read_anchors=None
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point (μ, log σ) of an ARU grid: the anchors' ``(2, na)`` and the others'
    ``(2, no)``, each in row-major order. ``read_anchors`` (the decoder's) is called with the
    anchors' parameters before pass 2 reads the anchors from ``grid``."""
    pass1 = _aru_pass1(model, context, grid.shape, coding)
    anchors = pass1
    if coding < ANCHOR_PASS1_CODING:
        anchors = checkerboard(*grid.shape).take(pass1, "anchors")
    if read_anchors is not None:
        read_anchors(anchors)
    return anchors, _aru_pass2(model, grid, pass1, coarse, coding)


def _wavefronts(height: int, width: int, window: ArmWindow) -> Iterator[np.ndarray]:
    """Flat pixel indices of each ARM wavefront, in decoding order."""
    rows, cols = np.divmod(np.arange(height * width), width)
    wave = (window.radius + 1) * rows + cols
    order = np.argsort(wave, kind="stable")
    bounds = np.flatnonzero(np.diff(wave[order])) + 1
    yield from np.split(order, bounds)


def _level_model(model: FixedEntropyModel, level: int) -> str:
    if level == model.arch.levels - 1:
        return "prior"
    return "arm" if level < model.arch.arm_levels else "aru"


def encode_latents(
    model: FixedEntropyModel, grids: list[np.ndarray], coding: int = LATEST_CODING
) -> tuple[bytes, int]:
    """Encode integer grids (finest first, each ``(h_l, w_l)`` int). Returns (payload, zero flags).

    Bit ``l`` of the flags is set when grid ``l`` is all zeros (then it is not coded).
    """
    encoder = constriction.stream.queue.RangeEncoder()
    zero_flags = write_latents(encoder, model, grids, coding)
    return encoder.get_compressed().tobytes(), zero_flags


def write_latents(
    encoder, model: FixedEntropyModel, grids: list[np.ndarray], coding: int = LATEST_CODING
) -> int:
    """Append the grids to a constriction ``RangeEncoder`` with coding ``coding``;
    returns the zero flags."""
    _check_coding(coding)
    levels = model.arch.levels
    zero_flags = sum(1 << level for level in range(levels) if not np.any(grids[level]))
    coarse_mu, coarse_log_scale = model.prior(grids[-1].shape)
    for level in range(levels - 1, finest_coded(zero_flags, levels) - 1, -1):
        grid = grids[level]
        symbols = grid.reshape(-1).astype(np.int32)
        kind = _level_model(model, level)
        # (symbols, fixed-point (μ, log σ) ``(2, n)``) of each coder call, in coding order.
        if kind == "prior":
            mu, log_scale = coarse_mu, coarse_log_scale
            parts = [(symbols, np.stack([mu.reshape(-1), log_scale.reshape(-1)]))]
        else:
            coarse = grids[level + 1]
            context = _context(model, coarse, coarse_mu, coarse_log_scale, level)
            if kind == "aru":
                board = checkerboard(*grid.shape)
                anchors, pass2 = _aru_level(model, context, grid, coarse, coding)
                output = board.merge(anchors, pass2)
                parts = [
                    (board.take(symbols, "anchors"), anchors),
                    (board.take(symbols, "others"), pass2),
                ]
            else:
                window = model.arch.arm_window
                inputs = arm_inputs(_tensor(grid * UNIT), context, window)
                output = fixed_forward(model.arm, inputs.numpy())
                order = np.concatenate(list(_wavefronts(*grid.shape, window)))
                parts = [(symbols[order], output[:, order])]
            mu, log_scale = output[0].reshape(grid.shape), output[1].reshape(grid.shape)
        if not zero_flags >> level & 1:
            write = _write_laplace if kind == "arm" else _symbol_writer(coding)
            for part_symbols, (part_mu, part_log_scale) in parts:
                _check_range(part_symbols)
                write(encoder, part_symbols, part_mu, part_log_scale)
        coarse_mu, coarse_log_scale = mu, log_scale
    return zero_flags


def finest_coded(zero_flags: int, levels: int) -> int:
    """The finest coded level (``levels`` if none is): the grids below it are all zero and
    nothing depends on their (μ, σ), so neither side computes them."""
    return next((level for level in range(levels) if not zero_flags >> level & 1), levels)


def _check_coding(coding: int) -> None:
    if coding not in CODINGS:
        raise ValueError(f"unknown latent coding {coding}")


def _check_range(symbols: np.ndarray) -> None:
    if symbols.size and (symbols.min() < LATENT_MIN or symbols.max() > LATENT_MAX):
        raise ValueError(f"latent symbols must lie in [{LATENT_MIN}, {LATENT_MAX}]")


def decode_latents(
    model: FixedEntropyModel, payload: bytes, zero_flags: int, coding: int = LATEST_CODING
) -> list[np.ndarray]:
    """Inverse of :func:`encode_latents`: integer grids (as float64 arrays), finest first."""
    if len(payload) % 4:
        raise CodingError("latent payload length is not a multiple of 4 bytes")
    words = np.frombuffer(payload, dtype=np.uint32).copy()
    return read_latents(constriction.stream.queue.RangeDecoder(words), model, zero_flags, coding)


def read_latents(
    decoder, model: FixedEntropyModel, zero_flags: int, coding: int = LATEST_CODING
) -> list[np.ndarray]:
    """Read what :func:`write_latents` wrote, from a constriction ``RangeDecoder``."""
    _check_coding(coding)
    read = symbol_reader(coding)
    arch = model.arch
    shapes = arch.grid_shapes()
    grids: list[np.ndarray] = [np.zeros(shape) for shape in shapes]
    coarse_mu, coarse_log_scale = model.prior(shapes[-1])
    for level in range(arch.levels - 1, finest_coded(zero_flags, arch.levels) - 1, -1):
        shape = shapes[level]
        coded = not zero_flags >> level & 1
        kind = _level_model(model, level)
        grid = grids[level]
        flat = grid.reshape(-1)
        if kind == "prior":
            mu, log_scale = coarse_mu, coarse_log_scale
            if coded:
                flat[:] = read(decoder, mu.reshape(-1), log_scale.reshape(-1))
        elif kind == "aru":
            coarse = grids[level + 1]
            context = _context(model, coarse, coarse_mu, coarse_log_scale, level)
            board = checkerboard(*shape)
            read_half = functools.partial(_read_half, decoder, read, board, flat)
            read_anchors = functools.partial(read_half, "anchors") if coded else None
            anchors, pass2 = _aru_level(model, context, grid, coarse, coding, read_anchors)
            if coded:
                read_half("others", pass2)
            output = board.merge(anchors, pass2)
            mu, log_scale = output[0].reshape(shape), output[1].reshape(shape)
        else:
            context = _context(model, grids[level + 1], coarse_mu, coarse_log_scale, level)
            output = _decode_arm(model, decoder, grids[level], context, coded)
            mu, log_scale = output[0].reshape(shape), output[1].reshape(shape)
        coarse_mu, coarse_log_scale = mu, log_scale
    return grids


def _decode_arm(model, decoder, grid: np.ndarray, context: CoarseContext, coded: bool):
    """Decode one ARM grid in place, wavefront by wavefront; return its fixed-point (μ, log σ)."""
    height, width = grid.shape
    window = model.arch.arm_window
    top, side = window.rows, window.radius
    coarse_part = arm_coarse_inputs(context, (height, width)).numpy()
    stride = width + 2 * side
    padded = np.zeros((height + top) * stride)
    offsets = np.array([dr * stride + dc for dr, dc in window.offsets])
    output = np.zeros((2, height * width))
    for pixels in _wavefronts(height, width, window):
        rows, cols = np.divmod(pixels, width)
        positions = (rows + top) * stride + cols + side
        context = padded[offsets[:, None] + positions[None, :]]
        inputs = np.concatenate([context, coarse_part[:, pixels]], axis=0)
        result = fixed_forward(model.arm, inputs)
        output[:, pixels] = result
        if coded:
            symbols = _read_laplace(decoder, result[0], result[1])
            padded[positions] = symbols * UNIT
    if coded:
        grid[:] = padded.reshape(height + top, stride)[top:, side : side + width] / UNIT
    return output


def _read_half(decoder, read, board, flat: np.ndarray, half, parameters: np.ndarray) -> None:
    """Decode one checkerboard half of a grid (``flat``, in place) with ``read``."""
    board.put(flat, half, read(decoder, *parameters))


def _write_laplace(encoder, symbols: np.ndarray, mu: np.ndarray, log_scale: np.ndarray) -> None:
    """Append ``symbols`` under ``QuantizedLaplace`` models of fixed-point ``(μ, log σ)``."""
    encoder.encode(symbols, _MODEL, *snap_parameters(mu, log_scale))


def _read_laplace(decoder, mu: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """Symbols (float64) under ``QuantizedLaplace`` models of fixed-point ``(μ, log σ)``."""
    try:
        return decoder.decode(_MODEL, *snap_parameters(mu, log_scale)).astype(np.float64)
    except Exception as err:  # constriction reports exhausted or inconsistent data this way
        raise CodingError(f"latent payload does not decode ({err})") from None


def _symbol_writer(coding: int):
    """How ``coding`` writes the coarsest grid and the ARU passes."""
    if coding >= WINDOW_CODING:
        return write_window
    return write_symbols if coding >= TABLE_CODING else _write_laplace


def symbol_reader(coding: int):
    """How ``coding`` reads the coarsest grid and the ARU passes: ``read(decoder, μ, log σ)``
    → symbols (float64), :class:`CodingError` on damaged data."""
    if coding >= WINDOW_CODING:
        return read_windowed
    return read_tables if coding >= TABLE_CODING else _read_laplace


def read_tables(decoder, mu: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """Symbols (float64) under the tables of fixed-point ``(μ, log σ)``."""
    try:
        return read_symbols(decoder, mu, log_scale).astype(np.float64)
    except Exception as err:  # as above, and symbols out of range
        raise CodingError(f"latent payload does not decode ({err})") from None


def read_windowed(decoder, mu: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """Symbols (float64) under the window coding of fixed-point ``(μ, log σ)``."""
    base, keys = table_keys(mu, log_scale)
    return read_keyed([decoder], base[None], keys[None])[0]


def read_keyed(decoders, base: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Symbols ``(B, n)`` (float64) of ``B`` streams under the window coding, from their
    bases and table keys ``(B, n)``."""
    try:
        return read_window(decoders, base, keys).astype(np.float64)
    except Exception as err:  # as above, and symbols out of range
        raise CodingError(f"latent payload does not decode ({err})") from None
