"""Several encodes of one image at once, from different seeds, keeping the best.

A time-budgeted encode of a small image ends in a basin that depends on its seed (the random
start of the networks no stored set holds, the quantization noise), and a second thread buys
one encode little. So on a CPU each candidate gets an equal share of the threads, and the
bitstream with the least D + λR, measured on its own decode, is the one kept (what it
measured: ``bench/HISTORY.md``, 2026-12-05).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import torch

from inrstore.models.core.architecture import is_compact

if TYPE_CHECKING:
    from inrstore.models.fit.presets import Preset


@dataclass(frozen=True)
class EncodeJob:
    """What every candidate encodes: ``pixels`` ``uint8 (H, W, C)`` (and, for a shard, its
    ``others``) under ``preset`` at ``quality``, on ``device``, within ``time_limit`` seconds
    of training (None: the preset's budget). A shard of shared networks also has its
    ``bases`` K and its ``batch_pixels``, and may share latents (``shared_latents``).
    ``warm_start``: what the networks start from where
    they match (an earlier shard's header for a shard, an earlier bitstream for an image)."""

    pixels: np.ndarray
    preset: Preset
    quality: float
    device: str
    time_limit: float | None
    others: tuple[np.ndarray, ...] = ()
    bases: int = 1
    batch_pixels: int = 1 << 20
    warm_start: bytes | None = None
    shared_latents: bool = False

    @property
    def images(self) -> list[np.ndarray]:
        """Every image of the job, in order."""
        return [self.pixels, *self.others]


def candidate_count(job: EncodeJob) -> int:
    """How many seeds to encode: the preset's :attr:`~inrstore.models.fit.presets.Preset.
    compact_candidates` when every image is under 512×512 pixels and the device is the CPU,
    at most one per thread torch may use here; one otherwise."""
    if job.device != "cpu" or not all(is_compact(*image.shape[:2]) for image in job.images):
        return 1
    return max(1, min(job.preset.compact_candidates, torch.get_num_threads()))


def best_candidate(
    encode: Callable[[EncodeJob, int, Callable | None], bytes],
    score: Callable[[EncodeJob, bytes], float],
    job: EncodeJob,
    seeds: Sequence[int],
    on_status: Callable | None = None,
) -> bytes:
    """The bitstream of least ``score`` among ``encode(job, seed, ...)`` over ``seeds`` (the
    first on a tie).

    The first seed runs in this process and reports to ``on_status``; the others run at the
    same time, each in a fresh Python process (``python -m`` this module: unlike
    :mod:`multiprocessing`'s spawn, it does not re-run the caller's main script), stopped if
    this one fails or is interrupted. ``encode`` must be a module-level function: workers
    import it by name. Each candidate gets ``1/len(seeds)`` of this process's torch threads;
    this process's count is restored afterwards.
    """
    threads = torch.get_num_threads()
    share = max(1, threads // len(seeds))
    workers: list[subprocess.Popen] = []
    try:
        for seed in seeds[1:]:
            worker = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            workers.append(worker)
            with worker.stdin:
                _send(worker.stdin, _request(encode, job, seed, share), _arrays(job))
        torch.set_num_threads(share)
        try:
            bitstreams = [encode(job, seeds[0], on_status)]
        finally:
            torch.set_num_threads(threads)
        bitstreams += [_receive(worker) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            worker.stdout.close()
    return min(bitstreams, key=lambda data: score(job, data))


# Between an encoder and the workers it starts, each way one message: a JSON header and a
# payload, each after its length (big-endian u32). No pickles.
_LENGTH = struct.Struct(">I")


def _send(stream: BinaryIO, header: dict, payload: bytes) -> None:
    text = json.dumps(header).encode()
    stream.write(b"".join([_LENGTH.pack(len(text)), text, _LENGTH.pack(len(payload)), payload]))


def _read(stream: BinaryIO) -> tuple[dict, bytes]:
    """A message :func:`_send` wrote; :class:`EOFError` if the stream ends before it does."""

    def exactly(count: int) -> bytes:
        data = stream.read(count)
        if len(data) != count:
            raise EOFError
        return data

    header = json.loads(exactly(_LENGTH.unpack(exactly(_LENGTH.size))[0]))
    return header, exactly(_LENGTH.unpack(exactly(_LENGTH.size))[0])


def _request(encode: Callable, job: EncodeJob, seed: int, threads: int) -> dict:
    """The header of a worker's job: everything but the pixels, the encoder by its name."""
    return {
        "encode": f"{encode.__module__}:{encode.__qualname__}",
        "preset": dataclasses.asdict(job.preset),
        "quality": job.quality,
        "device": job.device,
        "time_limit": job.time_limit,
        "bases": job.bases,
        "batch_pixels": job.batch_pixels,
        "seed": seed,
        "threads": threads,
    }


def _arrays(job: EncodeJob) -> bytes:
    """The job's images (``image0``, ``image1``, …) and warm start (``warm_start``, bytes as
    ``uint8``) in one ``.npz``."""
    buffer = io.BytesIO()
    arrays = {f"image{index}": image for index, image in enumerate(job.images)}
    if job.warm_start is not None:
        arrays["warm_start"] = np.frombuffer(job.warm_start, dtype=np.uint8)
    np.savez(buffer, **arrays, allow_pickle=False)
    return buffer.getvalue()


def _receive(worker: subprocess.Popen) -> bytes:
    """The bytes a worker sent; :class:`ChildProcessError` if it failed or died without a
    word."""
    try:
        header, payload = _read(worker.stdout)
    except EOFError:
        raise ChildProcessError(
            f"an encoder process ended with exit code {worker.wait()}"
        ) from None
    if header["error"] is not None:
        raise ChildProcessError(f"an encoder process failed: {header['error']}")
    return payload


def _run_worker() -> None:
    """A worker process: read a job from stdin, encode it, write the bytes (or the error) to
    stdout, which nothing else may write to (Python's own ``sys.stdout`` goes to stderr
    meanwhile)."""
    from inrstore.models.fit.presets import Preset

    results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    request, payload = _read(sys.stdin.buffer)
    module, name = request["encode"].split(":")
    encode = getattr(importlib.import_module(module), name)
    settings = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in request["preset"].items()
    }
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        count = sum(name.startswith("image") for name in arrays.files)
        images = [arrays[f"image{index}"] for index in range(count)]
        warm_start = arrays["warm_start"].tobytes() if "warm_start" in arrays.files else None
    job = EncodeJob(
        images[0],
        Preset(**settings),
        request["quality"],
        request["device"],
        request["time_limit"],
        tuple(images[1:]),
        request["bases"],
        request["batch_pixels"],
        warm_start,
    )
    torch.set_num_threads(request["threads"])
    try:
        outcome = ({"error": None}, encode(job, request["seed"], None))
    except Exception as err:  # reported by the parent, which raises it
        outcome = ({"error": f"{type(err).__name__}: {err}"}, b"")
    with results:
        _send(results, *outcome)


if __name__ == "__main__":
    _run_worker()
