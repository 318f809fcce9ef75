"""Where a training step's network parameters come from: one set of networks for every
member (a single image, or a shard's plain sharing) or weight bases mixed per member by its
coefficients (:mod:`~inrstore.models.core.mixture`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from inrstore.models.core.architecture import Architecture
from inrstore.models.core.mixture import mix_float
from inrstore.models.fit.network_rate import network_bits

if TYPE_CHECKING:
    from inrstore.models.fit.train import MemberGroup


class NetworkSource(Protocol):
    """The networks a training run shares between its member groups."""

    def tensors(self) -> list[torch.Tensor]:
        """The trained tensors (one Adam state, updated at every step)."""
        ...

    def for_group(self, group: MemberGroup) -> tuple[dict[str, torch.Tensor], bool]:
        """The parameters of ``group``'s members and whether they are per member
        (``(count, *shape)``, True) or one set for all (False)."""
        ...

    def bits(self) -> torch.Tensor:
        """Estimated coded size of what the networks store once, in bits (a scalar)."""
        ...


class SharedNetworks:
    """One set of networks, ``params`` by name, for every member."""

    def __init__(
        self, arch: Architecture, initial: dict[str, torch.Tensor], device: torch.device
    ) -> None:
        self.arch = arch
        self.params = {name: value.to(device).requires_grad_() for name, value in initial.items()}

    def tensors(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def for_group(self, group: MemberGroup) -> tuple[dict[str, torch.Tensor], bool]:
        return self.params, False

    def bits(self) -> torch.Tensor:
        return network_bits(self.arch, self.params)


class MixedNetworks:
    """``K`` weight bases, name → ``(K, *shape)``; member i's networks are
    ``Σ_k α_ik B_k`` with its group's coefficients α (module → ``(count, K)``)."""

    def __init__(
        self, arch: Architecture, bases: dict[str, torch.Tensor], device: torch.device
    ) -> None:
        self.arch = arch
        self.bases = {
            name: value.to(device).clone().requires_grad_() for name, value in bases.items()
        }
        self.count = next(iter(bases.values())).shape[0]

    def tensors(self) -> list[torch.Tensor]:
        return list(self.bases.values())

    def for_group(self, group: MemberGroup) -> tuple[dict[str, torch.Tensor], bool]:
        params: dict[str, torch.Tensor] = {}
        for module, shapes in self.arch.modules().items():
            params |= mix_float(self.bases, group.coefficients[module], list(shapes))
        return params, True

    def bits(self) -> torch.Tensor:
        return sum(
            network_bits(self.arch, {name: basis[k] for name, basis in self.bases.items()})
            for k in range(self.count)
        )
