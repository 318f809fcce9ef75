"""Decoding the latent grids of many members of a shard at once.

The members of a group have the same grid shapes and coding (their zero flags may differ),
and each its own range decoder and its own (mixed) entropy networks. Every network
evaluation runs once for the whole group, on stacked weights ``(B, out, in)`` and inputs
``(B, in, n)``: the same exact integer sums in float64 as
:mod:`~inrstore.models.entropy.coding`, so every member's grids are bit for bit those of a
member decoded alone. Only the symbol reads are per member.

Covers ARU and prior levels with :data:`~inrstore.models.entropy.coding.ANCHOR_PASS1_CODING`
or :data:`~inrstore.models.entropy.coding.WINDOW_CODING` and grids of even widths;
:func:`batchable` says whether a group qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.context import (
    ENCODING_ONE,
    Checkerboard,
    Half,
    aru_pass2_inputs,
    checkerboard,
    level_code,
    position_code,
)
from inrstore.models.core.mlp import FixedLayer, fixed_activation
from inrstore.models.core.quantized import QuantizedModule, entropy_layers
from inrstore.models.entropy.coding import (
    ANCHOR_PASS1_CODING,
    UNIT,
    WINDOW_CODING,
    finest_coded,
    read_keyed,
    symbol_reader,
)
from inrstore.models.entropy.laplace import LOG_SCALE_STEPS
from inrstore.models.entropy.tables import table_keys


@dataclass(frozen=True)
class StackedEntropyModel:
    """The ARU networks of ``B`` members of one architecture: each layer a
    :class:`~inrstore.models.core.mlp.FixedLayer` whose tensors carry a leading member
    dimension (weight ``(B, fan_in, fan_out)``, one pair of exponents, as a shard's members
    share them), and each member's prior scale index ``(B,)``."""

    arch: Architecture
    aru_pass1: list[FixedLayer]
    aru_pass2: list[FixedLayer]
    prior_indices: np.ndarray

    @classmethod
    def of_members(
        cls, arch: Architecture, modules: dict[str, QuantizedModule], prior_indices: Sequence[int]
    ) -> StackedEntropyModel:
        """From modules whose integers are ``(B, *shape)`` (as
        :func:`~inrstore.models.core.mixture.members_modules` mixes them)."""
        layers = entropy_layers(arch, modules)
        return cls(arch, layers["aru1"], layers["aru2"], np.asarray(prior_indices))


def batchable(arch: Architecture, coding: int) -> bool:
    """Whether :func:`read_latents_batched` decodes members of ``arch`` coded with ``coding``:
    no ARM levels, coding :data:`ANCHOR_PASS1_CODING` or :data:`WINDOW_CODING`, every ARU
    grid of even width."""
    shapes = arch.grid_shapes()
    return (
        coding in (ANCHOR_PASS1_CODING, WINDOW_CODING)
        and arch.arm_levels == 0
        and all(width % 2 == 0 for _, width in shapes[:-1])
    )


def _forward(layers: Sequence[FixedLayer], x: np.ndarray) -> np.ndarray:
    """:func:`~inrstore.models.core.mlp.fixed_forward` of every member at once, ``x``
    ``(B, in, n)`` → ``(B, out, n)``."""
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        accumulator = np.matmul(layer.scaled_weight, x)
        accumulator += layer.scaled_bias
        x = fixed_activation(accumulator, last=i == last)
    return x


def _pass1_anchors(
    first: FixedLayer,
    rest: Sequence[FixedLayer],
    coarse: np.ndarray,
    coarse_mu: np.ndarray,
    coarse_log_scale: np.ndarray,
    shape: tuple[int, int],
    level: int,
    levels: int,
) -> np.ndarray:
    """ARU pass 1 at the anchors of every member, ``(B, 2, na)``: the sums of
    :class:`~inrstore.models.core.context.Pass1FirstLayer`'s ``anchor_rows`` over the whole
    grid, with a batch dimension. ``coarse`` is the coarser grids' integers ``(B, hc, wc)``."""
    height, width = shape
    count, coarse_height, coarse_width = coarse.shape
    weight = torch.from_numpy(first.scaled_weight)  # (B, hidden, 14)
    padded = F.pad(torch.from_numpy(coarse * UNIT)[:, None], (1, 1, 1, 1))[:, 0]
    cells = torch.stack(
        [
            padded[:, 1 + dr : 1 + dr + coarse_height, 1 + dc : 1 + dc + coarse_width]
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
        ]
        + [torch.from_numpy(coarse_mu), torch.from_numpy(coarse_log_scale)],
        dim=1,
    ).reshape(count, 11, -1)
    hidden = weight.shape[1]
    per_cell = torch.bmm(weight[:, :, :11], cells).reshape(count, hidden, coarse_height, -1)
    encoding = UNIT / ENCODING_ONE
    rows = position_code(height, 2 * coarse_height, weight.device).to(weight.dtype) * encoding
    cols = position_code(width, 2 * coarse_width, weight.device).to(weight.dtype) * encoding
    level_term = level_code(level, levels) * encoding
    bias = torch.from_numpy(first.scaled_bias[:, :, 0])
    row_term = weight[:, :, 11, None] * rows
    col_term = weight[:, :, 12, None] * cols + (weight[:, :, 13] * level_term + bias)[..., None]
    columns = col_term.reshape(count, hidden, coarse_width, 2).transpose(2, 3)[:, :, None]
    sums = per_cell[:, :, :, None, :] + columns + row_term.reshape(count, hidden, -1, 2, 1)
    sums = sums.reshape(count, hidden, 2 * coarse_height, coarse_width)[:, :, :height]
    first_output = fixed_activation(sums.reshape(count, hidden, -1).numpy(), last=not rest)
    return _forward(rest, first_output) if rest else first_output


def _read_pass(
    decoders: Sequence, coding: int, mu: np.ndarray, log_scale: np.ndarray
) -> np.ndarray:
    """The members' symbols ``(B, n)`` (float64) of one pass, from their fixed-point
    ``(μ, log σ)``, each ``(B, n)``; the window coding's tables are looked up for all members
    at once."""
    if coding == WINDOW_CODING:
        return read_keyed(decoders, *table_keys(mu, log_scale))
    read = symbol_reader(coding)
    return np.stack([read(*member) for member in zip(decoders, mu, log_scale, strict=True)])


def read_latents_batched(
    decoders: Sequence, model: StackedEntropyModel, zero_flags: Sequence[int], coding: int
) -> list[list[np.ndarray]]:
    """Every member's grids (float64, finest first), as :func:`~inrstore.models.entropy.
    coding.read_latents` of each ``decoders[b]`` with member ``b``'s own entropy model and
    zero flags ``zero_flags[b]`` would give them; :func:`batchable` must hold for the
    architecture. The networks run for every member down to the finest grid any member
    codes; a level's symbols are read for the members that code it, the others keep zeros
    there (nothing of theirs depends on the (μ, σ) of grids they do not code)."""
    arch = model.arch
    if not batchable(arch, coding):
        raise ValueError("these members cannot be decoded together (see batchable)")
    count = len(decoders)
    pass1, pass2 = model.aru_pass1, model.aru_pass2
    shapes = arch.grid_shapes()
    grids = [np.zeros((count, *shape)) for shape in shapes]
    top = arch.levels - 1
    prior_log_scale = model.prior_indices * (UNIT / LOG_SCALE_STEPS)
    coarse_mu = np.zeros((count, *shapes[top]))
    coarse_log_scale = np.broadcast_to(prior_log_scale[:, None, None], coarse_mu.shape).copy()
    finest = min(finest_coded(flags, arch.levels) for flags in zero_flags)
    for level in range(top, finest - 1, -1):
        members = [b for b, flags in enumerate(zero_flags) if not flags >> level & 1]
        flat = grids[level].reshape(count, -1)
        if level == top:
            mu, log_scale = coarse_mu.reshape(count, -1), coarse_log_scale.reshape(count, -1)
            _read_rows(flat, members, decoders, coding, mu, log_scale)
            continue
        shape = shapes[level]
        board = checkerboard(*shape)
        coarse = grids[level + 1]
        anchors = _pass1_anchors(
            pass1[0], pass1[1:], coarse, coarse_mu, coarse_log_scale, shape, level, arch.levels
        )
        _read_rows(flat, members, decoders, coding, anchors[:, 0], anchors[:, 1], board, "anchors")
        inputs = aru_pass2_inputs(
            torch.from_numpy(grids[level] * UNIT),
            torch.from_numpy(anchors),
            torch.from_numpy(coarse * UNIT),
        )
        others = _forward(pass2, inputs.numpy())
        _read_rows(flat, members, decoders, coding, others[:, 0], others[:, 1], board, "others")
        output = board.merge(anchors, others)
        coarse_mu = output[:, 0].reshape(count, *shape)
        coarse_log_scale = output[:, 1].reshape(count, *shape)
    return [[grid[member] for grid in grids] for member in range(count)]


def _read_rows(
    flat: np.ndarray,
    members: list[int],
    decoders: Sequence,
    coding: int,
    mu: np.ndarray,
    log_scale: np.ndarray,
    board: Checkerboard | None = None,
    half: Half = "anchors",
) -> None:
    """Read the symbols of ``members`` (the indices of those that code this level) under their
    rows of ``(μ, log σ)`` ``(B, n)`` into their rows of ``flat`` ``(B, h*w)``: the whole
    row, or ``board``'s ``half`` of it."""
    if not members:
        return
    every = len(members) == len(decoders)
    rows = flat if every else flat[members]
    if every:
        symbols = _read_pass(decoders, coding, mu, log_scale)
    else:
        chosen = [decoders[b] for b in members]
        symbols = _read_pass(chosen, coding, mu[members], log_scale[members])
    if board is None:
        rows[:] = symbols
    else:
        board.put(rows, half, symbols)
    if not every:
        flat[members] = rows
