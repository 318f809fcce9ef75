"""Quantized network modules: integers at a power-of-two step, shared by encoder and decoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mlp import WEIGHT_LIMIT, fixed_layers


@dataclass(frozen=True)
class QuantizedModule:
    """A module's parameters as integers (int64 tensors) at step ``2**-exponent``, except the
    tensors named in ``tensor_exponents``, each at its own step (format 4 images)."""

    exponent: int
    integers: dict[str, torch.Tensor]
    tensor_exponents: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def quantize(
        cls, params: dict[str, torch.Tensor], exponent: int, deadzone: float = 0.0
    ) -> QuantizedModule:
        """``params`` at step ``2**-exponent``, rounded to the nearest integer or, with a
        ``deadzone`` in (0, 0.5), towards zero unless a magnitude's fraction reaches
        0.5 + ``deadzone`` (fewer bits for a little more error)."""
        step = 2.0**-exponent
        integers = {
            name: _rounded(value.detach().cpu().double() / step, deadzone)
            .clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT - 1)
            .long()
            for name, value in params.items()
        }
        return cls(exponent, integers)

    def requantized(
        self, name: str, value: torch.Tensor, exponent: int, deadzone: float = 0.0
    ) -> QuantizedModule:
        """This module with tensor ``name`` replaced by float ``value`` at its own step."""
        own = QuantizedModule.quantize({name: value}, exponent, deadzone).integers
        return QuantizedModule(
            self.exponent, self.integers | own, {**self.tensor_exponents, name: exponent}
        )

    @classmethod
    def with_tensor_steps(
        cls, integers: dict[str, torch.Tensor], exponents: Mapping[str, int]
    ) -> QuantizedModule:
        """A module whose every tensor has its own step exponent (``exponents`` by name)."""
        return cls(max(exponents.values()), integers, dict(exponents))

    @classmethod
    def from_flat(
        cls, shapes: dict[str, tuple[int, ...]], flat: np.ndarray, exponent: int
    ) -> QuantizedModule:
        """Split flat integers (in ``shapes`` order) back into named tensors."""
        integers, offset = {}, 0
        for name, shape in shapes.items():
            count = int(np.prod(shape))
            integers[name] = torch.from_numpy(flat[offset : offset + count].copy()).reshape(shape)
            offset += count
        return cls(exponent, integers)

    def select(self, members: int | slice | Sequence[int]) -> QuantizedModule:
        """Of a module whose integers carry a leading member dimension: member ``members``
        (an index; views), or several (a slice, views; or a list of indices; integers
        ``(len(members), …)``, views where the indices are consecutive)."""
        chosen = members if isinstance(members, int | slice) else _consecutive(list(members))
        integers = {name: value[chosen] for name, value in self.integers.items()}
        return QuantizedModule(self.exponent, integers, self.tensor_exponents)

    def exponent_of(self, name: str) -> int:
        """The step exponent of tensor ``name``."""
        return self.tensor_exponents.get(name, self.exponent)

    def flat(self) -> np.ndarray:
        """All integers, concatenated in insertion order."""
        return np.concatenate([value.reshape(-1).numpy() for value in self.integers.values()])

    def dequantized(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Float32 parameters ``integer × 2**-exponent`` (each tensor's own exponent)."""
        return {
            name: dequantize(value, self.exponent_of(name)).to(device)
            for name, value in self.integers.items()
        }


def _consecutive(indices: list[int]) -> list[int] | slice:
    """``indices`` as the slice they make, when they are consecutive and ascending."""
    if indices and indices == list(range(indices[0], indices[0] + len(indices))):
        return slice(indices[0], indices[0] + len(indices))
    return indices


def select_members(
    modules: dict[str, QuantizedModule], members: int | slice | Sequence[int]
) -> dict[str, QuantizedModule]:
    """:meth:`QuantizedModule.select` of every module."""
    return {name: module.select(members) for name, module in modules.items()}


def dequantize(integers: torch.Tensor, exponent: int) -> torch.Tensor:
    """Float32 ``integers × 2**-exponent`` (exact in float64, then rounded once)."""
    return (integers.double() * 2.0**-exponent).float()


def _rounded(values: torch.Tensor, deadzone: float) -> torch.Tensor:
    if deadzone == 0.0:
        return torch.round(values)
    return torch.sign(values) * torch.floor(values.abs() + (0.5 - deadzone))


def entropy_layers(arch: Architecture, modules: dict[str, QuantizedModule]) -> dict[str, list]:
    """Fixed-point layers of the entropy networks present in ``modules``."""
    pass1, pass2 = arch.aru
    layers: dict[str, list] = {"aru1": [], "aru2": [], "arm": []}
    if "aru" in modules:
        aru = modules["aru"]
        layers["aru1"] = fixed_layers(pass1, aru.integers, "aru1.", aru.exponent_of)
        layers["aru2"] = fixed_layers(pass2, aru.integers, "aru2.", aru.exponent_of)
    if "arm" in modules:
        arm = modules["arm"]
        layers["arm"] = fixed_layers(arch.arm, arm.integers, "arm.", arm.exponent_of)
    return layers
