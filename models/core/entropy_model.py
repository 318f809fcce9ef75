"""The MARM entropy model in float, for training: (μ, log σ) of every latent, coarse to fine.

Coarsest grid: Laplace(0, exp(prior_log_scale)). ARU grids: pass 1 from the coarser grid for
the checkerboard anchors, pass 2 from the anchors and their pass-1 (μ, log σ) for the rest
(the model of formats 3 and 4; the decoder also reads formats 1 and 2). ARM grids: causal
context. Contexts are the (noisy or rounded) latents themselves, as at decode time.
"""

from __future__ import annotations

import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.context import (
    CoarseContext,
    Pass1FirstLayer,
    arm_inputs,
    aru_pass2_inputs,
    checkerboard,
)
from inrstore.models.core.mlp import Params, mlp_forward


def entropy_parameters(
    arch: Architecture,
    params: Params,
    grids: list[torch.Tensor],
    prior_log_scale: torch.Tensor,
    finest: int = 0,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(μ, log σ) of grids ``finest … L-1``, each ``(h_l, w_l)``, finest first like ``grids``."""
    levels = arch.levels
    coarsest = grids[-1]
    results = [(torch.zeros_like(coarsest), prior_log_scale.expand_as(coarsest))]
    pass1_shape, pass2_shape = arch.aru
    for level in range(levels - 2, finest - 1, -1):
        grid, coarse = grids[level], grids[level + 1]
        context = CoarseContext(coarse, *results[-1], level, levels, 1.0)
        shape = (grid.shape[0], grid.shape[1])
        if level < arch.arm_levels:
            inputs = arm_inputs(grid, context, arch.arm_window)
            output = mlp_forward(arch.arm, params, "arm.", inputs)
        else:
            board = checkerboard(*shape, grid.device)
            first = Pass1FirstLayer.build(context, shape, params["aru1.w0"], params["aru1.b0"])
            hidden = first.anchor_rows()
            pass1 = mlp_forward(pass1_shape, params, "aru1.", torch.relu_(hidden), start=1)
            pass2 = mlp_forward(pass2_shape, params, "aru2.", aru_pass2_inputs(grid, pass1, coarse))
            output = torch.empty(2, shape[0] * shape[1], dtype=pass1.dtype, device=grid.device)
            output = output.index_copy(1, board.anchors, pass1).index_copy(1, board.others, pass2)
        results.append((output[0].reshape(shape), output[1].reshape(shape)))
    return results[::-1]
