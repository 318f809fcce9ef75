"""Mixed MLP + CNN synthesis: dense latents ``(L, R, C)`` → image ``(channels, R, C)``.

    head MLP (1×1, L → h … → k)  →  residual 3×3 convolution (k → k)  →
    tail MLP (1×1, on [conv output, dense latents], k + L → t … → channels)

The dense latents reach the tail directly (the residual path of the MARM synthesis). Values
are in [0, 1] units of the image; the caller clamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inrstore.models.core.mlp import MLPShape, Params, mlp_forward

PREFIX = "syn."


@dataclass(frozen=True)
class SynthesisShape:
    """Widths of the synthesis; ``latents`` = number of grids L, ``channels`` of the output."""

    latents: int
    channels: int
    head_hidden: int = 24
    features: int = 8
    tail_hidden: int = 16

    @property
    def head(self) -> MLPShape:
        return MLPShape((self.latents, self.head_hidden, self.features))

    @property
    def tail(self) -> MLPShape:
        return MLPShape((self.features + self.latents, self.tail_hidden, self.channels))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return (
            self.head.parameter_shapes(PREFIX + "head.")
            | {
                PREFIX + "conv.w": (self.features, self.features, 3, 3),
                PREFIX + "conv.b": (self.features,),
            }
            | self.tail.parameter_shapes(PREFIX + "tail.")
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates per output pixel."""
        return self.head.macs + 9 * self.features**2 + self.tail.macs


def synthesize(shape: SynthesisShape, params: Params, latents: torch.Tensor) -> torch.Tensor:
    """``latents``: ``(L, R, C)`` → ``(channels, R, C)``; zero padding at the borders.

    Channels first throughout: the per-pixel layers are ``(out, in) @ (in, R·C)`` products
    and the convolution reads the planes without a transpose.
    """
    _, rows, cols = latents.shape
    flat = latents.reshape(shape.latents, rows * cols)
    features = torch.relu(mlp_forward(shape.head, params, PREFIX + "head.", flat))
    planes = features.reshape(1, shape.features, rows, cols)
    conv = F.conv2d(planes, params[PREFIX + "conv.w"], params[PREFIX + "conv.b"], padding=1)
    features = (planes + torch.relu(conv)).reshape(shape.features, rows * cols)
    output = mlp_forward(shape.tail, params, PREFIX + "tail.", torch.cat([features, flat], dim=0))
    return output.reshape(shape.channels, rows, cols)
