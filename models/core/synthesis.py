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
SYNTHESIS_KINDS = ("mixed", "refine")
"""The synthesis kinds, by their code in the bitstream."""
REFINE_LAYERS = 2
"""Residual 3×3 convolutions of the ``refine`` synthesis."""


def refine_conv_name(layer: int) -> str:
    """Weight name of the ``refine`` synthesis's convolution ``layer`` (its bias: ``…b``)."""
    return f"{PREFIX}refine{layer}.w"


@dataclass(frozen=True)
class SynthesisShape:
    """Widths of the synthesis; ``latents`` = number of grids L, ``channels`` of the output.
    The ``refine`` kind reads ``head_hidden`` only."""

    latents: int
    channels: int
    head_hidden: int = 24
    features: int = 8
    tail_hidden: int = 16
    kind: str = "mixed"

    def __post_init__(self) -> None:
        if self.kind not in SYNTHESIS_KINDS:
            raise ValueError(f"synthesis kind must be one of {SYNTHESIS_KINDS}, not {self.kind!r}")

    @property
    def head(self) -> MLPShape:
        """The per-pixel MLP on the dense latents (for ``refine``, the whole MLP)."""
        if self.kind == "refine":
            return MLPShape((self.latents, self.head_hidden, self.channels))
        return MLPShape((self.latents, self.head_hidden, self.features))

    @property
    def tail(self) -> MLPShape:
        return MLPShape((self.features + self.latents, self.tail_hidden, self.channels))

    @property
    def margin(self) -> int:
        """Pixels each output pixel reads beyond itself on every side (its 3×3 layers)."""
        return REFINE_LAYERS if self.kind == "refine" else 1

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        head = self.head.parameter_shapes(PREFIX + "head.")
        if self.kind == "refine":
            convs = {}
            for layer in range(REFINE_LAYERS):
                name = refine_conv_name(layer)
                convs[name] = (self.channels, self.channels, 3, 3)
                convs[name[:-1] + "b"] = (self.channels,)
            return head | convs
        return (
            head
            | {
                PREFIX + "conv.w": (self.features, self.features, 3, 3),
                PREFIX + "conv.b": (self.features,),
            }
            | self.tail.parameter_shapes(PREFIX + "tail.")
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates per output pixel."""
        if self.kind == "refine":
            return self.head.macs + REFINE_LAYERS * 9 * self.channels**2
        return self.head.macs + 9 * self.features**2 + self.tail.macs


def synthesize(shape: SynthesisShape, params: Params, latents: torch.Tensor) -> torch.Tensor:
    """``latents``: ``(L, R, C)`` → ``(channels, R, C)``; zero padding at the borders.

    Channels first throughout: the per-pixel layers are ``(out, in) @ (in, R·C)`` products
    and the convolutions read the planes without a transpose.
    """
    _, rows, cols = latents.shape
    flat = latents.reshape(shape.latents, rows * cols)
    if shape.kind == "refine":
        output = mlp_forward(shape.head, params, PREFIX + "head.", flat)
        planes = output.reshape(1, shape.channels, rows, cols)
        for layer in range(REFINE_LAYERS):
            name = refine_conv_name(layer)
            conv = F.conv2d(planes, params[name], params[name[:-1] + "b"], padding=1)
            planes = planes + conv
            if layer < REFINE_LAYERS - 1:
                planes = torch.relu(planes)
        return planes[0]
    features = torch.relu(mlp_forward(shape.head, params, PREFIX + "head.", flat))
    planes = features.reshape(1, shape.features, rows, cols)
    conv = F.conv2d(planes, params[PREFIX + "conv.w"], params[PREFIX + "conv.b"], padding=1)
    features = (planes + torch.relu(conv)).reshape(shape.features, rows * cols)
    output = mlp_forward(shape.tail, params, PREFIX + "tail.", torch.cat([features, flat], dim=0))
    return output.reshape(shape.channels, rows, cols)
