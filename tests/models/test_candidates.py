"""Several seeds encoded at once: the kept bitstream is the best single-seed encode."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from inrstore.models.codec import encode_image, rate_distortion
from inrstore.models.fit.candidates import EncodeJob, best_candidate, candidate_count

from .conftest import TINY_PRESET

TWO = replace(TINY_PRESET, compact_candidates=2)


@pytest.fixture
def threads() -> Iterator[Callable[[int], None]]:
    """Sets torch's thread count for the test; the count before comes back after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_the_best_of_the_seeds_is_kept(
    sample_pixels: np.ndarray, threads: Callable[[int], None]
) -> None:
    threads(2)
    kept = encode_image(sample_pixels, TWO, quality=80, seed=3)
    assert torch.get_num_threads() == 2
    threads(1)
    singles = [encode_image(sample_pixels, TINY_PRESET, quality=80, seed=s) for s in (3, 4)]
    assert singles[0] != singles[1]
    assert kept in singles
    job = EncodeJob(sample_pixels, TINY_PRESET, 80, "cpu", None)
    assert rate_distortion(job, kept) == min(rate_distortion(job, data) for data in singles)


def test_candidates_only_for_small_images_on_the_cpu_one_per_thread(
    threads: Callable[[int], None],
) -> None:
    small, large = np.zeros((64, 64, 3), np.uint8), np.zeros((512, 512, 3), np.uint8)
    threads(4)
    assert candidate_count(EncodeJob(small, TWO, 50, "cpu", None)) == 2
    assert candidate_count(EncodeJob(small, TINY_PRESET, 50, "cpu", None)) == 1
    assert candidate_count(EncodeJob(large, TWO, 50, "cpu", None)) == 1
    assert candidate_count(EncodeJob(small, TWO, 50, "cuda", None)) == 1
    threads(1)
    assert candidate_count(EncodeJob(small, TWO, 50, "cpu", None)) == 1


def seed_bytes(job: EncodeJob, seed: int, on_status: Callable | None) -> bytes:
    """The seed as one byte, and the thread count it ran with as another."""
    return bytes([seed, torch.get_num_threads()])


def failing_encode(job: EncodeJob, seed: int, on_status: Callable | None) -> bytes:
    """Fails in the worker (seed 1), succeeds here (seed 0)."""
    if seed:
        raise ValueError("no room left on the device")
    return b"x"


def dying_encode(job: EncodeJob, seed: int, on_status: Callable | None) -> bytes:
    """Ends its process without a word in the worker (seed 1)."""
    if seed:
        os._exit(3)
    return b"x"


@pytest.mark.parametrize("better", [0, 1])
def test_the_candidate_of_least_score_wins_wherever_it_ran(
    sample_pixels: np.ndarray, threads: Callable[[int], None], better: int
) -> None:
    threads(4)
    job = EncodeJob(sample_pixels, TWO, 80, "cpu", None)
    kept = best_candidate(seed_bytes, lambda job, data: abs(data[0] - better), job, [0, 1])
    assert kept == bytes([better, 2])  # each ran with half of the four threads
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        (failing_encode, r"failed: ValueError: no room left on the device$"),
        (dying_encode, r"ended with exit code 3$"),
    ],
)
def test_a_failing_candidate_fails_the_encode_with_its_message(
    sample_pixels: np.ndarray, encode: Callable, message: str
) -> None:
    job = EncodeJob(sample_pixels, TWO, 80, "cpu", None)
    with pytest.raises(ChildProcessError, match=message):
        best_candidate(encode, rate_distortion, job, [0, 1])
