"""Kill -9 of the gateway while four clients post: every acknowledged frame is there exactly
once afterwards (staged or stored), nothing refused is, and the store verifies."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx

from inrstore.store import Store

from .conftest import CAMERA, Gateway, frame_bytes, make_gateway

CLIENTS = 4
FRAMES = 200
KILLS = 5


def frames_to_post() -> list[bytes]:
    """Camera-campus frames when the shared data is there, else generated ones."""
    shared = sorted(CAMERA.glob("*.jpg")) + sorted(CAMERA.glob("*.png")) if CAMERA.is_dir() else []
    own = [path.read_bytes() for path in shared]
    return own[:FRAMES] + [frame_bytes(1000 + i) for i in range(FRAMES - len(own[:FRAMES]))]


def client(gateway: Gateway, frames: list[bytes], acked: dict, refused: list, lock) -> None:
    for data in frames:
        while True:
            try:
                answer = httpx.post(f"{gateway.url}/v1/frames", content=data,
                                    params={"source": "cam"}, headers=gateway.auth("write"),
                                    timeout=10)  # fmt: skip
            except httpx.HTTPError:
                time.sleep(0.1)  # the server is down: retry, as a camera would
                continue
            time.sleep(0.02)  # a camera's pace, so that the kills land mid-stream
            with lock:
                if answer.status_code in (200, 201):
                    acked.setdefault(answer.json()["id"], 0)
                    acked[answer.json()["id"]] += 1
                else:
                    refused.append(answer.status_code)
            break


def test_acknowledged_frames_survive_kill_minus_nine(tmp_path: Path) -> None:
    gateway = make_gateway(tmp_path, "--shard-frames", "8", "--shard-seconds", "1")
    frames = frames_to_post()
    acked: dict[str, int] = {}
    refused: list[int] = []
    lock = threading.Lock()
    gateway.start()
    threads = [
        threading.Thread(target=client, args=(gateway, frames[i::CLIENTS], acked, refused, lock))
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    rng = random.Random(0)
    kills_mid_stream = 0
    while kills_mid_stream < KILLS and any(thread.is_alive() for thread in threads):
        time.sleep(rng.uniform(0.1, 1.0))
        with lock:
            mid_stream = len(acked) < FRAMES
        gateway.kill()
        kills_mid_stream += mid_stream
        gateway.start()
    for thread in threads:
        thread.join(timeout=300)
    gateway.stop()
    assert kills_mid_stream == KILLS, "the clients finished before every kill"
    assert not refused and len(acked) == len(set(frames)) == FRAMES
    with Store.open(gateway.store, readonly=True) as store:
        staged = {i for frames_ in store.frames.staged().values() for i, _ in frames_}
        stored = set(store.ids())
        assert not staged & stored, "a frame is both staged and stored"
        assert set(acked) <= staged | stored, "an acknowledged frame was lost"
        assert len(staged) + len(stored) == FRAMES, "a frame is there twice or was invented"
        listed, _ = store.frames.list(limit=1000)
        assert sorted(f.id for f in listed) == sorted(acked)
        assert store.verify(quick=True) == []
