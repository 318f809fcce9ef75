"""Synthesis networks: dense latents ``(L, R, C)`` → image ``(channels, R, C)``.

Two kinds, named in the bitstream (format 7) by :data:`SYNTHESIS_KINDS`:

``mixed`` (the MARM paper's mixed MLP + CNN synthesis)::

    head MLP (1×1, L → h … → k)  →  residual 3×3 convolution (k → k)  →
    tail MLP (1×1, on [conv output, dense latents], k + L → t … → channels)

The dense latents reach the tail directly (the residual path of the MARM synthesis).

``refine`` (the shape of Cool-chic 5's "hop" decoder)::

    MLP (1×1, L → h → channels)  →  y ← ReLU(y + conv y)  →  y + conv y

two residual 3×3 convolutions on the output channels, started at zero, refine the per-pixel
output with its neighbours. Fewer weights than ``mixed`` at a similar quality (on the kodim23
crop, 611 against 1 079), which is what a 256×256 image's rate needs.

Values are in [0, 1] units of the image; the caller clamps. Borders are zero-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from inrstore.models.core.mlp import MLPShape, Params, mlp_forward

PREFIX = "syn."
HEAD_PREFIX = PREFIX + "head."


@dataclass(frozen=True)
class MixedSynthesis:
    """The ``mixed`` synthesis; ``latents`` = number of grids L, ``channels`` of the output."""

    latents: int
    channels: int
    head_hidden: int = 24
    features: int = 8
    tail_hidden: int = 16
    margin = 1
    """Pixels each output pixel reads beyond itself on every side (its 3×3 convolution)."""

    @property
    def head(self) -> MLPShape:
        return MLPShape((self.latents, self.head_hidden, self.features))

    @property
    def tail(self) -> MLPShape:
        return MLPShape((self.features + self.latents, self.tail_hidden, self.channels))

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return (
            self.head.parameter_shapes(HEAD_PREFIX)
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

    def start_bound(self, name: str, fan_in: int) -> float:
        """Bound of weight ``name``'s uniform random start: ±1/√fan_in."""
        return 1 / fan_in**0.5

    def forward(self, params: Params, flat: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """``flat``: the dense latents ``(L, rows·cols)`` → ``(channels, rows, cols)``, or a
        batch (see :func:`synthesize`)."""
        features = torch.relu(mlp_forward(self.head, params, HEAD_PREFIX, flat))
        planes = features.reshape(-1, self.features, rows, cols)
        conv = _convolve(planes, params[PREFIX + "conv.w"], params[PREFIX + "conv.b"])
        features = (planes + torch.relu(conv)).reshape(features.shape)
        tail_input = torch.cat([features, flat], dim=-2)
        return mlp_forward(self.tail, params, PREFIX + "tail.", tail_input).reshape(
            *flat.shape[:-2], self.channels, rows, cols
        )


@dataclass(frozen=True)
class RefineSynthesis:
    """The ``refine`` synthesis: an MLP ``latents`` → ``hidden`` → ``channels`` and
    :data:`LAYERS` residual 3×3 convolutions on its output."""

    latents: int
    channels: int
    hidden: int
    LAYERS = 2
    margin = LAYERS
    """Pixels each output pixel reads beyond itself on every side (one per convolution)."""

    @property
    def head(self) -> MLPShape:
        return MLPShape((self.latents, self.hidden, self.channels))

    @staticmethod
    def conv_names(layer: int) -> tuple[str, str]:
        """Weight and bias names of convolution ``layer``."""
        return f"{PREFIX}refine{layer}.w", f"{PREFIX}refine{layer}.b"

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self.head.parameter_shapes(HEAD_PREFIX)
        for layer in range(self.LAYERS):
            weight, bias = self.conv_names(layer)
            shapes |= {weight: (self.channels, self.channels, 3, 3), bias: (self.channels,)}
        return shapes

    @property
    def macs(self) -> int:
        """Multiply-accumulates per output pixel."""
        return self.head.macs + self.LAYERS * 9 * self.channels**2

    def start_bound(self, name: str, fan_in: int) -> float:
        """Bound of weight ``name``'s uniform random start, as Cool-chic starts this shape:
        ±1/(√fan_in · fan_out²) for the MLP's weights, 0 for the rest (the convolutions start
        at zero, so it starts as its MLP, rectified)."""
        shape = self.parameter_shapes()[name]
        return 1 / fan_in**0.5 / shape[1] ** 2 if len(shape) == 2 else 0.0

    def forward(self, params: Params, flat: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """``flat``: the dense latents ``(L, rows·cols)`` → ``(channels, rows, cols)``, or a
        batch (see :func:`synthesize`)."""
        output = mlp_forward(self.head, params, HEAD_PREFIX, flat)
        planes = output.reshape(-1, self.channels, rows, cols)
        for layer in range(self.LAYERS):
            weight, bias = self.conv_names(layer)
            planes = planes + _convolve(planes, params[weight], params[bias])
            if layer < self.LAYERS - 1:
                planes = torch.relu(planes)
        return planes.reshape(*flat.shape[:-2], self.channels, rows, cols)


def _convolve(planes: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Zero-padded 3×3 convolution of ``planes`` ``(B, in, R, C)``. Stacked weights ``(B, out,
    in, 3, 3)`` (a batch of members) convolve each member with its own, one at a time: a
    batched convolution may round differently from a member's own."""
    if weight.dim() == 4:
        return F.conv2d(planes, weight, bias, padding=1)
    return torch.cat(
        [
            F.conv2d(member[None], own_weight, own_bias, padding=1)
            for member, own_weight, own_bias in zip(planes, weight, bias, strict=True)
        ]
    )


SynthesisShape = MixedSynthesis | RefineSynthesis
SYNTHESIS_KINDS = ("mixed", "refine")
"""The synthesis kinds, by their code in the bitstream."""


def synthesize(shape: SynthesisShape, params: Params, latents: torch.Tensor) -> torch.Tensor:
    """``latents``: ``(L, R, C)`` → ``(channels, R, C)``; zero padding at the borders. A batch
    of members, ``(B, L, R, C)`` → ``(B, channels, R, C)`` with ``params`` stacked (a leading
    member dimension on every tensor), gives each member bit for bit its own synthesis.

    Channels first throughout: the per-pixel layers are ``(out, in) @ (in, R·C)`` products
    and the convolutions read the planes without a transpose.
    """
    *batch, _, rows, cols = latents.shape
    return shape.forward(params, latents.reshape(*batch, shape.latents, rows * cols), rows, cols)
