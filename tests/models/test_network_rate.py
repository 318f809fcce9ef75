"""The training loss's estimate of the networks' coded size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inrstore.models.bitstream.parameters import parameter_bits, scale_code
from inrstore.models.core.architecture import image_architecture
from inrstore.models.core.quantized import QuantizedModule
from inrstore.models.fit.network_rate import REFERENCE_EXPONENT, network_bits

ARCH = image_architecture(64, 64, 3, arm_levels=1)


def _laplace_params(scale: float, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = np.random.default_rng(seed)
    return {
        name: torch.from_numpy(generator.laplace(0.0, scale, shape).astype(np.float32))
        for name, shape in ARCH.parameter_shapes().items()
    }


@pytest.mark.parametrize("scale", [0.02, 0.1, 0.4])
def test_the_estimate_follows_the_coded_size_at_the_reference_step(scale):
    params = _laplace_params(scale)
    coded = 0.0
    for shapes in ARCH.modules().values():
        module = QuantizedModule.quantize({k: params[k] for k in shapes}, REFERENCE_EXPONENT)
        flat = module.flat()
        coded += parameter_bits(flat, scale_code(flat))
    assert float(network_bits(ARCH, params)) == pytest.approx(coded, rel=0.1)


def test_zero_weights_cost_nothing_and_every_gradient_points_towards_zero():
    zeros = {name: torch.zeros(shape) for name, shape in ARCH.parameter_shapes().items()}
    assert float(network_bits(ARCH, zeros)) == 0.0
    params = {name: value.requires_grad_() for name, value in _laplace_params(0.1).items()}
    network_bits(ARCH, params).backward()
    for value in params.values():
        nonzero = value.detach() != 0
        assert torch.all(value.grad[nonzero] * value.detach()[nonzero] > 0)
