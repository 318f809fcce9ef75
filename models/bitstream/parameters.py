"""Entropy coding of quantized network parameters (integers) with a zero-mean Laplace prior.

Each group of integers (a parameter tensor; a whole module before image format 4 and in
shards) shares one Laplace scale ``σ = code / 16`` (``code`` stored in the header), chosen
from the integers' mean magnitude (the maximum-likelihood Laplace scale).
"""

from __future__ import annotations

import math

import constriction
import numpy as np

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.core.mlp import WEIGHT_LIMIT

SCALE_CODE_STEPS = 16
SCALE_CODE_MAX = 2**16 - 1
_MODEL = constriction.stream.model.QuantizedLaplace(-WEIGHT_LIMIT, WEIGHT_LIMIT - 1)


def scale_code(integers: np.ndarray, limit: int = SCALE_CODE_MAX) -> int:
    """The scale code in [1, ``limit``] for a group of integers (any code decodes: one
    clipped at ``limit`` only costs bits)."""
    mean_magnitude = float(np.mean(np.abs(integers))) if integers.size else 0.0
    return max(1, min(limit, round(mean_magnitude * SCALE_CODE_STEPS)))


def parameter_bits(integers: np.ndarray, code: int) -> float:
    """Estimated coded size in bits of ``integers`` under the Laplace prior of ``code``."""
    scale = code / SCALE_CODE_STEPS
    values = np.abs(integers.astype(np.float64))
    upper = np.exp(-np.maximum(values - 0.5, 0.0) / scale)
    lower = np.exp(-(values + 0.5) / scale)
    probability = np.where(values == 0, 1.0 - math.exp(-0.5 / scale), 0.5 * (upper - lower))
    return float(-np.log2(np.maximum(probability, 2.0**-24)).sum())


def encode_parameters(modules: list[tuple[np.ndarray, int]]) -> bytes:
    """Code each group's flat integers with its scale code, in order."""
    encoder = constriction.stream.queue.RangeEncoder()
    write_parameters(encoder, modules)
    return encoder.get_compressed().tobytes()


def write_parameters(encoder, modules: list[tuple[np.ndarray, int]]) -> None:
    """Append each group's flat integers to a constriction ``RangeEncoder``."""
    for integers, code in modules:
        symbols = np.asarray(integers, dtype=np.int32).reshape(-1)
        if symbols.size:
            means = np.zeros(symbols.size)
            scales = np.full(symbols.size, code / SCALE_CODE_STEPS)
            encoder.encode(symbols, _MODEL, means, scales)


def range_decoder(payload: bytes, what: str):
    """A constriction ``RangeDecoder`` over ``payload`` (whole 32-bit words)."""
    if len(payload) % 4:
        raise BitstreamError(f"{what} length is not a multiple of 4 bytes")
    return constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype=np.uint32).copy())


def decode_parameters(payload: bytes, modules: list[tuple[int, int]]) -> list[np.ndarray]:
    """Inverse of :func:`encode_parameters`; ``modules`` lists each group's
    ``(count, scale code)``."""
    return read_parameters(range_decoder(payload, "parameter section"), modules)


def read_parameters(decoder, modules: list[tuple[int, int]]) -> list[np.ndarray]:
    """Read what :func:`write_parameters` wrote, from a ``RangeDecoder``."""
    result = []
    for count, code in modules:
        if count == 0:
            result.append(np.zeros(0, dtype=np.int64))
            continue
        scales = np.full(count, code / SCALE_CODE_STEPS)
        try:
            result.append(decoder.decode(_MODEL, np.zeros(count), scales).astype(np.int64))
        except Exception as err:  # constriction's report of inconsistent data
            raise BitstreamError(f"parameter section does not decode ({err})") from None
    return result
