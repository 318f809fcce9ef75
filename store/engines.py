"""Where ``add`` encodes its shards: in this process, in a local process pool, or on a Ray
cluster. The store keeps its single writer either way: an engine hands back each encoded
shard to :meth:`~inrstore.store.Store.add`, which commits it in one transaction as it
arrives, in any order.

An engine runs ``encode(number, shard)`` jobs made on demand by ``make_job`` (so that each
job warm-starts from the latest committed shard), at most as many at once as it has slots.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace

from inrstore.store.encoding import (
    EncodedRecords,
    PendingImage,
    ShardJob,
    encode_job,
    encode_job_in_worker,
)

MakeJob = Callable[[list[PendingImage]], ShardJob]
Shards = Sequence[tuple[int, list[PendingImage]]]


@dataclass(frozen=True)
class LocalEngine:
    """``workers`` = 1: encode in this process; more: that many worker processes, each with
    an equal share of the CPU threads."""

    workers: int = 1

    def run(
        self, shards: Shards, make_job: MakeJob, on_start: Callable, on_status: Callable
    ) -> Iterator[tuple[int, EncodedRecords]]:
        if self.workers <= 1:
            for number, shard in shards:
                on_start(number, shard)
                yield number, encode_job(make_job(shard), on_status(number, shard))
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context) as pool:
            running: dict[Future, int] = {}
            queue = list(shards)
            while queue or running:
                while queue and len(running) < self.workers:
                    number, shard = queue.pop(0)
                    on_start(number, shard)
                    running[pool.submit(encode_job_in_worker, make_job(shard), threads)] = number
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()


@dataclass(frozen=True)
class RayEngine:
    """Each shard is a Ray task that receives its images' bytes (workers need no shared
    filesystem) and returns the encoded shard. A task whose worker dies is retried up to
    ``retries`` times; one that fails is reported (every image of the shard, with the
    reason) and the others go on. ``address``: the cluster (None: ``RAY_ADDRESS``, or a
    local instance); ``device="cuda"`` asks each task for a GPU. ``encode`` is the task's
    function (a module-level one, so that workers import it)."""

    address: str | None = None
    device: str = "cpu"
    retries: int = 3
    encode: Callable[[ShardJob, int], EncodedRecords] = encode_job_in_worker

    def run(
        self, shards: Shards, make_job: MakeJob, on_start: Callable, on_status: Callable
    ) -> Iterator[tuple[int, EncodedRecords]]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        gpus = 1 if self.device == "cuda" else 0
        task = ray.remote(self.encode).options(
            num_cpus=1, num_gpus=gpus, max_retries=self.retries, retry_exceptions=False
        )
        resources = ray.cluster_resources()
        slots = max(1, int(resources.get("GPU" if gpus else "CPU", 1)))
        with _interrupts() as interrupted:
            yield from self._loop(task, list(shards), slots, gpus, make_job, on_start, interrupted)

    def _loop(self, task, queue, slots, gpus, make_job, on_start, interrupted: list):
        import ray

        running: dict = {}
        while queue or running:
            if interrupted:
                raise KeyboardInterrupt
            while queue and len(running) < slots:
                number, shard = queue.pop(0)
                on_start(number, shard)
                readable, unreadable = _with_bytes(shard)
                if not readable:
                    yield number, EncodedRecords(b"", failures=unreadable)
                    continue
                ref = task.remote(make_job(readable), 0 if gpus else 1)
                running[ref] = (number, readable, unreadable)
            if not running:
                continue
            # A timeout hands control back to Python every second, so that Ctrl-C (SIGINT)
            # interrupts the driver while it waits, as it does any other add.
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                number, readable, unreadable = running.pop(ref)
                try:
                    encoded = ray.get(ref)
                except ray.exceptions.RayError as err:
                    reason = f"encoding failed on the cluster: {_first_line(err)}"
                    encoded = EncodedRecords(b"", failures=[(i.path, reason) for i in readable])
                encoded.failures.extend(unreadable)
                yield number, encoded


@contextlib.contextmanager
def _interrupts() -> Iterator[list[int]]:
    """A list that SIGINT appends to while the driver waits on Ray (whose blocking calls may
    hold the signal back), so that Ctrl-C stops it within a second; in the main thread
    only, where signal handlers live."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _with_bytes(shard: list[PendingImage]) -> tuple[list[PendingImage], list]:
    """The shard's images carrying their files' bytes, and ``(path, reason)`` for those whose
    file can no longer be read."""
    readable, unreadable = [], []
    for item in shard:
        try:
            data = item.data if item.data is not None else item.path.read_bytes()
        except OSError as err:
            unreadable.append((item.path, err.strerror or "cannot be read"))
            continue
        readable.append(replace(item, data=data))
    return readable, unreadable


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[0][:300]


def make_engine(engine: object, workers: int, ray_address: str | None, device: str):
    """The engine named ``engine`` (``local`` or ``ray``), or ``engine`` itself."""
    if engine == "local":
        return LocalEngine(workers)
    if engine == "ray":
        return RayEngine(ray_address, device)
    if hasattr(engine, "run"):
        return engine
    raise ValueError(f"unknown engine {engine!r}; use local or ray")
