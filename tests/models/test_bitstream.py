"""Hostile bytes: truncation, flips, forged headers → a clear BitstreamError, never a crash."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest

from inrstore.models.bitstream.errors import BitstreamError
from inrstore.models.bitstream.image_format import (
    FORMAT_VERSION,
    MAX_TENSOR_EXPONENT,
    MAX_TENSOR_SCALE_CODE,
    PREFIX,
    ModuleCoding,
    pack_image,
    tensor_names,
    unpack_image,
)
from inrstore.models.codec import decode_image, read_header


def _section_boundaries(data: bytes) -> list[int]:
    _, parameters, latents = unpack_image(data)
    start = len(data) - 4 - len(latents) - len(parameters)
    header_end = PREFIX.size + 3
    return [
        0,
        4,
        5,
        PREFIX.size,
        header_end,
        start - 8,
        start,
        start + len(parameters),
        len(data) - 4,
    ]


def test_truncation_anywhere_is_reported(tiny_bitstream: bytes) -> None:
    cuts = set(_section_boundaries(tiny_bitstream)) | set(range(0, len(tiny_bitstream), 7))
    for cut in sorted(cuts):
        with pytest.raises(BitstreamError):
            decode_image(tiny_bitstream[:cut])


def test_random_bit_flips_are_detected(tiny_bitstream: bytes) -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        damaged = bytearray(tiny_bitstream)
        position = int(rng.integers(len(damaged)))
        damaged[position] ^= 1 << int(rng.integers(8))
        with pytest.raises(BitstreamError):
            decode_image(bytes(damaged))


def test_extra_bytes_are_refused(tiny_bitstream: bytes) -> None:
    with pytest.raises(BitstreamError, match="do not match the data"):
        decode_image(tiny_bitstream + b"\0")


def _forge(data: bytes, offset: int, code: str, value: int) -> bytes:
    """Overwrite one header field and recompute the checksum, as an attacker would."""
    forged = bytearray(data)
    struct.pack_into(">" + code, forged, offset, value)
    body = bytes(forged[:-4])
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("offset", "code", "value", "message"),
    [
        (0, "I", 0x504E4700, "bad magic number"),
        (4, "B", FORMAT_VERSION + 1, rf"version {FORMAT_VERSION + 1} \(this inrstore reads 1 to"),
        (4, "B", 0, "unsupported image format version 0"),
        (5, "H", 0, "height=0 is out of range"),
        (5, "I", 60000 << 16 | 60000, "declared size 60000x60000 is too large"),
        (9, "B", 2, "channels must be 1, 3 or 4, not 2"),
        (10, "B", 9, "levels=9 is out of range"),
        (12, "B", 200, "head_hidden=200 is out of range"),
    ],
)
def test_forged_headers_with_valid_checksums_are_refused(
    tiny_bitstream: bytes, offset: int, code: str, value: int, message: str
) -> None:
    with pytest.raises(BitstreamError, match=message):
        decode_image(_forge(tiny_bitstream, offset, code, value))


@pytest.mark.parametrize("packed", [(MAX_TENSOR_EXPONENT + 1) << 11 | 5, 9 << 11])
def test_forged_tensor_steps_and_scales_are_refused(tiny_bitstream: bytes, packed: int) -> None:
    first, second = tensor_names(read_header(tiny_bitstream).arch)[:2]
    with pytest.raises(BitstreamError, match=f"invalid quantization of parameter {first}$"):
        decode_image(_forge(tiny_bitstream, PREFIX.size + 3, "H", packed))
    with pytest.raises(BitstreamError, match=f"invalid quantization of parameter {second}$"):
        decode_image(_forge(tiny_bitstream, PREFIX.size + 5, "H", packed))


@pytest.mark.parametrize("neighbours", [0, 13, 255])
def test_forged_arm_neighbourhoods_are_refused(tiny_bitstream: bytes, neighbours: int) -> None:
    with pytest.raises(BitstreamError, match=f"unknown ARM neighbourhood {neighbours}$"):
        decode_image(_forge(tiny_bitstream, PREFIX.size, "B", neighbours))


@pytest.mark.parametrize("kind", [2, 255])
def test_forged_prefilter_kinds_are_refused(tiny_bitstream: bytes, kind: int) -> None:
    with pytest.raises(BitstreamError, match=f"unknown pre-filter kind {kind}$"):
        decode_image(_forge(tiny_bitstream, PREFIX.size + 1, "B", kind))


@pytest.mark.parametrize("kind", [2, 255])
def test_forged_synthesis_kinds_are_refused(tiny_bitstream: bytes, kind: int) -> None:
    with pytest.raises(BitstreamError, match=f"unknown synthesis kind {kind}$"):
        decode_image(_forge(tiny_bitstream, PREFIX.size + 2, "B", kind))


def test_steps_and_scales_the_format_cannot_hold_are_refused_when_writing(
    tiny_bitstream: bytes,
) -> None:
    header, parameters, latents = unpack_image(tiny_bitstream)
    first = tensor_names(header.arch)[0]
    for coding, message in [
        (ModuleCoding(MAX_TENSOR_EXPONENT + 1, 5), f"step exponent 17 of {first} is out of range"),
        (ModuleCoding(3, MAX_TENSOR_SCALE_CODE + 1), f"scale code 2048 of {first} is out"),
    ]:
        forged = replace(header, tensors=header.tensors | {first: coding})
        with pytest.raises(ValueError, match=message):
            pack_image(forged, parameters, latents)
    assert pack_image(header, parameters, latents) == tiny_bitstream


def test_forged_section_lengths_are_refused(tiny_bitstream: bytes) -> None:
    _, parameters, latents = unpack_image(tiny_bitstream)
    start = len(tiny_bitstream) - 4 - len(latents) - len(parameters)
    forged = _forge(tiny_bitstream, start - 8, "I", 2**32 - 1)
    with pytest.raises(BitstreamError, match="do not match the data"):
        decode_image(forged)


def test_header_round_trip(tiny_bitstream: bytes) -> None:
    header = read_header(tiny_bitstream)
    assert (header.arch.height, header.arch.width, header.arch.channels) == (32, 32, 3)
    # A small image: its preset's ARM covers every grid below the coarsest (no ARU).
    assert header.arch.levels == 4 and header.arch.arm_levels == 3
    assert header.arch.arm_context == 24
    assert set(header.modules) == {"upsampling", "synthesis", "arm"}
    assert header.arch.prefilter
    assert header.arch.synthesis_kind == "refine"
    assert list(header.tensors) == tensor_names(header.arch)
    assert set(header.tensors) == set(header.arch.parameter_shapes())
    assert all(0 <= coding.exponent <= MAX_TENSOR_EXPONENT for coding in header.tensors.values())
