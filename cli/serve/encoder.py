"""The gateway's background encoder: a process of its own, so that training never stalls the
HTTP server. Every second it applies the retention policy and encodes the staged frames that
are due (:meth:`~inrstore.store.frames.Frames.due`) into shards, one committed transaction
each. It stops when asked, or when the server that started it is gone."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, replace
from pathlib import Path

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class EncoderSettings:
    """What ``inrstore serve`` passes to its encoder (all picklable)."""

    store: Path
    preset: str = "fast"
    quality: float = 50.0
    shard_frames: int = 16
    shard_seconds: float = 60.0
    retain_days: float | None = None
    max_bytes: int | None = None
    retain_per_source: bool = False
    time_limit: float | None = None
    """Seconds of training per shard (None: the preset's budget); for tests and small boxes."""
    sharing: str = "auto"


def run_encoder(settings: EncoderSettings, stop, parent: int) -> None:
    """The encoder loop (the target of the encoder process)."""
    import torch

    from inrstore.models.fit.presets import preset as find_preset
    from inrstore.store import Store

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    chosen = find_preset(settings.preset)
    if settings.time_limit is not None:  # a 256×256 frame trains this long, smaller ones less
        chosen = replace(chosen, crop_seconds=settings.time_limit)
    with Store.open(settings.store) as store:
        while not stop.is_set() and os.getppid() == parent:
            store.frames.apply_retention(
                settings.retain_days, settings.max_bytes, per_source=settings.retain_per_source
            )
            batches = store.frames.due(settings.shard_frames, settings.shard_seconds)
            for batch in batches:
                if stop.is_set():
                    break
                store.add_staged(
                    batch, preset=chosen, quality=settings.quality, sharing=settings.sharing
                )
            if not batches:
                stop.wait(POLL_SECONDS)


class EncoderProcess:
    """Starts and stops :func:`run_encoder` in a spawned process."""

    def __init__(self, settings: EncoderSettings) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.process = context.Process(
            target=run_encoder, args=(settings, self.stop, os.getpid()), daemon=True
        )

    def start(self) -> None:
        self.process.start()

    def close(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
